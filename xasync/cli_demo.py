"""``xasync demo``: the NDVI demo on the embedded emulator (or ``--real``), and ``--season``.

The logic lives in :mod:`xasync.demo` and :mod:`xasync.demo_season`; this module prints.
"""

from __future__ import annotations

import argparse
import sys

from xasync.cli_table import format_table

__all__ = ["cmd_demo", "cmd_season"]


def cmd_demo(args: argparse.Namespace) -> int:
    """``xasync demo``: run the demo (or the season demo) and print its table; the exit status."""
    from xasync.demo import run_demo
    from xasync.submitter import get_submitter

    if args.season:
        return cmd_season(args)

    where = "the real service" if args.real else "the embedded emulator"
    print(
        f"xasync demo: {args.fields} fields, NDVI at 10 m in UTM 32N/33N, on {where}"
        + ("" if args.real else f" (concurrency {args.concurrency})"),
        flush=True,
    )
    from xasync.demo import DEMO_TIME, NDVI_EVALSCRIPT, demo_fields

    costs = demo_fields(args.fields).xasync.estimate(
        NDVI_EVALSCRIPT, time=DEMO_TIME, resolution=10, crs="utm", mask=True
    )
    print(f"estimated cost: {costs['estimated_pu'].sum():.2f} PU for {len(costs)} requests")
    try:
        result = run_demo(
            args.fields,
            concurrency=args.concurrency,
            processing_seconds=args.processing_seconds,
            out=args.out,
            progress=not args.no_progress,
            real=args.real,
            timeout=args.timeout,
        )
    finally:
        get_submitter().close()  # the demo owns this process: leave no thread behind
    table = result.table
    print()
    print(
        format_table(
            table,
            ["field", "utm_epsg", "request_id", "state", "estimated_pu", "cost_pu", "mean_ndvi"],
        )
    )
    done = int((table["state"] == "done").sum())
    cost = float(table["cost_pu"].fillna(0).sum())
    print()
    print(
        f"{done}/{len(table)} fields done in {result.seconds:.1f} s, {cost:.2f} PU, "
        f"delivered under {result.delivery}"
    )
    if result.stats:
        creates = result.stats.get("creates")
        limited = result.stats.get("rate_limited")
        print(f"emulator: {creates} requests created, {limited} answered 429 (concurrency limit)")
    failed = table[table["state"] != "done"]
    for _, row in failed.iterrows():
        print(f"  {row['field']}: {row['state']}: {row['error']}", file=sys.stderr)
    if result.figure is not None:
        print(f"figure: {result.figure.resolve()}")
    return 0 if done == len(table) else 1


def cmd_season(args: argparse.Namespace) -> int:
    """``xasync demo --season``: NDVI curves of a few fields on the emulator; the exit status."""
    from xasync.demo_season import SEASON, SEASON_FREQ, run_season
    from xasync.submitter import get_submitter

    if args.real:
        print("xasync demo: --season runs on the embedded emulator only", file=sys.stderr)
        return 2
    print(
        f"xasync demo --season: {args.fields} fields, NDVI {SEASON[0]}..{SEASON[1]} every "
        f"{SEASON_FREQ}, one multi-temporal request per field, on the embedded emulator",
        flush=True,
    )
    try:
        result = run_season(
            args.fields,
            concurrency=args.concurrency,
            processing_seconds=args.processing_seconds,
            out=args.out,
            progress=not args.no_progress,
            timeout=args.timeout,
        )
    finally:
        get_submitter().close()
    table = result.table
    print()
    print(format_table(table, ["field", "state", "cost_pu", "scenes", "peak", "peak_ndvi"]))
    done = int((table["state"] == "done").sum())
    print(
        f"\n{done}/{len(table)} fields done in {result.seconds:.1f} s, "
        f"{result.stats.get('creates')} requests created"
    )
    if result.figure is not None:
        print(f"figure: {result.figure.resolve()}")
    return 0 if done == len(table) else 1
