"""When a create is tried while every slot runs (xasync.submitter.probe): pure arithmetic."""

from __future__ import annotations

import math

import pytest
from integration._shared import NDVI_NO_MASK as NDVI
from integration._shared import fields

from xasync.submitter.probe import RESOLUTION, TAIL_MASS, chance_one_ended, probe_time

NEVER = -math.inf


def test_nothing_can_have_ended_before_the_shortest_duration():
    assert chance_one_ended(0.49, [0.0, -0.0], NEVER, 0.5, 0.6) == 0.0
    assert chance_one_ended(0.55, [0.0], NEVER, 0.5, 0.6) == pytest.approx((1 - TAIL_MASS) * 0.5)


@pytest.mark.parametrize("confidence", [0.5, 0.8, 0.9])
def test_probe_time_reaches_the_confidence_and_not_earlier(confidence):
    accepted = [0.0, -0.1, -0.2]
    t = probe_time(0.0, accepted, NEVER, 5.0, 6.0, confidence)
    assert chance_one_ended(t, accepted, NEVER, 5.0, 6.0) >= confidence
    assert chance_one_ended(t - 2 * RESOLUTION, accepted, NEVER, 5.0, 6.0) < confidence


def test_more_running_requests_mean_an_earlier_try():
    one = probe_time(0.0, [0.0], NEVER, 5.0, 6.0, 0.8)
    ten = probe_time(0.0, [0.0] * 10, NEVER, 5.0, 6.0, 0.8)
    assert 5.0 < ten < one < 6.0


def test_a_refused_try_pushes_the_next_one_later():
    accepted = [0.0, -0.2, -0.4]
    first = probe_time(0.0, accepted, NEVER, 5.0, 6.0, 0.8)
    again = probe_time(first, accepted, first, 5.0, 6.0, 0.8)
    assert again > first
    # all were still running at `first`: from there on the same chance is needed afresh
    assert chance_one_ended(again, accepted, first, 5.0, 6.0) >= 0.8


def test_scales_with_the_durations():
    """Same shape at 0.5 s and at 5 min: the try sits at the same place of the durations."""
    short = probe_time(0.0, [0.0, -0.05], NEVER, 0.5, 0.6, 0.8)
    long = probe_time(0.0, [0.0, -30.0], NEVER, 300.0, 360.0, 0.8)
    assert long / 600 == pytest.approx(short, rel=1e-2)


def test_requests_past_the_learned_durations_keep_the_time_finite():
    """A request running longer than learned: the next try comes after a bounded wait (the
    exponential tail), not never and not at once after a refusal."""
    t = probe_time(10.0, [0.0], 10.0, 0.5, 0.6, 0.8)
    assert 10.0 < t < 10.0 + 0.1 * math.log(1 / 0.2) + 2 * RESOLUTION


def test_nothing_running_means_now():
    assert probe_time(3.0, [], NEVER, 0.5, 0.6, 0.8) == 3.0


# -- against the emulator: probes buy nothing twice and stay within the call budget ----------


def _fields(n: int, lon0: float):
    """``n`` small boxes in one line eastwards from ``lon0`` (0.01 deg apart)."""
    return fields(n, lon0=lon0, per_row=n)


def _run(gdf, client, emu, delivery, options=None):
    results = gdf.xasync.process(
        NDVI,
        time=("2024-06-01", "2024-06-30"),
        resolution=0.0002,
        delivery=delivery,
        storage_options=emu.storage_options,
        client=client,
        options=options,
    )
    results.wait(timeout=300, progress=False)
    return results


@pytest.fixture
def two_slots(emu, own_account):
    import xasync

    client, root = own_account(2, 0.2, "probe")
    on = xasync.SubmitOptions(probe_creates=True)
    _run(_fields(12, 30.0), client, emu, f"{root}/warm", on)  # the clock learns the durations
    return emu, client, root


def _probes(emu, client, gdf, delivery, options=None):
    """Run ``gdf``; return (results, creates, refused creates, create attempts sent as probes)."""
    import logging

    events: list[object] = []

    class Collect(logging.Handler):
        def emit(self, record):
            event = getattr(record, "xasync_trace", None)
            if event is not None and event[0] == "create_sent" and event[2]:
                events.append(event)

    log = logging.getLogger("xasync.submitter.trace")
    handler, level = Collect(logging.DEBUG), log.level
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    before = emu.stats
    try:
        results = _run(gdf, client, emu, delivery, options)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    after = emu.stats
    refused = after["rate_limited"] - before["rate_limited"]
    return results, after["creates"] - before["creates"], refused, len(events)


def test_probes_find_free_slots_and_buy_each_row_once(two_slots):
    import xasync

    emu, client, root = two_slots
    gdf = _fields(24, 31.0)
    on = xasync.SubmitOptions(probe_creates=True)
    results, creates, refused, probes = _probes(emu, client, gdf, f"{root}/run", on)
    assert results.status()["state"].tolist() == ["done"] * 24
    assert creates == 24  # a probe that found a slot bought its own row, nothing twice
    # with a configured K no ordinary create is refused: every 429 answered a probe
    assert refused <= probes
    from xasync.submitter import get_submitter

    account = get_submitter().account(client)
    assert account.in_flight == 0 and account.accepted == []  # every slot given back


def test_no_probe_by_default(two_slots):
    emu, client, root = two_slots
    results, creates, refused, probes = _probes(emu, client, _fields(8, 32.0), f"{root}/off")
    assert results.status()["state"].tolist() == ["done"] * 8
    assert (creates, refused, probes) == (8, 0, 0)


def _full_account(calls: float = 0.0):
    """An account with K=2 slots running (accepted 0.4 and 0.3 s ago), durations learned
    between 0.5 and 0.6 s; ``calls`` API calls counted for 20 created requests."""
    from xasync.submitter.slots import Account

    account = Account(2)
    account.probing = True
    clock = account.clock
    clock.first, clock.samples = 0.575, 20  # the 75 % quantile of [0.5, 0.6]
    clock._sorted = [0.6]  # spread (0.6 - 0.575) / 0.25 = 0.1
    account.in_flight, account.created, account.calls = 2, 20.0, calls
    account.accepted = [-0.4, -0.3]
    return account


def test_a_probe_is_timed_from_the_running_requests():
    account = _full_account(calls=40.0)
    at = account._probe_at(0.0)
    assert at == probe_time(0.0, [-0.4, -0.3], NEVER, 0.5, 0.6, 0.6)
    assert 0.1 < at < 0.2  # the older request is 0.5 s old at 0.1 s


def test_no_probe_past_the_call_budget_or_with_a_free_slot_or_when_off():
    from xasync.submitter.slots import PROBE_BUDGET

    assert _full_account(calls=PROBE_BUDGET * 20 - 1)._probe_at(0.0) is not None
    assert _full_account(calls=PROBE_BUDGET * 20)._probe_at(0.0) is None  # one more: over
    free = _full_account()
    free.in_flight = 1
    assert free._probe_at(0.0) is None
    off = _full_account()
    off.probing = False
    assert off._probe_at(0.0) is None
    learning = _full_account()
    learning.clock.samples = 3
    assert learning._probe_at(0.0) is None


def test_a_probe_under_way_counts_the_oldest_request_as_over():
    """With one probe under way (in_flight = K + 1) the next one waits for a second end: it is
    timed on the requests but the oldest."""
    account = _full_account()
    account.in_flight = 3
    assert account._probe_at(0.0) == probe_time(0.0, [-0.3], NEVER, 0.5, 0.6, 0.6)


def test_a_refused_probe_gives_its_slot_back_without_backing_off():
    import asyncio

    async def scenario():
        account = _full_account(calls=0.0)
        assert await account.acquire()  # the probe's time is 0.1-0.2 s away on the loop clock
        assert account.is_probe() and account.in_flight == 3
        account.probe_refused(sent=7.0)
        assert not account.is_probe() and account.in_flight == 2
        assert account.not_before == 0.0  # no back-off, unlike an ordinary 429
        assert account._full_at == 7.0  # all were running then: the next try is timed from it

    asyncio.run(scenario())
