"""OAuth2 client credentials against the emulator's token endpoint, over real HTTP."""

from __future__ import annotations

import asyncio
import math
import pickle
import threading
import time
import uuid

import pytest

from xasync.api import Api, AsyncApi
from xasync.auth import ClientCredentialsAuth
from xasync.config import Config
from xasync.errors import AuthError, ConfigError, XasyncError


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
    emu.configure(token_lifetime=1.0)
    with Api(config_for(emu)) as api:
        deadline = time.monotonic() + 2.6
        calls = 0
        while time.monotonic() < deadline:
            assert api.status(unknown_id()) is False  # never Unauthorized
            calls += 1
            time.sleep(0.1)
    stats = emu.stats
    assert calls >= 10
    assert 3 <= stats["token_calls"] <= 8  # about one per 0.75 s of a 1 s token
    # refreshed ahead of expiry: a 401 can only come from a call slowed past the margin (busy
    # machine), and the auth then repeats it; none reached the caller (asserted above)
    assert stats["unauthorized"] <= 1
    assert api.auth.token_fetches == stats["token_calls"]


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


def test_async_refresh_with_short_tokens(emu):
    emu.configure(token_lifetime=1.0)
    cfg = config_for(emu)

    async def main() -> int:
        n = 0
        async with AsyncApi(cfg) as api:
            end = time.monotonic() + 2.2
            while time.monotonic() < end:
                results = await asyncio.gather(*(api.status(unknown_id()) for _ in range(3)))
                assert results == [False] * 3
                n += 3
                await asyncio.sleep(0.1)
        return n

    assert asyncio.run(main()) >= 15
    stats = emu.stats
    assert stats["unauthorized"] <= 1  # see test_token_refreshed_silently_before_expiry
    assert 2 <= stats["token_calls"] <= 8


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
