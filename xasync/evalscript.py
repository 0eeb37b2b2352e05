"""What an evalscript outputs: ids, band counts, sample types and dtypes, read from ``setup()``.

The script's ``setup()`` is run for real in a sandboxed QuickJS context (a fresh context per call,
with a time and memory limit). Only the globals evalscripts use in ``setup()`` are predefined
(``SampleType``, ``Mosaicking``); any other free reference fails with a clear error that tells the
user how to declare the outputs by hand.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xasync._contract import (
    DEFAULT_OUTPUT_ID,
    DEFAULT_SAMPLE_TYPE,
    SAMPLE_TYPE_DTYPES,
    USERDATA_IDENTIFIER,
)
from xasync.errors import EvalscriptError, ResponseError

logger = logging.getLogger(__name__)

__all__ = [
    "EvalscriptError",
    "OutputSpec",
    "load_evalscript",
    "parse_outputs",
    "script_and_outputs",
    "script_digest",
]

#: Seconds and bytes a ``setup()`` may use before it is stopped.
SETUP_TIME_LIMIT_S = 2.0
SETUP_MEMORY_LIMIT_BYTES = 64 * 1024 * 1024

_OVERRIDE_HINT = (
    'Declare the outputs yourself, e.g. outputs={"default": {"bands": 3, "sampleType": "FLOAT32"}}'
)

_PRELUDE = """
var SampleType = Object.freeze({AUTO: "AUTO", UINT8: "UINT8", UINT16: "UINT16",
                                INT8: "INT8", INT16: "INT16", FLOAT32: "FLOAT32"});
var Mosaicking = Object.freeze({SIMPLE: "SIMPLE", ORBIT: "ORBIT", TILE: "TILE"});
"""

_EXTRACT = """
(function () {
  if (typeof setup !== "function") { return JSON.stringify({nosetup: true}); }
  var s = setup();
  if (s === null || typeof s !== "object") {
    throw new Error("setup() must return an object, it returned " + String(s));
  }
  var o = s.output;
  if (o === undefined || o === null) { return JSON.stringify({nooutput: true}); }
  var arr = Array.isArray(o) ? o : [o];
  return JSON.stringify({outputs: arr.map(function (x) {
    if (x === null || typeof x !== "object") { return {bad: String(x)}; }
    var nd = x.nodataValue;
    return {id: x.id === undefined ? null : x.id,
            bands: x.bands === undefined ? null : x.bands,
            sampleType: x.sampleType === undefined ? null : x.sampleType,
            hasNodata: nd !== undefined && nd !== null,
            nodata: (typeof nd === "number" && !isFinite(nd)) ? String(nd) : nd};
  })});
})()
"""


@dataclass(frozen=True)
class OutputSpec:
    """One raster output of an evalscript, as the service will write it.

    Attributes
    ----------
    id : str
        The output id (``"default"`` when the script gives none); the response identifier.
    bands : int
        Number of bands.
    sample_type : str
        The evalscript ``sampleType`` (``AUTO``, ``UINT8``, ``UINT16``, ``INT8``, ``INT16``,
        ``FLOAT32``).
    dtype : str
        NumPy dtype name of the delivered GeoTIFF.
    nodata : float or None
        The ``nodataValue`` of the output, if any.

    """

    id: str
    bands: int
    sample_type: str
    dtype: str
    nodata: float | None = None


def _make_output(oid: Any, bands: Any, sample_type: Any, nodata: Any, *, where: str) -> OutputSpec:
    """Validate one output's fields and build its :class:`OutputSpec`."""
    oid = DEFAULT_OUTPUT_ID if oid is None else oid
    if not isinstance(oid, str) or not oid:
        raise EvalscriptError(f"{where}: output id must be a non-empty string, got {oid!r}")
    if isinstance(bands, bool) or not isinstance(bands, (int, float)) or bands != int(bands):
        raise EvalscriptError(
            f"{where}: output {oid!r} needs an integer number of bands, got {bands!r}. "
            + _OVERRIDE_HINT,
        )
    bands = int(bands)
    if bands < 1:
        raise EvalscriptError(f"{where}: output {oid!r} has {bands} bands; at least 1 is needed")
    st = DEFAULT_SAMPLE_TYPE if sample_type is None else sample_type
    if not isinstance(st, str) or st not in SAMPLE_TYPE_DTYPES:
        hint = (
            f" (did you mean {st.upper()!r}?)"
            if isinstance(st, str) and st.upper() in SAMPLE_TYPE_DTYPES
            else ""
        )
        raise EvalscriptError(
            f"{where}: output {oid!r} has unknown sampleType {sample_type!r}{hint}; "
            f"expected one of {', '.join(SAMPLE_TYPE_DTYPES)}"
        )
    nd: float | None
    if nodata is None:
        nd = None
    else:
        try:
            nd = float(nodata)
        except (TypeError, ValueError):
            raise EvalscriptError(
                f"{where}: output {oid!r} has a non-numeric nodataValue {nodata!r}",
            ) from None
    return OutputSpec(id=oid, bands=bands, sample_type=st, dtype=SAMPLE_TYPE_DTYPES[st], nodata=nd)


def _override_to_spec(oid: str, value: Mapping[str, Any] | int) -> OutputSpec:
    where = f"outputs[{oid!r}]"
    if isinstance(value, Mapping):
        unknown = set(value) - {"bands", "sampleType", "sample_type", "nodataValue", "nodata", "id"}
        if unknown:
            raise EvalscriptError(
                f"{where}: unknown keys {sorted(unknown)}; use bands, sampleType, nodataValue",
            )
        return _make_output(
            oid,
            value.get("bands"),
            value.get("sampleType", value.get("sample_type")),
            value.get("nodataValue", value.get("nodata")),
            where=where,
        )
    return _make_output(oid, value, None, None, where=where)


def _run_setup(evalscript: str) -> tuple[OutputSpec, ...]:
    """Run the script's ``setup()`` in a fresh QuickJS context and read its outputs."""
    import quickjs

    ctx = quickjs.Context()
    ctx.set_time_limit(SETUP_TIME_LIMIT_S)
    ctx.set_memory_limit(SETUP_MEMORY_LIMIT_BYTES)
    try:
        ctx.eval(_PRELUDE)
        ctx.eval(evalscript)
        raw = ctx.eval(_EXTRACT)
    except quickjs.JSException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EvalscriptError(
            f"could not evaluate the evalscript's setup() to learn its outputs ({first}). "
            + _OVERRIDE_HINT,
        ) from None
    except (MemoryError, RuntimeError, quickjs.StackOverflow) as exc:
        raise EvalscriptError(
            f"could not evaluate the evalscript's setup() ({type(exc).__name__}: {exc}). "
            + _OVERRIDE_HINT,
        ) from None
    result = json.loads(raw)
    if result.get("nosetup"):
        raise EvalscriptError(
            "the evalscript has no setup() function, so its outputs are unknown "
            "(an Evalscript V3 needs setup() and evaluatePixel()). " + _OVERRIDE_HINT,
        )
    if result.get("nooutput"):
        raise EvalscriptError("the evalscript's setup() returns no 'output'. " + _OVERRIDE_HINT)
    specs = []
    for i, o in enumerate(result["outputs"]):
        if "bad" in o:
            raise EvalscriptError(f"setup().output[{i}] is not an object: {o['bad']}")
        nd = o["nodata"] if o["hasNodata"] else None
        if isinstance(nd, str):
            nd = math.nan if nd == "NaN" else float(nd.replace("Infinity", "inf"))
        specs.append(
            _make_output(o["id"], o["bands"], o["sampleType"], nd, where=f"setup().output[{i}]"),
        )
    return tuple(specs)


def parse_outputs(
    evalscript: str | None,
    overrides: Mapping[str, Mapping[str, Any] | int] | None = None,
    *,
    responses: tuple[str, ...] | list[str] | None = None,
) -> tuple[OutputSpec, ...]:
    """Return the outputs an evalscript's ``setup()`` declares.

    Parameters
    ----------
    evalscript : str or None
        Evalscript V3 source. May be None only if ``overrides`` describes every output.
    overrides : mapping, optional
        ``{output_id: {"bands": int, "sampleType": str, "nodataValue": float} | bands}``.
        Replaces (same id) or adds outputs. When the overrides cover every requested response
        (or ``responses`` is None), the script is not run at all.
    responses : sequence of str, optional
        The response identifiers that will be requested; decides whether the overrides suffice.

    Returns
    -------
    tuple of OutputSpec
        In declaration order (script outputs first, then added overrides).

    Raises
    ------
    EvalscriptError
        No ``setup()``, a ``setup()`` that throws or cannot be evaluated, an unknown sampleType,
        or a malformed output.

    """
    over = {k: _override_to_spec(k, v) for k, v in (overrides or {}).items()}
    if over and (responses is None or all(r in over for r in responses)):
        return tuple(over.values())
    if not isinstance(evalscript, str) or not evalscript.strip():
        raise EvalscriptError("the evalscript is empty. " + _OVERRIDE_HINT)
    parsed = _run_setup(evalscript)
    ids = [o.id for o in parsed]
    if len(set(ids)) != len(ids):
        raise EvalscriptError(f"setup() declares duplicate output ids: {ids}")
    merged = {o.id: over.get(o.id, o) for o in parsed}
    for k, v in over.items():
        merged.setdefault(k, v)
    logger.debug(
        "evalscript outputs: %s",
        [(o.id, o.bands, o.sample_type) for o in merged.values()],
    )
    return tuple(merged.values())


def load_evalscript(url: str, storage_options: dict[str, Any] | None = None) -> str:
    """Read an evalscript stored at ``url`` (``s3://...``), fresh at each call (no cache).

    :func:`xasync.process` reads it once per call: its content is part of the request's
    identity, so an edited script makes a new request instead of reusing stale deliveries.

    Parameters
    ----------
    url : str
        Where the script is stored, e.g. ``s3://bucket/scripts/ndvi.js``.
    storage_options : dict, optional
        fsspec/s3fs options (endpoint, credentials) to read it with.

    Raises
    ------
    EvalscriptError
        The URL is not ``s3://bucket/key`` or the object cannot be read.

    """
    if not isinstance(url, str) or not url.startswith("s3://") or "/" not in url[5:].strip("/"):
        raise EvalscriptError(f"an evalscript reference must be s3://bucket/key, got {url!r}")
    import fsspec

    try:
        with fsspec.open(url, "rb", **(storage_options or {})) as f:
            text = f.read().decode("utf-8")
    except Exception as exc:  # OSError, botocore's own errors (no credentials, endpoint down)
        raise EvalscriptError(
            f"could not read the evalscript at {url} ({type(exc).__name__})",
        ) from None
    logger.debug("loaded evalscript %s (%d chars)", url, len(text))
    return text


def script_digest(text: str) -> str:
    """sha256 hex of a script's text: the part of a request's identity a reference stands for."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def script_and_outputs(
    evalscript: Any,
    outputs: Any,
    responses: Any,
    storage_options: dict[str, Any] | None,
) -> tuple[str | None, str | None, tuple[OutputSpec, ...], tuple[str, ...]]:
    """``(reference URL, its content digest, outputs, requested ids)`` of a call.

    A reference (``s3://...``) is read once with ``storage_options``; its content digest is
    part of the request identity. ``outputs`` overrides win over ``setup()``.
    """
    if not isinstance(evalscript, str) or not evalscript.strip():
        raise EvalscriptError("evalscript must be the script source or an s3:// URL of one")
    ref = evalscript.strip() if evalscript.strip().startswith("s3://") else None
    source = load_evalscript(ref, storage_options) if ref else evalscript
    wanted = tuple(responses) if responses is not None else None
    if wanted is not None and (not wanted or len(set(wanted)) != len(wanted)):
        raise ResponseError(f"responses must be distinct output ids, got {list(wanted)}")
    if outputs and (wanted is None or all(r in outputs for r in wanted)):
        outs = parse_outputs(None, outputs, responses=wanted)
    else:
        outs = parse_outputs(source, outputs, responses=wanted)
    ids = [o.id for o in outs]
    if wanted is None:
        wanted = tuple(ids)
    missing = [r for r in wanted if r not in ids]
    if missing:
        extra = (
            " ('userdata' responses are not supported yet)"
            if USERDATA_IDENTIFIER in missing
            else ""
        )
        raise ResponseError(
            f"responses {missing} are not outputs of the evalscript, whose outputs are {ids}{extra}",
        )
    return ref, script_digest(source) if ref else None, outs, wanted
