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
) -> dict[str, tuple[list[bytes], set[str]]]:
    """``{pack token: (its members' geometries (WKB), their row tokens)}`` for the packs
    ``tokens``, from the manifests of the calls that planned them (a pack whose members cannot
    all be read is left out)."""
    import shapely

    out: dict[str, tuple[list[bytes], set[str]]] = {}
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
                    continue
                geoms, rows = out.setdefault(token, ([], set()))
                geoms.append(wkb)
                rows.add(str((row.get("plan") or {}).get("token")))
    return {t: got for t, got in out.items() if t not in broken}


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
    spec: RequestSpec, source: Source, members: Mapping[str, tuple[Sequence[bytes], Any]]
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
        (geometry,) = pack_geometries([list(members[source.token][0])])
    else:
        return None
    got = dataclasses.replace(spec, grid=source.grid, geometry_wkb=geometry)
    if got.token != source.token or got.row_url != source.row_url:
        logger.info("%s could not be rebuilt exactly; not read from it", source.row_url)
        return None
    return got


class Claimed:
    """The requests not created yet among a call's reuse candidates, rebuilt on demand.

    A request whose folder holds only a claim is rebuilt whatever it is (someone is buying it,
    or died doing so). One that does not exist at all, but that an earlier call planned (its
    process may still be waiting for a slot, or have stopped), is used only when it is a pack
    of rows all asked for by this call: buying that pack then costs less than buying those rows
    alone (packs are planned only where they do), and never twice if the other process comes
    back (claims). Such tiles are not used (buying a row as tiles costs more than whole).

    Parameters
    ----------
    claimed : set of str
        URLs of the requests whose folder holds only a claim.
    unbought : set of str
        URLs of the candidate requests that do not exist.
    found : mapping
        ``{row token: [candidate source lists]}`` (:mod:`xasync.pack_reuse`).
    manifests : sequence of dict
        The call manifests the candidates come from (the packs' members).
    asked : set of str
        The tokens of the rows of this call.
    known : mapping, optional
        ``{url: spec}`` of the requests this call plans itself (used as they are: a pack this
        call plans has only rows of this call).

    Attributes
    ----------
    specs : dict
        ``{url: rebuilt RequestSpec}`` so far.
    """

    def __init__(
        self,
        claimed: set[str],
        unbought: set[str],
        found: Mapping[str, list[tuple[Source, ...]]],
        manifests: Sequence[Mapping[str, Any]],
        asked: set[str],
        known: Mapping[str, RequestSpec] | None = None,
    ) -> None:
        self.claimed, self.unbought, self.asked = claimed, unbought, asked
        self.known = known or {}
        self._found, self._manifests = found, manifests
        self._members: dict[str, tuple[list[bytes], set[str]]] | None = None
        self.specs: dict[str, RequestSpec] = {}
        self.failed: set[str] = set()
        self._whole: dict[str, bool] = {}

    @property
    def members(self) -> dict[str, tuple[list[bytes], set[str]]]:
        """:func:`member_geometries` of the candidate packs not created (read once, if needed)."""
        if self._members is None:
            packs = {
                s.token
                for lists in self._found.values()
                for src in lists
                for s in src
                if s.name.startswith("pack")
                and (s.row_url in self.claimed or s.row_url in self.unbought)
                and s.row_url not in self.known
            }
            self._members = member_geometries(self._manifests, packs) if packs else {}
        return self._members

    def all_of(self, spec: RequestSpec, sources: Sequence[Source]) -> bool:
        """Whether every request of ``sources`` not created yet is usable and rebuilt (from the
        row's ``spec``)."""
        for s in sources:
            url = s.row_url
            if url in self.specs or (url not in self.claimed and url not in self.unbought):
                continue  # rebuilt already, or delivered or running
            if url in self.known:  # this call plans it too
                self.specs[url] = self.known[url]
                continue
            if url in self.unbought and not self._whole_pack(s):
                return False
            got = None if url in self.failed else rebuild(spec, s, self.members)
            if got is None:
                self.failed.add(url)
                return False
            self.specs[url] = got
        return True

    def _whole_pack(self, source: Source) -> bool:
        """A pack whose rows are all asked for by this call."""
        if source.row_url not in self._whole:
            members = self.members.get(source.token) if source.name.startswith("pack") else None
            self._whole[source.row_url] = members is not None and members[1] <= self.asked
        return self._whole[source.row_url]
