"""Which scenes a request sees, and the multi-temporal hooks of Evalscript V3 (issue 14).

- Optical collections (S2, Landsat, HLS) see the clouds of :mod:`.scenes_clouds`; scenes whose
  ``cloudCoverage`` is above ``dataFilter.maxCloudCoverage`` are dropped.
- ``mosaicking: SIMPLE`` (default): one scene of the calendar (:mod:`.acquisitions`) chosen by
  ``dataFilter.mosaickingOrder``: ``mostRecent`` (default) the last one in the time range,
  ``leastRecent`` the first, ``leastCC`` the one of least ``cloudCoverage`` (the most recent of
  equals). No scene in the range: no data (``dataMask`` 0 and every band 0).
- ``ORBIT`` / ``TILE``: every scene of the time range, most recent first (``leastRecent``: oldest
  first; ``leastCC``: least cloudy first); ``evaluatePixel(samples, scenes, inputMetadata, customData, outputMetadata)`` gets one
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

import json
import logging
from dataclasses import dataclass
from typing import Any

from .acquisitions import Scene, has_clouds, scenes_between, with_clouds
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

    @property
    def samples(self) -> int:
        """The samples factor of the cost: scenes for ORBIT/TILE, 1 for SIMPLE."""
        return max(1, len(self.scenes)) if self.multi else 1


def _scene_list(scenes: list[Scene], dtype: str, mosaicking: str) -> list[dict]:
    tiles = [s.tile(dtype) for s in scenes]
    if mosaicking == "TILE":
        return tiles
    return [
        {
            "date": t["date"],
            "dateFrom": s.date.strftime("%Y-%m-%dT00:00:00Z"),
            "dateTo": s.date.strftime("%Y-%m-%dT23:59:59Z"),
            "tiles": [t],
        }
        for s, t in zip(scenes, tiles, strict=True)
    ]


def _iso(value: Any) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(mosaicking: str) -> str:
    return "tiles" if mosaicking == "TILE" else "orbits"


def _pre_process(
    runner: EvalscriptRunner, parsed: ParsedRequest, scenes: list[Scene], mosaicking: str
) -> list[Scene]:
    listed = json.dumps(_scene_list(scenes, parsed.data_types[0], mosaicking))
    key = _key(mosaicking)
    raw = runner.invoke(
        "__xa_pre", listed, key, _iso(parsed.time_from) or "", _iso(parsed.time_to) or ""
    )
    if raw is None:
        return scenes
    stamps = set(json.loads(raw))
    stamp = (lambda s: s.iso) if key == "tiles" else (lambda s: f"{s.date:%Y-%m-%d}T00:00:00Z")
    return [s for s in scenes if stamp(s) in stamps]


def _update_output(runner: EvalscriptRunner, listed: str, key: str) -> None:
    outputs = {
        o.id: {"id": o.id, "bands": o.bands, "sampleType": o.sample_type} for o in runner.outputs
    }
    raw = runner.invoke("__xa_update_output", json.dumps(outputs), listed, key)
    if raw is None:
        return
    new = dict(json.loads(raw))
    decls = []
    for o in runner.outputs:
        bands = new.get(o.id, o.bands)
        if isinstance(bands, float) and bands.is_integer():
            bands = int(bands)
        if not isinstance(bands, int) or bands < 1:
            raise EvalscriptError(f"updateOutput set output {o.id!r} to {bands!r} bands")
        decls.append(OutputDecl(o.id, bands, o.sample_type, o.nodata))
    runner.outputs = tuple(decls)


def _centre(parsed: ParsedRequest) -> tuple[float, float]:
    """Lon/lat of the centre of the request's bbox (where ``cloudCoverage`` is measured)."""
    minx, miny, maxx, maxy = parsed.bbox
    x, y = (minx + maxx) / 2.0, (miny + maxy) / 2.0
    if parsed.epsg == 4326:
        return x, y
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(parsed.epsg, 4326, always_xy=True).transform(x, y)
    return float(lon), float(lat)


def _ordered(scenes: list[Scene], order: str) -> list[Scene]:
    """Scenes in mosaicking order: the first one is on top (SIMPLE keeps only it)."""
    if order == "leastRecent":
        return list(scenes)
    newest_first = scenes[::-1]
    if order == "leastCC":  # stable: equal cover keeps the most recent first
        return sorted(newest_first, key=lambda s: s.cloud_coverage)
    return newest_first


def available_scenes(parsed: ParsedRequest, clouds: bool = True) -> tuple[list[Scene], str]:
    """The scenes of the time range left by ``maxCloudCoverage``, and the mosaicking order."""
    dtype = parsed.data_types[0]
    item = parsed.data[0] if parsed.data else {}
    dfilter = item.get("dataFilter") or {}
    scenes = scenes_between(dtype, parsed.time_from, parsed.time_to)
    if clouds and has_clouds(dtype):
        scenes = with_clouds(scenes, _centre(parsed))
        limit = float(dfilter.get("maxCloudCoverage", 100.0))
        scenes = [s for s in scenes if s.cloud_coverage <= limit]
    return scenes, dfilter.get("mosaickingOrder", "mostRecent")


def plan_scenes(runner: EvalscriptRunner, parsed: ParsedRequest, clouds: bool = True) -> ScenePlan:
    """Choose the scenes, run ``preProcessScenes``/``updateOutput``, set the JS globals.

    ``clouds=False`` (``Emulator.configure(clouds=False)``): every scene is clear.
    """
    dtype = parsed.data_types[0]
    mosaicking = runner.setup.mosaicking
    scenes, order = available_scenes(parsed, clouds)
    ordered = _ordered(scenes, order)
    if mosaicking in MULTI:
        chosen = _pre_process(runner, parsed, ordered, mosaicking)
    else:
        chosen = ordered[:1]
    key = _key(mosaicking)
    listed = json.dumps(_scene_list(chosen, dtype, mosaicking))
    runner.invoke("__xa_set_scenes", listed, key, json.dumps(INPUT_METADATA))
    _update_output(runner, listed, key)
    return ScenePlan(chosen, mosaicking in MULTI)


def output_metadata(runner: EvalscriptRunner) -> Any:
    """Run ``updateOutputMetadata``; return ``outputMetadata.userData`` (``{}`` by default)."""
    return json.loads(runner.invoke("__xa_update_meta"))
