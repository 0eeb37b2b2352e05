"""Rows whose own request was already bought: a ``pack=True`` call reuses it.

A row's own request lives in its own folder, ``<delivery root>/<token[:24]>`` (its
``row_url``). If an earlier call created it (the folder exists: delivered, running, failed, or
claimed by a process about to create it), or a call of this process is buying it (the ledger),
packing the row would buy its pixels a second time, unless the pack it would join was itself
bought before (then the pack is reused: re-running a packed call buys nothing). Such rows are
planned as their own requests instead: the submitter then reuses or follows them as in an
unpacked call. One non-recursive listing of the delivery root answers for every row (its
top-level folders: requests and packs, not their files).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from xasync.errors import DeliveryAccessError

logger = logging.getLogger(__name__)

__all__ = ["Bought", "bought_requests", "keep_alone", "look_before_planning"]


@dataclass(frozen=True)
class Bought:
    """The requests that exist under one delivery root (folders) or in this process (ledger).

    Attributes
    ----------
    folders : frozenset of str
        Names of the top-level folders under the root (``token[:24]`` of each request).
    fs : fsspec filesystem or None
        The delivery's filesystem (to read manifests and probe requests).
    root : str or None
        The delivery root that was listed.

    """

    folders: frozenset[str]
    fs: Any = field(default=None, repr=False, compare=False)
    root: str | None = None

    def existing(self, urls: Sequence[str]) -> list[bool]:
        """For each request URL: was it created (S3), or is this process buying it?"""
        from xasync.ledger import LEDGER, Stage

        live = (Stage.CLAIMED, Stage.RUNNING, Stage.DONE)
        return [
            url.rsplit("/", 1)[-1] in self.folders or (entry is not None and entry.stage in live)
            for url, entry in zip(urls, LEDGER.entries(urls), strict=True)
        ]


def bought_requests(fs: Any, root: str) -> Bought:
    """List the top-level folders of ``root`` once (none when it does not exist yet).

    Raises
    ------
    xasync.DeliveryAccessError
        The delivery root cannot be listed.
    """
    try:
        fs.invalidate_cache(root)
        entries = fs.ls(root, detail=True)
    except FileNotFoundError:
        entries = []
    except Exception as exc:  # botocore/s3fs/gcsfs: unreachable, denied
        raise DeliveryAccessError(
            f"cannot list the delivery location {root}: {type(exc).__name__}: {exc}"
        ) from None
    names = {
        str(e["name"]).rstrip("/").rsplit("/", 1)[-1]
        for e in entries
        if e.get("type") == "directory"
    }
    return Bought(frozenset(names), fs, root)


def look_before_planning(fs: Any, root: str, *, required: bool) -> Bought | None:
    """:func:`bought_requests` for ``process``; None when the root cannot be listed and the
    look is not ``required`` (an unpacked call then reuses only what its submitter finds, and
    an unreachable bucket fails later with its own typed error, after the client's checks).

    Raises
    ------
    xasync.DeliveryAccessError
        ``required`` (``pack=True``) and the root cannot be listed.
    """
    try:
        return bought_requests(fs, root)
    except DeliveryAccessError as exc:
        if required:
            raise
        logger.warning("earlier packs and tiles not looked for: %s", exc)
        return None


def keep_alone(specs: Sequence[Any], planned: Any, bought: Bought) -> set[int]:
    """Rows of a packed plan to plan as their own requests instead.

    A row is kept alone when its own request exists and the request the plan gives it (a
    pack) does not: the pack is not bought yet, the row is.

    Parameters
    ----------
    specs : sequence of RequestSpec
        One per row.
    planned : xasync.planned.PlannedSpecs
        The call's plan without reuse.
    bought : Bought
        What exists.

    Returns
    -------
    set of int
    """
    candidates = [
        i
        for i, (spec, sources) in enumerate(zip(specs, planned.sources, strict=True))
        if len(sources) == 1 and sources[0].row_url != spec.row_url  # in a pack
    ]
    own = bought.existing([specs[i].row_url for i in candidates])
    rows = [i for i, exists in zip(candidates, own, strict=True) if exists]
    packs = bought.existing([planned.sources[i][0].row_url for i in rows])
    out = {i for i, pack_exists in zip(rows, packs, strict=True) if not pack_exists}
    if out:
        logger.info("%d rows already bought alone: planned alone, not packed", len(out))
    return out
