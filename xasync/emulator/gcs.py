"""A real Google Cloud Storage JSON-API server on 127.0.0.1 (gcp-storage-emulator, in memory).

Why this server: ``gcp-storage-emulator`` is pure Python (no Java, no Docker), keeps objects in
memory, and speaks enough of the JSON API for gcsfs (bucket and object metadata, listing, media
and multipart uploads, ranged downloads). It checks no credentials and no bucket IAM. It
ignores generation preconditions itself; this module adds the one xasync relies on: an upload
with ``ifGenerationMatch=0`` (gcsfs ``pipe_file(..., mode="create")``) onto an existing object
answers 412, as GCS does. Mutating requests are serialised (one lock), reads run in parallel.

The Async API emulator writes into it over HTTP with :class:`GCSWriter`, whose two methods have
the shape of the boto3 calls the S3 path uses, so that processing does not care where it writes.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
from functools import partial
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from .s3 import RequestCounter

logger = logging.getLogger(__name__)

#: Project the buckets belong to (``gcsfs.GCSFileSystem(project=...)``).
PROJECT = "xasync-emulator"
#: Fields a service-account JSON must have for ``delivery.gs.credentials``.
SERVICE_ACCOUNT_FIELDS = ("type", "project_id", "private_key_id", "private_key", "client_email")


class GCSWriteError(Exception):
    """An upload the GCS server refused (unknown bucket...)."""


class _PreconditionFailed(Exception):
    """An ``ifGenerationMatch=0`` upload onto an existing object."""


_local = threading.local()


class _QuietFailures(logging.Filter):
    """Drop the library's error lines about a refused precondition (a normal answer here)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_local, "create_only", False)


def _storage_class() -> Any:
    from gcp_storage_emulator.storage import Storage

    class _Storage(Storage):  # type: ignore[misc]
        def create_file(self, bucket_name: str, file_name: str, *args: Any, **kw: Any) -> Any:
            exists = file_name in self.objects.get(bucket_name, {})
            if exists and getattr(_local, "create_only", False):
                raise _PreconditionFailed(file_name)
            return super().create_file(bucket_name, file_name, *args, **kw)

    return _Storage


#: Kinds of requests the GCS server counts (``Emulator.stats["gcs"]``).
_KINDS = ("list", "get", "put", "delete", "other")


def _kind(method: str, path: str) -> str:
    """The kind of one JSON-API request: an object listing, a read, a write, a delete."""
    parts = urlsplit(path).path.strip("/").split("/")
    if method == "GET":
        # /storage/v1/b/<bucket>/o lists; /storage/v1/b/<bucket>/o/<name> and /download/... read
        return "list" if parts[-1] == "o" else "get"
    if method in ("POST", "PUT", "PATCH"):
        return "put" if "upload" in parts or parts[-1] == "o" or method != "POST" else "other"
    return "delete" if method == "DELETE" else "other"


def _handler_class(counter: RequestCounter) -> Any:
    from gcp_storage_emulator.server import RequestHandler

    lock = threading.Lock()

    class _Handler(RequestHandler):  # type: ignore[misc]
        def send_header(self, keyword: str, value: str) -> None:
            if keyword.lower() == "content-length":
                counter.add_bytes(int(value))
            super().send_header(keyword, value)

        def parse_request(self) -> bool:
            ok = bool(super().parse_request())
            if ok:
                counter.add(_kind(self.command, self.path))
            return ok

        def do_POST(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            _local.create_only = query.get("ifGenerationMatch") == ["0"]
            try:
                with lock:
                    super().do_POST()
            except _PreconditionFailed:
                body = json.dumps(
                    {
                        "error": {
                            "code": 412,
                            "message": "At least one of the pre-conditions "
                            "you specified did not hold.",
                        }
                    }
                ).encode()
                self.send_response(412)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            finally:
                _local.create_only = False

        def do_PUT(self) -> None:
            with lock:
                super().do_PUT()

        def do_PATCH(self) -> None:
            with lock:
                super().do_PATCH()

        def do_DELETE(self) -> None:
            with lock:
                super().do_DELETE()

    return _Handler


def dummy_service_account() -> dict[str, str]:
    """A made-up service-account JSON (fresh key material per call; it signs nothing)."""
    key = base64.b64encode(secrets.token_bytes(48)).decode()
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": secrets.token_hex(20),
        "private_key": f"-----BEGIN PRIVATE KEY-----\n{key}\n-----END PRIVATE KEY-----\n",
        "client_email": f"xasync-delivery@{PROJECT}.iam.gserviceaccount.com",
        "client_id": str(secrets.randbelow(10**20)),
        "token_uri": "https://oauth2.googleapis.com/token",
    }


class GCSWriter:
    """Uploads to the GCS server with the call shapes of boto3's ``put_object``/``upload_file``."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self._http = httpx.Client(timeout=60)

    def __repr__(self) -> str:
        return f"GCSWriter({self.endpoint_url})"

    def put_object(
        self, *, Bucket: str, Key: str, Body: bytes, ContentType: str = "application/octet-stream"
    ) -> None:
        """Write ``Body`` to ``gs://Bucket/Key`` (one media upload)."""
        url = f"{self.endpoint_url}/upload/storage/v1/b/{quote(Bucket, safe='')}/o"
        try:  # octet-stream: the server would parse a JSON body instead of storing its bytes
            resp = self._http.post(
                url,
                params={"uploadType": "media", "name": Key},
                content=Body,
                headers={"Content-Type": "application/octet-stream"},
            )
        except httpx.HTTPError as exc:
            raise GCSWriteError(f"gs://{Bucket}/{Key}: {type(exc).__name__}") from None
        if resp.status_code >= 300:
            raise GCSWriteError(f"gs://{Bucket}/{Key}: HTTP {resp.status_code}")

    def upload_file(self, path: str, bucket: str, key: str, Config: Any = None) -> None:
        """Write the local file ``path`` to ``gs://bucket/key``."""
        with open(path, "rb") as fh:
            self.put_object(Bucket=bucket, Key=key, Body=fh.read(), ContentType="image/tiff")

    def get_object(self, *, Bucket: str, Key: str) -> bytes:
        """The bytes of ``gs://Bucket/Key``."""
        url = f"{self.endpoint_url}/download/storage/v1/b/{Bucket}/o/{quote(Key, safe='')}"
        try:
            resp = self._http.get(url, params={"alt": "media"})
        except httpx.HTTPError as exc:
            raise GCSWriteError(f"gs://{Bucket}/{Key}: {type(exc).__name__}") from None
        if resp.status_code >= 300:
            raise GCSWriteError(f"gs://{Bucket}/{Key}: HTTP {resp.status_code}")
        return resp.content


class GCSServer:
    """gcp-storage-emulator's JSON API on ``127.0.0.1`` with a free port, objects in memory.

    Examples
    --------
    >>> with GCSServer() as gcs:                              # doctest: +SKIP
    ...     gcs.create_bucket("demo")                        # "gs://demo"
    ...     fs = gcsfs.core.GCSFileSystem(**gcs.storage_options)

    """

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._storage: Any = None
        self._counter = RequestCounter(_KINDS)
        self.credentials = dummy_service_account()

    def __repr__(self) -> str:
        state = self.endpoint_url if self._httpd is not None else "stopped"
        return f"GCSServer({state})"

    def start(self) -> GCSServer:
        """Start serving in a daemon thread; returns ``self``."""
        if self._httpd is not None:
            return self
        library_log = logging.getLogger("gcp_storage_emulator")
        library_log.setLevel(logging.WARNING)
        router_log = logging.getLogger("gcp_storage_emulator.server")
        if not any(isinstance(f, _QuietFailures) for f in router_log.filters):
            router_log.addFilter(_QuietFailures())
        self._storage = _storage_class()(use_memory_fs=True)
        handler = partial(_handler_class(self._counter), self._storage)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="xasync-emulator-gcs", daemon=True
        )
        self._thread.start()
        logger.info("GCS server listening on %s", self.endpoint_url)
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> GCSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        if self._httpd is None:
            raise RuntimeError("GCSServer is not started")
        port = self._httpd.server_address[1]
        return f"http://127.0.0.1:{port}"

    @property
    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``gcsfs.GCSFileSystem(**storage_options)``."""
        return {"endpoint_url": self.endpoint_url, "token": "anon", "project": PROJECT}

    @property
    def credentials_b64(self) -> str:
        """``credentials`` as ``delivery.gs.credentials`` wants it (base64 of the JSON)."""
        return base64.b64encode(json.dumps(self.credentials).encode()).decode()

    def writer(self) -> GCSWriter:
        """An uploader on this server."""
        return GCSWriter(self.endpoint_url)

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` (idempotent) and return ``gs://name``."""
        resp = httpx.post(
            f"{self.endpoint_url}/storage/v1/b",
            params={"project": PROJECT},
            json={"name": name},
            timeout=30,
        )
        if resp.status_code >= 300 and resp.status_code != 409:
            raise GCSWriteError(f"cannot create bucket {name}: HTTP {resp.status_code}")
        return f"gs://{name}"

    @property
    def stats(self) -> dict[str, int]:
        """Request counts by kind (list, get, put, delete, other), ``requests`` (total) and
        ``bytes_sent`` (response bodies), like the S3 server's."""
        return self._counter.snapshot()

    def reset(self) -> None:
        """Zero the counters."""
        self._counter.reset()

    def wipe(self) -> None:
        """Delete every bucket and object."""
        if self._storage is not None:
            self._storage.wipe()


__all__ = [
    "GCSServer",
    "GCSWriteError",
    "GCSWriter",
    "SERVICE_ACCOUNT_FIELDS",
    "dummy_service_account",
]
