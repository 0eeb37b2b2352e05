"""JWT-like access tokens: ``header.payload.signature``, HMAC-SHA256 with a per-instance key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid

logger = logging.getLogger(__name__)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Issues and verifies HS256 tokens with a key that never leaves this object."""

    def __init__(self, issuer: str = "xasync-emulator") -> None:
        self._key = secrets.token_bytes(32)
        self.issuer = issuer

    def __repr__(self) -> str:
        return f"TokenIssuer(issuer={self.issuer!r})"

    def issue(self, subject: str, lifetime: float) -> str:
        """A token for ``subject`` that expires ``lifetime`` seconds from now."""
        now = time.time()
        header = {"alg": "HS256", "typ": "JWT"}
        payload = {
            "iss": self.issuer,
            "sub": subject,
            "azp": subject,
            "iat": int(now),
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        signing_input = (
            _b64(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64(json.dumps(payload, separators=(",", ":")).encode())
        )
        sig = hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(sig)}"

    def verify(self, token: str) -> tuple[str | None, str]:
        """Return ``(subject, "")`` for a valid token, else ``(None, reason)``."""
        parts = token.split(".")
        if len(parts) != 3:
            return None, "malformed token"
        signing_input = f"{parts[0]}.{parts[1]}"
        expected = hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest()
        try:
            sig = _unb64(parts[2])
            payload = json.loads(_unb64(parts[1]))
        except (ValueError, json.JSONDecodeError):
            return None, "malformed token"
        if not hmac.compare_digest(sig, expected):
            return None, "invalid token signature"
        if not isinstance(payload, dict) or float(payload.get("exp", 0)) <= time.time():
            return None, "token expired"
        return str(payload.get("sub")), ""
