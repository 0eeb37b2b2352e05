"""Processing of one accepted request: evalscript over the synthetic scene, GeoTIFFs, cost.

Order of events for a request (spec sections 2, 7, 11):

1. (at create, in ``app.py``) the request copy is written, status ``RUNNING``;
2. the evalscript runs at once; outputs are rendered into temporary files (invisible);
3. RUNNING for ``processing_seconds`` (+ jitter), and for as long as the gate holds it
   (``Emulator.hold``); meanwhile the request folder holds only the request copy;
4. outputs uploaded to ``<url>/<REQUEST_ID>/<identifier>.tif`` (or the ``<REQUEST_ID>``/
   ``<OUTPUT>`` template), the request copy updated with the cost; on failure ``error.json``
   ``{"message": ...}`` instead;
5. only then the request is finished (status answers 404), unless ``visibility_delay`` is set:
   then the status turns 404 first and the uploads follow that many seconds later.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from xasync import _contract as C

from .catalog import unknown_bands
from .cost import CostFactors, cost_factors
from .gate import Gate
from .jsrun import EvalscriptError, EvalscriptRunner, Setup
from .scenes import SceneBlock
from .state import RecordFinisher
from .temporal import ScenePlan, output_metadata, plan_scenes
from .validate import ParsedRequest

logger = logging.getLogger(__name__)

#: Field of the request copy holding the factors of the cost (the emulator's own addition).
COST_FACTORS_FIELD = "emulatorCostFactors"
#: Pixels per call into the JS engine.
BLOCK_PIXELS = 65_536
TILE = 512


class ProcessingError(Exception):
    """A request that fails after acceptance (its message goes to error.json)."""


@dataclass
class Job:
    """Everything the background worker needs for one request."""

    request_id: str
    parsed: ParsedRequest
    script: str
    copy: dict
    hold_seconds: float  # minimum RUNNING time: the status turns 404 no earlier than this
    inject_failure: bool
    visibility_delay: float
    tiff_layout: str
    s3_client: Any  # boto3 client with the delivery credentials (a GCSWriter for gs://)
    due: float = 0.0  # monotonic time at which hold_seconds is over (set by the runtime)
    clouds: bool = True  # Emulator.configure(clouds=False): every scene clear


def object_key(parsed: ParsedRequest, request_id: str, output: str) -> str:
    """Key (in the delivery bucket) of file ``output`` of request ``request_id``."""
    template = parsed.delivery.key
    if C.REQUEST_ID_PLACEHOLDER not in template and C.OUTPUT_PLACEHOLDER not in template:
        template = (
            f"{template}/{C.DEFAULT_URL_TEMPLATE_SUFFIX}"
            if template
            else (C.DEFAULT_URL_TEMPLATE_SUFFIX)
        )
    elif C.OUTPUT_PLACEHOLDER not in template:
        template = f"{template}/{C.OUTPUT_PLACEHOLDER}"
    key = template.replace(C.REQUEST_ID_PLACEHOLDER, request_id)
    return key.replace(C.OUTPUT_PLACEHOLDER, output).lstrip("/")


def check_setup(setup: Setup, parsed: ParsedRequest) -> None:
    """What the service finds wrong once ``setup()`` ran: bands the collection does not have.

    Checked for a single input collection of :data:`catalog.BANDS` (data fusion: not checked).
    """
    if len(parsed.data_types) != 1:
        return
    dtype = parsed.data_types[0]
    unknown = unknown_bands(dtype, [name for name, _ in setup.inputs])
    if unknown:
        raise ProcessingError(
            f"setup().input: band(s) {', '.join(unknown)} not available in collection {dtype} "
            f"(input.data[0].type)",
        )


def compute_cost(setup: Setup, parsed: ParsedRequest, samples: int = 1) -> CostFactors:
    """The cost factors of a request (published PU rules, :mod:`.cost`)."""
    tiff_ids = {ident for ident, ftype in parsed.responses if ftype == "image/tiff"}
    return cost_factors(
        parsed.width,
        parsed.height,
        [name for name, _ in setup.inputs],
        float32_tiff=any(o.sample_type == "FLOAT32" for o in setup.outputs if o.id in tiff_ids),
        samples=samples,  # scenes for ORBIT/TILE, 1 for SIMPLE
        data=parsed.data,
    )


def convert(values: np.ndarray, sample_type: str) -> np.ndarray:
    """Evalscript values (float64) -> the written dtype (spec section 8)."""
    dtype = np.dtype(C.SAMPLE_TYPE_DTYPES[sample_type])
    if sample_type == "FLOAT32":
        return values.astype(np.float32)
    v = np.nan_to_num(values, nan=0.0, posinf=np.inf, neginf=-np.inf)
    if sample_type == "AUTO":
        v = np.clip(v, 0.0, 1.0) * 255.0
    info = np.iinfo(dtype)
    return np.clip(np.floor(v + 0.5), info.min, info.max).astype(dtype)


def _profile(
    parsed: ParsedRequest,
    bands: int,
    sample_type: str,
    nodata: float | None,
    layout: str,
) -> dict:
    from rasterio.crs import CRS
    from rasterio.transform import Affine

    minx, miny, maxx, maxy = parsed.bbox
    w, h = parsed.width, parsed.height
    profile = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": bands,
        "dtype": C.SAMPLE_TYPE_DTYPES[sample_type],
        "crs": CRS.from_epsg(parsed.epsg),
        "transform": Affine((maxx - minx) / w, 0, minx, 0, -(maxy - miny) / h, maxy),
    }
    if nodata is not None:
        profile["nodata"] = nodata
    if layout == "tiled":
        profile.update(tiled=True, blockxsize=TILE, blockysize=TILE, compress="deflate")
    else:
        profile.update(tiled=False, compress="none")
    return profile


def _block_inputs(
    block: SceneBlock, setup: Setup, plan: ScenePlan, npix: int
) -> dict[str, np.ndarray]:
    """Band -> ``(scenes, npix)`` values of a block (one all-no-data sample if no scene)."""
    if not plan.scenes:  # SIMPLE: one all-no-data sample; ORBIT/TILE: no sample at all
        return {name: np.zeros((0 if plan.multi else 1, npix)) for name, _ in setup.inputs}
    return {
        name: np.stack([block.band(name, sc.date, units, sc.cloudy) for sc in plan.scenes]).reshape(
            -1, npix
        )
        for name, units in setup.inputs
    }


def _check_responses(parsed: ParsedRequest, decls: dict) -> None:
    for ident, ftype in parsed.responses:
        if ident == C.USERDATA_IDENTIFIER:
            continue
        if ident not in decls:
            raise ProcessingError(
                f"Output {ident} requested but missing from evalscript (setup() declares "
                f"{', '.join(sorted(decls))})",
            )
        if ftype != "image/tiff":
            raise ProcessingError(f"Output {ident}: the emulator writes only image/tiff")


def render(
    job: Job,
    runner: EvalscriptRunner,
    workdir: str,
    plan: ScenePlan,
    stop: threading.Event | None = None,
) -> dict[str, str]:
    """Render every requested output to ``workdir``; return identifier -> file path."""
    import rasterio

    parsed, setup = job.parsed, runner.setup
    decls = {o.id: o for o in runner.outputs}
    _check_responses(parsed, decls)
    w, h = parsed.width, parsed.height
    rows_per_block = max(1, min(h, BLOCK_PIXELS // max(1, len(plan.scenes)) // w))
    paths: dict[str, str] = {}
    dsts = {}
    try:
        for ident, _ in parsed.responses:
            if ident == C.USERDATA_IDENTIFIER:
                continue
            d = decls[ident]
            paths[ident] = os.path.join(workdir, f"{ident}.tif")
            profile = _profile(parsed, d.bands, d.sample_type, d.nodata, job.tiff_layout)
            dsts[ident] = rasterio.open(paths[ident], "w", **profile)
        for row0 in range(0, h, rows_per_block):
            if stop is not None and stop.is_set():
                raise ProcessingError("Emulator stopped while processing")
            nrows = min(rows_per_block, h - row0)
            block = SceneBlock(parsed.bbox, w, h, parsed.epsg, row0, nrows, parsed.geometry)
            results = runner.evaluate(_block_inputs(block, setup, plan, nrows * w), nrows * w)
            window = rasterio.windows.Window(0, row0, w, nrows)
            for ident, dst in dsts.items():
                data = convert(results[ident], decls[ident].sample_type)
                dst.write(data.reshape(-1, nrows, w), window=window)
    finally:
        for dst in dsts.values():
            dst.close()
    user_data = output_metadata(runner)
    if any(ident == C.USERDATA_IDENTIFIER for ident, _ in parsed.responses):
        paths[C.USERDATA_IDENTIFIER] = os.path.join(workdir, "userdata.json")
        with open(paths[C.USERDATA_IDENTIFIER], "w") as fh:
            json.dump(user_data, fh)
    return paths


def _put_json(job: Job, name: str, payload: dict) -> None:
    key = object_key(job.parsed, job.request_id, name)
    job.s3_client.put_object(
        Bucket=job.parsed.delivery.bucket,
        Key=key,
        Body=json.dumps(payload, indent=1).encode(),
        ContentType="application/json",
    )


def write_request_copy(job: Job) -> None:
    """(Re)write the request copy (credentials were redacted by the caller)."""
    _put_json(job, C.REQUEST_COPY_FILE, job.copy)


def _process(
    job: Job, workdir: str, stop: threading.Event
) -> tuple[str | None, CostFactors | None, dict]:
    """Run the evalscript and render the outputs to ``workdir`` (nothing is delivered yet)."""
    error, cost, paths = None, None, {}
    try:
        runner = EvalscriptRunner(job.script, job.request_id)
        check_setup(runner.setup, job.parsed)
        plan = plan_scenes(runner, job.parsed, job.clouds)
        cost = compute_cost(runner.setup, job.parsed, plan.samples)
        paths = render(job, runner, workdir, plan, stop)
        if job.inject_failure:
            raise ProcessingError("Injected failure (emulator failure_rate)")
    except (EvalscriptError, ProcessingError) as exc:
        error = str(exc)
    except Exception as exc:
        logger.exception("request %s: unexpected processing error", job.request_id)
        error = f"Processing failed: {type(exc).__name__}: {exc}"
    return error, cost, paths


def _write_results(
    job: Job, paths: dict, cost: CostFactors | None, error: str | None
) -> str | None:
    """Deliver the outputs (or error.json) and update the request copy; return the error."""
    try:
        if error is None:
            _deliver(job, paths, cost)
        else:
            job.copy.update(status="FAILED", error=error)
            _put_json(job, C.ERROR_FILE, {"message": error})
            write_request_copy(job)
    except Exception as exc:
        logger.warning("request %s: delivery failed: %s", job.request_id, exc)
        dest = job.parsed.delivery
        error = f"Delivery to {dest.scheme}://{dest.bucket} failed: {exc}"
        try:
            _put_json(job, C.ERROR_FILE, {"message": error})
        except Exception as exc2:
            logger.warning("request %s: cannot write error.json: %s", job.request_id, exc2)
    return error


def run_job(job: Job, finisher: RecordFinisher, stop: threading.Event, gate: Gate) -> None:
    """Run one request to the end; never raises (failures go to error.json and the log).

    The work is done at once into temporary files; the request then stays RUNNING until its
    processing time is over and ``gate`` lets it go; only then are the outputs (or error.json)
    written and the request copy updated, right before the status turns 404.
    """
    t_start = time.monotonic()
    if stop.is_set() or not finisher.current():
        return
    workdir = tempfile.mkdtemp(prefix="xasync-emu-")
    try:
        error, factors, paths = _process(job, workdir, stop)
        cost = factors.total() if factors is not None else None
        _hold(job, stop)
        if not gate.wait(job.request_id, stop) or not finisher.current():
            return
        if error is None and job.visibility_delay > 0:
            finisher.finish(ok=True, cost=cost)
            if stop.wait(job.visibility_delay) or not finisher.current():
                return
        error = _write_results(job, paths, factors, error)
        finisher.finish(ok=error is None, cost=cost if error is None else None)
        logger.info(
            "request %s finished in %.2f s (%s)",
            job.request_id,
            time.monotonic() - t_start,
            "ok" if error is None else "failed",
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _hold(job: Job, stop: threading.Event) -> None:
    """Keep the request RUNNING until its processing time is over (work done early waits)."""
    remaining = job.due - time.monotonic()
    if remaining > 0:
        stop.wait(remaining)


#: Outputs up to this size are sent with one plain PUT (much less CPU than boto3's transfer
#: manager, which then only serves larger files).
SINGLE_PUT_BYTES = 16 * 1024 * 1024


def _deliver(job: Job, paths: dict[str, str], factors: CostFactors | None) -> None:
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_threshold=64 * 1024 * 1024, use_threads=False)
    for ident, path in paths.items():
        ftype = "application/json" if ident == C.USERDATA_IDENTIFIER else "image/tiff"
        key = object_key(job.parsed, job.request_id, f"{ident}.{C.FORMAT_EXTENSIONS[ftype]}")
        bucket = job.parsed.delivery.bucket
        if os.path.getsize(path) <= SINGLE_PUT_BYTES:
            with open(path, "rb") as fh:
                job.s3_client.put_object(Bucket=bucket, Key=key, Body=fh.read(), ContentType=ftype)
        else:
            job.s3_client.upload_file(path, bucket, key, Config=config)
    job.copy["status"] = "DONE"
    if factors is not None:
        job.copy[C.REQUEST_COPY_COST_FIELD] = factors.total()
        job.copy[COST_FACTORS_FIELD] = factors.as_dict()
    write_request_copy(job)


__all__ = [
    "Job",
    "ProcessingError",
    "compute_cost",
    "convert",
    "object_key",
    "run_job",
    "write_request_copy",
]
