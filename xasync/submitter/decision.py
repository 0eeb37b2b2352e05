"""What to do for one request, from what S3 shows and what this process knows: a pure function.

:func:`decide` takes no network and no clock; the table of its cases is tested directly
(``tests/unit/test_decision.py``). S3 is the authority on what exists; the ledger only tells
whether someone in this process already follows the request (then we attach to it) and keeps the
outcome of a request this process bought when S3 agrees.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from xasync.delivery import RowDelivery
from xasync.ledger import Entry

__all__ = ["Action", "Kind", "decide"]


class Kind(str, enum.Enum):
    """The kinds of :class:`Action`."""

    ATTACH = "attach"  # another job of this process follows it: wait for its outcome
    KEEP = "keep"  # the ledger's final outcome stands (S3 agrees)
    REUSE = "reuse"  # S3 holds a final outcome: record it, buy nothing
    FOLLOW = "follow"  # a request runs: poll its status until it ends
    WATCH = "watch"  # follow in S3 only (no client, or no S3 view yet)
    CREATE = "create"  # nothing usable exists: claim it and buy it
    FAIL = "fail"  # nothing can be done


@dataclass(frozen=True)
class Action:
    """The decision for one request.

    Attributes
    ----------
    kind : Kind
        What to do.
    request_id : str or None
        The request to follow (FOLLOW, WATCH) or the one found (REUSE).
    seen : RowDelivery or None
        The S3 view the decision used (REUSE records it).
    restart : bool
        The ledger's final entry must be replaced (a new follow of a known request URL).
    message : str or None
        Why (FAIL).

    """

    kind: Kind
    request_id: str | None = None
    seen: RowDelivery | None = None
    restart: bool = False
    message: str | None = None


def decide(
    seen: RowDelivery | None,
    known: Entry | None,
    *,
    me: int,
    can_create: bool,
    can_poll: bool | None = None,
    rebuy_failed: bool = False,
) -> Action:
    """Decide what to do for one request URL.

    Parameters
    ----------
    seen : RowDelivery or None
        What a probe of the request's prefix showed; None when S3 could not be asked.
    known : ledger Entry or None
        What this process knows of it.
    me : int
        The deciding job's id.
    can_create : bool
        A client and a body are at hand (``process``; not ``open_delivery``).
    can_poll : bool, optional
        A client is at hand to ask the status of a running request (default: ``can_create``).
    rebuy_failed : bool
        Buy again when S3 holds only a failure.

    Returns
    -------
    Action

    """
    if known is not None and not known.is_final and known.follower not in (None, me):
        return Action(Kind.ATTACH, known.request_id)
    restart = known is not None and known.is_final
    if seen is None:
        if known is not None and restart:
            return Action(Kind.KEEP, known.request_id)
        return Action(Kind.CREATE if can_create else Kind.WATCH)
    if seen.state == "done" or (seen.state == "failed" and not (rebuy_failed and can_create)):
        if (
            known is not None
            and restart
            and known.request_id == seen.request_id
            and known.stage.value == seen.state
        ):
            return Action(Kind.KEEP, known.request_id)
        return Action(Kind.REUSE, seen.request_id, seen, restart=restart)
    poll = can_create if can_poll is None else can_poll
    if seen.state == "pending" and seen.request_id:
        kind = Kind.FOLLOW if poll else Kind.WATCH
        return Action(kind, seen.request_id, seen, restart=restart)
    if can_create:
        return Action(Kind.CREATE, None, seen, restart=restart)
    why = "this call only follows it (it does not create it)" if poll else "no client was given"
    return Action(Kind.FAIL, seen=seen, message=f"nothing was delivered at this prefix and {why}")
