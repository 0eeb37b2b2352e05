"""Rows whose own request was already bought: a ``pack=True`` call reuses it, never packs them.

A row's own request lives in its own folder, ``<delivery root>/<token[:24]>`` (its
``row_url``). If an earlier call created it (the folder exists: delivered, running, failed, or
claimed by a process about to create it), or a call of this process is buying it (the ledger),
packing the row would buy its pixels a second time. Such rows are planned as their own requests
instead: the submitter then reuses or follows them as in an unpacked call. One non-recursive
listing of the delivery root answers for every row (its top-level folders: requests and packs,
not their files).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from xasync.errors import DeliveryAccessError

logger = logging.getLogger(__name__)

__all__ = ["bought_alone"]


def _folders(fs: Any, root: str) -> set[str]:
    """Names of the top-level folders under ``root`` (empty when it does not exist yet)."""
    try:
        fs.invalidate_cache(root)
        entries = fs.ls(root, detail=True)
    except FileNotFoundError:
        return set()
    except Exception as exc:  # botocore/s3fs/gcsfs: unreachable, denied
        raise DeliveryAccessError(
            f"cannot list the delivery location {root}: {type(exc).__name__}: {exc}"
        ) from None
    return {
        str(e["name"]).rstrip("/").rsplit("/", 1)[-1]
        for e in entries
        if e.get("type") == "directory"
    }


def bought_alone(specs: Sequence[Any], fs: Any, root: str) -> set[int]:
    """Indices of the rows whose own request was created before (or is being bought).

    Parameters
    ----------
    specs : sequence of RequestSpec
        One per row (their ``row_url`` is ``<root>/<token[:24]>``).
    fs : fsspec.AbstractFileSystem
        The delivery's filesystem.
    root : str
        The delivery root (``s3://bucket/prefix``).

    Returns
    -------
    set of int

    Raises
    ------
    xasync.DeliveryAccessError
        The delivery root cannot be listed.
    """
    from xasync.ledger import LEDGER, Stage

    live = (Stage.CLAIMED, Stage.RUNNING, Stage.DONE)
    folders = _folders(fs, root)
    out = set()
    for i, spec in enumerate(specs):
        entry = LEDGER.get(spec.row_url)
        if spec.row_url.rsplit("/", 1)[-1] in folders or (entry and entry.stage in live):
            out.add(i)
    if out:
        logger.info("%d rows already bought alone under %s: not packed", len(out), root)
    return out
