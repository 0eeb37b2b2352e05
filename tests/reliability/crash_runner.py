"""Run ``process`` on 20 rows against an emulator started elsewhere (subprocess of a test).

Endpoints and credentials come from the environment (``XASYNC_REL_*``), never from argv, so
they do not show in process listings. Prints one JSON line with the final status when it ends.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import xasync
from reliability._helpers import NDVI, RES, TIME, fields


def main() -> None:
    env = os.environ
    storage_options = json.loads(env["XASYNC_REL_STORAGE_OPTIONS"])
    client = xasync.Client(
        base_url=env["XASYNC_REL_BASE_URL"],
        token_url=env["XASYNC_REL_TOKEN_URL"],
        client_id=env["XASYNC_REL_CLIENT_ID"],
        client_secret=env["XASYNC_REL_CLIENT_SECRET"],
        concurrency=int(env["XASYNC_REL_CONCURRENCY"]),
    )
    go = env.get("XASYNC_REL_GO_FILE")  # start together with another runner
    if go:
        deadline = time.monotonic() + 120
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.01)
    results = fields(int(env.get("XASYNC_REL_ROWS", "20"))).xasync.process(
        NDVI,
        time=TIME,
        resolution=RES,
        delivery=env["XASYNC_REL_DELIVERY"],
        storage_options=storage_options,
        client=client,
    )
    print("SUBMITTING", flush=True)
    results.wait(timeout=120, progress=False)
    status = results.status()
    out = {
        "states": status["state"].tolist(),
        "reused": status["reused"].tolist(),
        "request_ids": status["request_id"].tolist(),
        "mean_last": float(results[len(results) - 1]["ndvi"].mean().compute()),
        "cost": results.cost,
    }
    client.close()
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
