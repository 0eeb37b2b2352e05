"""Each row's estimated PU for ``process``, priced once per distinct request shape.

:func:`xasync.estimate.row_estimates` prices every distinct request from its full body. The
cost of a request depends only on what the rows of a call share (script, data, outputs) and on
its width and height, so :func:`row_estimates` prices one representative request per distinct
``(shared parts, width, height)`` with :func:`xasync.estimate.request_costs` and gives the
others the same factors: the same figures (the same floats, summed in the same order), at a
cost that does not grow with the number of rows beyond a dictionary lookup.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from xasync.canonical import template_key
from xasync.errors import EvalscriptError

if TYPE_CHECKING:
    from xasync.request import RequestSpec

logger = logging.getLogger(__name__)

__all__ = ["row_estimates"]


def _shape_key(spec: RequestSpec) -> tuple:
    return (template_key(spec), spec.outputs, spec.grid.width, spec.grid.height)


def request_factors_by_url(specs: Sequence[RequestSpec], **keywords: Any) -> dict[str, Any]:
    """``{row_url: PUFactors}`` in order of first appearance, as ``request_costs`` gives it.

    ``keywords`` are those of :func:`xasync.estimate.request_costs`. A representative is priced
    without its geometry (the factors depend on the size, outputs, script and data only), so a
    pack of hundreds of fields is not parsed back from its GeoJSON.
    """
    import dataclasses

    from xasync.estimate import request_costs

    by_shape: dict[tuple, Any] = {}
    out: dict[str, Any] = {}
    for spec in specs:
        url = spec.row_url
        if url in out:
            continue
        key = _shape_key(spec)
        if key not in by_shape:
            plain = dataclasses.replace(spec, bounds_mode="bbox")
            (by_shape[key],) = request_costs([plain], **keywords).values()
        out[url] = by_shape[key]
    return out


def row_estimates(
    specs: Sequence[RequestSpec],
    max_pu: float | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    scenes: int | None = None,
) -> list[float]:
    """Each row's share of its request's estimated PU, after the budget check.

    The same result and errors as :func:`xasync.estimate.row_estimates` (a budget above
    ``max_pu`` is :class:`~xasync.errors.BudgetExceeded`; without a budget, a script whose
    ``setup()`` cannot run locally gives NaN rows).
    """
    from xasync.budget import raise_if_over, validate_max_pu

    validate_max_pu(max_pu)
    try:
        costs = request_factors_by_url(specs, storage_options=storage_options, scenes=scenes)
    except EvalscriptError as exc:
        if max_pu is not None:
            raise EvalscriptError(f"cannot check max_pu: {exc}") from None
        logger.debug("no cost estimate: %s", exc)
        return [math.nan] * len(specs)
    shared: dict[str, int] = {}
    for spec in specs:
        shared[spec.row_url] = shared.get(spec.row_url, 0) + 1
    total = float(sum(f.pu for f in costs.values()))
    raise_if_over(total, max_pu, len(costs), all(f.exact for f in costs.values()))
    return [float(costs[s.row_url].pu / shared[s.row_url]) for s in specs]
