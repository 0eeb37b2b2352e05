"""The Async HTTP layer against the emulator over real HTTP: round trips, errors, retries."""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import pickle
import socket
import time
import uuid

import httpx
import pytest

from xasync._contract import API_PATH_LEGACY, API_PATH_PLANET
from xasync.api import Api, AsyncApi, parse_create, parse_status, retryable
from xasync.config import Config
from xasync.emulator import Faults
from xasync.errors import (
    ApiError,
    AuthError,
    BadRequest,
    ConfigError,
    Forbidden,
    RateLimited,
    ServerError,
    TransportError,
)
from xasync.http_errors import error_from_response, transport_error

SCRIPT = (
    "//VERSION=3\n"
    "function setup() { return {input: ['B04'], output: {bands: 1, sampleType: 'UINT8'}}; }\n"
    "function evaluatePixel(s) { return [s.B04 * 255]; }\n"
)


def config_for(emu, **changes) -> Config:
    values = {
        "base_url": emu.base_url,
        "token_url": emu.token_url,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
    }
    values.update(changes)
    return Config(**values)


def minimal_body(emu, *, width: int = 100, height: int = 100) -> dict:
    """The spec's section 5.5 skeleton: 100 x 100 px, delivered to a fresh bucket."""
    bucket = emu.create_bucket(f"api-{uuid.uuid4().hex[:12]}")
    so = emu.storage_options
    return {
        "input": {
            "bounds": {
                "bbox": [426000, 3960000, 427000, 3961000],
                "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/32633"},
            },
            "data": [
                {
                    "type": "sentinel-2-l2a",
                    "dataFilter": {
                        "timeRange": {"from": "2022-06-20T00:00:00Z", "to": "2022-06-30T23:59:59Z"}
                    },
                }
            ],
        },
        "output": {
            "width": width,
            "height": height,
            "responses": [{"identifier": "default", "format": {"type": "image/tiff"}}],
            "delivery": {
                "s3": {
                    "url": f"{bucket}/prefix",
                    "accessKey": so["key"],
                    "secretAccessKey": so["secret"],
                }
            },
        },
        "evalscript": SCRIPT,
    }


def wait_finished(api: Api, request_id: str, limit: float = 60.0) -> None:
    """Poll until the request is gone (a generous guard against hangs, not a measurement)."""
    deadline = time.monotonic() + limit
    while api.status(request_id):
        assert time.monotonic() < deadline, "request never finished"
        time.sleep(0.02)


@pytest.mark.parametrize("path", [API_PATH_LEGACY, API_PATH_PLANET])
def test_round_trip_sync(emu, path):
    with Api(config_for(emu, api_path=path)) as api:
        emu.configure(processing_seconds=600.0)  # runs for the whole test
        running = api.create(minimal_body(emu))
        assert str(uuid.UUID(running)) == running
        assert api.status(running) is True
        emu.configure(processing_seconds=0.0)
        quick = api.create(minimal_body(emu))
        wait_finished(api, quick)
        assert api.status(quick) is False
        assert api.status(running) is True
        assert api.status(str(uuid.uuid4())) is False  # unknown: finished-or-unknown, no error
    stats = emu.stats
    assert stats["creates"] == 2
    assert stats["succeeded"] == 1


@pytest.mark.parametrize("path", [API_PATH_LEGACY, API_PATH_PLANET])
def test_round_trip_async(emu, path):
    emu.configure(processing_seconds=600.0)
    running_body = minimal_body(emu)
    quick_body = minimal_body(emu)

    async def main() -> tuple[bool, bool]:
        async with AsyncApi(config_for(emu, api_path=path)) as api:
            running = await api.create(running_body)
            emu.configure(processing_seconds=0.0)
            quick = await api.create(quick_body)
            for _ in range(3000):
                if not await api.status(quick):
                    return await api.status(running), False
                await asyncio.sleep(0.02)
            return await api.status(running), True

    assert asyncio.run(main()) == (True, False)
    assert emu.stats["creates"] == 2


def test_over_the_concurrency_limit_is_rate_limited(emu):
    emu.configure(concurrency_limit=1, processing_seconds=5.0)
    with Api(config_for(emu)) as api:
        api.create(minimal_body(emu))
        with pytest.raises(RateLimited) as info:
            api.create(minimal_body(emu))
    err = info.value
    assert err.status_code == 429
    assert err.retry_after is not None and err.retry_after > 0
    assert err.retry_after < 60  # milliseconds were converted to seconds
    assert emu.stats["rate_limited"] == 1
    assert emu.stats["create_calls"] == 2  # the 429 was not retried


def test_bad_body_is_bad_request_naming_the_field(emu):
    with Api(config_for(emu)) as api, pytest.raises(BadRequest) as info:
        api.create(minimal_body(emu, width=20000))
    err = info.value
    assert isinstance(err, ValueError)
    assert err.status_code == 400
    assert err.code == "COMMON_BAD_PAYLOAD"
    assert "width" in err.message
    assert emu.stats["create_calls"] == 1
    assert emu.stats["creates"] == 0


def test_status_5xx_is_retried_until_it_succeeds(emu):
    with Api(config_for(emu, max_retries=10)) as api:
        rid = api.create(minimal_body(emu))
        emu.configure(faults=Faults(server_error=0.5, seed=3))
        for _ in range(10):
            api.status(rid)
        emu.configure(faults=Faults())
        wait_finished(api, rid)
    stats = emu.stats
    assert stats["server_errors"] >= 1
    assert stats["status_calls"] >= 10 + stats["server_errors"]


def test_status_gives_up_after_max_retries(emu):
    with Api(config_for(emu, max_retries=2)) as api:
        emu.configure(faults=Faults(server_error=1.0))
        with pytest.raises(ServerError) as info:
            api.status(str(uuid.uuid4()))
    assert info.value.status_code >= 500
    assert emu.stats["status_calls"] == 3  # one call plus two retries


def test_create_5xx_is_not_retried(emu):
    with Api(config_for(emu, max_retries=5)) as api:
        api.check_credentials()
        emu.configure(faults=Faults(server_error=1.0))
        with pytest.raises(ServerError):
            api.create(minimal_body(emu))
    assert emu.stats["create_calls"] == 1


def test_create_dropped_connection_is_maybe_sent(emu):
    body = minimal_body(emu)
    with Api(config_for(emu)) as api:
        api.check_credentials()
        emu.configure(faults=Faults(drop_connection=1.0, drop_after_accept=1.0))
        with pytest.raises(TransportError) as info:
            api.create(body)
    assert info.value.maybe_sent is True
    stats = emu.stats
    assert stats["create_calls"] == 1  # never retried blindly...
    assert stats["dropped_after_accept"] == 1  # ...and indeed it was accepted (and paid)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_create_on_refused_connection_is_retried_then_not_sent(emu, caplog):
    caplog.set_level(logging.INFO, logger="xasync.api")
    cfg = config_for(emu, base_url=f"http://127.0.0.1:{free_port()}", max_retries=3)
    with Api(cfg) as api, pytest.raises(TransportError) as info:
        api.create({"any": "body"})
    retries = [r for r in caplog.records if "TransportError; retry" in r.getMessage()]
    assert len(retries) == 3  # refused: certainly not sent, so retried up to max_retries
    assert info.value.maybe_sent is False
    assert "not sent" in str(info.value)
    assert emu.stats["token_calls"] == 1  # the token came from the emulator, once


def test_async_create_on_refused_connection(emu):
    cfg = config_for(emu, base_url=f"http://127.0.0.1:{free_port()}", max_retries=1)

    async def main() -> None:
        async with AsyncApi(cfg) as api:
            await api.create({"any": "body"})

    with pytest.raises(TransportError) as info:
        asyncio.run(main())
    assert info.value.maybe_sent is False


def test_async_rate_limit_and_bad_request(emu):
    emu.configure(concurrency_limit=1, processing_seconds=5.0)
    first, second, bad = minimal_body(emu), minimal_body(emu), minimal_body(emu, height=0)

    async def main() -> list:
        async with AsyncApi(config_for(emu)) as api:
            await api.create(first)
            out = []
            for body in (second, bad):
                try:
                    await api.create(body)
                except (RateLimited, BadRequest) as exc:
                    out.append(exc)
            return out

    limited, rejected = asyncio.run(main())
    assert isinstance(limited, RateLimited) and limited.retry_after > 0
    assert isinstance(rejected, BadRequest) and "height" in rejected.message


# -- the pure parsing functions, on real httpx.Response values -----------------------------------
def response(status: int, body=None, headers=None, text=None) -> httpx.Response:
    request = httpx.Request("GET", "http://127.0.0.1/api/v1/async/process/x")
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    return httpx.Response(status, content=json.dumps(body), headers=headers, request=request)


def test_error_mapping_with_and_without_wrapper():
    wrapped = {"error": {"status": 403, "message": "Not allowed", "code": "COMMON_X"}}
    err = error_from_response(response(403, wrapped), request_id="r1")
    assert type(err) is Forbidden
    assert (err.message, err.code, err.request_id) == ("Not allowed", "COMMON_X", "r1")
    bare = {"status": 429, "message": "You have exceeded your rate limit", "code": "RATE"}
    err = error_from_response(response(429, bare, headers={"Retry-After": "1500"}))
    assert isinstance(err, RateLimited)
    assert err.retry_after == pytest.approx(1.5)
    assert err.message == "You have exceeded your rate limit"
    err = error_from_response(response(503, text="upstream down"))
    assert isinstance(err, ServerError)
    assert "upstream down" in err.message
    err = error_from_response(response(429, text="", headers={"Retry-After": "soon"}))
    assert err.retry_after is None
    assert type(error_from_response(response(418, {}))) is ApiError


def test_status_parsing():
    assert parse_status(response(200, {"id": "x", "status": "RUNNING"}), "x") is True
    assert parse_status(response(404, {"error": {"message": "gone"}}), "x") is False
    with pytest.raises(ServerError):
        parse_status(response(500, {}), "x")


def test_retry_policy_never_retries_an_ambiguous_create():
    server = ServerError("boom", status_code=502)
    limited = RateLimited("slow", status_code=429, retry_after=2.0)
    assert not retryable(server, create=True)
    assert not retryable(limited, create=True)
    assert not retryable(TransportError("reset", maybe_sent=True), create=True)
    assert retryable(TransportError("refused", maybe_sent=False), create=True)
    # a passing fault of the token endpoint: the create was never sent
    assert retryable(server, create=True, sent=False)
    assert retryable(TransportError("reset", maybe_sent=True), create=True, sent=False)
    for error in (server, limited, TransportError("reset")):
        assert retryable(error, create=False)
    assert not retryable(BadRequest("no", status_code=400), create=False)
    assert not retryable(AuthError("wrong secret"), create=False, sent=False)


# -- every error this layer raises pickles with its fields (dask ships them between processes) -----
def raised_errors() -> list[Exception]:
    wrapped = {"error": {"status": 400, "message": "bad width", "code": "COMMON_BAD_PAYLOAD"}}
    errors: list[Exception] = [
        error_from_response(response(status, wrapped), request_id="rid-1")
        for status in (400, 401, 403, 404, 418, 500, 503)
    ]
    errors.append(error_from_response(response(429, {}, headers={"Retry-After": "1500"})))
    with pytest.raises(ApiError) as info:
        parse_create(response(200, {"no": "id"}))
    errors.append(info.value)
    refused = httpx.ConnectError("refused", request=httpx.Request("GET", "http://127.0.0.1:1/x"))
    errors.append(transport_error(refused, "GET", "http://127.0.0.1:1/x"))
    errors.append(transport_error(refused, "POST", "http://127.0.0.1:1/t", sent=True))
    errors.append(AuthError("could not obtain an OAuth2 token: HTTP 401: invalid_client"))
    errors.append(ConfigError("OAuth2 client credentials are missing"))
    return errors


@pytest.mark.parametrize("error", raised_errors(), ids=lambda e: type(e).__name__)
def test_every_raised_error_pickles_with_its_fields(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
    for name in (
        "status_code",
        "message",
        "code",
        "request_id",
        "errors",
        "retry_after",
        "maybe_sent",
    ):
        assert getattr(copy, name, None) == getattr(error, name, None)


def test_status_polls_are_not_logged_at_info(emu, caplog):
    """#16 finding 10: INFO logged every status poll; a create is one INFO line."""
    caplog.set_level(logging.INFO, logger="xasync")
    with Api(config_for(emu)) as api:
        rid = api.create(minimal_body(emu))
        for _ in range(3):
            api.status(rid)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("xasync")]
    assert any(m == f"created async request {rid}" for m in messages)  # one line per create
    assert not any(m.startswith(("GET ", "POST ")) for m in messages)  # exchanges: DEBUG
    assert emu.stats["status_calls"] == 3


# -- the blocking facade runs the async implementation on its own loop ---------------------------
def test_blocking_api_works_inside_a_running_event_loop(emu):
    """A notebook cell runs inside an event loop: asyncio.run would refuse, the facade does not."""
    with Api(config_for(emu)) as api:

        async def cell() -> bool:
            return api.status(str(uuid.uuid4()))

        assert asyncio.run(cell()) is False
        assert api._async.auth is api.auth  # one implementation, one token cache

        async def on_its_own_loop() -> bool:
            return api.status(str(uuid.uuid4()))

        future = asyncio.run_coroutine_threadsafe(on_its_own_loop(), api._loop.loop)
        with pytest.raises(RuntimeError, match="use AsyncApi"):
            future.result(timeout=30)
    assert emu.stats["status_calls"] == 1
    with pytest.raises(RuntimeError, match="closed"):
        api.status("x")


def _status_in_child(api: Api, queue) -> None:
    try:
        queue.put(("ok", api.status(str(uuid.uuid4()))))
    except BaseException as exc:  # reported to the parent
        queue.put(("error", repr(exc)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork start method not available")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_blocking_api_keeps_working_in_a_forked_child(emu):
    ctx = multiprocessing.get_context("fork")
    with Api(config_for(emu)) as api:
        assert api.status(str(uuid.uuid4())) is False  # the facade loop runs in the parent
        queue = ctx.Queue()
        child = ctx.Process(target=_status_in_child, args=(api, queue))
        child.start()
        outcome = queue.get(timeout=60)
        child.join(60)
        assert outcome == ("ok", False)
        assert api.status(str(uuid.uuid4())) is False  # the parent's loop is untouched
    assert emu.stats["status_calls"] == 3
