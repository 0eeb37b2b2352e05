"""A real S3-protocol server on 127.0.0.1: moto's WSGI app behind a counting middleware.

The server counts the requests it answers by kind (``get``, ``get_ranged``, ``head``, ``list``,
``put``, ``other``) and the bytes it sends in response bodies, so that tests can measure what a
reader costs. moto keeps its buckets in process-global memory: every moto server of one process
(this one, ``moto.server.ThreadedMotoServer``, ``mock_aws``) sees the same buckets, and
``wipe()`` clears them all.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Literal

import httpx

from .serving import serve, shutdown

logger = logging.getLogger(__name__)

#: Credentials handed out in ``storage_options``; moto checks no signature, any pair works.
DEFAULT_KEY = "emulator-key"
DEFAULT_SECRET = "emulator-secret"
REGION = "us-east-1"

_KINDS = ("get", "get_ranged", "head", "list", "put", "other")


def _classify(environ: dict[str, Any]) -> str:
    method = environ.get("REQUEST_METHOD", "GET").upper()
    path = environ.get("PATH_INFO", "/")
    query = environ.get("QUERY_STRING", "")
    if path.startswith("/moto-api"):
        return "other"
    is_bucket = len([p for p in path.split("/") if p]) <= 1
    if method == "HEAD":
        return "head"
    if method == "PUT":
        return "put"
    if method == "GET":
        if is_bucket:
            return "list" if ("list-type" in query or not query or "prefix" in query) else "other"
        return "get_ranged" if environ.get("HTTP_RANGE") else "get"
    return "other"


class RequestCounter:
    """Thread-safe request counts by kind and response-body bytes of one storage server (the
    S3 server's kinds by default; the GCS server passes its own)."""

    def __init__(self, kinds: tuple[str, ...] = _KINDS) -> None:
        self._lock = threading.Lock()
        self._kinds = kinds
        self._counts = dict.fromkeys(kinds, 0)
        self._bytes = 0

    def add(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] += 1

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self._bytes += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            out = dict(self._counts)
            out["requests"] = sum(self._counts.values())
            out["bytes_sent"] = self._bytes
            return out

    def reset(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(self._kinds, 0)
            self._bytes = 0


class _CountingMiddleware:
    """WSGI middleware counting requests by kind and response-body bytes."""

    def __init__(self, app: Callable, counter: RequestCounter) -> None:
        self.app = app
        self.counter = counter

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        self.counter.add(_classify(environ))
        body = self.app(environ, start_response)
        return self._count(body)

    def _count(self, body: Iterable[bytes]) -> Iterable[bytes]:
        try:
            for chunk in body:
                self.counter.add_bytes(len(chunk))
                yield chunk
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()


class S3Endpoint:
    """What the emulator and the tests use of an S3 server, given its ``endpoint_url`` (a
    subclass provides it): the clients' ``storage_options``, a boto3 client, bucket creation."""

    endpoint_url: str
    _admin: Any = None  # create_bucket's client (a new boto3 client costs 0.2-0.5 s)

    @property
    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem(**storage_options)``."""
        return {
            "key": DEFAULT_KEY,
            "secret": DEFAULT_SECRET,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": REGION},
        }

    def client(self, key: str = DEFAULT_KEY, secret: str = DEFAULT_SECRET) -> Any:
        """A boto3 S3 client on this server."""
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name=REGION,
        )

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` (idempotent) and return ``s3://name``."""
        if self._admin is None:
            self._admin = self.client()
        client = self._admin
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)
        return f"s3://{name}"


class S3Server(S3Endpoint):
    """moto S3 served by werkzeug on ``127.0.0.1`` with a free port, counting its traffic.

    Parameters
    ----------
    port
        TCP port; 0 (the default) picks a free one.

    Examples
    --------
    >>> with S3Server() as s3:                                  # doctest: +SKIP
    ...     fs = s3fs.S3FileSystem(**s3.storage_options)
    ...     s3.create_bucket("demo")

    """

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._counter = RequestCounter()

    def __repr__(self) -> str:
        state = self.endpoint_url if self._server is not None else "stopped"
        return f"S3Server({state})"

    def start(self) -> S3Server:
        """Start serving in a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        class _S3Only(DomainDispatcherApplication):
            """moto's dispatcher finds the service of each request by scanning its modules on
            disk (about 3 ms of CPU per request); this server serves S3 and moto's admin API."""

            def get_application(self, environ: dict[str, Any]) -> Any:
                path = str(environ.get("PATH_INFO", ""))
                backend: Literal["moto_api", "s3"] = (
                    "moto_api" if path.startswith("/moto-api") else "s3"
                )
                with self.lock:
                    app = self.app_instances.get(backend)
                    if app is None:
                        app = self.app_instances[backend] = self.create_app(backend)
                    return app

        app = _CountingMiddleware(_S3Only(create_backend_app), self._counter)
        self._server, self._thread = serve(
            app, self._port, "xasync-emulator-s3", request_handler=MotoRequestHandler
        )
        logger.info("S3 server listening on %s", self.endpoint_url)
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        shutdown(self._server, self._thread)
        self._server = None
        self._thread = None
        self._admin = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:  # type: ignore[override]
        """``http://127.0.0.1:PORT`` of the running server."""
        if self._server is None:
            raise RuntimeError("S3Server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def stats(self) -> dict[str, int]:
        """Snapshot of request counts by kind, ``requests`` (total) and ``bytes_sent``."""
        return self._counter.snapshot()

    def reset(self, wipe: bool = False) -> None:
        """Zero the counters; with ``wipe=True`` also delete every bucket (moto reset)."""
        if wipe:
            self.wipe()
        self._counter.reset()

    def wipe(self) -> None:
        """Delete all buckets and objects held by moto in this process."""
        httpx.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
