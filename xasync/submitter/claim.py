"""Claims: only one process buys a request, with an S3 conditional write.

Before creating a request, the creator writes ``<request url>/_xasync_claim.<n>.json`` with
``If-None-Match: *``; ``n`` is the number of request folders the creator saw under the prefix
(0 for a first buy, 1 to buy again after one failed request, ...). S3 (and moto) refuse the write
when the key exists (s3fs raises ``FileExistsError``), so of the processes that decided to buy
the same thing from the same view, exactly one wins and creates. The claim is left in place: a
later process that decides to buy from the same view loses and follows the request folder that
appeared. A loser waits for a new request folder and follows it in S3. A claim older than
``claim_timeout`` seconds with no new request folder beside it is stale (its writer died between
claiming and creating) and is taken over.

A stale claim is never deleted to be taken over (a racer who saw it stale too could then delete
the new holder's claim and buy a second time): it is taken over by the next claim of a chain,
``_xasync_claim.<n>.<k>.json`` for the ``k``-th takeover, written create-only like the first.
Of the racers that saw claim ``k - 1`` stale exactly one writes claim ``k``; the others find it
held and fresh, and wait for its request. A newcomer walks the chain from the first claim, one
stale claim at a time. Only a claim's own writer deletes it (after a create that bought
nothing, so that the next buyer claims at once).

On Google Cloud Storage the same claim is an upload with the generation precondition
``ifGenerationMatch=0`` (gcsfs ``pipe_file(..., mode="create")``), which GCS refuses with 412
when the object exists (gcsfs raises ``FileExistsError``). gcp-storage-emulator ignores
preconditions; the xasync emulator's GCS server adds this one, so claims are tested there too.

Claims sit at the top level of the request's prefix, where the delivery layout never looks for
request folders. A server that cannot do conditional writes answers with an error other than
``FileExistsError``; then the claim is skipped (only the probe before the create protects, as
before) and a warning says so once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from xasync.submitter.s3 import s3_error, storage_name

logger = logging.getLogger(__name__)

__all__ = ["HELD", "UNSUPPORTED", "WON", "claim_path", "release", "take"]

WON, HELD, UNSUPPORTED = "won", "held", "unsupported"
_UNSUPPORTED_MARKS = ("notimplemented", "not implemented", "invalidargument", "if-none-match")
_warned: list[bool] = []


def claim_path(url: str, generation: int, takeover: int = 0) -> str:
    """Where the claim of the ``generation``-th buy of the request at ``url`` is written (its
    ``takeover``-th claim: 0 for the first, ``k`` once ``k`` holders went stale)."""
    chain = f".{takeover}" if takeover else ""
    return f"{url.rstrip('/')}/_xasync_claim.{generation}{chain}.json"


def take(
    fs: Any, url: str, generation: int, owner: str, takeover: int = 0
) -> tuple[str, float | None]:
    """Try to claim; ``(WON | HELD | UNSUPPORTED, age of the holder's claim in s or None)``.

    ``takeover``: which claim of the chain to write (see the module docstring). Blocking (runs
    in a worker thread). S3 failures raise TransportError.
    """
    path = claim_path(url, generation, takeover)
    payload = json.dumps({"owner": owner, "created": _now().isoformat()}).encode()
    for _ in range(3):  # the claim may vanish between our write and our read
        try:
            fs.pipe_file(path, payload, **_create_only(fs))
            return WON, None
        except FileExistsError:
            pass
        except Exception as exc:
            text = f"{type(exc).__name__} {exc}".lower()
            if any(mark in text for mark in _UNSUPPORTED_MARKS):
                if not _warned:
                    _warned.append(True)
                    logger.warning(
                        "the %s server refuses conditional writes (%s): two processes "
                        "starting the same request at once may both buy it",
                        storage_name(fs),
                        type(exc).__name__,
                    )
                return UNSUPPORTED, None
            raise s3_error(exc, "claim write", fs) from None
        holder, age = _holder(fs, path)
        if holder is None:
            continue
        return (WON, None) if holder == owner else (HELD, age)
    return HELD, None


def _create_only(fs: Any) -> dict[str, str]:
    """The keyword that makes ``fs.pipe_file`` refuse to overwrite (S3: If-None-Match, GCS:
    ifGenerationMatch=0)."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return {"mode": "create"} if protocol in ("gs", "gcs") else {"IfNoneMatch": "*"}


def release(fs: Any, url: str, generation: int, takeover: int = 0) -> None:
    """Delete our own claim; a missing claim is fine."""
    try:
        fs.rm_file(claim_path(url, generation, takeover))
    except FileNotFoundError:
        pass
    except Exception as exc:
        raise s3_error(exc, "claim delete", fs) from None


def exists(fs: Any, url: str, generation: int, takeover: int = 0) -> bool:
    """Whether the claim is still there."""
    try:
        return bool(fs.exists(claim_path(url, generation, takeover)))
    except Exception as exc:
        raise s3_error(exc, "claim check", fs) from None


def _holder(fs: Any, path: str) -> tuple[str | None, float | None]:
    """Owner and age (seconds) of the claim at ``path``; ``(None, None)`` if it vanished."""
    try:
        raw = fs.cat_file(path)
        info = fs.info(path)
    except FileNotFoundError:
        return None, None
    except Exception as exc:
        raise s3_error(exc, "claim read", fs) from None
    try:
        owner = str(json.loads(raw).get("owner"))
    except (ValueError, AttributeError):
        owner = "?"
    modified = info.get("LastModified") or info.get("mtime")  # s3fs / gcsfs
    age = (_now() - modified).total_seconds() if isinstance(modified, dt.datetime) else None
    return owner, age


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
