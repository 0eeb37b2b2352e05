"""When to ask a running request's status: a schedule learned from the service's answers.

A pure object (no clock, no network): :mod:`~xasync.submitter.polling` feeds it the answers and
asks it for the next call time; ``tests/unit/test_polling_clock.py`` drives it in simulated time.

What is learned, per account, from the answers (times are seconds after the create answer):

* ``first``: when to make a request's first status call. It tracks the quantile of the
  durations at which ``RUNNING_SHARE`` of first calls still see the request running (a
  stochastic-approximation update per answer: later after a RUNNING, earlier after a 404). The
  gain is divided by the account's concurrency, so that the K answers of one wave move it by
  about one step together (not K steps in the same direction), and scales with the learned spread
  of the durations, so it scales with T. Rounds of K answers that all agree, in the same
  direction, multiply the gain by ``BOOST_STEP`` (the first call is far off); any other round
  resets it. A round that found every request over while ``first`` is past every recent
  RUNNING answer halves the distance to them at once (a bisection); a round that found every
  request still running lifts ``first`` at once to the target quantile of the recent ends
  bracketed by fine steps (``NARROW``), e.g. after a low first guess. The first guess, before
  any first call was learned from, is the ``1 - RUNNING_SHARE`` quantile of the middles of the
  first requests' brackets.
* ``upper``: a high quantile (``UPPER_QUANTILE``) of the last RUNNING answers of the recent
  requests that were seen running (a lower bound of each one's duration, so it cannot be pushed
  up by our own steps), or of the middles of their narrow end brackets if higher (the lower
  bounds alone sit half a bracket below the ends), never below ``first``.

After a first call that saw RUNNING, the remaining duration is taken as spread evenly up to
``upper``; the next call comes when ``1 - RUNNING_SHARE`` of that remainder has passed, so each
later call sees the request running with about the same probability as the first (a geometric
schedule: with share s, ``1 / (1 - s)`` status calls per request on average, and a mean
detection delay of about ``w (1 - s) / (2 (1 + s))`` for durations spread evenly over a width
``w``). Past ``upper`` the steps start small (``PAST_STEP`` of the first-call time) and grow by
``poll_growth`` up to ``max_detection_delay``: an absolute bound of the detection delay (plus one
round trip) for a request that runs longer than the learned durations. (They do not grow with
the learned spread: that would feed back, wider steps making the brackets, and so ``upper``,
wider.)
"""

from __future__ import annotations

import bisect
from collections import deque

from xasync.submitter.options import SubmitOptions

__all__ = ["MIN_STEP", "RUNNING_SHARE", "PollClock"]

#: Target share of status calls that still see the request running.
RUNNING_SHARE = 0.25
#: Quantile of the recent last-RUNNING answers taken as the upper edge of the durations.
UPPER_QUANTILE = 0.95
#: Requests whose end brackets are kept (a window: the clock follows a change of T).
WINDOW = 64
#: Shortest step between two status calls of one request (seconds).
MIN_STEP = 0.005
#: Gain of the first-call update, as a fraction of the learned spread, per wave of answers.
GAIN = 0.25
#: Largest multiplier of the gain: it doubles after a round of first-call answers that all
#: agree (the first call is far off, e.g. learned from coarse first brackets), halves otherwise.
MAX_BOOST = 64.0
BOOST_STEP = 3.0
#: First step past the learned durations, as a share of the first-call time.
PAST_STEP = 0.035
#: End brackets at most this share of the duration wide count as narrow (see ``first_answer``).
NARROW = 0.1
#: The learned spread is never taken below this share of the first-call time.
SPREAD_FLOOR = 0.05


class PollClock:
    """When to ask for a request's status, learned per account (see the module docstring)."""

    def __init__(self) -> None:
        self.first: float | None = None  # seconds after the create answer of the first call
        self._concurrency = 1  # the last concurrency given to first_answer
        self.samples = 0  # first-call answers learned from
        self._early: list[float] = []  # ends of requests polled before anything was learned
        self._lows: deque[float] = deque(maxlen=WINDOW)  # last RUNNING answer of each request
        self._mids: deque[float] = deque(maxlen=WINDOW)  # middles of the narrow end brackets
        self._sorted: list[float] = []
        self._round = [0, 0]  # first-call answers of the current round, and how many RUNNING
        self._boost = 1.0
        self._side = 0  # +1: the last round all RUNNING, -1: all over, 0: mixed

    # -- what the poller asks --------------------------------------------------------------------
    def first_delay(self, opts: SubmitOptions) -> float:
        """Seconds after the create answer of the first status call."""
        return opts.first_poll if self.first is None else self.first

    def past_delay(self) -> float:
        """Seconds after the create answer by which nearly every request has ended: half the
        learned spread past the first-call time (which sits a quarter of the spread below the
        top), for a status call that only has to find out which request ended."""
        assert self.first is not None
        return self.first + 0.5 * self.spread()

    @property
    def upper(self) -> float | None:
        """The learned upper edge of the durations (None before any request ended): the
        ``UPPER_QUANTILE`` of the recent last-RUNNING answers, or of the middles of the narrow
        end brackets if higher (the last-RUNNING answers alone sit below the ends by half a
        bracket: an upper edge learned low makes the steps after a RUNNING first call too short,
        and the requests at the top of the spread cost 3-4 status calls)."""
        low = self._low_edge()
        if low is None:
            return self.first
        if len(self._mids) >= 4:
            mids = sorted(self._mids)
            low = max(low, mids[min(len(mids) - 1, int(UPPER_QUANTILE * len(mids)))])
        return max(low, self.first or 0.0)

    def _low_edge(self) -> float | None:
        """The ``UPPER_QUANTILE`` of the recent last-RUNNING answers."""
        if not self._sorted:
            return None
        return self._sorted[min(len(self._sorted) - 1, int(UPPER_QUANTILE * len(self._sorted)))]

    def spread(self) -> float:
        """The learned width of the durations (how far apart their ends fall)."""
        upper = self.upper
        if self.first is None or upper is None:
            return 0.0
        # first sits at the (1 - s) quantile, upper near the top: for ends spread evenly the
        # width is (upper - first) / s; never less than a small share of the duration itself
        return max((upper - self.first) / RUNNING_SHARE, SPREAD_FLOOR * self.first)

    def next_delay(self, opts: SubmitOptions, asked: float, previous: float) -> float:
        """Seconds from a status call that saw RUNNING (made ``asked`` s after the create
        answer) to the next one; ``previous`` is the last step used (0.0 after the first)."""
        upper = self.upper
        if self.first is None or upper is None:  # nothing learned: grow geometrically
            grown = previous * opts.poll_growth if previous else opts.first_poll
            return min(opts.max_poll_interval, grown)
        base = max(MIN_STEP, PAST_STEP * self.first)  # no step shorter (no Zeno approach)
        if asked >= upper - base:
            # past the learned durations: small steps growing by poll_growth, up to the bound
            # (stateless: at x past upper the geometric series' next step is base + x (g - 1))
            grown = base + max(0.0, asked - upper) * (opts.poll_growth - 1.0)
            return min(opts.max_detection_delay, grown)
        return min(opts.max_poll_interval, max(base, (upper - asked) * (1 - RUNNING_SHARE)))

    # -- what the poller tells -------------------------------------------------------------------
    def first_answer(self, running: bool, concurrency: int = 1) -> None:
        """Learn from the answer of a request's first status call (``concurrency``: about how
        many answers arrive together, the account's K)."""
        if self.first is None:
            return  # the first guess comes from the first requests that end
        self._concurrency = concurrency
        self.samples += 1
        self._round[0] += 1
        self._round[1] += running
        if self._round[0] >= max(4, concurrency):  # one round of answers: adapt the gain
            side = 1 if self._round[1] == self._round[0] else -1 if self._round[1] == 0 else 0
            if side and side == self._side:  # far off, and still on the same side: go faster
                self._boost = min(MAX_BOOST, self._boost * BOOST_STEP)
            else:  # within reach, or just overshot
                self._boost = 1.0
            self._side, self._round = side, [0, 0]
            low = self._low_edge()
            if side == -1 and low is not None and low < self.first:
                # every request of the round was over at its first call, and first is past
                # every recent RUNNING answer: halve the distance at once (a bisection)
                self.first = (self.first + low) / 2
                return
            if side == 1 and self._raise_to_ends(concurrency):
                return
        # far off, the spread is unknown (all answers agree): the boost widens its floor only
        scale = max(self.spread(), self._boost * SPREAD_FLOOR * self.first, MIN_STEP)
        gain = GAIN * scale / max(1, concurrency)
        if running:
            self.first += gain * (1.0 - RUNNING_SHARE)
        else:
            self.first = max(MIN_STEP, self.first - gain * RUNNING_SHARE)

    def _raise_to_ends(self, concurrency: int) -> bool:
        """After a round whose first calls all saw RUNNING, ``first`` is below nearly all
        durations (e.g. a low first guess from the coarse first brackets): the recent ends,
        bracketed by the fine steps after a first call, give the target quantile at once."""
        ends = sorted(self._mids)
        if self.first is None or len(ends) < max(4, concurrency) // 2:
            return False
        target = ends[int((1.0 - RUNNING_SHARE) * (len(ends) - 1))]
        if target <= self.first:
            return False
        self.first = target
        return True

    def ended(self, last_running: float | None, ended_at: float) -> None:
        """A request was RUNNING at its call ``last_running`` (None: never seen running) and
        over at ``ended_at`` (seconds after the create answer)."""
        if last_running is not None:
            # the upper edge learns from lower bounds only (a request surely ran that long):
            # the bracket's other end depends on our own steps
            if len(self._lows) == self._lows.maxlen:
                del self._sorted[bisect.bisect_left(self._sorted, self._lows[0])]
            self._lows.append(last_running)
            bisect.insort(self._sorted, last_running)
            if ended_at - last_running <= NARROW * ended_at:  # not the coarse first brackets
                self._mids.append((last_running + ended_at) / 2)
                if self._side == 1:  # the last round ran past its first calls: catch up now
                    self._raise_to_ends(self._concurrency)
        if self.samples == 0:
            # nothing learned from first calls yet: these requests were polled before anything
            # was known, their brackets are unbiased; start at their (1 - s) quantile
            lo = 0.0 if last_running is None else last_running
            self._early.append((lo + ended_at) / 2)
            self._early.sort()
            self.first = self._early[int((1.0 - RUNNING_SHARE) * (len(self._early) - 1))]
