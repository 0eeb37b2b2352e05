"""``xasync demo --season``: NDVI curves of the demo fields over a season, one request per field.

Each field is bought as one multi-temporal request (``freq="10D"``, ``temporal="orbit"``,
``reducer="median"``): the emulator runs the NDVI evalscript on every scene of its calendar and
reduces each 10-day interval. The emulator's scenes have clouds (``docs/emulator.md``), so the
evalscript masks them with ``CLM`` (a cloudy sample is NaN, which the reducer skips). The mean NDVI of each field and interval is computed lazily and
drawn as one curve per field. The functions here never print; :mod:`xasync.cli` does.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from xasync.demo import DemoResult, demo_fields
from xasync.errors import ValidationError

logger = logging.getLogger(__name__)

__all__ = ["SEASON", "SEASON_EVALSCRIPT", "SEASON_FREQ", "run_season"]

#: NDVI of the clear samples: cloudy ones (``CLM`` 1) are NaN, so the reducer skips them.
SEASON_EVALSCRIPT = """//VERSION=3
function setup() {
  return {
    input: [{bands: ["B04", "B08", "CLM", "dataMask"]}],
    output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}
  };
}
function evaluatePixel(s) {
  const sum = s.B08 + s.B04;
  if (s.CLM === 1 || sum === 0) return [NaN];
  return [(s.B08 - s.B04) / sum];
}
"""

#: The season of the demo and its time step.
SEASON = ("2024-04-01", "2024-09-30")
SEASON_FREQ = "10D"


def run_season(
    fields: int = 8,
    *,
    concurrency: int = 4,
    processing_seconds: float = 0.5,
    out: str | os.PathLike[str] = "demo-output",
    progress: bool = True,
    timeout: float = 300.0,
) -> DemoResult:
    """Run the season demo on the embedded emulator.

    Parameters
    ----------
    fields : int
        Number of field polygons (one multi-temporal request each).
    concurrency, processing_seconds
        The emulator's concurrency limit and RUNNING time per request.
    out : path
        Folder for the PNG figure.
    progress : bool
        Show a progress bar while waiting.
    timeout : float
        Seconds to wait for all deliveries.

    Returns
    -------
    DemoResult
        ``table``: one row per field with ``field``, ``request_id``, ``state``, ``cost_pu``,
        ``peak`` (the interval of highest mean NDVI), ``peak_ndvi``, ``scenes``, ``error``;
        ``figure``: the PNG of the curves.

    """
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValidationError(f"concurrency must be a positive integer, got {concurrency!r}")
    from xasync.client import Client
    from xasync.emulator import Emulator

    gdf = demo_fields(fields)
    with Emulator(concurrency_limit=concurrency, processing_seconds=processing_seconds) as emu:
        root = emu.create_bucket("xasync-demo-season")
        client = Client.from_emulator(emu)
        result = _run(gdf, client, f"{root}/season", emu.storage_options, progress, timeout)
        result.figure = _figure(result.table.attrs.pop("curves"), Path(out))
        result.stats = emu.stats
    return result


def _run(
    gdf: Any, client: Any, delivery: str, storage_options: Any, progress: bool, timeout: float
) -> DemoResult:
    import dask
    import pandas as pd

    import xasync  # noqa: F401  (registers the accessor)

    t0 = time.monotonic()
    results = gdf.xasync.process(
        SEASON_EVALSCRIPT,
        time=SEASON,
        freq=SEASON_FREQ,
        resolution=10,
        crs="utm",
        delivery=delivery,
        storage_options=storage_options,
        client=client,
        mask=True,
    )
    results.wait(timeout=timeout, progress=progress)
    status = results.status()
    done = [i for i, state in enumerate(status["state"]) if state == "done"]
    lazy = [(results[i].ndvi.mean(("y", "x")), results[i].scenes) for i in done]
    computed = dict(zip(done, dask.compute(*lazy)))
    rows, curves = [], {}
    for i, label in enumerate(gdf.index):
        st = status.iloc[i]
        row = {"field": label, "request_id": st["request_id"], "state": st["state"]}
        row.update(cost_pu=st["cost_pu"], peak=pd.NaT, peak_ndvi=np.nan, scenes=0)
        if i in computed:
            curve, scenes = computed[i]
            curves[label] = curve
            if np.isfinite(curve.values).any():
                k = int(np.nanargmax(curve.values))
                row.update(peak=pd.Timestamp(curve.time.values[k]), peak_ndvi=float(curve[k]))
            row["scenes"] = int(scenes.values.clip(min=0).sum())
        row["error"] = st["error"]
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["curves"] = curves
    return DemoResult(table=table, figure=None, delivery=delivery, seconds=time.monotonic() - t0)


def _figure(curves: dict[Any, Any], out_dir: Path) -> Path | None:
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "ndvi-season.png"
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for label, curve in curves.items():
        ax.plot(curve.time.values, curve.values, marker="o", markersize=3, label=str(label))
    ax.set_ylabel("mean NDVI (10-day median, clear scenes)")
    ax.set_title("xasync demo --season: one multi-temporal request per field (emulator)")
    ax.grid(alpha=0.3)
    if len(curves) <= 10:
        ax.legend(fontsize=7, ncol=2)
    fig.autofmt_xdate()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    logger.info("season figure written to %s", path)
    return path
