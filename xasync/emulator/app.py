"""The HTTP face of the emulator: OAuth2 token, Async create and status (both path styles)."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, Response, g, request
from werkzeug.exceptions import BadRequest

from xasync import _contract as C

from . import faults as F
from .gcs import GCSWriteError
from .process import Job, write_request_copy
from .runtime import Runtime
from .state import RequestRecord
from .validate import BadPayload, ParsedRequest, parse_body, redact

logger = logging.getLogger(__name__)

TOKEN_PATHS = ("/auth/realms/<realm>/protocol/openid-connect/token", "/oauth/token")
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _json(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(
        json.dumps(payload),
        status=status,
        headers=headers,
        mimetype="application/json",
    )


def error_body(status: int, message: str, code: str) -> dict:
    """The service's RestErrorWrapper body."""
    return {
        "error": {
            "status": status,
            "reason": _REASONS.get(status, "Error"),
            "message": message,
            "code": code,
        },
    }


def _error(status: int, message: str, code: str, headers: dict | None = None) -> Response:
    return _json(error_body(status, message, code), status, headers)


class _Dropped(Exception):
    """Raised after the TCP connection was closed on purpose (no HTTP response follows)."""


def _drop_connection() -> None:
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    raise _Dropped


STATS_PATH = "/emulator/stats"
CALLS_PATH = "/emulator/calls"
HOLD_PATH = "/emulator/hold"
RELEASE_PATH = "/emulator/release"


def create_app(rt: Runtime, stats: Callable[[], dict] | None = None) -> Flask:
    """The Flask app serving ``rt``.

    Besides the public contract it serves the emulator's own admin surface (no token needed,
    like moto's ``/moto-api``), so that a client in another process can use it:
    ``GET /emulator/stats`` (the counters of ``Emulator.stats`` as JSON), ``GET /emulator/calls``
    (the handler times of the recent create and status calls, ``Emulator.calls``),
    ``POST /emulator/hold``
    and ``POST /emulator/release`` (JSON body ``{"id": ...}`` for one request, empty for all;
    see ``Emulator.hold``).
    """
    app = Flask("xasync.emulator")
    routes = _Routes(rt, stats)
    if stats is not None:
        app.add_url_rule(STATS_PATH, "emulator_stats", routes.stats_view, methods=["GET"])
    app.add_url_rule(CALLS_PATH, "emulator_calls", routes.calls_view, methods=["GET"])
    app.add_url_rule(HOLD_PATH, "emulator_hold", routes.hold, methods=["POST"])
    app.add_url_rule(RELEASE_PATH, "emulator_release", routes.release, methods=["POST"])
    app.register_error_handler(_Dropped, _dropped)
    for i, path in enumerate(TOKEN_PATHS):
        app.add_url_rule(path, f"token{i}", routes.token, methods=["POST"])
    for i, path in enumerate(C.API_PATHS):
        app.add_url_rule(path, f"create{i}", routes.create, methods=["POST"])
        app.add_url_rule(f"{path}/<request_id>", f"status{i}", routes.status, methods=["GET"])
    return app


def _dropped(_exc: _Dropped) -> Response:
    return Response(b"", status=500)  # goes nowhere: the socket is already shut down


def _client_credentials() -> tuple[str | None, str | None]:
    """``client_id``/``client_secret`` of a token request: form fields, or HTTP Basic."""
    form = request.form
    client_id, secret = form.get("client_id"), form.get("client_secret")
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Basic "):
        try:
            user, _, pwd = base64.b64decode(auth[6:]).decode("utf-8").partition(":")
            client_id, secret = unquote(user), unquote(pwd)
        except (ValueError, UnicodeDecodeError):
            pass
    return client_id, secret


class _Routes:
    """One method per route of the emulator's HTTP face, on one :class:`Runtime`."""

    def __init__(self, rt: Runtime, stats: Callable[[], dict] | None) -> None:
        self.rt = rt
        self.reg = rt.registry
        self._stats = stats

    # -- admin -----------------------------------------------------------------------------
    def stats_view(self) -> Response:
        assert self._stats is not None
        return _json(self._stats())

    def calls_view(self) -> Response:
        return _json(self.reg.calls())

    def hold(self) -> Response:
        return self._gate("hold")

    def release(self) -> Response:
        return self._gate("release")

    def _gate(self, action: str) -> Response:
        body = request.get_json(force=True, silent=True) or {}
        rid = body.get("id") if isinstance(body, dict) else None
        if rid is not None and not isinstance(rid, str):
            return _error(400, "id: must be a request id string", "COMMON_BAD_PAYLOAD")
        gate = self.rt.gate
        (gate.hold if action == "hold" else gate.release)(rid)
        return _json({"held": "all" if rid is None else rid, "waiting": gate.waiting()})

    # -- shared steps ----------------------------------------------------------------------
    def _fault(self, endpoint: str) -> tuple[str, Response | None]:
        rt, reg = self.rt, self.reg
        decision = rt.decider.call(endpoint)
        if decision == F.RATE_LIMIT:
            reg.count("rate_limited")
            ms = str(rt.settings.faults.retry_after_ms)
            return decision, _error(
                429,
                "You have exceeded your rate limit",
                "RATE_LIMIT_EXCEEDED",
                {"Retry-After": ms},
            )
        if decision == F.SERVER_ERROR:
            reg.count("server_errors")
            status = rt.decider.server_status()
            return decision, _error(status, "Injected server error", "COMMON_EXCEPTION")
        if decision == F.DROP_BEFORE:
            reg.count("dropped")
            _drop_connection()
        return decision, None

    def _account(self) -> tuple[str | None, Response | None]:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            self.reg.count("unauthorized")
            return None, _error(401, "Missing bearer token", "COMMON_UNAUTHORIZED")
        subject, reason = self.rt.issuer.verify(header[7:].strip())
        if subject is None:
            self.reg.count("unauthorized")
            return None, _error(401, f"Unauthorized: {reason}", "COMMON_UNAUTHORIZED")
        return subject, None

    # -- token -----------------------------------------------------------------------------
    def token(self, realm: str | None = None) -> Response:
        rt = self.rt
        self.reg.count("token_calls")
        _, answer = self._fault("token")
        if answer is not None:
            return answer
        client_id, secret = _client_credentials()
        if request.form.get("grant_type") != "client_credentials":
            return _json(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant_type must be client_credentials",
                },
                400,
            )
        if not rt.check_client(client_id, secret):
            return _json(
                {
                    "error": "invalid_client",
                    "error_description": "Invalid client or Invalid client credentials",
                },
                401,
            )
        lifetime = rt.settings.token_lifetime
        self.reg.count("tokens_issued")
        return _json(
            {
                "access_token": rt.issuer.issue(str(client_id), lifetime),
                "token_type": "Bearer",
                "expires_in": int(lifetime),
                "refresh_expires_in": 0,
                "not-before-policy": 0,
                "scope": "",
            },
        )

    def _timed(self, kind: str, handler: Callable[[], Response], rid: str | None) -> Response:
        """Run ``handler`` and record its time in the registry (``stats`` of the benchmark)."""
        start, status = time.time(), 0
        try:
            answer = handler()
            status = answer.status_code
            return answer
        finally:
            self.reg.timed_call(kind, g.get("request_id", rid), status, start, time.time())

    # -- create ----------------------------------------------------------------------------
    def create(self) -> Response:
        return self._timed("create", self._create, None)

    def _create(self) -> Response:
        self.reg.count("create_calls")
        subject, answer = self._account()
        if answer is not None:
            return answer
        decision, answer = self._fault("create")
        if answer is not None:
            return answer
        try:
            body = request.get_json(force=True, silent=False)
        except (ValueError, BadRequest):
            body = None
        try:
            parsed = parse_body(body)
            script = _load_evalscript(self.rt, parsed)
            client = _delivery_client(self.rt, parsed)
        except BadPayload as exc:
            self.reg.count("bad_requests")
            return _error(400, str(exc), "COMMON_BAD_PAYLOAD")
        prefix = body["output"]["delivery"][parsed.delivery.scheme]["url"]
        record = RequestRecord(
            id=str(uuid.uuid4()), account=str(subject), prefix=prefix, generation=0
        )
        answer = self._accept(record, body, parsed, script, client)
        if answer is not None:
            return answer
        g.request_id = record.id
        logger.info("accepted request %s for %s", record.id, prefix)
        if decision == F.DROP_AFTER:
            self.reg.count("dropped")
            self.reg.count("dropped_after_accept")
            _drop_connection()
        return _json({"id": record.id, "status": C.STATUS_RUNNING})

    def _accept(
        self, record: RequestRecord, body: dict, parsed: ParsedRequest, script: str, client: Any
    ) -> Response | None:
        """Take a concurrency slot, write the request copy, start the job; or the refusal."""
        rt, reg = self.rt, self.reg
        settings = rt.settings
        if not reg.try_accept(record, settings.concurrency_limit):
            reg.count("rate_limited")
            ms = max(100, int(settings.processing_seconds * 1000 / 2))
            return _error(
                429,
                "Maximum number of concurrent async requests reached",
                "RATE_LIMIT_EXCEEDED",
                {"Retry-After": str(ms)},
            )
        copy = redact(body)
        copy.update(id=record.id, status=C.STATUS_RUNNING, created=record.created)
        job = Job(
            request_id=record.id,
            parsed=parsed,
            script=script,
            copy=copy,
            hold_seconds=settings.processing_seconds + rt.decider.jitter(),
            inject_failure=rt.decider.fails(),
            visibility_delay=settings.faults.visibility_delay,
            tiff_layout=settings.tiff_layout,
            s3_client=client,
            clouds=settings.clouds,
        )
        try:
            write_request_copy(job)
        except (BotoCoreError, ClientError, GCSWriteError) as exc:
            reg.retract(record.id)
            reg.count("bad_requests")
            logger.info("request copy not writable: %s", exc)
            return _error(
                400,
                f"output.delivery.{parsed.delivery.scheme}.url: bucket {parsed.delivery.bucket} "
                "does not exist or is not writable with the given credentials",
                "COMMON_BAD_PAYLOAD",
            )
        rt.submit(job, record)
        return None

    # -- status ----------------------------------------------------------------------------
    def status(self, request_id: str) -> Response:
        return self._timed("status", lambda: self._status(request_id), request_id)

    def _status(self, request_id: str) -> Response:
        reg = self.reg
        reg.count("status_calls")
        subject, answer = self._account()
        if answer is not None:
            return answer
        _, answer = self._fault("status")
        if answer is not None:
            return answer
        if reg.is_running(request_id, subject):  # another account's request: 404 too
            return _json({"id": request_id, "status": C.STATUS_RUNNING})
        reg.count("not_found")
        return _error(404, f"Async request {request_id} not found", "COMMON_NOT_FOUND")


def _delivery_client(rt: Runtime, parsed: ParsedRequest) -> Any:
    dest = parsed.delivery
    if dest.scheme == "gs":
        if rt.gcs_writer is None:
            raise BadPayload("output.delivery.gs: this emulator has no GCS server")
        return rt.gcs_writer
    if dest.access_key and dest.secret_key:
        client = rt.s3_client(dest.access_key, dest.secret_key)
    else:  # iamRoleARN: the emulator "assumes the role" with its own keys
        from .s3 import DEFAULT_KEY, DEFAULT_SECRET

        client = rt.s3_client(DEFAULT_KEY, DEFAULT_SECRET)
    # no HEAD of the bucket here: writing the request copy (before answering) is the check
    return client


def _load_evalscript(rt: Runtime, parsed: ParsedRequest) -> str:
    if parsed.evalscript is not None:
        return parsed.evalscript
    ref = parsed.evalscript_ref
    assert ref is not None
    from .s3 import DEFAULT_KEY, DEFAULT_SECRET

    client = rt.s3_client(ref.access_key or DEFAULT_KEY, ref.secret_key or DEFAULT_SECRET)
    try:
        data = client.get_object(Bucket=ref.bucket, Key=ref.key)["Body"].read()
        return data.decode("utf-8")
    except (BotoCoreError, ClientError, UnicodeDecodeError):
        raise BadPayload(
            f"evalscriptReference.s3.url: cannot read s3://{ref.bucket}/{ref.key}",
        ) from None
