"""The emulator's moving parts shared by the HTTP app and the background jobs."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from .faults import FaultDecider, Faults
from .gate import Gate
from .process import Job, run_job
from .scheduler import Scheduler
from .state import RecordFinisher, Registry, RequestRecord
from .tokens import TokenIssuer

logger = logging.getLogger(__name__)

TIFF_LAYOUTS = ("tiled", "striped")
#: Threads rendering and uploading (RUNNING holds are timers, not threads).
MAX_WORKERS = 64  # waiting requests hold a thread until their processing time is over


@dataclass(frozen=True)
class Settings:
    """Knobs that :meth:`Emulator.configure` changes at run time."""

    concurrency_limit: int = 2
    processing_seconds: float = 0.5
    token_lifetime: float = 3600.0
    tiff_layout: str = "tiled"
    faults: Faults = field(default_factory=Faults)
    clouds: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.concurrency_limit, int) or self.concurrency_limit < 1:
            raise ValueError("concurrency_limit must be a positive integer")
        if self.processing_seconds < 0:
            raise ValueError("processing_seconds must be >= 0")
        if self.token_lifetime <= 0:
            raise ValueError("token_lifetime must be > 0")
        if self.tiff_layout not in TIFF_LAYOUTS:
            raise ValueError(f"tiff_layout must be one of {TIFF_LAYOUTS}")
        if not isinstance(self.clouds, bool):
            raise TypeError("clouds must be True or False")
        if not isinstance(self.faults, Faults):
            raise TypeError("faults must be a Faults instance")


class Runtime:
    """Settings, credentials, requests, fault decisions, S3 clients and the worker pool."""

    def __init__(self, settings: Settings, clients: dict[str, str], s3_endpoint: str) -> None:
        self._lock = threading.Lock()
        self.settings = settings
        self.decider = FaultDecider(settings.faults)
        self._clients = dict(clients)
        self.registry = Registry()
        self.gate = Gate()
        self.issuer = TokenIssuer()
        self.s3_endpoint = s3_endpoint
        self.stop_event = threading.Event()
        self._executor = ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="xasync-emu-job")
        self._scheduler = Scheduler()
        self._s3_clients: dict[tuple[str, str], Any] = {}
        self.gcs_writer: Any = None  # GCSWriter on the emulator's GCS server (set by Emulator)

    def __repr__(self) -> str:
        return f"Runtime(s3={self.s3_endpoint!r}, clients={len(self._clients)})"

    def configure(self, **changes: Any) -> Settings:
        """Replace some settings; a new ``faults`` also reseeds the decision RNG."""
        with self._lock:
            self.settings = replace(self.settings, **changes)
            if "faults" in changes:
                self.decider = FaultDecider(self.settings.faults)
            return self.settings

    def check_client(self, client_id: str | None, client_secret: str | None) -> bool:
        """Whether the pair is a known client."""
        import hmac

        if not client_id or client_secret is None:
            return False
        expected = self._clients.get(client_id)
        return expected is not None and hmac.compare_digest(expected, client_secret)

    def s3_client(self, key: str, secret: str) -> Any:
        """A cached boto3 client on the emulator's S3 server with these credentials."""
        import boto3
        from botocore.config import Config

        with self._lock:
            client = self._s3_clients.get((key, secret))
            if client is None:
                client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.s3_endpoint,
                    aws_access_key_id=key,
                    aws_secret_access_key=secret,
                    region_name="us-east-1",
                    config=Config(
                        retries={"max_attempts": 2},
                        max_pool_connections=MAX_WORKERS + 8,
                    ),
                )
                self._s3_clients[(key, secret)] = client
            return client

    def submit(self, job: Job, record: RequestRecord) -> None:
        """Run ``job`` in the background at once; it finishes when its RUNNING time is over.

        The work (evalscript, GeoTIFFs in temporary files) starts immediately; delivery and the
        status turning 404 happen at ``max(created + processing_seconds, work done)`` and not
        before :attr:`gate` lets the request go, so ``processing_seconds`` is the time a request
        runs, as a client sees it, whenever the machine keeps up.
        """
        finisher = RecordFinisher(self.registry, record)
        job.due = time.monotonic() + job.hold_seconds
        if not self.stop_event.is_set():
            self._executor.submit(run_job, job, finisher, self.stop_event, self.gate)

    def add_client(self, client_id: str, client_secret: str) -> None:
        """Accept one more OAuth2 client (an account with its own concurrency limit)."""
        with self._lock:
            self._clients[client_id] = client_secret

    def shutdown(self) -> None:
        """Stop the workers (waiting jobs are abandoned, running ones finish their step)."""
        self.stop_event.set()
        self._scheduler.stop()
        self._executor.shutdown(wait=True, cancel_futures=True)
