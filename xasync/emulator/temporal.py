"""Which scenes a request sees, and the multi-temporal hooks of Evalscript V3 (issue 14).

- ``mosaicking: SIMPLE`` (default): one scene of the calendar (:mod:`.acquisitions`) chosen by
  ``dataFilter.mosaickingOrder``: ``mostRecent`` (default) the last one in the time range,
  ``leastRecent`` the first, ``leastCC`` the last (the emulator's scenes are cloud free). No
  scene in the range: no data (``dataMask`` 0 and every band 0).
- ``ORBIT`` / ``TILE``: every scene of the time range, most recent first (``leastRecent``: oldest
  first); ``evaluatePixel(samples, scenes, inputMetadata, customData, outputMetadata)`` gets one
  sample per scene. ``scenes`` is ``{orbits: [{dateFrom, dateTo, tiles: [tile]}]}`` for ORBIT
  (``dateFrom``/``dateTo``: the UTC day of the acquisition) and ``{tiles: [tile]}`` for TILE,
  a tile being ``{date, shId, cloudCoverage, productId, dataPath}``.
- ``preProcessScenes(collections)`` (``collections = {from, to, scenes: {orbits|tiles}}``) may
  drop scenes: the ones it returns (matched by ``dateFrom``/``date``) are processed.
- ``updateOutput(outputs, collection)`` may set ``outputs[id].bands`` (e.g. one per scene).
- ``updateOutputMetadata(scenes, inputMetadata, outputMetadata)`` runs after all pixels; its
  ``outputMetadata.userData`` is delivered as ``userdata.json``.

Only the first ``input.data`` item decides the calendar (data fusion is not modelled).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .acquisitions import Scene, scenes_between
from .jsrun import EvalscriptError, EvalscriptRunner, OutputDecl
from .validate import ParsedRequest

logger = logging.getLogger(__name__)

MULTI = ("ORBIT", "TILE")
INPUT_METADATA = {"serviceVersion": "emulator", "normalizationFactor": 0.0001}


@dataclass
class ScenePlan:
    """The scenes a request processes, in the order ``evaluatePixel`` gets them."""

    scenes: list[Scene]
    multi: bool
    scenes_obj: dict = field(default_factory=dict)

    @property
    def samples(self) -> int:
        """The samples factor of the cost: scenes for ORBIT/TILE, 1 for SIMPLE."""
        return max(1, len(self.scenes)) if self.multi else 1


def _scenes_obj(scenes: list[Scene], dtype: str, mosaicking: str) -> dict:
    tiles = [s.tile(dtype) for s in scenes]
    if mosaicking == "TILE":
        return {"tiles": tiles}
    return {
        "orbits": [
            {
                "dateFrom": s.date.strftime("%Y-%m-%dT00:00:00Z"),
                "dateTo": s.date.strftime("%Y-%m-%dT23:59:59Z"),
                "tiles": [t],
            }
            for s, t in zip(scenes, tiles, strict=True)
        ]
    }


def _iso(value: Any) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _pre_process(
    runner: EvalscriptRunner, parsed: ParsedRequest, scenes: list[Scene], mosaicking: str
) -> list[Scene]:
    dtype = parsed.data_types[0]
    key = "tiles" if mosaicking == "TILE" else "orbits"
    collections = {
        "from": _iso(parsed.time_from),
        "to": _iso(parsed.time_to),
        "scenes": _scenes_obj(scenes, dtype, mosaicking),
    }
    defined, result, _ = runner.call("preProcessScenes", collections)
    if not defined:
        return scenes
    try:
        kept = result["scenes"][key]
        stamps = {(k["date"] if key == "tiles" else k["dateFrom"]) for k in kept}
    except (TypeError, KeyError) as exc:
        raise EvalscriptError(
            f"preProcessScenes must return the collections object with scenes.{key}"
        ) from exc
    stamp = (lambda s: s.iso) if key == "tiles" else (lambda s: f"{s.date:%Y-%m-%d}T00:00:00Z")
    return [s for s in scenes if stamp(s) in stamps]


def _update_output(runner: EvalscriptRunner, plan: ScenePlan) -> None:
    outputs = {
        o.id: {"id": o.id, "bands": o.bands, "sampleType": o.sample_type} for o in runner.outputs
    }
    defined, _, args = runner.call("updateOutput", outputs, {"scenes": plan.scenes_obj})
    if not defined:
        return
    new = args[0]
    decls = []
    for o in runner.outputs:
        bands = (new.get(o.id) or {}).get("bands", o.bands)
        if not isinstance(bands, int) or bands < 1:
            raise EvalscriptError(f"updateOutput set output {o.id!r} to {bands!r} bands")
        decls.append(OutputDecl(o.id, bands, o.sample_type, o.nodata))
    runner.outputs = tuple(decls)


def plan_scenes(runner: EvalscriptRunner, parsed: ParsedRequest) -> ScenePlan:
    """Choose the scenes, run ``preProcessScenes``/``updateOutput``, set the JS globals."""
    dtype = parsed.data_types[0]
    item = parsed.data[0] if parsed.data else {}
    order = (item.get("dataFilter") or {}).get("mosaickingOrder", "mostRecent")
    mosaicking = runner.setup.mosaicking
    scenes = scenes_between(dtype, parsed.time_from, parsed.time_to)
    if mosaicking in MULTI:
        ordered = scenes if order == "leastRecent" else scenes[::-1]
        chosen = _pre_process(runner, parsed, ordered, mosaicking)
    else:
        chosen = [] if not scenes else [scenes[0] if order == "leastRecent" else scenes[-1]]
    plan = ScenePlan(chosen, mosaicking in MULTI, _scenes_obj(chosen, dtype, mosaicking))
    runner.set_global("__xa_scenes", plan.scenes_obj)
    runner.set_global("__xa_inputMetadata", INPUT_METADATA)
    _update_output(runner, plan)
    return plan


def output_metadata(runner: EvalscriptRunner, plan: ScenePlan) -> Any:
    """Run ``updateOutputMetadata``; return ``outputMetadata.userData`` (``{}`` by default)."""
    meta = runner.get_global("__xa_outputMetadata") or {"userData": {}}
    defined, _, args = runner.call("updateOutputMetadata", plan.scenes_obj, INPUT_METADATA, meta)
    if defined:
        meta = args[2]
    return (meta or {}).get("userData", {})
