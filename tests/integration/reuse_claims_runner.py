"""Another process: the 12 fields of ``test_pack_reuse`` asked alone (test_reuse_claims.py).

Endpoints and credentials come from the environment (``XASYNC_RC_*``), never from argv. Waits
for ``XASYNC_RC_GO_FILE`` (to start together with another runner), then prints
``RESULT <json>`` once every row is final.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import xasync
from integration.test_pack_reuse import NDVI, TIME, _fields


def main() -> None:
    env = os.environ
    client = xasync.Client(
        base_url=env["XASYNC_RC_BASE_URL"],
        token_url=env["XASYNC_RC_TOKEN_URL"],
        client_id=env["XASYNC_RC_CLIENT_ID"],
        client_secret=env["XASYNC_RC_CLIENT_SECRET"],
    )
    deadline = time.monotonic() + 120
    while not os.path.exists(env["XASYNC_RC_GO_FILE"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    results = _fields().xasync.process(
        NDVI,
        time=TIME,
        resolution=10,
        crs="utm",
        mask=True,
        delivery=env["XASYNC_RC_DELIVERY"],
        storage_options=json.loads(env["XASYNC_RC_STORAGE_OPTIONS"]),
        client=client,
        options=xasync.SubmitOptions(
            claim_timeout=float(env["XASYNC_RC_CLAIM_TIMEOUT"]), ambiguous_grace=0.05
        ),
    )
    results.wait(timeout=180, progress=False)
    status = results.status()
    out = {
        "states": status["state"].tolist(),
        "errors": [str(e) for e in status["error"].tolist()],
        "requests": status["requests"].tolist(),
    }
    client.close()
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
