"""The logic of ``xasync demo``: NDVI for a few fields, end to end, on the embedded emulator.

The demo starts :class:`xasync.emulator.Emulator` (a local Async API writing into a local S3
server), builds a GeoDataFrame of irregular field polygons straddling the UTM 32N/33N boundary,
runs ``gdf.xasync.process`` with an NDVI evalscript at 10 m in each field's UTM zone, waits with
a progress bar, computes the mean NDVI of every field lazily through the Datasets and draws a
figure of a few fields. With ``real=True`` the same code runs against the real service instead.

The functions here never print; :mod:`xasync.cli` does.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xasync.errors import ConfigError, ValidationError

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

    from xasync.results import Results

logger = logging.getLogger(__name__)

__all__ = ["NDVI_EVALSCRIPT", "DemoResult", "demo_fields", "run_demo"]

#: NDVI from B04 (red) and B08 (near infrared), one FLOAT32 band named ``ndvi``.
NDVI_EVALSCRIPT = """//VERSION=3
function setup() {
  return {
    input: [{bands: ["B04", "B08", "dataMask"]}],
    output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}
  };
}
function evaluatePixel(s) {
  const sum = s.B08 + s.B04;
  return [sum === 0 ? 0 : (s.B08 - s.B04) / sum];
}
"""

#: Environment variables read by ``run_demo(real=True)``.
REAL_ENV = ("SH_CLIENT_ID", "SH_CLIENT_SECRET", "XASYNC_DEMO_DELIVERY")

#: Time range of the demo requests.
DEMO_TIME = ("2024-06-01", "2024-06-30")


@dataclass
class DemoResult:
    """What one demo run produced.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per field: ``field``, ``utm_epsg``, ``request_id``, ``state``, ``estimated_pu``, ``cost_pu``,
        ``reused``, ``mean_ndvi``, ``error``.
    figure : pathlib.Path or None
        The PNG written (``None`` when no field was delivered).
    delivery : str
        The ``s3://`` prefix the results were delivered under.
    seconds : float
        Wall time from submission to the last mean computed.
    stats : dict
        The emulator's counters (empty against the real service).
    """

    table: pd.DataFrame
    figure: Path | None
    delivery: str
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)


def demo_fields(n: int = 20, *, seed: int = 7) -> gpd.GeoDataFrame:
    """Irregular field polygons of 200-600 m in EPSG:4326, on both sides of 12 degrees East.

    Longitude 12 E is the boundary between UTM zones 32N and 33N, so with ``crs="utm"`` the rows
    are requested in two different CRSs.

    Parameters
    ----------
    n : int
        Number of fields (at least 1).
    seed : int
        Seed of the random shapes (the same ``seed`` gives the same fields).

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``field`` (``"field-01"``...) and ``geometry``; the index is the field name.
    """
    import geopandas as gpd
    from shapely.geometry import Polygon

    if not isinstance(n, int) or n < 1:
        raise ValidationError(f"the demo needs at least one field, got {n!r}")
    rng = np.random.default_rng(seed)
    lat0 = 47.85
    m_per_deg_lat = 111_320.0
    m_per_deg_lon = m_per_deg_lat * math.cos(math.radians(lat0))
    polygons, names = [], []
    for i in range(n):
        # alternate sides of the zone boundary, scattered over ~60 x 110 km per side
        side = -1.0 if i % 2 == 0 else 1.0
        cx = 12.0 + side * (0.01 + 0.8 * rng.random())
        cy = lat0 + rng.uniform(-0.5, 0.5)
        size_m = rng.uniform(200.0, 600.0)
        k = int(rng.integers(5, 10))
        angles = np.sort(rng.uniform(0.0, 2 * math.pi, k))
        radii = size_m / 2 * rng.uniform(0.6, 1.0, k)
        xs = cx + radii * np.cos(angles) / m_per_deg_lon
        ys = cy + radii * np.sin(angles) / m_per_deg_lat
        poly = Polygon(zip(xs, ys))
        if not poly.is_valid:  # a star-shaped ring by construction; guard anyway
            poly = poly.convex_hull
        polygons.append(poly)
        names.append(f"field-{i + 1:02d}")
    gdf = gpd.GeoDataFrame({"field": names}, geometry=polygons, crs="EPSG:4326")
    return gdf.set_index(gdf["field"].rename(None))


def _utm_epsg(geom: Any) -> int:
    c = geom.centroid
    zone = int((c.x + 180.0) // 6.0) + 1
    return (32600 if c.y >= 0 else 32700) + zone


def run_demo(
    fields: int = 20,
    *,
    concurrency: int = 4,
    processing_seconds: float = 0.5,
    out: str | os.PathLike[str] = "demo-output",
    progress: bool = True,
    real: bool = False,
    timeout: float = 120.0,
    figure_fields: int = 4,
) -> DemoResult:
    """Run the NDVI demo and return its table and figure.

    Parameters
    ----------
    fields : int
        Number of field polygons (one Async request each).
    concurrency : int
        The emulator's per-account concurrency limit (requests running at once).
    processing_seconds : float
        How long each emulated request stays RUNNING.
    out : path
        Folder for the PNG figure (created if needed).
    progress : bool
        Show a ``tqdm`` progress bar while waiting.
    real : bool
        Use the real service: credentials from ``SH_CLIENT_ID``/``SH_CLIENT_SECRET`` (and
        optionally ``SH_BASE_URL``/``SH_TOKEN_URL``), the delivery prefix from
        ``XASYNC_DEMO_DELIVERY`` (``s3://bucket/prefix``), S3 credentials from the usual AWS
        environment. This costs processing units.
    timeout : float
        Seconds to wait for all deliveries.
    figure_fields : int
        How many fields to draw.

    Returns
    -------
    DemoResult

    Raises
    ------
    xasync.ConfigError
        ``real=True`` and a required environment variable is missing.
    xasync.ValidationError
        Bad arguments.
    """
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValidationError(f"concurrency must be a positive integer, got {concurrency!r}")
    if not processing_seconds >= 0:
        raise ValidationError(f"processing_seconds must be >= 0, got {processing_seconds!r}")
    gdf = demo_fields(fields)
    out_dir = Path(out)
    if real:
        return _run_real(gdf, out_dir, progress=progress, timeout=timeout, nfig=figure_fields)

    from xasync.client import Client
    from xasync.emulator import Emulator

    with Emulator(concurrency_limit=concurrency, processing_seconds=processing_seconds) as emu:
        root = emu.create_bucket("xasync-demo")
        client = Client.from_emulator(emu)
        result = _run(
            gdf,
            client=client,
            delivery=f"{root}/ndvi",
            storage_options=emu.storage_options,
            out_dir=out_dir,
            progress=progress,
            timeout=timeout,
            nfig=figure_fields,
        )
        result.stats = emu.stats
    return result


def _run_real(
    gdf: gpd.GeoDataFrame, out_dir: Path, *, progress: bool, timeout: float, nfig: int
) -> DemoResult:
    missing = [v for v in REAL_ENV if not os.environ.get(v)]
    if missing:
        raise ConfigError(
            "the demo against the real service needs "
            + ", ".join(missing)
            + " in the environment: SH_CLIENT_ID/SH_CLIENT_SECRET of an OAuth client "
            "(Sentinel Hub dashboard, or CDSE with SH_BASE_URL/SH_TOKEN_URL set), and "
            "XASYNC_DEMO_DELIVERY=s3://your-bucket/prefix writable with the AWS credentials "
            "of the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        )
    from xasync.client import Client

    return _run(
        gdf,
        client=Client.from_env(),
        delivery=os.environ["XASYNC_DEMO_DELIVERY"],
        storage_options=None,
        out_dir=out_dir,
        progress=progress,
        timeout=timeout,
        nfig=nfig,
    )


def _run(
    gdf: gpd.GeoDataFrame,
    *,
    client: Any,
    delivery: str,
    storage_options: dict[str, Any] | None,
    out_dir: Path,
    progress: bool,
    timeout: float,
    nfig: int,
) -> DemoResult:
    import time

    import dask

    import xasync  # noqa: F401  (registers the accessor)

    t0 = time.monotonic()
    results = gdf.xasync.process(
        NDVI_EVALSCRIPT,
        data="sentinel-2-l2a",
        time=DEMO_TIME,
        resolution=10,
        crs="utm",
        delivery=delivery,
        storage_options=storage_options,
        client=client,
        mask=True,
    )
    logger.info("demo: %d requests submitted under %s", len(results), delivery)
    results.wait(timeout=timeout, progress=progress)
    status = results.status()
    done = [i for i, state in enumerate(status["state"]) if state == "done"]
    means: dict[int, float] = {}
    if done:
        lazy = [results[i].ndvi.mean(skipna=True) for i in done]
        values = dask.compute(*lazy)
        means = {i: float(v) for i, v in zip(done, values)}
    seconds = time.monotonic() - t0

    table = _table(gdf, status, means)
    figure = _figure(gdf, results, done[:nfig], out_dir) if done else None
    return DemoResult(table=table, figure=figure, delivery=delivery, seconds=seconds)


def _table(gdf: gpd.GeoDataFrame, status: pd.DataFrame, means: dict[int, float]) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for i, (label, geom) in enumerate(zip(gdf.index, gdf.geometry)):
        st = status.iloc[i]
        rows.append(
            {
                "field": label,
                "utm_epsg": _utm_epsg(geom),
                "request_id": st["request_id"],
                "state": st["state"],
                "estimated_pu": st["estimated_pu"],
                "cost_pu": st["cost_pu"],
                "reused": bool(st["reused"]),
                "mean_ndvi": means.get(i, float("nan")),
                "error": st["error"],
            }
        )
    return pd.DataFrame(rows)


def _figure(gdf: gpd.GeoDataFrame, results: Results, rows: list[int], out_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "ndvi-fields.png"
    arrays = [results[i].ndvi.compute() for i in rows]
    finite = np.concatenate([a.values[np.isfinite(a.values)] for a in arrays] or [np.zeros(1)])
    vmin, vmax = (float(v) for v in np.percentile(finite, [2, 98])) if finite.size else (0, 1)
    if vmax <= vmin:
        vmin, vmax = vmin - 0.05, vmax + 0.05
    ncols = min(len(rows), 2)
    nrows = math.ceil(len(rows) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.9 * nrows), squeeze=False)
    flat = list(axes.ravel())
    image = None
    for ax, i, ndvi in zip(flat, rows, arrays):
        crs = ndvi.rio.crs
        x, y = ndvi.x.values, ndvi.y.values
        dx = abs(float(x[1] - x[0])) if x.size > 1 else 10.0
        dy = abs(float(y[1] - y[0])) if y.size > 1 else 10.0
        extent = (x.min() - dx / 2, x.max() + dx / 2, y.min() - dy / 2, y.max() + dy / 2)
        image = ax.imshow(
            ndvi.values, extent=extent, origin="upper", cmap="RdYlGn", vmin=vmin, vmax=vmax
        )
        gdf.iloc[[i]].to_crs(crs).boundary.plot(ax=ax, color="black", linewidth=1.2)
        ax.set_title(
            f"{gdf.index[i]}  EPSG:{crs.to_epsg()}  {x.size}x{y.size} px at {dx:g} m", fontsize=9
        )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal")
    for ax in flat[len(rows) :]:
        ax.set_axis_off()
    if image is not None:
        fig.colorbar(image, ax=flat, shrink=0.8, label="NDVI")
    fig.suptitle("xasync demo: NDVI per field, June 2024 (synthetic emulator scenes)", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    logger.info("demo figure written to %s", path)
    return path
