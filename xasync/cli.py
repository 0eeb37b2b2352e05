"""The ``xasync`` command: ``xasync demo``, ``xasync status``, ``xasync emulator``.

A thin layer over the library: it parses arguments, calls :mod:`xasync.demo`,
:mod:`xasync.delivery` or :mod:`xasync.emulator`, and prints (this module is the only place
where xasync prints).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from xasync.errors import DeliveryAccessError, ValidationError, XasyncError

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["delivery_status", "main"]

_DESCRIPTION = """\
xasync: the Sentinel Hub Asynchronous Processing API as lazy xarray Datasets.

commands:
  demo       NDVI of ~20 fields end to end on the embedded emulator (or --real)
  status     what was delivered under an s3:// prefix: request ids, states, cost, errors
  emulator   run the local Async API emulator (and its S3 server) in the foreground

Run `xasync COMMAND --help` for the options of a command.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="xasync",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo_parser(sub)
    _add_status_parser(sub)
    sub.add_parser(
        "emulator",
        help="run the local Async API emulator in the foreground",
        add_help=False,
        description="See `xasync emulator --help`.",
    )
    return p


def _add_demo_parser(sub: Any) -> None:
    d = sub.add_parser(
        "demo",
        help="NDVI of ~20 fields on the embedded emulator",
        description=(
            "Start the embedded emulator (a local Async API writing to a local S3 server), "
            "build a GeoDataFrame of field polygons in UTM zones 32N and 33N, run "
            "gdf.xasync.process with an NDVI evalscript at 10 m under a concurrency limit, "
            "then print a table per field and write a PNG figure. Nothing leaves 127.0.0.1 "
            "unless --real is given."
        ),
    )
    d.add_argument("--fields", type=int, default=20, help="number of fields (default 20)")
    d.add_argument(
        "--concurrency",
        type=int,
        default=4,
        help="requests the emulator runs at once per account (default 4)",
    )
    d.add_argument(
        "--processing-seconds",
        type=float,
        default=0.5,
        help="time each emulated request stays RUNNING (default 0.5)",
    )
    d.add_argument(
        "--out", default="demo-output", help="folder for the PNG figure (default ./demo-output)"
    )
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for all deliveries"
    )
    d.add_argument(
        "--real",
        action="store_true",
        help=(
            "run against the real service instead (costs processing units): needs "
            "SH_CLIENT_ID, SH_CLIENT_SECRET (and SH_BASE_URL/SH_TOKEN_URL for CDSE), "
            "XASYNC_DEMO_DELIVERY=s3://bucket/prefix and AWS credentials in the environment"
        ),
    )


def _add_status_parser(sub: Any) -> None:
    s = sub.add_parser(
        "status",
        help="table of what was delivered under an s3:// prefix",
        description=(
            "List the rows that xasync calls delivered under DELIVERY (from their manifests "
            "in DELIVERY/_xasync/) and what S3 holds for each: request ids, state, cost in "
            "processing units, errors. Reads S3 only; S3 credentials come from the AWS "
            "environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)."
        ),
    )
    s.add_argument("delivery", help="the s3://bucket/prefix given to process()")
    s.add_argument("--endpoint-url", default=None, help="S3 endpoint (e.g. the emulator's)")
    s.add_argument("--anon", action="store_true", help="anonymous S3 access")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xasync`` command; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 when some request failed or an xasync error occurred, 2 for usage
        errors.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "emulator":
        from xasync.emulator.__main__ import main as emulator_main

        return emulator_main(args_list[1:])

    parser = _parser()
    args = parser.parse_args(args_list)
    if args.version:
        from xasync import __version__

        print(f"xasync {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    level = logging.WARNING if args.verbose == 0 else logging.INFO
    if args.verbose > 1:
        level = logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "demo":
            return _cmd_demo(args)
        return _cmd_status(args)
    except XasyncError as exc:
        print(f"xasync {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# -- demo ------------------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace) -> int:
    from xasync.demo import run_demo
    from xasync.submitter import get_submitter

    where = "the real service" if args.real else "the embedded emulator"
    print(
        f"xasync demo: {args.fields} fields, NDVI at 10 m in UTM 32N/33N, on {where}"
        + ("" if args.real else f" (concurrency {args.concurrency})"),
        flush=True,
    )
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
        _format_table(table, ["field", "utm_epsg", "request_id", "state", "cost_pu", "mean_ndvi"])
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


# -- status ----------------------------------------------------------------------------------
def delivery_status(delivery: str, storage_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """What S3 holds for every row that xasync calls delivered under ``delivery``.

    Parameters
    ----------
    delivery : str
        The ``s3://bucket/prefix`` given to ``process``.
    storage_options : dict, optional
        s3fs options (endpoint, credentials).

    Returns
    -------
    pandas.DataFrame
        One row per delivered row prefix: ``label``, ``state`` (``done``, ``failed``,
        ``pending`` or ``none``), ``request_id``, ``requests`` (request folders found),
        ``cost_pu``, ``error``, ``row_url``.

    Raises
    ------
    xasync.ValidationError
        ``delivery`` is not an ``s3://`` URL, or holds no xasync manifest.
    xasync.DeliveryAccessError
        S3 cannot be read: no credentials, endpoint unreachable, access denied.
    """
    import pandas as pd

    from xasync import delivery as _delivery
    from xasync.processing import _delivery_root, delivery_filesystem

    root = _delivery_root(delivery)
    fs = delivery_filesystem(storage_options)
    try:
        plans = _manifest_plans(fs, root)
        found = _delivery.probe_rows(
            fs, {p.row_url: tuple(o.identifier for o in p.outputs) for p in plans}
        )
    except XasyncError:
        raise
    except Exception as exc:  # botocore/s3fs: no credentials, endpoint down, access denied
        raise DeliveryAccessError(_s3_problem(exc, root)) from None
    rows = []
    for p in plans:
        r = found[p.row_url]
        rows.append(
            {
                "label": p.label,
                "state": r.state,
                "request_id": r.request_id,
                "requests": len(r.request_ids),
                "cost_pu": r.cost,
                "error": r.error,
                "row_url": p.row_url,
            }
        )
    return pd.DataFrame(rows)


def _manifest_plans(fs: Any, root: str) -> list[Any]:
    """The read plans of every row in the manifests under ``root`` (one per row URL)."""
    from xasync import delivery as _delivery
    from xasync.plan import ReadPlan

    plans: list[ReadPlan] = []
    seen: set[str] = set()
    for manifest in _delivery.read_manifests(fs, root):
        for row in manifest.get("rows", []):
            plan = ReadPlan.from_dict(row["plan"])
            if plan.row_url not in seen:
                seen.add(plan.row_url)
                plans.append(plan)
    if not plans:
        raise ValidationError(f"no xasync delivery manifest found under {root}/_xasync/")
    return plans


def _s3_problem(exc: Exception, root: str) -> str:
    """One line saying why S3 could not be read (no traceback, no secret)."""
    name = type(exc).__name__
    if "Credential" in name:
        hint = "no S3 credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use --anon"
    elif (
        "Connect" in name or "Endpoint" in name or isinstance(exc, (ConnectionError, TimeoutError))
    ):
        hint = "the S3 endpoint cannot be reached (check --endpoint-url and the network)"
    elif isinstance(exc, PermissionError):
        hint = "access denied (check the credentials' rights on the bucket)"
    else:
        hint = str(exc).splitlines()[0][:200] if str(exc) else "S3 error"
    return f"cannot read {root}: {hint} ({name})"


def _cmd_status(args: argparse.Namespace) -> int:
    so: dict[str, Any] = {}
    if args.endpoint_url:
        so["client_kwargs"] = {"endpoint_url": args.endpoint_url}
    if args.anon:
        so["anon"] = True
    table = delivery_status(args.delivery, so or None)
    print(_format_table(table, ["label", "state", "request_id", "requests", "cost_pu", "error"]))
    counts = table["state"].value_counts().to_dict()
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    cost = float(table["cost_pu"].fillna(0).sum())
    print(f"\n{len(table)} rows ({summary}), {cost:.2f} PU under {args.delivery}")
    return 0 if counts.get("failed", 0) == 0 else 1


# -- printing --------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _format_table(table: pd.DataFrame, columns: list[str]) -> str:
    """A plain fixed-width table (no dependency on tabulate)."""
    cells = [[_cell(v) for v in row] for row in table[columns].itertuples(index=False)]
    widths = [max([len(c)] + [len(r[j]) for r in cells]) for j, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
