"""The budget of a call (``max_pu``): checked against what the call will pay, before paying.

``process(..., max_pu=X)`` raises :class:`~xasync.errors.BudgetExceeded` when the requests it
would buy are estimated above ``X``. A request that already exists under the delivery is not
bought again: delivered, running (or claimed by another call), or failed (unless
``resubmit_failed=True``). Such requests do not count, so the check agrees with
``estimate(...)["pu_to_pay"]`` (:mod:`xasync.estimate_delivery`): a call whose ``max_pu`` is
its ``attrs["pu_to_pay"]`` passes, and the service charges that.

What exists is read from the listing of the delivery root ``process`` makes anyway before
planning (:class:`xasync.bought_alone.Bought`) and, only when the full price is above the
budget, from one recursive listing (:func:`xasync.pack_reuse.request_states`). Totals are
summed with :func:`math.fsum`, so the order of the requests does not change the figure.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from xasync.errors import BudgetExceeded, EvalscriptError, ValidationError

if TYPE_CHECKING:
    from xasync.bought_alone import Bought
    from xasync.request import RequestSpec

logger = logging.getLogger(__name__)

__all__ = ["PAID_STATES", "check_to_pay", "paid_states", "raise_if_over", "validate_max_pu"]

#: The states (:func:`xasync.pack_reuse.request_states`) of the requests a call buys.
PAID_STATES = frozenset({"none"})


def paid_states(resubmit_failed: bool) -> frozenset[str]:
    """The request states a call pays for: new ones, and failed ones with ``resubmit_failed``."""
    return PAID_STATES | {"failed"} if resubmit_failed else PAID_STATES


def validate_max_pu(max_pu: Any) -> None:
    """Refuse a budget that is not a positive, finite number of PU (None: no budget).

    Raises
    ------
    xasync.ValidationError
        ``max_pu`` is a bool, not a number, not finite, or not positive.
    """
    if max_pu is not None and (
        isinstance(max_pu, bool)
        or not isinstance(max_pu, (int, float))
        or not math.isfinite(max_pu)
        or max_pu <= 0
    ):
        raise ValidationError(
            f"max_pu must be a positive number of processing units, got {max_pu!r}"
        )


def raise_if_over(total: float, max_pu: float | None, requests: int, exact: bool) -> None:
    """Raise :class:`~xasync.errors.BudgetExceeded` when ``total`` is above ``max_pu``.

    For an estimate where nothing is known to exist yet (every request is to pay).
    """
    if max_pu is not None and total > max_pu:
        raise BudgetExceeded(total, max_pu, requests, exact=exact)


def _states(requests: Sequence[RequestSpec], bought: Bought | None) -> dict[str, str] | None:
    """``{row_url: state}`` of the requests, or None when what exists is not known."""
    from xasync.pack_reuse import request_states

    if bought is None or bought.fs is None:
        return None
    ids = {r.row_url: tuple(r.responses) for r in requests}
    try:
        return request_states(bought, list(ids), ids)
    except Exception as exc:  # s3fs/gcsfs/botocore while probing: count every request
        logger.warning(
            "the budget counts every request: the delivery could not be probed (%s)",
            type(exc).__name__,
        )
        return None


def check_to_pay(
    requests: Sequence[RequestSpec],
    max_pu: float | None,
    bought: Bought | None,
    *,
    total: float | None = None,
    resubmit_failed: bool = False,
    **keywords: Any,
) -> float | None:
    """Raise :class:`~xasync.errors.BudgetExceeded` when what the call would pay is above
    ``max_pu``.

    Parameters
    ----------
    requests : sequence of RequestSpec
        The call's requests (each row's own, or the planned tiles, packs and reused requests).
    max_pu : float or None
        The budget in PU; None checks nothing.
    bought : xasync.bought_alone.Bought or None
        What exists under the delivery root (None: not known, every request counts).
    total : float, optional
        The full price of ``requests`` when already known: at most ``max_pu``, nothing more
        is priced or probed (every request fits, whatever exists).
    resubmit_failed : bool
        Failed requests are bought again (they count).
    **keywords
        ``storage_options``, ``scenes``...: see :func:`xasync.estimate.request_costs`.

    Returns
    -------
    float or None
        The PU to pay (``total`` when it fits at once), None without a budget.

    Raises
    ------
    BudgetExceeded
        The requests to buy are estimated above ``max_pu`` (the message says how much of the
        call's estimate exists already and is not paid again).
    xasync.EvalscriptError
        A budget is given and the evalscript's ``setup()`` cannot be evaluated locally.
    """
    from xasync.rowcost import request_factors_by_url

    validate_max_pu(max_pu)
    if max_pu is None:
        return None
    if total is not None and total <= max_pu:  # NaN (no estimate) goes on and raises below
        return float(total)
    try:
        costs = request_factors_by_url(requests, **keywords)
    except EvalscriptError as exc:
        raise EvalscriptError(f"cannot check max_pu: {exc}") from None
    states = _states(requests, bought)
    paid = paid_states(resubmit_failed)
    to_pay = [f for u, f in costs.items() if states is None or states[u] in paid]
    pu = math.fsum(f.pu for f in to_pay)
    if pu > max_pu:
        existing = None if states is None else _existing(costs, states, paid)
        raise BudgetExceeded(
            pu, max_pu, len(to_pay), exact=all(f.exact for f in to_pay), existing=existing
        )
    logger.info(
        "%d of %d requests to pay, estimated at %.2f PU (budget %g PU)",
        len(to_pay),
        len(costs),
        pu,
        max_pu,
    )
    return pu


def _existing(
    costs: Mapping[str, Any], states: Mapping[str, str], paid: frozenset[str]
) -> dict[str, float]:
    """The PU of the requests not paid again, by state: delivered, running, failed."""
    names = {"done": "delivered", "pending": "running", "failed": "failed"}
    return {
        name: math.fsum(f.pu for u, f in costs.items() if states[u] == state)
        for state, name in names.items()
        if state not in paid
    }
