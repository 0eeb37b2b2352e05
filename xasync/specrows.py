"""The per-row objects of a call built in bulk: request specs and read plans.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``; at 100,000
rows that is a few tenths of a second per kind of object. These constructors fill the
instances' ``__dict__`` directly, with the fields in declaration order, and share what the rows
share; tests compare their objects with those built through ``__init__``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xasync.plan import ReadPlan
    from xasync.request import RequestSpec

__all__ = ["new_specs", "read_plans"]


def new_specs(
    shared: dict[str, Any], labels: list[Any], wkbs: list[bytes], grids: list[Any]
) -> list[RequestSpec]:
    """``RequestSpec(label=..., position=i, geometry_wkb=..., grid=..., **shared)`` of each row."""
    from xasync.request import RequestSpec

    names = tuple(RequestSpec.__dataclass_fields__)
    template = {name: shared.get(name) for name in names}
    template["userdata"] = shared.get("userdata", False)
    if set(shared) | {"label", "position", "geometry_wkb", "grid", "userdata"} != set(names):
        raise TypeError(f"not the fields of RequestSpec: {sorted(shared)}")
    new, specs = object.__new__, []
    for i, (label, wkb, grid) in enumerate(zip(labels, wkbs, grids, strict=True)):
        spec = new(RequestSpec)
        spec.__dict__.update(template, label=label, position=i, geometry_wkb=wkb, grid=grid)
        specs.append(spec)
    return specs


def read_plans(specs: Sequence[RequestSpec]) -> list[ReadPlan]:
    """``[spec.read_plan() for spec in specs]``, sharing the output plans of the call."""
    from xasync.plan import ReadPlan
    from xasync.request import json_label, output_plans

    shared: list[tuple[Any, Any, Any]] = []  # (outputs, responses, their plans), by identity
    new, plans = object.__new__, []
    for s in specs:
        outputs = next((o for a, b, o in shared if a is s.outputs and b is s.responses), None)
        if outputs is None:
            outputs = output_plans(s.outputs, s.responses)
            shared.append((s.outputs, s.responses, outputs))
        label = s.label
        plan = new(ReadPlan)
        plan.__dict__.update(
            token=s.token,
            row_url=s.row_url,
            grid=s.grid,
            outputs=outputs,
            label=label if type(label) in (int, str) else json_label(label),
            time_range=s.time,
            mask_wkb=s.geometry_wkb if s.mask else None,
        )
        plans.append(plan)
    return plans
