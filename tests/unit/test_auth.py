"""OAuth2 client credentials against the emulator's token endpoint, over real HTTP."""

from __future__ import annotations

import asyncio
import math
import pickle
import socket
import threading
import time
import uuid

import pytest

from xasync.api import Api, AsyncApi
from xasync.auth import ClientCredentialsAuth
from xasync.config import Config
from xasync.emulator import Faults
from xasync.errors import (
    AuthError,
    ConfigError,
    RateLimited,
    ServerError,
    TransportError,
    XasyncError,
)


def config_for(emu, **changes) -> Config:
    values = {
        "base_url": emu.base_url,
        "token_url": emu.token_url,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "backoff_base": 0.01,
    }
    values.update(changes)
    return Config(**values)


def unknown_id() -> str:
    return str(uuid.uuid4())


def test_token_fetched_once_and_cached(emu):
    with Api(config_for(emu)) as api:
        for _ in range(5):
            assert api.status(unknown_id()) is False
    stats = emu.stats
    assert stats["token_calls"] == 1
    assert stats["status_calls"] == 5
    assert stats["unauthorized"] == 0


def test_token_refreshed_silently_before_expiry(emu):
    """A 4 s token is refreshed once 3 s have passed (a quarter early), before the service
    would refuse it: one new fetch, no 401. No assertion on how long anything took."""
    emu.configure(token_lifetime=4.0)
    with Api(config_for(emu)) as api:
        assert api.status(unknown_id()) is False
        assert api.status(unknown_id()) is False  # cached
        assert emu.stats["token_calls"] == 1
        time.sleep(3.1)  # past the refresh point: the client refreshes before using it
        assert api.status(unknown_id()) is False
    stats = emu.stats
    assert stats["token_calls"] == 2
    assert stats["unauthorized"] == 0
    assert api.auth.token_fetches == 2


def test_a_401_refreshes_once_and_repeats_the_call(emu):
    """A token the service no longer accepts (expired earlier than announced) is replaced."""
    emu.configure(token_lifetime=0.5)
    with Api(config_for(emu)) as api:
        assert api.status(unknown_id()) is False
        time.sleep(0.7)  # the cached token is now expired on the server
        api.auth._refresh_at = math.inf  # ...but the client believes it is still good
        assert api.status(unknown_id()) is False
    stats = emu.stats
    assert stats["unauthorized"] == 1  # one 401 answered, then the repeat succeeded
    assert stats["token_calls"] == 2
    assert stats["status_calls"] == 3


def test_bad_credentials_raise_auth_error_without_secret(emu):
    wrong = "wrong-secret-" + uuid.uuid4().hex
    with Api(config_for(emu, client_secret=wrong)) as api:
        with pytest.raises(AuthError) as info:
            api.status(unknown_id())
        with pytest.raises(AuthError):
            api.check_credentials()
    err = info.value
    assert isinstance(err, XasyncError)
    assert "HTTP 401" in str(err) or "HTTP 400" in str(err)
    for text in (str(err), repr(err), repr(err.args)):
        assert wrong not in text
        assert emu.client_secret not in text
    assert emu.stats["status_calls"] == 0  # nothing reached the API without a token


def test_check_credentials_with_good_credentials(emu):
    with Api(config_for(emu)) as api:
        api.check_credentials()
        api.check_credentials()
    assert emu.stats["token_calls"] == 1


def test_missing_credentials_is_config_error_before_any_call(emu):
    with pytest.raises(ConfigError, match="SH_CLIENT_SECRET"):
        Api(config_for(emu, client_secret=None))
    with pytest.raises(ConfigError):
        ClientCredentialsAuth(emu.token_url, emu.client_id, "")
    assert emu.stats["token_calls"] == 0


def test_many_threads_share_one_token(emu):
    errors: list[BaseException] = []
    with Api(config_for(emu)) as api:
        barrier = threading.Barrier(8)

        def work() -> None:
            try:
                barrier.wait(5)
                for _ in range(4):
                    api.status(unknown_id())
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert not errors
    stats = emu.stats
    assert stats["status_calls"] == 32
    assert stats["token_calls"] == 1


def test_async_tasks_share_one_token_with_the_sync_api(emu):
    cfg = config_for(emu)
    auth = ClientCredentialsAuth(cfg.token_url, cfg.client_id, cfg.client_secret)

    async def main() -> list[bool]:
        async with AsyncApi(cfg, auth=auth) as api:
            return await asyncio.gather(*(api.status(unknown_id()) for _ in range(12)))

    assert asyncio.run(main()) == [False] * 12
    with Api(cfg, auth=auth) as api:
        assert api.status(unknown_id()) is False
    assert emu.stats["token_calls"] == 1


def test_async_refresh_shares_one_fetch_among_tasks(emu):
    """Twelve tasks find the token due for refresh at once: one fetch serves them all."""
    emu.configure(token_lifetime=4.0)
    cfg = config_for(emu)

    async def main() -> list[bool]:
        async with AsyncApi(cfg) as api:
            await api.status(unknown_id())
            await asyncio.sleep(3.1)
            return await asyncio.gather(*(api.status(unknown_id()) for _ in range(12)))

    assert asyncio.run(main()) == [False] * 12
    stats = emu.stats
    assert stats["token_calls"] == 2
    assert stats["unauthorized"] == 0


def test_repr_masks_and_refuses_pickle(emu):
    cfg = config_for(emu)
    with Api(cfg) as api:
        api.check_credentials()
        token = api.auth._token
        assert token
        text = repr(api.auth) + str(api.auth) + repr(api)
        assert emu.client_secret not in text
        assert token not in text
        assert "client_secret='***'" in repr(api.auth)
        assert api.auth.redact(f"a {token} b {emu.client_secret}") == "a *** b ***"
        with pytest.raises(TypeError):
            pickle.dumps(api.auth)
        with pytest.raises(TypeError):
            pickle.dumps(api)


# -- #16 finding 1: a passing fault of the token endpoint is transient, not an AuthError ----------
@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        (Faults(server_error=1.0, apply_to_token=True), ServerError),
        (Faults(rate_limit=1.0, retry_after_ms=10, apply_to_token=True), RateLimited),
        (Faults(drop_connection=1.0, drop_after_accept=0.0, apply_to_token=True), TransportError),
    ],
)
def test_token_endpoint_faults_are_transient_errors(emu, faults, expected):
    emu.configure(faults=faults)
    with Api(config_for(emu, max_retries=2, backoff_max=0.02)) as api:
        with pytest.raises(expected) as info:
            api.status(unknown_id())
        with pytest.raises(expected):
            api.create({"never": "sent"})
    assert not isinstance(info.value, AuthError)
    assert "token" in str(info.value)
    if expected is TransportError:
        assert info.value.maybe_sent is False  # nothing reached the API
    stats = emu.stats
    assert stats["token_calls"] == 6  # each call retried its token fetch twice...
    assert stats["status_calls"] == 0 and stats["create_calls"] == 0  # ...and sent nothing


def test_token_endpoint_faults_are_retried_until_a_token_comes(emu):
    emu.configure(faults=Faults(server_error=0.6, apply_to_token=True, seed=11))
    with Api(config_for(emu, max_retries=30, backoff_max=0.02)) as api:
        assert api.status(unknown_id()) in (True, False)  # status calls may fail too: retried
    assert emu.stats["server_errors"] >= 1
    assert api.auth.token_fetches == 1


def test_only_refused_credentials_are_an_auth_error(emu):
    with Api(config_for(emu, client_secret="wrong")) as api, pytest.raises(AuthError):
        api.check_credentials()
    assert emu.stats["token_calls"] == 1  # bad credentials: never retried


# -- #16 finding 9: the documented error types ------------------------------------------------------
def test_unreachable_token_endpoint_is_a_transport_error(emu):
    dead = f"http://127.0.0.1:{free_port()}/token"
    with Api(config_for(emu, token_url=dead, max_retries=1)) as api:
        with pytest.raises(TransportError) as info:
            api.check_credentials()
        with pytest.raises(TransportError):
            api.create({"never": "sent"})
    assert not isinstance(info.value, AuthError)
    assert info.value.maybe_sent is False
    assert str(info.value).startswith("token endpoint: POST ")
    assert emu.stats["create_calls"] == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
