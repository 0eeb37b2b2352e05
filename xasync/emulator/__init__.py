"""A local emulator of the Sentinel Hub Asynchronous Processing API, on a real S3 server.

>>> from xasync.emulator import Emulator, Faults
>>> with Emulator(concurrency_limit=2, processing_seconds=0.5) as emu:   # doctest: +SKIP
...     emu.create_bucket("demo")
...     emu.base_url, emu.token_url, emu.client_id, emu.s3_endpoint_url

Everything binds 127.0.0.1 with a free port. The emulator follows the public contract
(``shared/spec/async-api.md``) and imports nothing from ``xasync`` but ``xasync._contract``.
See ``docs/emulator.md`` for the synthetic scene formula and the knobs.
"""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Any

from .faults import Faults
from .gcs import GCSServer
from .runtime import Runtime, Settings
from .s3 import S3Server
from .serving import serve, shutdown

logger = logging.getLogger(__name__)

__all__ = ["Emulator", "Faults", "S3Server"]

_UNSET: Any = object()


class _Hold:
    """What :meth:`Emulator.hold` returns: releases the same requests on ``__exit__``."""

    def __init__(self, emu: Emulator, request_id: str | None) -> None:
        self._emu = emu
        self._request_id = request_id

    def __enter__(self) -> _Hold:
        return self

    def __exit__(self, *exc: object) -> None:
        self._emu.release(self._request_id)

    def release(self) -> None:
        """Release now (same as leaving the ``with`` block)."""
        self._emu.release(self._request_id)


class Emulator:
    """The Async API emulator: an S3 server plus the API, both on 127.0.0.1.

    Parameters
    ----------
    concurrency_limit
        Requests that may run at once per account (client id); more answer 429.
    processing_seconds
        How long each request stays RUNNING before its outputs are computed.
    token_lifetime
        Lifetime of issued access tokens, seconds.
    tiff_layout
        ``"tiled"`` (512 x 512 tiles, DEFLATE) or ``"striped"`` (plain strips, uncompressed).
    faults
        Fault-injection knobs (:class:`Faults`); all off by default.
    clouds
        Deterministic clouds over optical collections (``docs/emulator.md``); ``False``: every
        scene is clear.
    client_id, client_secret
        OAuth2 client credentials accepted by the token endpoint; generated when not given.
    port
        API port (0: a free one).
    s3
        An already started :class:`S3Server` to deliver into; by default the emulator starts
        (and stops) its own.

    """

    def __init__(
        self,
        concurrency_limit: int = 2,
        processing_seconds: float = 0.5,
        *,
        token_lifetime: float = 3600.0,
        tiff_layout: str = "tiled",
        faults: Faults | None = None,
        clouds: bool = True,
        client_id: str | None = None,
        client_secret: str | None = None,
        port: int = 0,
        s3: S3Server | None = None,
    ) -> None:
        self._defaults = Settings(
            concurrency_limit=concurrency_limit,
            processing_seconds=float(processing_seconds),
            token_lifetime=float(token_lifetime),
            tiff_layout=tiff_layout,
            faults=faults or Faults(),
            clouds=bool(clouds),
        )
        self.client_id = client_id or f"emu-{secrets.token_hex(6)}"
        self._client_secret = client_secret or secrets.token_urlsafe(24)
        self._port = port
        self._own_s3 = s3 is None
        self._s3 = s3
        self._gcs: GCSServer | None = None
        self._runtime: Runtime | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Emulator:
        """Start S3 (unless given) and the API in daemon threads; returns ``self``."""
        if self._server is not None:
            return self

        from .app import create_app

        if self._s3 is None:
            self._s3 = S3Server()
        self._s3.start()
        self._runtime = Runtime(
            self._defaults,
            {self.client_id: self._client_secret},
            self._s3.endpoint_url,
        )
        self._start_gcs()
        app = create_app(self._runtime, stats=lambda: self.stats)
        self._server, self._thread = serve(app, self._port, "xasync-emulator-api")
        logger.info("Async API emulator listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop the API, the workers and (if owned) the S3 server; release the ports."""
        if self._server is None:
            return
        shutdown(self._server, self._thread)
        if self._runtime is not None:
            self._runtime.shutdown()
        if self._own_s3 and self._s3 is not None:
            self._s3.stop()
            self._s3 = None
        if self._gcs is not None:
            self._gcs.stop()
            self._gcs = None
        self._server = None
        self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "stopped"
        return f"Emulator({where}, client_id={self.client_id!r})"

    # -- endpoints and credentials -----------------------------------------------------------
    def _rt(self) -> Runtime:
        if self._runtime is None or self._server is None:
            raise RuntimeError("Emulator is not started (use start() or a with block)")
        return self._runtime

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; the Async API is under both contract paths."""
        self._rt()
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def token_url(self) -> str:
        """The Keycloak-style token endpoint (``/oauth/token`` is served too)."""
        return f"{self.base_url}/auth/realms/main/protocol/openid-connect/token"

    @property
    def client_secret(self) -> str:
        """The OAuth2 client secret (never in repr or logs)."""
        return self._client_secret

    @property
    def s3(self) -> S3Server:
        """The S3 server outputs are delivered to."""
        self._rt()
        assert self._s3 is not None
        return self._s3

    @property
    def s3_endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the S3 server."""
        return self.s3.endpoint_url

    @property
    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem(**storage_options)``."""
        return self.s3.storage_options

    def _start_gcs(self) -> None:
        try:
            self._gcs = GCSServer().start()
        except ImportError:  # gcp-storage-emulator missing: S3 only
            logger.warning("gcp-storage-emulator is not installed: no GCS delivery")
            return
        assert self._runtime is not None
        self._runtime.gcs_writer = self._gcs.writer()

    @property
    def gcs(self) -> GCSServer:
        """The Google Cloud Storage server ``delivery.gs`` writes to."""
        self._rt()
        if self._gcs is None:
            raise RuntimeError("no GCS server: install gcp-storage-emulator (xasync[emulator])")
        return self._gcs

    @property
    def gcs_storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``gcsfs.GCSFileSystem(**gcs_storage_options)``."""
        return self.gcs.storage_options

    @property
    def gcs_credentials(self) -> dict[str, str]:
        """A made-up service-account JSON (dict) the emulator accepts in ``delivery.gs``.

        ``base64(json.dumps(gcs_credentials))`` is ``delivery.gs.credentials``; the emulator
        checks its fields, not its key (it signs nothing).
        """
        return dict(self.gcs.credentials)

    def create_gcs_bucket(self, name: str) -> str:
        """Create bucket ``name`` on the GCS server; return ``gs://name``."""
        return self.gcs.create_bucket(name)

    def add_client(
        self, client_id: str | None = None, client_secret: str | None = None
    ) -> tuple[str, str]:
        """Accept another OAuth2 client: an account with its own concurrency limit.

        Returns
        -------
        tuple of str
            ``(client_id, client_secret)``, generated where not given.
        """
        client_id = client_id or f"emu-{secrets.token_hex(6)}"
        client_secret = client_secret or secrets.token_urlsafe(24)
        self._rt().add_client(client_id, client_secret)
        return client_id, client_secret

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` on the S3 server; return ``s3://name``."""
        return self.s3.create_bucket(name)

    # -- knobs, counters ---------------------------------------------------------------------
    @property
    def concurrency_limit(self) -> int:
        """Current per-account concurrency limit."""
        return self._settings().concurrency_limit

    @property
    def processing_seconds(self) -> float:
        """Current RUNNING time of a request."""
        return self._settings().processing_seconds

    @property
    def token_lifetime(self) -> float:
        """Current token lifetime, seconds."""
        return self._settings().token_lifetime

    @property
    def tiff_layout(self) -> str:
        """Current GeoTIFF layout."""
        return self._settings().tiff_layout

    @property
    def clouds(self) -> bool:
        """Whether optical scenes have the deterministic clouds (``docs/emulator.md``)."""
        return self._settings().clouds

    @property
    def faults(self) -> Faults:
        """Current fault knobs."""
        return self._settings().faults

    def _settings(self) -> Settings:
        return self._runtime.settings if self._runtime is not None else self._defaults

    def configure(
        self,
        *,
        concurrency_limit: int = _UNSET,
        processing_seconds: float = _UNSET,
        token_lifetime: float = _UNSET,
        tiff_layout: str = _UNSET,
        faults: Faults = _UNSET,
        clouds: bool = _UNSET,
    ) -> None:
        """Change knobs at run time; they apply to calls and requests from now on."""
        changes: dict[str, Any] = {
            k: v
            for k, v in {
                "concurrency_limit": concurrency_limit,
                "processing_seconds": processing_seconds,
                "token_lifetime": token_lifetime,
                "tiff_layout": tiff_layout,
                "faults": faults,
                "clouds": clouds,
            }.items()
            if v is not _UNSET
        }
        if self._runtime is None:
            from dataclasses import replace

            self._defaults = replace(self._defaults, **changes)
        else:
            self._runtime.configure(**changes)

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters; ``stats["s3"]`` holds the S3 server's, ``stats["gcs"]``
        the GCS server's (empty without one)."""
        out = self._rt().registry.snapshot()
        out["s3"] = self.s3.stats
        out["gcs"] = self._gcs.stats if self._gcs is not None else {}
        out["s3_bytes_sent"] = out["s3"]["bytes_sent"]  # flat alias (docs/dev/interfaces.md)
        return out

    def calls(self) -> list[dict[str, Any]]:
        """The handler times of the recent create and status calls (the most recent 50 000):
        ``kind``, ``id`` (the request's, None for a refused create), ``status`` (HTTP),
        ``start`` and ``end`` (``time.time()`` at the handler's entry and answer)."""
        return self._rt().registry.calls()

    # -- holding requests RUNNING --------------------------------------------------------------
    def hold(self, request_id: str | None = None) -> _Hold:
        """Keep requests RUNNING until released: nothing is delivered while held.

        With no ``request_id`` every request, running now or accepted later, stays RUNNING once
        its processing time is over (its folder holds only the request copy) until
        :meth:`release`. Usable as a context manager that releases on exit::

            with emu.hold():
                rid = create(...)        # stays RUNNING, folder = the request copy only
            # released: outputs and the cost-updated copy appear, then the status turns 404

        Parameters
        ----------
        request_id
            Hold only this request (it must not have finished yet to have an effect).

        """
        self._rt().gate.hold(request_id)
        return _Hold(self, request_id)

    def release(self, request_id: str | None = None) -> None:
        """Let ``request_id`` (or, with ``None``, every held request) deliver and finish.

        ``release()`` with no id also stops holding requests accepted from now on.
        """
        self._rt().gate.release(request_id)

    @property
    def waiting(self) -> list[str]:
        """Ids of held requests whose processing is done and that wait for :meth:`release`."""
        return self._rt().gate.waiting()

    def reset(self, wipe_s3: bool = False, restore_config: bool = False) -> None:
        """Forget all requests (running ones are abandoned silently) and zero the counters.

        Parameters
        ----------
        wipe_s3
            Also delete every bucket (S3 and GCS). moto's state is process-wide: this wipes every moto
            server of the process.
        restore_config
            Also restore the knobs given to the constructor.

        """
        rt = self._rt()
        rt.registry.reset()
        rt.gate.reset()
        if restore_config:
            rt.configure(
                **{
                    f: getattr(self._defaults, f)
                    for f in (
                        "concurrency_limit",
                        "processing_seconds",
                        "token_lifetime",
                        "tiff_layout",
                        "faults",
                        "clouds",
                    )
                },
            )
        self.s3.reset(wipe=wipe_s3)
        if self._gcs is not None:
            self._gcs.reset()
            if wipe_s3:
                self._gcs.wipe()
