"""xasync.Client: construction paths, shared token, secrets kept out of reprs, logs and pickles."""

from __future__ import annotations

import asyncio
import logging
import pickle
import socket
import time
import uuid

import pytest

from xasync._contract import API_PATH_PLANET
from xasync.api import Api, AsyncApi
from xasync.client import Client
from xasync.config import CDSE, Config
from xasync.emulator import Faults
from xasync.errors import (
    AuthError,
    BadRequest,
    ConfigError,
    RateLimited,
    ServerError,
    TransportError,
)

SCRIPT = (
    "//VERSION=3\n"
    "function setup() { return {input: ['B04'], output: {bands: 1}}; }\n"
    "function evaluatePixel(s) { return [s.B04]; }\n"
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("SH_CLIENT_ID", "SH_CLIENT_SECRET", "SH_BASE_URL", "SH_TOKEN_URL", "SH_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("XASYNC_CONCURRENCY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def body_for(emu, *, width: int = 100) -> dict:
    bucket = emu.create_bucket(f"client-{uuid.uuid4().hex[:12]}")
    so = emu.storage_options
    return {
        "input": {
            "bounds": {
                "bbox": [13.0, 45.0, 13.01, 45.01],
                "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/4326"},
            },
            "data": [
                {
                    "type": "sentinel-2-l2a",
                    "dataFilter": {
                        "timeRange": {"from": "2023-06-01T00:00:00Z", "to": "2023-06-30T23:59:59Z"}
                    },
                }
            ],
        },
        "output": {
            "width": width,
            "height": 100,
            "responses": [{"identifier": "default", "format": {"type": "image/tiff"}}],
            "delivery": {
                "s3": {
                    "url": f"{bucket}/x",
                    "accessKey": so["key"],
                    "secretAccessKey": so["secret"],
                }
            },
        },
        "evalscript": SCRIPT,
    }


def test_from_emulator_reads_endpoints_and_limit(emu):
    client = Client.from_emulator(emu, api_path=API_PATH_PLANET, timeout=5.0)
    cfg = client.config
    assert (cfg.base_url, cfg.token_url) == (emu.base_url, emu.token_url)
    assert (cfg.client_id, cfg.client_secret) == (emu.client_id, emu.client_secret)
    assert cfg.concurrency == emu.concurrency_limit == 4
    assert cfg.api_path == API_PATH_PLANET
    assert cfg.timeout == 5.0
    client.close()


def test_from_emulator_is_duck_typed():
    class Fake:
        base_url = "http://127.0.0.1:9"
        token_url = "http://127.0.0.1:9/token"
        client_id = "id"
        client_secret = "secret"

    client = Client.from_emulator(Fake())
    assert client.config.concurrency is None


def test_from_env_round_trip(emu, monkeypatch):
    monkeypatch.setenv("SH_CLIENT_ID", emu.client_id)
    monkeypatch.setenv("SH_CLIENT_SECRET", emu.client_secret)
    monkeypatch.setenv("SH_BASE_URL", emu.base_url)
    monkeypatch.setenv("SH_TOKEN_URL", emu.token_url)
    monkeypatch.setenv("XASYNC_CONCURRENCY", "2")
    emu.configure(processing_seconds=0.0)
    with Client.from_env() as client:
        assert client.config.concurrency == 2
        rid = client.api.create(body_for(emu))
        deadline = time.monotonic() + 60  # a guard against hangs, not a measurement
        while client.api.status(rid):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert emu.stats["succeeded"] == 1


def test_explicit_arguments_override_config():
    client = Client(client_id="x", client_secret="y", concurrency=3, config=CDSE)
    assert client.config.base_url == CDSE.base_url
    assert client.config.token_url == CDSE.token_url
    assert client.config.concurrency == 3


def test_missing_credentials_raise_when_needed_not_before():
    client = Client.from_env()  # nothing in env or files: still constructible
    assert client.config.client_id is None
    with pytest.raises(ConfigError, match="SH_CLIENT_ID"):
        client.api  # noqa: B018
    with pytest.raises(ConfigError):
        client.async_api()


def test_api_is_shared_and_async_api_shares_the_token(emu):
    client = Client.from_emulator(emu)
    assert client.api is client.api
    assert isinstance(client.api, Api)
    client.check_credentials()

    async def main() -> list[bool]:
        api = client.async_api()
        assert isinstance(api, AsyncApi)
        try:
            return await asyncio.gather(*(api.status(str(uuid.uuid4())) for _ in range(5)))
        finally:
            await api.aclose()

    assert asyncio.run(main()) == [False] * 5
    assert asyncio.run(main()) == [False] * 5  # a second loop, a second AsyncApi
    assert emu.stats["token_calls"] == 1
    client.close()
    client.close()  # idempotent


def test_check_credentials_with_wrong_secret(emu):
    client = Client(emu.base_url, emu.token_url, emu.client_id, "not-the-secret")
    with pytest.raises(AuthError, match="invalid_client"):
        client.check_credentials()


def test_client_refuses_pickle_and_masks_repr(emu):
    client = Client.from_emulator(emu)
    with pytest.raises(TypeError, match="submitting process"):
        pickle.dumps(client)
    for text in (repr(client), str(client), f"{client!r}"):
        assert emu.client_secret not in text
        assert "client_secret='***'" in text
    assert emu.client_id in repr(client)


def test_no_secret_or_token_in_logs_reprs_or_errors(emu, caplog):
    """A full round trip plus every error kind, logged at DEBUG by every library involved."""
    caplog.set_level(logging.DEBUG)
    # the first request runs far longer than the test: the second create meets a full account
    emu.configure(processing_seconds=600.0, concurrency_limit=1)
    client = Client.from_emulator(emu, backoff_base=0.01, max_retries=2)
    errors: list[Exception] = []
    texts: list[str] = [repr(client), str(client), repr(client.config), str(client.config)]

    rid = client.api.create(body_for(emu))
    try:
        client.api.create(body_for(emu))
    except RateLimited as exc:
        errors.append(exc)
    assert emu.stats["rate_limited"] == 1
    try:
        client.api.create(body_for(emu, width=0))
    except BadRequest as exc:
        errors.append(exc)
    emu.configure(faults=Faults(server_error=1.0))
    try:
        client.api.create(body_for(emu))
    except ServerError as exc:
        errors.append(exc)
    emu.configure(faults=Faults())

    async def via_async() -> bool:
        async with client.async_api() as api:
            return await api.status(rid)

    assert asyncio.run(via_async()) is True  # still running: one status call, no waiting
    bad = Client(emu.base_url, emu.token_url, emu.client_id, "wrong-" + emu.client_secret)
    try:
        bad.api.status(rid)
    except AuthError as exc:
        errors.append(exc)
    assert [type(e) for e in errors] == [RateLimited, BadRequest, ServerError, AuthError]

    token = client.api.auth._token
    assert token and len(token) > 20
    texts += [repr(client.api.auth), repr(bad), repr(bad.api.auth)]
    texts += [str(e) for e in errors] + [repr(e) for e in errors] + [repr(e.args) for e in errors]
    texts.append(caplog.text)
    assert any("POST /api/v1/async/process -> 200" in r.getMessage() for r in caplog.records)
    for text in texts:
        assert emu.client_secret not in text
        assert token not in text
    client.close()
    bad.close()


def test_config_object_is_used_as_is(emu):
    cfg = Config(
        base_url=emu.base_url,
        token_url=emu.token_url,
        client_id=emu.client_id,
        client_secret=emu.client_secret,
    )
    client = Client(config=cfg)
    assert client.config == cfg
    assert client.api.status(str(uuid.uuid4())) is False
    client.close()


def test_check_credentials_raises_the_documented_types(emu):
    """#16 finding 9: docs/guide/errors.md: missing credentials are a ConfigError, an
    unreachable token endpoint a TransportError; only refused credentials an AuthError."""
    with pytest.raises(ConfigError, match="SH_CLIENT_ID"):
        Client.from_env().check_credentials()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    client = Client.from_emulator(emu, token_url=f"{dead}/token", max_retries=1, backoff_max=0.01)
    with pytest.raises(TransportError) as info:
        client.check_credentials()
    assert not isinstance(info.value, AuthError)
    client = Client.from_emulator(emu, base_url=dead, max_retries=0)
    client.check_credentials()  # the token endpoint answers; the API is not needed for this
    with pytest.raises(TransportError) as info:
        client.api.status(str(uuid.uuid4()))
    assert not isinstance(info.value, AuthError)
    client.close()
