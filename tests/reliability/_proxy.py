"""A loopback TCP proxy that a test can switch off and on: an outage of whatever is behind it."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import SimpleNamespace
from urllib.parse import urlsplit

import xasync

from ._helpers import NDVI, RES, TIME, fresh_root


class Proxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream``; :meth:`down` resets every connection."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.is_down = threading.Event()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name="test-proxy").start()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def down(self) -> None:
        """Every open connection is reset and new ones are closed at once."""
        self.is_down.set()
        with self.lock:
            conns, self.conns = self.conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()

    def up(self) -> None:
        self.is_down.clear()

    def close(self) -> None:
        self.closed = True
        self.down()
        with contextlib.suppress(OSError):
            self.server.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.is_down.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or self.is_down.is_set():
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()


class Cutoff:
    """The emulator's API and S3 behind two :class:`Proxy`, a client and storage options
    that go through them, and a fresh root: an outage of both is :meth:`down`."""

    def __init__(self, emu, tag: str, concurrency: int = 1) -> None:
        api_addr, s3_addr = urlsplit(emu.base_url), urlsplit(emu.s3_endpoint_url)
        self.api = Proxy(api_addr.hostname, api_addr.port)
        self.s3 = Proxy(s3_addr.hostname, s3_addr.port)
        shape = SimpleNamespace(
            base_url=self.api.url(),
            token_url=f"{self.api.url()}{urlsplit(emu.token_url).path}",
            client_id=emu.client_id,
            client_secret=emu.client_secret,
            concurrency_limit=concurrency,
        )
        self.client = xasync.Client.from_emulator(shape, max_retries=1, backoff_base=0.05)
        storage = dict(emu.storage_options)
        storage["client_kwargs"] = {
            **storage.get("client_kwargs", {}),
            "endpoint_url": self.s3.url(),
        }
        storage["config_kwargs"] = {"retries": {"max_attempts": 1}, "connect_timeout": 2}
        self.storage = storage
        self.root = fresh_root(emu, tag)

    def process(self, gdf, prefix: str = "o", **kw):
        """NDVI of ``gdf`` under ``<root>/<prefix>`` through the proxies; a job stops after two
        failed attempts (``outage_attempts=2``) unless ``kw`` says otherwise."""
        kw.setdefault("options", xasync.SubmitOptions(outage_attempts=2, ambiguous_grace=0.1))
        return gdf.xasync.process(
            NDVI,
            time=TIME,
            resolution=RES,
            delivery=f"{self.root}/{prefix}",
            storage_options=self.storage,
            client=self.client,
            **kw,
        )

    def down(self) -> None:
        self.api.down()
        self.s3.down()

    def up(self) -> None:
        self.api.up()
        self.s3.up()

    def close(self) -> None:
        self.up()
        self.client.close()
        self.api.close()
        self.s3.close()
