"""An emulator in its own process with processing-time jitter (used by benchmarks.throughput).

Prints ``key: value`` lines like ``python -m xasync.emulator`` and a ``Press`` line, then runs
until terminated.
"""

from __future__ import annotations

import argparse
import time

from xasync.emulator import Emulator, Faults


def _profile_until_terminated(path: str) -> None:
    """Profile all threads with yappi (a measuring aid, not a dependency) until SIGTERM; the
    profile is saved in pstats format."""
    import os
    import signal

    import yappi

    yappi.set_clock_type("cpu")
    yappi.start()

    def stop(*_: object) -> None:
        yappi.stop()
        yappi.get_func_stats().save(path, type="pstat")  # read with pstats.Stats(path)
        os._exit(0)  # the worker threads are not daemons: do not wait for them

    signal.signal(signal.SIGTERM, stop)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--processing-seconds", type=float, required=True)
    p.add_argument("--jitter", type=float, default=0.0, help="extra RUNNING time, uniform [0, x]")
    p.add_argument("--bucket", default="bench")
    p.add_argument("--profile", help="profile every thread (yappi, CPU time) into this file")
    args = p.parse_args()
    if args.profile:
        _profile_until_terminated(args.profile)
    emu = Emulator(
        concurrency_limit=args.concurrency,
        processing_seconds=args.processing_seconds,
        faults=Faults(processing_jitter=args.jitter, seed=7),
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
