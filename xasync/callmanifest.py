"""The rows of one ``process`` call's manifest, written as JSON text from shared parts.

Each row is the object :mod:`xasync.delivery` documents (``position``, ``plan`` as
:meth:`~xasync.plan.ReadPlan.to_dict` gives it, ``label`` as
:func:`~xasync.manifests.encode_label` gives it, ``body`` the canonical body without secrets,
and ``sources`` for tiles and packs, ``series`` for time series). The rows of a call share most
of that (outputs, time range, script, data, a pack's grid), so their text is put together from
parts serialised once: the same JSON as dumping the row dicts, at a fraction of the cost for
100,000 rows (a test parses both and compares them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from xasync.canonical import bbox_text, bbox_texts, body_texts, canonical, string_text
from xasync.manifests import encode_label

logger = logging.getLogger(__name__)

__all__ = ["iter_manifest_rows", "manifest_row_texts", "plan_texts", "source_texts"]

#: Rows serialised together by :func:`iter_manifest_rows` (bounds the text held at once).
CHUNK_ROWS = 10_000


def _grid_text(grid: Any, bbox: str | None = None) -> str:
    """The canonical text of a grid (``bbox``: its bbox's text, when already written)."""
    if type(grid.epsg) is not int or type(grid.height) is not int or type(grid.width) is not int:
        return canonical(
            {"bbox": list(grid.bbox), "epsg": grid.epsg, "height": grid.height, "width": grid.width}
        )
    return (
        f'{{"bbox":{bbox or bbox_text(grid.bbox)},"epsg":{grid.epsg},'
        f'"height":{grid.height},"width":{grid.width}}}'
    )


def _label_text(label: Any) -> str:
    if type(label) is int:
        return int.__repr__(label)
    if type(label) is str:
        return string_text(label)
    return canonical(label)


def plan_texts(plans: Sequence[Any]) -> list[str]:
    """``canonical(plan.to_dict())`` of every read plan."""
    from xasync.plan import jsonable

    shared: dict[tuple, tuple[str, str]] = {}
    out = []
    boxes = bbox_texts([p.grid.bbox for p in plans])
    for p, box in zip(plans, boxes, strict=True):
        key = (p.outputs, p.time_range)
        if key not in shared:
            d = p.to_dict()
            shared[key] = (
                ',"outputs":' + canonical(d["outputs"]),
                ',"time_range":' + canonical(d["time_range"]),
            )
        outputs, time_range = shared[key]
        mask = "null" if p.mask_wkb is None else '"' + p.mask_wkb.hex() + '"'
        out.append(
            '{"grid":'
            + _grid_text(p.grid, box)
            + ',"label":'
            + _label_text(jsonable(p.label))
            + ',"mask_wkb":'
            + mask
            + outputs
            + ',"row_url":'
            + string_text(p.row_url)
            + time_range
            + ',"token":'
            + string_text(p.token)
            + "}"
        )
    return out


def source_texts(sources: Sequence[Any]) -> list[str]:
    """``canonical(source_to_dict(s))`` of each source (a request's part is written once)."""
    requests: dict[tuple, tuple[str, str]] = {}
    out = []
    for s in sources:
        key = (s.token, s.row_url, s.grid, s.name)
        if key not in requests:
            head = (
                '{"grid":'
                + _grid_text(s.grid)
                + ',"name":'
                + canonical(s.name)
                + ',"row_url":'
                + canonical(s.row_url)
                + ',"target":'
            )
            requests[key] = (head, ',"token":' + canonical(s.token) + ',"window":')
        head, token = requests[key]
        window = "[" + ",".join(str(int(v)) for v in s.window) + "]"
        target = "[" + ",".join(str(int(v)) for v in s.target) + "]"
        out.append(head + target + token + window + "}")
    return out


def manifest_row_texts(
    specs: Sequence[Any],
    plans: Sequence[Any],
    labels: Sequence[Any],
    *,
    series: Sequence[Any] | None = None,
    sources: Sequence[Sequence[Any]] | None = None,
    first: int = 0,
) -> list[str]:
    """The JSON text of each manifest row.

    Parameters
    ----------
    specs, plans, labels : sequence
        Per row: its :class:`~xasync.request.RequestSpec`, read plan and label.
    series : sequence of dict, optional
        Per row, its time-series entry (:func:`xasync.timeseries.manifest_entries`).
    sources : sequence of sequence of Source, optional
        Per row, where it is read from (tiles and packs).
    first : int
        The position of the first row.

    """
    bodies = body_texts(specs)
    plan_text = plan_texts(plans)
    flat = [s for row in sources for s in row] if sources is not None else []
    flat_text = iter(source_texts(flat))
    out = []
    for i, (body, plan, label) in enumerate(zip(bodies, plan_text, labels, strict=True)):
        text = '{"body":' + body + ',"label":' + _label_text(encode_label(label))
        text += ',"plan":' + plan + ',"position":' + str(first + i)
        if series is not None and i < len(series):
            text += ',"series":' + canonical(series[i])
        if sources is not None:
            text += ',"sources":[' + ",".join(next(flat_text) for _ in sources[i]) + "]"
        out.append(text + "}")
    return out


def iter_manifest_rows(
    specs: Sequence[Any],
    plans: Sequence[Any],
    labels: Sequence[Any],
    *,
    series: Sequence[Any] | None = None,
    sources: Sequence[Sequence[Any]] | None = None,
) -> Iterator[str]:
    """:func:`manifest_row_texts` of :data:`CHUNK_ROWS` rows at a time (positions of the call)."""
    for start in range(0, len(specs), CHUNK_ROWS):
        end = start + CHUNK_ROWS
        texts = manifest_row_texts(
            specs[start:end],
            plans[start:end],
            labels[start:end],
            series=None if series is None else series[start:end],
            sources=None if sources is None else sources[start:end],
            first=start,
        )
        yield from texts
