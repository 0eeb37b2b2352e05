"""Run the benchmarks and print every figure beside its goal.

Usage (from the project root, in the project's environment)::

    python -m benchmarks.run            # everything, full sizes (about 5 minutes on 2 cores)
    python -m benchmarks.run --quick    # smaller sizes, same shape of table
    python -m benchmarks.run --only throughput read

Figures go to standard output; ``--json FILE`` also writes them as JSON. Benchmarks are run on
demand, never in the test suite: the figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone

from benchmarks._common import machine

GOALS = {
    "throughput": "xasync wall / (ceil(N/K)*T) <= 1.05",
    "calls": "API calls per request (creates + status + S3 LIST) <= 3",
    "read": "bytes read / bytes of the tiles covering a 512x512 window <= 1.2",
    "build": "rows -> lazy Datasets >= 5000 rows/s",
    "cluster": "peak RSS per worker <= 1 GiB",
}


def _table(rows: list[dict]) -> str:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    widths = {k: max(len(k), *(len(str(r.get(k, ""))) for r in rows)) for k in keys}
    lines = ["  ".join(k.ljust(widths[k]) for k in keys)]
    lines.append("  ".join("-" * widths[k] for k in keys))
    for row in rows:
        lines.append("  ".join(str(row.get(k, "")).ljust(widths[k]) for k in keys))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument(
        "--only", nargs="*", choices=["throughput", "read", "build", "cluster"], default=None
    )
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    chosen = args.only or ["throughput", "read", "build", "cluster"]
    out: dict = {"machine": machine(), "date": datetime.now(timezone.utc).isoformat()}
    print(f"# xasync benchmarks -- {out['machine']} -- {out['date']}")
    started = time.perf_counter()

    if "throughput" in chosen:
        from benchmarks import throughput

        n, n_pool = (100, 100) if args.quick else (500, 500)
        rows = throughput.run(n=n, k=10, t=0.5, n_pool=n_pool, n_seq=5 if args.quick else 10)
        out["throughput"] = rows
        print(
            f"\n## 1-2. throughput and API calls (K=10, T=0.5 s)\ngoals: {GOALS['throughput']}; "
            f"{GOALS['calls']}\n{_table(rows)}"
        )
    if "read" in chosen:
        from benchmarks import read_efficiency

        rows = read_efficiency.run()
        out["read"] = rows
        print(
            f"\n## 3. read efficiency (10000 x 10000 uint16, 512 px tiles)\ngoal: "
            f"{GOALS['read']}\n{_table(rows)}"
        )
    if "build" in chosen:
        from benchmarks import build_overhead

        rows = build_overhead.run(n=2000 if args.quick else 10_000)
        out["build"] = rows
        print(f"\n## 4. build overhead\ngoal: {GOALS['build']}\n{_table(rows)}")
    if "cluster" in chosen:
        from benchmarks import cluster_memory

        rows = cluster_memory.run(n=40 if args.quick else 200)
        out["cluster"] = rows
        print(
            f"\n## 5. cluster memory (2000 x 2000 float32 per row, LocalCluster 2 workers x 2 "
            f"threads)\ngoal: {GOALS['cluster']}\n{_table(rows)}"
        )

    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
