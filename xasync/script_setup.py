"""What an evalscript's ``setup()`` declares, learnt locally: input bands and mosaicking.

The cost rules (:mod:`xasync.cost`) count the input bands and the samples of a request; both
come from the script's ``setup()``, which runs here in QuickJS with the limits and globals of
:mod:`xasync.evalscript`. Nothing is sent anywhere; only an ``s3://`` evalscript reference is
read from its bucket (:func:`script_of`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from xasync.cost import input_band_names
from xasync.evalscript import (
    _PRELUDE,  # the globals setup() may use, shared with the output parser
    SETUP_MEMORY_LIMIT_BYTES,
    SETUP_TIME_LIMIT_S,
    EvalscriptError,
    load_evalscript,
)

if TYPE_CHECKING:
    from xasync.request import RequestSpec

__all__ = ["script_of", "setup_inputs"]

_INPUTS_JS = """
(function () {
  var s = setup();
  if (s === null || typeof s !== "object") { throw new Error("setup() returned no object"); }
  return JSON.stringify({input: s.input === undefined ? null : s.input,
                         mosaicking: s.mosaicking === undefined ? null : s.mosaicking});
})()
"""

_INPUT_HINT = "pass input_bands=<number of input bands> to estimate without running setup()"


def setup_inputs(evalscript: str) -> tuple[tuple[str, ...], str]:
    """``(input band names, mosaicking)`` of a script, from its ``setup()`` run in QuickJS.

    Parameters
    ----------
    evalscript : str
        The script's source.

    Returns
    -------
    tuple
        The input band names (as :func:`xasync.cost.input_band_names` reads them) and the
        mosaicking in upper case (``"SIMPLE"`` when ``setup()`` names none).

    Raises
    ------
    xasync.evalscript.EvalscriptError
        ``setup()`` cannot run here, or declares no input bands (the message says how to give
        ``input_bands=`` instead). Results and failures are cached per script.
    """
    found = _run_setup_inputs(evalscript)
    if isinstance(found, str):
        raise EvalscriptError(f"{found}; {_INPUT_HINT}")
    return found


@functools.lru_cache(maxsize=32)
def _run_setup_inputs(evalscript: str) -> tuple[tuple[str, ...], str] | str:
    """The result of :func:`setup_inputs`, or why it failed (failures are cached too)."""
    import quickjs

    ctx = quickjs.Context()
    ctx.set_time_limit(SETUP_TIME_LIMIT_S)
    ctx.set_memory_limit(SETUP_MEMORY_LIMIT_BYTES)
    try:
        ctx.eval(_PRELUDE)
        ctx.eval(evalscript)
        raw = json.loads(ctx.eval(_INPUTS_JS))
    except (quickjs.JSException, MemoryError, RuntimeError, quickjs.StackOverflow) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"could not run the evalscript's setup() to learn its input bands ({first})"
    try:
        names = input_band_names(raw["input"])
    except ValueError as exc:
        return str(exc)
    if not names:
        return "the evalscript's setup() declares no input bands"
    return names, str(raw["mosaicking"] or "SIMPLE").upper()


def script_of(spec: RequestSpec, storage_options: Mapping[str, Any] | None) -> str:
    """The evalscript of ``spec``: its text, or the referenced ``s3://`` object read once.

    Parameters
    ----------
    spec : RequestSpec
        A built request.
    storage_options : mapping, optional
        fsspec options to read an evalscript reference.

    Returns
    -------
    str
        The script's source.
    """
    if spec.evalscript_ref is not None:
        return load_evalscript(spec.evalscript_ref, dict(storage_options or {}) or None)
    return spec.evalscript or ""
