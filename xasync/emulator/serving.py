"""Serve a WSGI app on 127.0.0.1 from a daemon thread (the API and the S3 server both do)."""

from __future__ import annotations

import logging
import threading
from typing import Any


def serve(app: Any, port: int, name: str, **options: Any) -> tuple[Any, threading.Thread]:
    """Start a threaded werkzeug server for ``app`` on ``127.0.0.1:port`` (0: a free port)."""
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", port, app, threaded=True, **options)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return server, thread


def shutdown(server: Any, thread: threading.Thread | None) -> None:
    """Stop serving, release the port and join the thread."""
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(timeout=10)
