"""The one back-off policy of xasync: exponential growth, a cap, full jitter, ``Retry-After``.

Every wait before a retry (an API call after a 5xx, a 429 or a lost connection; an S3 probe
after a transport fault) is drawn from a :class:`Backoff`::

    policy = Backoff(base=0.5, cap=30.0)
    await asyncio.sleep(policy.delay(attempt))                     # attempt = 0, 1, 2, ...
    await asyncio.sleep(policy.delay(attempt, retry_after=2.0))    # the server asked for 2 s

Rules
-----
* Full jitter (the "Exponential Backoff And Jitter" scheme): retry ``n`` waits a uniformly drawn
  time in ``[0, min(cap, base * 2**n)]``, so clients that failed together do not retry together.
* A server's ``Retry-After`` is honoured: the wait is at least the hint (bounded by
  ``max_retry_after``, so a hostile or mistaken header cannot stall the caller for hours), plus a
  jittered spread of ``spread * hint`` so that the waiters it sent away do not return in step.
* Seedable: ``Backoff(seed=1)`` draws the same waits every time (tests).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with full jitter and a cap, honouring ``Retry-After``.

    Parameters
    ----------
    base : float
        Seconds: the ceiling of the first retry's wait (``attempt=0``).
    cap : float
        Seconds: the ceiling never grows past this.
    max_retry_after : float
        Seconds: longer ``Retry-After`` hints are shortened to this.
    spread : float
        Fraction of a ``Retry-After`` hint added at random (``0.25``: wait 1 to 1.25 times it).
    seed : int, optional
        Seed of the private random generator (reproducible waits); None draws from the OS.

    Examples
    --------
    >>> policy = Backoff(base=1.0, cap=8.0, seed=0)
    >>> all(0.0 <= policy.delay(n) <= min(8.0, 2.0**n) for n in range(10))
    True
    >>> policy.delay(0, retry_after=3.0) >= 3.0
    True
    """

    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 120.0
    spread: float = 0.25
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("base", "cap", "max_retry_after", "spread"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"Backoff.{name} must be a number >= 0, got {value!r}")
        object.__setattr__(self, "_rng", random.Random(self.seed))

    @classmethod
    def from_config(cls, config: Any, **overrides: Any) -> Backoff:
        """The policy of a :class:`xasync.config.Config` (``backoff_base``, ``backoff_max``)."""
        values = {"base": config.backoff_base, "cap": config.backoff_max}
        values.update(overrides)
        return cls(**values)

    def ceiling(self, attempt: int) -> float:
        """The longest jittered wait of retry number ``attempt`` (0-based), before hints."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt!r}")
        # 2**attempt overflows a float for absurd attempts; the cap is reached long before
        return min(self.cap, self.base * 2.0 ** min(attempt, 512))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based).

        Parameters
        ----------
        attempt : int
            How many retries came before this one.
        retry_after : float, optional
            The server's hint in seconds (``Retry-After``), if any.

        Returns
        -------
        float
            ``uniform(0, ceiling(attempt))``, or at least the (bounded, spread) hint when given.
        """
        wait = self._rng.uniform(0.0, self.ceiling(attempt))
        if retry_after is not None and retry_after >= 0:
            hint = min(float(retry_after), self.max_retry_after)
            wait = max(wait, hint * (1.0 + self.spread * self._rng.random()))
        return wait
