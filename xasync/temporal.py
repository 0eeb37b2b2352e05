"""Time series (issue 14): intervals from ``freq=``, the multi-temporal evalscript wrapper, reducers.

- :func:`make_intervals` cuts ``time=(start, end)`` by a pandas offset alias (``"10D"``, ``"MS"``,
  ``"W"``) or takes an explicit list of ``(start, end)`` intervals.
- :func:`wrap_evalscript` turns an ordinary single-scene Evalscript V3 (``SIMPLE`` mosaicking,
  ``evaluatePixel(sample)``) into a multi-temporal one (``mosaicking: "ORBIT"``): the user's
  ``evaluatePixel`` runs on every scene whose ``dataMask`` is set, and each interval is reduced
  with one of :data:`REDUCERS`. Every output gets ``intervals x bands`` FLOAT32 bands, interval
  major (band ``k * bands + b`` is band ``b`` of interval ``k``); an interval with no valid
  scene is NaN (``count``, the number of valid values of that interval and band: 0). The scene dates of each interval go to ``userdata.json``
  through ``updateOutputMetadata`` (:func:`scene_counts` reads it back).

Membership: a generated interval is ``[start, next start)``, the last one ``[start, end]``; an
explicit interval is ``[start, end]`` (both inclusive, as the API's ``timeRange``). The scene
time is the acquisition time of the orbit's first tile (its ``dateFrom`` when it has no tile).
``reducer="last"`` keeps the most recent valid observation of an interval: what a request over
that interval alone returns with the default ``mosaickingOrder: "mostRecent"``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xasync._temporal_js import WRAPPER_JS as _WRAPPER_JS
from xasync.errors import TemporalError, ValidationError

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_INTERVALS",
    "REDUCERS",
    "TEMPORAL_MODES",
    "Interval",
    "TemporalError",
    "check_options",
    "check_wrappable",
    "make_intervals",
    "scene_counts",
    "span",
    "wrap_evalscript",
    "wrapped_outputs",
]

#: How an interval is reduced to one value per pixel and band.
REDUCERS = ("median", "mean", "min", "max", "first", "last", "count")
#: ``"orbit"``: one multi-temporal request per row; ``"requests"``: one per row and interval.
TEMPORAL_MODES = ("orbit", "requests")
#: More intervals than this is almost certainly a mistake (e.g. ``"1h"`` over a year).
MAX_INTERVALS = 1000
_ISO = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Interval:
    """One time step: ``[start, end)``, or ``[start, end]`` when ``closed``.

    ``start``/``end`` are naive UTC :class:`pandas.Timestamp` (the ``time``/``time_end``
    coordinates).
    """

    start: Any
    end: Any
    closed: bool

    @property
    def time_range(self) -> tuple[str, str]:
        """The ``timeRange`` ``(from, to)`` of a request over this interval alone (inclusive)."""
        import pandas as pd

        last = self.end if self.closed else self.end - pd.Timedelta(seconds=1)
        return self.start.strftime(_ISO), max(last, self.start).strftime(_ISO)

    def contains(self, when: Any) -> bool:
        """Whether an acquisition at ``when`` (naive UTC) belongs to this interval."""
        return self.start <= when and (when <= self.end if self.closed else when < self.end)


def _ts(value: Any, what: str, *, end: bool = False) -> Any:
    """A naive UTC Timestamp; a bare date as an end means the end of that day."""
    import pandas as pd

    from xasync.inputs import parse_time_range

    try:
        text = parse_time_range((value, value))[1 if end else 0]
    except ValidationError as exc:
        try:  # an exact instant ("2024-05-10T12:00:00Z") is a zero-length range on its own
            ts = pd.Timestamp(value)
        except (TypeError, ValueError):
            raise TemporalError(f"{what}: {exc}") from None
        if ts is pd.NaT:
            raise TemporalError(f"{what}: {exc}") from None
        return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
    return pd.Timestamp(text).tz_localize(None)


def _check_count(n: int) -> None:
    if n > MAX_INTERVALS:
        raise TemporalError(
            f"{n} intervals; at most {MAX_INTERVALS} are allowed (choose a coarser freq=)"
        )


def _from_freq(time: Any, freq: Any) -> tuple[Interval, ...]:
    import pandas as pd

    from xasync.inputs import parse_time_range

    if time is None:
        raise TemporalError("freq= needs time=(start, end) to cut into intervals")
    try:
        t0, t1 = (pd.Timestamp(t).tz_localize(None) for t in parse_time_range(time))
    except ValidationError as exc:
        raise TemporalError(str(exc)) from None
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except (TypeError, ValueError):
        raise TemporalError(
            f"freq={freq!r} is not a pandas offset alias; use e.g. '10D', 'W', 'MS' or a list "
            "of (start, end) intervals"
        ) from None
    try:
        if not t0 + offset > t0:
            raise TemporalError(f"freq={freq!r} does not move forward in time")
        _check_count(int((t1 - t0) / ((t0 + offset) - t0)))  # before building a huge range
        starts = pd.date_range(t0, t1, freq=offset)
    except (TypeError, ValueError) as exc:
        raise TemporalError(f"freq={freq!r} cannot cut {t0}..{t1}: {exc}") from None
    if len(starts) == 0 or starts[0] != t0:  # anchored offsets ("MS", "W"): cover the start too
        starts = starts.insert(0, t0)
    _check_count(len(starts))
    ends = [*starts[1:], t1]
    n = len(starts)
    return tuple(Interval(s, e, i == n - 1) for i, (s, e) in enumerate(zip(starts, ends)))


def _explicit(time: Any, pairs: Sequence[Any]) -> tuple[Interval, ...]:
    out: list[Interval] = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise TemporalError(f"freq[{i}] must be a (start, end) pair, got {pair!r}")
        start = _ts(pair[0], f"freq[{i}] start")
        end = _ts(pair[1], f"freq[{i}] end", end=True)
        if end < start:
            raise TemporalError(f"freq[{i}] is reversed: {pair[1]!r} is before {pair[0]!r}")
        if out and start <= out[-1].end:
            raise TemporalError(
                f"freq[{i}] starts at {start} before the previous interval ends "
                f"({out[-1].end}); intervals must be sorted and must not overlap"
            )
        out.append(Interval(start, end, True))
    if not out:
        raise TemporalError("freq= is an empty list of intervals")
    _check_count(len(out))
    if time is not None:
        import pandas as pd

        from xasync.inputs import parse_time_range

        t0, t1 = (pd.Timestamp(t).tz_localize(None) for t in parse_time_range(time))
        if out[0].start < t0 or out[-1].end > t1:
            raise TemporalError(
                f"the intervals {out[0].start}..{out[-1].end} reach outside time={time!r}; "
                "leave time= out to use the intervals' own span"
            )
    return tuple(out)


def make_intervals(time: Any, freq: Any) -> tuple[Interval, ...]:
    """The time steps of a series.

    Parameters
    ----------
    time : tuple, optional
        ``(start, end)`` as :func:`xasync.inputs.parse_time_range` reads it (a bare date as the
        end means that whole day). Needed with an offset alias; optional with explicit intervals
        (which must then lie inside it).
    freq : str, pandas offset, or sequence of (start, end)
        An offset alias cuts ``[start, end]`` into intervals starting at
        ``pd.date_range(start, end, freq=freq)`` (``start`` itself added first when an anchored
        offset such as ``"MS"`` does not fall on it); each ends where the next starts, the last
        at ``end``. A list gives the intervals themselves (sorted, not overlapping, inclusive).

    Returns
    -------
    tuple of Interval

    Raises
    ------
    TemporalError
        Unknown alias, reversed/overlapping/unsorted intervals, more than
        :data:`MAX_INTERVALS`, or no ``time`` to cut.

    Examples
    --------
    >>> steps = make_intervals(("2024-05-01", "2024-08-31"), "10D")
    >>> len(steps), str(steps[0].start), str(steps[-1].end)
    (13, '2024-05-01 00:00:00', '2024-08-31 23:59:59')

    """
    if freq is None:
        raise TemporalError("freq= is needed for a time series, e.g. freq='10D'")
    if isinstance(freq, (list, tuple)):
        return _explicit(time, freq)
    return _from_freq(time, freq)


def span(intervals: Sequence[Interval]) -> tuple[str, str]:
    """The ``timeRange`` covering every interval (what a multi-temporal request asks for)."""
    return intervals[0].time_range[0], intervals[-1].time_range[1]


def check_options(temporal: Any, reducer: Any) -> None:
    """Typed errors for an unknown ``temporal=`` or ``reducer=``."""
    if temporal not in TEMPORAL_MODES:
        raise TemporalError(f"temporal must be one of {TEMPORAL_MODES}, got {temporal!r}")
    if reducer not in REDUCERS:
        raise TemporalError(f"reducer must be one of {REDUCERS}, got {reducer!r}")


_PROBE = """
(function () {
  var r = {setup: typeof setup, evaluatePixel: typeof evaluatePixel, mosaicking: null};
  if (r.setup === "function") {
    var s = setup();
    r.mosaicking = (s && s.mosaicking) ? String(s.mosaicking).toUpperCase() : "SIMPLE";
  }
  return JSON.stringify(r);
})()
"""


def check_wrappable(evalscript: str) -> None:
    """Raise :class:`TemporalError` unless the script is a single-scene (SIMPLE) Evalscript V3.

    The script runs in a sandboxed QuickJS context (as :mod:`xasync.evalscript` runs
    ``setup()``).
    """
    import quickjs

    from xasync.evalscript import _PRELUDE, SETUP_MEMORY_LIMIT_BYTES, SETUP_TIME_LIMIT_S

    hint = "; use temporal='requests' (one request per interval) for such scripts"
    if not re.match(r"\s*//\s*VERSION\s*=\s*3\s*(\n|$)", evalscript or ""):
        raise TemporalError("only Evalscript V3 (first line //VERSION=3) can be wrapped" + hint)
    ctx = quickjs.Context()
    ctx.set_time_limit(SETUP_TIME_LIMIT_S)
    ctx.set_memory_limit(SETUP_MEMORY_LIMIT_BYTES)
    try:
        ctx.eval(_PRELUDE)
        ctx.eval(evalscript)
        probe = json.loads(ctx.eval(_PROBE))
    except (quickjs.JSException, MemoryError, RuntimeError, quickjs.StackOverflow) as exc:
        raise TemporalError(f"the evalscript cannot be run to wrap it ({exc})" + hint) from None
    if probe["setup"] != "function" or probe["evaluatePixel"] != "function":
        raise TemporalError("the evalscript needs setup() and evaluatePixel() to be wrapped" + hint)
    if probe["mosaicking"] != "SIMPLE":
        raise TemporalError(
            f"the evalscript is already multi-temporal (mosaicking {probe['mosaicking']}); only "
            "single-scene (SIMPLE) scripts are wrapped" + hint
        )


def wrapped_outputs(outputs: Sequence[Any], n_intervals: int) -> tuple[Any, ...]:
    """The :class:`~xasync.evalscript.OutputSpec` of the wrapped script: FLOAT32, interval x band."""
    from xasync.evalscript import OutputSpec

    return tuple(
        OutputSpec(o.id, o.bands * n_intervals, "FLOAT32", "float32", None) for o in outputs
    )


def _js_intervals(intervals: Sequence[Interval]) -> str:
    rows = [
        [
            int(iv.start.value // 1_000_000),
            int(iv.end.value // 1_000_000),
            bool(iv.closed),
            iv.start.strftime(_ISO),
            iv.end.strftime(_ISO),
        ]
        for iv in intervals
    ]
    return json.dumps(rows)


def wrap_evalscript(
    evalscript: str,
    outputs: Sequence[Any],
    intervals: Sequence[Interval],
    reducer: str = "median",
) -> str:
    """The multi-temporal (``ORBIT``) evalscript reducing the user's per-scene values.

    Parameters
    ----------
    evalscript : str
        A single-scene Evalscript V3 (checked by :func:`check_wrappable`).
    outputs : sequence of OutputSpec
        The script's outputs (ids and band counts, as :func:`~xasync.evalscript.parse_outputs`
        gives them).
    intervals : sequence of Interval
        From :func:`make_intervals`.
    reducer : str
        One of :data:`REDUCERS`.

    Returns
    -------
    str
        The wrapped script; its outputs are :func:`wrapped_outputs`.

    """
    check_options("orbit", reducer)
    check_wrappable(evalscript)
    if not intervals:
        raise TemporalError("no intervals to wrap the evalscript over")
    outs = json.dumps([[o.id, int(o.bands)] for o in outputs])
    header = (
        "//VERSION=3\n"
        f"// xasync multi-temporal wrapper: {len(intervals)} intervals, reducer {reducer}\n"
        f"var __xat_I = {_js_intervals(intervals)};\n"
        f"var __xat_OUT = {outs};\n"
        f"var __xat_R = {json.dumps(reducer)};\n"
        "var __xat = (function () {\n"
    )
    user = (
        evalscript.rstrip() + "\n;\nreturn {setup: setup, evaluatePixel: evaluatePixel};\n})();\n"
    )
    return header + user + _WRAPPER_JS


def scene_counts(userdata: Any, n_intervals: int) -> np.ndarray:
    """Scenes per interval from a wrapped request's ``userdata.json`` (``-1`` when unknown)."""
    counts = np.full(n_intervals, -1, dtype=np.int32)
    rows = userdata.get("intervals") if isinstance(userdata, dict) else None
    if isinstance(rows, list) and len(rows) == n_intervals:
        counts[:] = [len(r.get("scenes") or []) if isinstance(r, dict) else -1 for r in rows]
    return counts
