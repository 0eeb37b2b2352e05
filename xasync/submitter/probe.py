"""When to try a create while every slot is taken: the chance that a running request ended.

With all K slots of an account running, the next slot frees when the first of the K requests
ends, whichever it is. A create sent then both finds out and uses the slot (a 200), where a
status call would only find out about the one request it asks for. A create sent too early is
refused with a 429 (one counted call, nothing bought). :func:`probe_time` picks the moment at
which the chance that at least one of the running requests has ended reaches ``confidence``,
from their acceptance times and the learned durations (taken as spread evenly over
``[low, high]``, seconds after acceptance), given that all were still running at ``full_at``
(the last refused probe). Pure arithmetic: ``tests/unit/test_polling_probe.py`` checks it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["chance_one_ended", "probe_time"]

#: Resolution of :func:`probe_time` (seconds); the search stops below it.
RESOLUTION = 0.001
#: Share of the durations taken to run past the learned upper edge.
TAIL_MASS = 0.05


def _survival(age: float, low: float, high: float, tail: float) -> float:
    """Chance that a request ``age`` seconds old is still running: 1 up to ``low``, falling
    evenly to ``TAIL_MASS`` at ``high``, then an exponential tail of mean ``tail`` (a request
    may run longer than learned; it keeps every ratio finite)."""
    if age <= low:
        return 1.0
    if age < high:
        return TAIL_MASS + (1.0 - TAIL_MASS) * (high - age) / (high - low)
    return TAIL_MASS * math.exp(-(age - high) / tail)


def chance_one_ended(
    at: float, accepted: Sequence[float], full_at: float, low: float, high: float
) -> float:
    """Chance that some request of ``accepted`` (acceptance times) ended by ``at``, given that
    all were running at ``full_at``."""
    tail = max(high - low, RESOLUTION)
    alive = 1.0
    for start in accepted:
        then = _survival(full_at - start, low, high, tail)
        alive *= min(1.0, _survival(at - start, low, high, tail) / then)
    return 1.0 - alive


def probe_time(
    now: float,
    accepted: Sequence[float],
    full_at: float,
    low: float,
    high: float,
    confidence: float,
) -> float:
    """The earliest time (``>= now``) at which :func:`chance_one_ended` reaches ``confidence``.

    Parameters
    ----------
    now : float
        The current time.
    accepted : sequence of float
        Acceptance times of the running requests (same clock as ``now``).
    full_at : float
        A time at which all of them were known to be running (-inf: nothing known).
    low, high : float
        The learned durations are taken as spread evenly over ``[low, high]`` seconds.
    confidence : float
        Target chance, in (0, 1).
    """
    if not accepted or chance_one_ended(now, accepted, full_at, low, high) >= confidence:
        return now
    lo, hi = now, max(now, max(accepted) + high)
    while chance_one_ended(hi, accepted, full_at, low, high) < confidence:
        hi += max(high - low, RESOLUTION) + (hi - lo)  # in the tail: widen geometrically
    while hi - lo > RESOLUTION:
        mid = (lo + hi) / 2
        if chance_one_ended(mid, accepted, full_at, low, high) >= confidence:
            hi = mid
        else:
            lo = mid
    return hi
