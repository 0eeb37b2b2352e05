"""Fault injection: what can go wrong, with which probability, decided by a seeded RNG."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, fields

logger = logging.getLogger(__name__)

_PROBABILITIES = (
    "rate_limit",
    "server_error",
    "drop_connection",
    "drop_after_accept",
    "failure_rate",
)


@dataclass(frozen=True)
class Faults:
    """Fault knobs of the emulator; all off by default.

    Parameters
    ----------
    rate_limit
        Probability that an API call (create or status) answers 429 with ``Retry-After``.
    server_error
        Probability that an API call answers 500, 502 or 503 with a RestErrorWrapper body.
    drop_connection
        Probability that an API call gets its TCP connection closed without any HTTP response.
    drop_after_accept
        Share of the dropped *create* calls that are dropped after the request was accepted (it
        exists, runs and is paid for; the client never sees the id).
    failure_rate
        Share of accepted requests that end with ``error.json`` instead of outputs.
    processing_jitter
        Extra RUNNING time, uniform in ``[0, processing_jitter]`` seconds.
    visibility_delay
        Seconds between the status turning 404 and the outputs appearing in the bucket.
    retry_after_ms
        ``Retry-After`` value (milliseconds) of injected 429s.
    apply_to_token
        Also inject 429/5xx/drops on the token endpoint.
    seed
        Seed of the decision RNG (``None``: unseeded).

    """

    rate_limit: float = 0.0
    server_error: float = 0.0
    drop_connection: float = 0.0
    drop_after_accept: float = 0.5
    failure_rate: float = 0.0
    processing_jitter: float = 0.0
    visibility_delay: float = 0.0
    retry_after_ms: int = 200
    apply_to_token: bool = False
    seed: int | None = 0

    def __post_init__(self) -> None:
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"Faults.{name} must be in [0, 1], got {value!r}")
        for name in ("processing_jitter", "visibility_delay"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"Faults.{name} must be >= 0")
        if self.retry_after_ms < 0:
            raise ValueError("Faults.retry_after_ms must be >= 0")

    @property
    def any_call_fault(self) -> bool:
        """True when some per-call fault has a non-zero probability."""
        return (self.rate_limit + self.server_error + self.drop_connection) > 0


#: Outcomes of :meth:`FaultDecider.call`.
OK, RATE_LIMIT, SERVER_ERROR, DROP_BEFORE, DROP_AFTER = "ok", "429", "5xx", "drop", "drop_after"


class FaultDecider:
    """Draws fault decisions from one seeded RNG, thread-safely."""

    def __init__(self, faults: Faults) -> None:
        self._lock = threading.Lock()
        self.faults = faults
        self._rng = random.Random(faults.seed)

    def call(self, endpoint: str) -> str:
        """Decide the fate of one API call to ``endpoint`` (``token``, ``create``, ``status``)."""
        f = self.faults
        if endpoint == "token" and not f.apply_to_token:
            return OK
        if not f.any_call_fault:
            return OK
        with self._lock:
            u = self._rng.random()
            after = self._rng.random() < f.drop_after_accept
        if u < f.drop_connection:
            return DROP_AFTER if (endpoint == "create" and after) else DROP_BEFORE
        u -= f.drop_connection
        if u < f.rate_limit:
            return RATE_LIMIT
        u -= f.rate_limit
        if u < f.server_error:
            return SERVER_ERROR
        return OK

    def server_status(self) -> int:
        """Which 5xx to send."""
        with self._lock:
            return self._rng.choice((500, 502, 503))

    def fails(self) -> bool:
        """Whether an accepted request ends with error.json."""
        if self.faults.failure_rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < self.faults.failure_rate

    def jitter(self) -> float:
        """Extra processing seconds."""
        if self.faults.processing_jitter <= 0:
            return 0.0
        with self._lock:
            return self._rng.uniform(0.0, self.faults.processing_jitter)


def faults_fields() -> tuple[str, ...]:
    """Names of the :class:`Faults` knobs."""
    return tuple(f.name for f in fields(Faults))
