"""``python -m xasync.emulator``: run the emulator in the foreground until Ctrl-C or SIGTERM.

It prints the endpoints and the client credentials (the secret included: handing it to the user
is this command's job).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from . import Emulator

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="xasync emulator",
        description="Local Sentinel Hub Async API emulator on 127.0.0.1.",
    )
    p.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    p.add_argument("--s3-port", type=int, default=0, help="S3 port (default: a free one)")
    p.add_argument("--concurrency", type=int, default=2, help="concurrent requests per account")
    p.add_argument("--processing-seconds", type=float, default=0.5, help="RUNNING time")
    p.add_argument("--token-lifetime", type=float, default=3600.0, help="token lifetime, s")
    p.add_argument("--tiff-layout", choices=("tiled", "striped"), default="tiled")
    p.add_argument(
        "--no-clouds", action="store_true", help="clear skies in every scene (default: clouds)"
    )
    p.add_argument("--client-id", default=None, help="client id (default: generated)")
    p.add_argument("--client-secret", default=None, help="client secret (default: generated)")
    p.add_argument("--bucket", action="append", default=[], help="create this bucket (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true", help="log requests being processed")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until interrupted; return the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    from .s3 import S3Server

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    s3 = S3Server(port=args.s3_port).start()
    try:
        emu = Emulator(
            concurrency_limit=args.concurrency,
            processing_seconds=args.processing_seconds,
            token_lifetime=args.token_lifetime,
            tiff_layout=args.tiff_layout,
            clouds=not args.no_clouds,
            client_id=args.client_id,
            client_secret=args.client_secret,
            port=args.port,
            s3=s3,
        )
        with emu:
            buckets = [emu.create_bucket(b) for b in args.bucket]
            lines = [
                f"base_url:        {emu.base_url}",
                f"token_url:       {emu.token_url}",
                f"client_id:       {emu.client_id}",
                f"client_secret:   {emu.client_secret}",
                f"s3_endpoint_url: {emu.s3_endpoint_url}",
                f"s3_key:          {emu.storage_options['key']}",
                f"s3_secret:       {emu.storage_options['secret']}",
                f"gcs_endpoint_url: {emu.gcs.endpoint_url}",
                f"concurrency:     {emu.concurrency_limit}",
                f"processing_s:    {emu.processing_seconds}",
                f"clouds:          {'on' if emu.clouds else 'off'}",
            ]
            lines += [f"bucket:          {b}" for b in buckets]
            sys.stdout.write("\n".join(lines) + "\nPress Ctrl-C to stop.\n")
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    finally:
        s3.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.stdout.write("emulator stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
