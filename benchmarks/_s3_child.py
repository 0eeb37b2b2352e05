"""The emulator's S3 server in a process of its own (used by ``benchmarks._emulator_child``).

A real deployment's object store is not the API's process: here moto's S3 (whose listing of
1000 keys costs about 0.35 s of CPU) does not hold the API's GIL. Prints ``s3_endpoint_url:``
and ``control_url:`` lines, then serves until terminated; the control server answers
``GET /stats`` (the S3 server's request counts, JSON) and ``POST /reset`` (``?wipe=1`` also
deletes every bucket).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from xasync.emulator import S3Server


def main() -> None:
    s3 = S3Server().start()

    class Control(BaseHTTPRequestHandler):
        def _answer(self, payload: object) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(s3.stats)

        def do_POST(self) -> None:
            s3.reset(wipe="wipe=1" in self.path)
            self._answer({"reset": True})

        def log_message(self, *args: object) -> None:
            pass

    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print(f"s3_endpoint_url: {s3.endpoint_url}", flush=True)
    print(f"control_url: http://127.0.0.1:{control.server_address[1]}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
