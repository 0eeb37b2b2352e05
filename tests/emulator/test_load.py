"""50 concurrent clients on loopback: only the intended 429s, nothing else goes wrong."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import pytest
from emu_helpers import LEGACY, get_token, make_body

pytestmark = pytest.mark.slow

CLIENTS = 50


def test_fifty_concurrent_clients(emu, out_bucket):
    emu.configure(concurrency_limit=8, processing_seconds=0.3)
    token = get_token(emu)
    body = make_body(out_bucket, size=(8, 8))
    codes: Counter[int] = Counter()
    errors: list[BaseException] = []
    accepted: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)

    def client() -> None:
        try:
            with httpx.Client(
                base_url=emu.base_url, timeout=20, headers={"Authorization": f"Bearer {token}"}
            ) as c:
                barrier.wait(timeout=20)
                for _ in range(3):
                    r = c.post(LEGACY, json=body)
                    s = c.get(f"{LEGACY}/{r.json()['id']}") if r.status_code == 200 else None
                    with lock:
                        codes[r.status_code] += 1
                        if s is not None:
                            codes[s.status_code] += 1
                            accepted.append(r.json()["id"])
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)  # a guard against hangs, not a measurement
    assert not [t for t in threads if t.is_alive()], "a client thread hung"
    assert errors == []
    assert set(codes) <= {200, 404, 429}, codes
    assert codes[429] > 0  # the limit really bit
    stats = emu.stats
    assert stats["creates"] == len(accepted) >= 8
    assert stats["max_running"] <= 8
    assert stats["rate_limited"] == codes[429]
    assert stats["create_calls"] == CLIENTS * 3
