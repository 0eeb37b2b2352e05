"""Progress display for waits: a ``tqdm.auto`` bar fed by a job's state (switchable off)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xasync.jobs import Job


def wait_with_progress(job: Job, *, timeout: float | None, progress: bool, desc: str) -> bool:
    """Block until every row of ``job`` is final; show a bar when ``progress`` is true.

    Returns ``False`` when ``timeout`` seconds passed first.
    """
    if not progress:
        return job.wait(timeout)
    from tqdm.auto import tqdm

    deadline = None if timeout is None else time.monotonic() + timeout
    with tqdm(total=len(job), desc=desc, unit="req", leave=True) as bar:
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            finished = job.wait_change(0.2 if remaining is None else min(0.2, remaining))
            counts = job.counts()
            bar.n = counts.get("done", 0) + counts.get("failed", 0)
            bar.set_postfix(
                {
                    k: counts.get(k, 0)
                    for k in ("queued", "running", "done", "failed")
                    if counts.get(k)
                },
                refresh=False,
            )
            bar.refresh()
            if finished:
                return True
