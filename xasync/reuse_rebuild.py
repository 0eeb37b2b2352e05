"""Earlier calls' requests that exist only as a claim: rebuilt, so that they can still be bought.

A row read from another call's request (:mod:`xasync.pack_reuse`: a pack, tiles, or the row's
own request) is followed, not created. When that request's folder holds nothing but a claim,
its buyer is creating it, or died between claiming and creating. Following it would fail the
row once the claim is stale; instead the request is rebuilt here, exactly (the same body, so the
same token and folder), and handed to the submitter as a request it may create: the submitter
then waits for the claim (a request appearing is followed, a stale claim is taken over and the
request bought once, :mod:`xasync.submitter.claim`).

- **the row's own request**: the row's spec;
- **a tile of the row**: the row's spec on the tile's grid, with the tile's geometry;
- **a pack**: the first row's spec on the pack's grid with the pack's geometry, assembled from
  its members' geometries as the earlier call listed them in its manifest (each row's read plan
  holds its geometry with ``mask=True``, its body holds it as GeoJSON otherwise). With
  ``bounds="bbox"`` no geometry is sent: the row's own spec on the pack's grid is the pack's.

A rebuilt spec whose token is not the claimed request's is not used (the row is then planned as
if that request did not exist).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from xasync.planned import Source
from xasync.request import RequestSpec

logger = logging.getLogger(__name__)

__all__ = ["Claimed", "member_geometries", "rebuild"]


def member_geometries(
    manifests: Sequence[Mapping[str, Any]], tokens: set[str]
) -> dict[str, list[bytes]]:
    """``{pack token: its members' geometries (WKB)}`` for the packs ``tokens``, from the
    manifests of the calls that planned them (a pack whose members cannot all be read is left
    out)."""
    import shapely

    out: dict[str, list[bytes]] = {}
    broken: set[str] = set()
    for manifest in manifests:
        for row in manifest.get("rows", []):
            packs = {s.get("token") for s in row.get("sources") or ()} & tokens
            if not packs:
                continue
            wkb = _row_geometry(row, shapely)
            for token in packs:
                if wkb is None:
                    broken.add(token)
                else:
                    out.setdefault(token, []).append(wkb)
    return {t: geoms for t, geoms in out.items() if t not in broken}


def _row_geometry(row: Mapping[str, Any], shapely: Any) -> bytes | None:
    """A manifest row's geometry (WKB): its read plan's mask, else its body's GeoJSON."""
    plan = row.get("plan") or {}
    try:
        if plan.get("mask_wkb"):
            return bytes.fromhex(plan["mask_wkb"])
        geometry = row["body"]["input"]["bounds"]["geometry"]
        return bytes(shapely.to_wkb(shapely.from_geojson(json.dumps(geometry))))
    except (KeyError, TypeError, ValueError, shapely.errors.GEOSException):
        return None


def rebuild(
    spec: RequestSpec, source: Source, members: Mapping[str, Sequence[bytes]]
) -> RequestSpec | None:
    """The request ``source`` reads from, rebuilt from the row's ``spec``; None if not exact.

    Parameters
    ----------
    spec : RequestSpec
        The row's own spec (script, data, time, outputs and root of the request).
    source : Source
        The window of the claimed request the row reads.
    members : mapping
        :func:`member_geometries` of the claimed packs.

    Returns
    -------
    RequestSpec or None
        A spec whose token and folder are the source's, or None.
    """
    from xasync.plangeometry import pack_geometries, tile_geometry

    if source.row_url == spec.row_url:
        return spec
    if spec.bounds_mode != "geometry":
        geometry = spec.geometry_wkb  # not sent: any geometry gives the same body
    elif source.name.startswith("tile"):
        geometry = tile_geometry(spec.geometry_wkb, source.grid)
    elif source.token in members:
        (geometry,) = pack_geometries([list(members[source.token])])
    else:
        return None
    got = dataclasses.replace(spec, grid=source.grid, geometry_wkb=geometry)
    if got.token != source.token or got.row_url != source.row_url:
        logger.info("%s could not be rebuilt exactly; not read from it", source.row_url)
        return None
    return got


class Claimed:
    """The claimed (not created) requests among a call's reuse candidates, rebuilt on demand.

    Parameters
    ----------
    claimed : set of str
        URLs of the requests whose folder holds only a claim.
    found : mapping
        ``{row token: [candidate source lists]}`` (:mod:`xasync.pack_reuse`).
    manifests : sequence of dict
        The call manifests the candidates come from (the packs' members).

    Attributes
    ----------
    specs : dict
        ``{url: rebuilt RequestSpec}`` so far.
    """

    def __init__(
        self,
        claimed: set[str],
        found: Mapping[str, list[tuple[Source, ...]]],
        manifests: Sequence[Mapping[str, Any]],
    ) -> None:
        self.claimed = claimed
        packs = {
            s.token
            for lists in found.values()
            for src in lists
            for s in src
            if s.row_url in claimed and s.name.startswith("pack")
        }
        self.members = member_geometries(manifests, packs) if packs else {}
        self.specs: dict[str, RequestSpec] = {}
        self.failed: set[str] = set()

    def all_of(self, spec: RequestSpec, sources: Sequence[Source]) -> bool:
        """Whether every claimed request of ``sources`` is rebuilt (from the row's ``spec``)."""
        for s in sources:
            if s.row_url not in self.claimed or s.row_url in self.specs:
                continue
            got = None if s.row_url in self.failed else rebuild(spec, s, self.members)
            if got is None:
                self.failed.add(s.row_url)
                return False
            self.specs[s.row_url] = got
        return True
