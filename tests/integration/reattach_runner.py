"""Another session: ``open_delivery`` on a delivery whose requests may still run (issue 12, 5).

Run as a subprocess by test_reattach_running.py. Endpoints come from the environment
(``XASYNC_RA_*``). Prints ``FOLLOWING <states>`` once its rows are being followed, then
``RESULT <json>`` when every row is final.
"""

from __future__ import annotations

import json
import os
import time

import xasync


def main() -> None:
    env = os.environ
    storage_options = json.loads(env["XASYNC_RA_STORAGE_OPTIONS"])
    client = None
    if env.get("XASYNC_RA_CLIENT_ID"):
        client = xasync.Client(
            base_url=env["XASYNC_RA_BASE_URL"],
            token_url=env["XASYNC_RA_TOKEN_URL"],
            client_id=env["XASYNC_RA_CLIENT_ID"],
            client_secret=env["XASYNC_RA_CLIENT_SECRET"],
        )
    results = xasync.open_delivery(
        env["XASYNC_RA_DELIVERY"], storage_options=storage_options, client=client
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the submitter decided about every row
        states = results.status()["state"].tolist()
        if "queued" not in states:
            break
        time.sleep(0.05)
    print("FOLLOWING " + json.dumps(states), flush=True)
    results.wait(timeout=180, progress=False)
    status = results.status()
    out = {
        "states": status["state"].tolist(),
        "cost": status["cost_pu"].tolist(),
        "means": [float(ds["ndvi"].mean().compute()) for ds in results],
    }
    if client is not None:
        client.close()
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
