"""The submitter's decision for one request URL: a pure function, tested as a table."""

from __future__ import annotations

import pytest

from xasync.delivery import RowDelivery
from xasync.ledger import Entry, Stage
from xasync.submitter.decision import Kind, decide

ME, OTHER = 1, 2
NONE = RowDelivery("none")
PENDING = RowDelivery("pending", ("R1",), "R1")
DONE = RowDelivery("done", ("R1",), "R1", {"a": "s3://b/p/R1/a.tif"}, cost=10.0)
FAILED = RowDelivery("failed", ("R1",), "R1", error="no data")
RUNNING_ELSEWHERE = Entry("u", Stage.RUNNING, "R1", follower=OTHER)
CLAIMED_ELSEWHERE = Entry("u", Stage.CLAIMED, follower=OTHER)
KNOWN_DONE = Entry("u", Stage.DONE, "R1", cost=10.0, bought_by=OTHER)
KNOWN_FAILED = Entry("u", Stage.FAILED, "R0", error="old")
NOTHING_BOUGHT = Entry("u", Stage.FAILED, None, error="cancelled")

# seen, known, can_create, can_poll, rebuy -> kind, restart
TABLE = [
    (NONE, None, True, True, False, Kind.CREATE, False),
    (NONE, None, False, False, False, Kind.FAIL, False),
    (NONE, None, False, True, False, Kind.FAIL, False),
    (None, None, True, True, False, Kind.CREATE, False),  # S3 unreadable: the claim decides
    (None, None, False, False, False, Kind.WATCH, False),
    (None, KNOWN_DONE, True, True, False, Kind.KEEP, False),
    (DONE, None, True, True, False, Kind.REUSE, False),
    (DONE, None, False, False, False, Kind.REUSE, False),
    (DONE, KNOWN_DONE, True, True, False, Kind.KEEP, False),
    (DONE, KNOWN_FAILED, True, True, False, Kind.REUSE, True),
    (FAILED, None, True, True, False, Kind.REUSE, False),
    (FAILED, None, True, True, True, Kind.CREATE, False),
    (FAILED, None, False, True, True, Kind.REUSE, False),  # nothing to buy with
    (FAILED, KNOWN_FAILED, True, True, True, Kind.CREATE, True),
    (PENDING, None, True, True, False, Kind.FOLLOW, False),
    (PENDING, None, False, True, False, Kind.FOLLOW, False),  # open_delivery with a client
    (PENDING, None, False, False, False, Kind.WATCH, False),  # open_delivery without one
    (PENDING, KNOWN_FAILED, True, True, False, Kind.FOLLOW, True),  # a re-run after an outage
    (NONE, KNOWN_DONE, True, True, False, Kind.CREATE, True),  # the delivery was deleted
    (NONE, NOTHING_BOUGHT, True, True, False, Kind.CREATE, True),
    (NONE, RUNNING_ELSEWHERE, True, True, False, Kind.ATTACH, False),
    (DONE, RUNNING_ELSEWHERE, True, True, False, Kind.ATTACH, False),
    (NONE, CLAIMED_ELSEWHERE, True, True, False, Kind.ATTACH, False),
    (None, CLAIMED_ELSEWHERE, False, False, False, Kind.ATTACH, False),
]


@pytest.mark.parametrize(("seen", "known", "create", "poll", "rebuy", "kind", "restart"), TABLE)
def test_decision_table(seen, known, create, poll, rebuy, kind, restart):
    action = decide(seen, known, me=ME, can_create=create, can_poll=poll, rebuy_failed=rebuy)
    assert action.kind is kind
    assert action.restart is restart


def test_follow_names_the_running_request_and_reuse_carries_the_view():
    assert decide(PENDING, None, me=ME, can_create=True).request_id == "R1"
    reuse = decide(DONE, None, me=ME, can_create=True)
    assert reuse.seen is DONE and reuse.request_id == "R1"


def test_my_own_entry_is_not_attached_to():
    mine = Entry("u", Stage.RUNNING, "R1", follower=ME)
    assert decide(PENDING, mine, me=ME, can_create=True).kind is Kind.FOLLOW


def test_fail_says_why():
    action = decide(NONE, None, me=ME, can_create=False)
    assert "no client" in action.message
