"""The ``xasync`` command: ``xasync demo``, ``xasync status``, ``xasync emulator``.

A thin layer over the library: this module parses arguments and dispatches to one module per
command, :mod:`xasync.cli_demo` (over :mod:`xasync.demo`), :mod:`xasync.cli_status` (over
:mod:`xasync.delivery`) and :mod:`xasync.emulator`. The ``cli`` modules are the only places
where xasync prints.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from xasync.cli_status import add_status_parser, cmd_status, delivery_status
from xasync.errors import XasyncError

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
    add_status_parser(sub)
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
        "--season",
        action="store_true",
        help=(
            "NDVI curves over a season instead (April-September 2024, 10-day steps): one "
            "multi-temporal request per field, a PNG of the curves (emulator only)"
        ),
    )
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
            from xasync.cli_demo import cmd_demo

            return cmd_demo(args)
        return cmd_status(args)
    except XasyncError as exc:
        print(f"xasync {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
