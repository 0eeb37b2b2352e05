"""Another process: the 12 fields of ``test_pack_reuse`` (test_reuse_claims.py).

Endpoints and credentials come from the environment (``XASYNC_RC_*``), never from argv. Waits
for ``XASYNC_RC_GO_FILE`` if given (to start together with another runner). With
``XASYNC_RC_BLOCKER`` (a delivery), first starts a call of one other field there (the test
holds it running, so that with ``XASYNC_RC_CONCURRENCY=1`` the fields wait for the slot). The
fields are asked alone, or packed with ``XASYNC_RC_PACK=1``. Prints ``QUEUED`` once the call
returned, and ``RESULT <json>`` once every row is final.
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
    concurrency = env.get("XASYNC_RC_CONCURRENCY")
    client = xasync.Client(
        base_url=env["XASYNC_RC_BASE_URL"],
        token_url=env["XASYNC_RC_TOKEN_URL"],
        client_id=env["XASYNC_RC_CLIENT_ID"],
        client_secret=env["XASYNC_RC_CLIENT_SECRET"],
        concurrency=int(concurrency) if concurrency else None,
    )
    go = env.get("XASYNC_RC_GO_FILE")
    deadline = time.monotonic() + 120
    while go and not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.01)
    kw = dict(
        time=TIME,
        resolution=10,
        crs="utm",
        mask=True,
        storage_options=json.loads(env["XASYNC_RC_STORAGE_OPTIONS"]),
        client=client,
        options=xasync.SubmitOptions(
            claim_timeout=float(env.get("XASYNC_RC_CLAIM_TIMEOUT", "60")), ambiguous_grace=0.05
        ),
    )
    blocker = None
    if env.get("XASYNC_RC_BLOCKER"):
        blocker = _fields().iloc[:1].xasync.process(NDVI, delivery=env["XASYNC_RC_BLOCKER"], **kw)
        while blocker.status()["state"].iloc[0] != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
    if env.get("XASYNC_RC_PACK") == "1":
        kw.update(pack=True, pack_max_px=400)
    results = _fields().xasync.process(NDVI, delivery=env["XASYNC_RC_DELIVERY"], **kw)
    print("QUEUED", flush=True)
    if blocker is not None:
        blocker.wait(timeout=180, progress=False)
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
