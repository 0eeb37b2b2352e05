"""Shared pieces of the benchmarks: an emulator in its own process, fields, evalscripts."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import geopandas as gpd
import httpx
from shapely.geometry import box

NDVI = """//VERSION=3
function setup() {
  return {input: ["B04", "B08"], output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04)]; }
"""
TIME = ("2024-06-01", "2024-06-30")


@dataclass
class EmulatorProcess:
    """The endpoints of an emulator running in a child process (its own GIL, as a service is)."""

    base_url: str
    token_url: str
    client_id: str
    client_secret: str
    s3_endpoint_url: str
    s3_key: str
    s3_secret: str

    @property
    def storage_options(self) -> dict:
        return {
            "key": self.s3_key,
            "secret": self.s3_secret,
            "client_kwargs": {"endpoint_url": self.s3_endpoint_url, "region_name": "us-east-1"},
        }

    def stats(self) -> dict:
        return httpx.get(f"{self.base_url}/emulator/stats", timeout=30).json()

    def calls(self) -> list[dict]:
        """The emulator's handler times of the recent create and status calls."""
        return httpx.get(f"{self.base_url}/emulator/calls", timeout=60).json()

    def client(self, concurrency: int | None):
        import xasync

        return xasync.Client(
            base_url=self.base_url,
            token_url=self.token_url,
            client_id=self.client_id,
            client_secret=self.client_secret,
            concurrency=concurrency,
        )


@contextlib.contextmanager
def emulator_process(
    concurrency: int,
    processing_seconds: float,
    bucket: str = "bench",
    jitter: float = 0.0,
    profile: str | None = None,
    s3_in_process: bool = False,
) -> Iterator[EmulatorProcess]:
    """Start an emulator in a child process and yield its endpoints; stop it afterwards.

    ``jitter``: extra RUNNING time per request, uniform in ``[0, jitter]`` seconds.
    ``profile``: a file where the child writes a CPU profile of all its threads (yappi) when
    it is stopped. The S3 server runs in a process of its own unless ``s3_in_process``.
    """
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks._emulator_child",
            "--concurrency",
            str(concurrency),
            "--processing-seconds",
            str(processing_seconds),
            "--jitter",
            str(jitter),
            "--bucket",
            bucket,
            *(["--profile", profile] if profile else []),
            *(["--s3-in-process"] if s3_in_process else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    info: dict[str, str] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Press"):
                break
            key, _, value = line.partition(":")
            info[key.strip()] = value.strip()
        yield EmulatorProcess(
            base_url=info["base_url"],
            token_url=info["token_url"],
            client_id=info["client_id"],
            client_secret=info["client_secret"],
            s3_endpoint_url=info["s3_endpoint_url"],
            s3_key=info["s3_key"],
            s3_secret=info["s3_secret"],
        )
    finally:
        proc.terminate()
        proc.wait(300 if profile else 30)


def fields(n: int, *, lon0: float = 14.0, lat0: float = 46.0, side: float = 0.0005):
    """``n`` small square fields on a regular lattice (EPSG:4326)."""
    geoms = [
        box(
            lon0 + 0.001 * (i % 200),
            lat0 + 0.001 * (i // 200),
            lon0 + 0.001 * (i % 200) + side,
            lat0 + 0.001 * (i // 200) + side,
        )
        for i in range(n)
    ]
    return gpd.GeoDataFrame({"field": range(n)}, geometry=geoms, crs=4326)


def machine() -> str:
    """One line describing where the figures were measured."""
    import psutil

    mem = psutil.virtual_memory().total / 2**30
    return (
        f"{platform.node() or 'host'}: {os.cpu_count()} cores, {mem:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.machine()}"
    )
