"""OAuth2 client-credentials token endpoint of the emulator, over HTTP."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from emu_helpers import LEGACY, get_token


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_form_credentials_give_a_jwt_like_bearer_token(emu):
    t0 = time.time()
    r = httpx.post(
        emu.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"].count(".") == 2
    claims = _claims(body["access_token"])
    assert claims["sub"] == emu.client_id
    assert t0 + 3590 < claims["exp"] < time.time() + 3610
    assert emu.stats["token_calls"] == 1


def test_basic_auth_and_legacy_path_work(emu):
    r = httpx.post(
        f"{emu.base_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(emu.client_id, emu.client_secret),
    )
    assert r.status_code == 200
    assert r.json()["access_token"]


@pytest.mark.parametrize(
    ("client_id", "secret"), [("nobody", "x"), (None, "wrong-secret"), (None, "")]
)
def test_bad_credentials_are_401_invalid_client(emu, client_id, secret):
    r = httpx.post(
        emu.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": client_id or emu.client_id,
            "client_secret": secret,
        },
    )
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


def test_wrong_grant_type_is_400(emu):
    r = httpx.post(
        emu.token_url,
        data={
            "grant_type": "password",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
        },
    )
    assert r.status_code == 400
    assert r.json()["error"] == "unsupported_grant_type"


def test_token_lifetime_knob_and_expiry(emu):
    emu.configure(token_lifetime=1.0)
    r = httpx.post(
        emu.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
        },
    )
    assert r.json()["expires_in"] == 1
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert httpx.get(f"{emu.base_url}{LEGACY}/unknown", headers=headers).status_code == 404
    time.sleep(1.1)
    late = httpx.get(f"{emu.base_url}{LEGACY}/unknown", headers=headers)
    assert late.status_code == 401
    assert late.json()["error"]["code"] == "COMMON_UNAUTHORIZED"
    assert "expired" in late.json()["error"]["message"]


def test_tampered_or_foreign_tokens_are_rejected(emu):
    token = get_token(emu)
    head, payload, sig = token.split(".")
    claims = _claims(token)
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for bad in (f"{head}.{forged}.{sig}", "not-a-token", f"{head}.{payload}.AAAA"):
        r = httpx.get(f"{emu.base_url}{LEGACY}/x", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401, bad
    assert httpx.get(f"{emu.base_url}{LEGACY}/x").status_code == 401


def test_secret_is_not_in_repr(emu):
    assert emu.client_secret not in repr(emu)
