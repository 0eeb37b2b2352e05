"""An emulator in its own process with processing-time jitter (used by benchmarks.throughput).

Prints ``key: value`` lines like ``python -m xasync.emulator`` and a ``Press`` line, then runs
until terminated. By default the S3 server runs in a third process (``benchmarks._s3_child``),
as a real object store is not the API's process; ``--s3-in-process`` keeps it in this one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

import httpx

from xasync.emulator import Emulator, Faults
from xasync.emulator.s3 import S3Endpoint


class RemoteS3(S3Endpoint):
    """The parts of :class:`~xasync.emulator.S3Server` the emulator uses, for an S3 server in
    another process (``benchmarks._s3_child``); storage options, clients and buckets as
    :class:`~xasync.emulator.s3.S3Endpoint` makes them."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._s3_child"], stdout=subprocess.PIPE, text=True
        )
        info = {}
        assert self._proc.stdout is not None
        while len(info) < 2:
            key, _, value = self._proc.stdout.readline().partition(":")
            info[key.strip()] = value.strip()
        self.endpoint_url = info["s3_endpoint_url"]
        self._control = info["control_url"]

    def start(self) -> RemoteS3:
        return self

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(30)

    @property
    def stats(self) -> dict[str, int]:
        return httpx.get(f"{self._control}/stats", timeout=30).json()

    def reset(self, wipe: bool = False) -> None:
        httpx.post(f"{self._control}/reset{'?wipe=1' if wipe else ''}", timeout=30)


def _on_terminate(s3: Any, profile: str | None) -> None:
    """On SIGTERM: save the profile (if any), stop the S3 process (if any), exit at once (the
    worker threads are not daemons: do not wait for them)."""
    import os
    import signal

    if profile:
        import yappi  # the bench extra (pip install -e ".[bench]")

        yappi.set_clock_type("cpu")
        yappi.start()

    def stop(*_: object) -> None:
        if profile:
            yappi.stop()
            yappi.get_func_stats().save(profile, type="pstat")  # read with pstats.Stats(path)
        if s3 is not None:
            s3.stop()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--processing-seconds", type=float, required=True)
    p.add_argument("--jitter", type=float, default=0.0, help="extra RUNNING time, uniform [0, x]")
    p.add_argument("--bucket", default="bench")
    p.add_argument("--profile", help="CPU profile of every thread into this file (yappi, pstats)")
    p.add_argument("--s3-in-process", action="store_true", help="S3 server in this process")
    args = p.parse_args()
    s3 = None if args.s3_in_process else RemoteS3()
    _on_terminate(s3, args.profile)
    emu = Emulator(
        concurrency_limit=args.concurrency,
        processing_seconds=args.processing_seconds,
        faults=Faults(processing_jitter=args.jitter, seed=7),
        s3=s3,  # type: ignore[arg-type]
    ).start()
    emu.create_bucket(args.bucket)
    so = emu.storage_options
    for key, value in (
        ("base_url", emu.base_url),
        ("token_url", emu.token_url),
        ("client_id", emu.client_id),
        ("client_secret", emu.client_secret),
        ("s3_endpoint_url", emu.s3_endpoint_url),
        ("s3_key", so["key"]),
        ("s3_secret", so["secret"]),
    ):
        print(f"{key}: {value}", flush=True)
    print("Press Ctrl+C to stop", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
