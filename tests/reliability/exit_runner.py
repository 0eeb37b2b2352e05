"""Run by ``test_exit.py`` in a child process: calls left in flight at interpreter exit.

Reads the emulator's endpoints from the ``XASYNC_EXIT_RUNNER`` environment variable (JSON).
While the emulator holds every request RUNNING, a first call of ``ROWS`` rows is cancelled once
two of its requests were created (its queued rows wait on the account's slots). Then, released,
a small call on the same account must finish (a cancel must leave the account's slots usable),
and held again, a third call is left running when the interpreter exits: the submitter's exit
hook must cancel every task and let them end. Prints ``exiting`` last.
"""

from __future__ import annotations

import json
import os
import sys
import time

import httpx
from integration._shared import NDVI_NO_MASK, TIME, fields

import xasync

ROWS = 600


def main() -> None:
    ep = json.loads(os.environ["XASYNC_EXIT_RUNNER"])
    client = xasync.Client(
        base_url=ep["base_url"],
        token_url=ep["token_url"],
        client_id=ep["client_id"],
        client_secret=ep["client_secret"],
    )
    api = ep["base_url"]
    httpx.post(f"{api}/emulator/hold", json={}, timeout=30).raise_for_status()
    kw = dict(time=TIME, resolution=0.0002, storage_options=ep["storage_options"], client=client)
    first = fields(ROWS).xasync.process(NDVI_NO_MASK, delivery=f"{ep['root']}/first", **kw)
    stats_url = f"{api}/emulator/stats"
    deadline = time.monotonic() + 120  # against a hang only
    while httpx.get(stats_url, timeout=30).json()["creates"] < 2:
        if time.monotonic() > deadline:
            sys.exit("the emulator saw no create")
        time.sleep(0.05)
    first.cancel()
    httpx.post(f"{api}/emulator/release", json={}, timeout=30).raise_for_status()
    second = fields(3, lat0=47.0).xasync.process(NDVI_NO_MASK, delivery=f"{ep['root']}/2", **kw)
    second.wait(timeout=120, progress=False)  # raises DeliveryTimeout if the slots are stuck
    httpx.post(f"{api}/emulator/hold", json={}, timeout=30).raise_for_status()
    fields(30, lat0=48.0).xasync.process(NDVI_NO_MASK, delivery=f"{ep['root']}/3", **kw)
    print("exiting", flush=True)


if __name__ == "__main__":
    main()
