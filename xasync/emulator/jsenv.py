"""The globals the service defines for Evalscript V3, and its version line.

Sources: the Evalscript V3 page (https://docs.sentinel-hub.com/api/latest/evalscript/v3/:
``//VERSION=3`` first, ``SampleType``/``Mosaicking`` values of ``setup()``) and the utility
functions page (https://docs.sentinel-hub.com/api/latest/evalscript/functions/: visualizers,
``colorBlend``, ``valueInterpolate``, ``index``). The service runs evalscripts in V8, where
``console`` exists; its output is not returned to the user, so here it goes to the emulator's
``logging`` (logger ``xasync.emulator.evalscript``), never to stdout: the first
:data:`MAX_CONSOLE_MESSAGES` messages of a request, after each call into the engine.

Defined here: ``SampleType`` (AUTO, UINT8, UINT16, INT8, INT16, FLOAT32), ``Mosaicking``
(SIMPLE, ORBIT, TILE), ``console`` (log, info, debug, warn, error), ``index(x, y)``,
``colorBlend(value, stops, colors)``, ``valueInterpolate(value, stops, values)``,
``ColorMapVisualizer`` (with ``createDefaultColorMap()``), ``ColorRampVisualizer``,
``ColorGradientVisualizer`` (same behaviour as the ramp). Not modelled: the other visualizers
(``HighlightCompressVisualizer``...), ``combine``, ``toDecibels`` and the like.
"""

from __future__ import annotations

import logging
import re
from typing import Any

script_logger = logging.getLogger("xasync.emulator.evalscript")

#: Messages of ``console.*`` one request may log; later ones are counted, not logged.
MAX_CONSOLE_MESSAGES = 100

_VERSION = re.compile(r"^\s*//\s*VERSION\s*=\s*(\S+)")

ENV_JS = r"""
(function () {
globalThis.SampleType = Object.freeze({AUTO: 'AUTO', UINT8: 'UINT8', UINT16: 'UINT16',
  INT8: 'INT8', INT16: 'INT16', FLOAT32: 'FLOAT32'});
globalThis.Mosaicking = Object.freeze({SIMPLE: 'SIMPLE', ORBIT: 'ORBIT', TILE: 'TILE'});
let __xa_console_n = 0;
const __xa_console_buf = [];
globalThis.__xa_console_drain = function () {
  const out = JSON.stringify({n: __xa_console_n, messages: __xa_console_buf});
  __xa_console_buf.length = 0;
  return out;
};
function __xa_fmt(args) {
  return Array.prototype.map.call(args, a => {
    if (typeof a === 'string') return a;
    try { const s = JSON.stringify(a); return s === undefined ? String(a) : s; }
    catch (e) { return String(a); }
  }).join(' ');
}
function __xa_log(level, args) {
  __xa_console_n++;
  if (__xa_console_n <= __XA_MAX_CONSOLE) __xa_console_buf.push([level, __xa_fmt(args)]);
}
globalThis.console = Object.freeze({
  log: function () { __xa_log('info', arguments); },
  info: function () { __xa_log('info', arguments); },
  debug: function () { __xa_log('debug', arguments); },
  warn: function () { __xa_log('warning', arguments); },
  error: function () { __xa_log('error', arguments); },
});
globalThis.index = function (x, y) { return (x - y) / (x + y); }
function __xa_rgb(c) {
  if (Array.isArray(c)) return c.slice();
  return [((c >> 16) & 255) / 255, ((c >> 8) & 255) / 255, (c & 255) / 255];
}
function __xa_lerp(value, stops, outs) {
  const n = stops.length;
  if (value <= stops[0]) return outs[0];
  if (value >= stops[n - 1]) return outs[n - 1];
  for (let i = 1; i < n; i++) {
    if (value <= stops[i]) {
      const t = (value - stops[i - 1]) / (stops[i] - stops[i - 1]);
      const a = outs[i - 1], b = outs[i];
      if (Array.isArray(a)) return a.map((v, k) => v + (b[k] - v) * t);
      return a + (b - a) * t;
    }
  }
  return outs[n - 1];
}
globalThis.colorBlend = function (value, stops, colors) { return __xa_lerp(value, stops, colors); };
globalThis.valueInterpolate = function (value, stops, values) {
  return __xa_lerp(value, stops, values);
};
globalThis.ColorMapVisualizer = class ColorMapVisualizer {
  constructor(valColPairs) {
    this.stops = valColPairs.map(p => p[0]);
    this.colors = valColPairs.map(p => __xa_rgb(p[1]));
  }
  process(val) {
    let c = this.colors[0];
    for (let i = 0; i < this.stops.length; i++) if (val >= this.stops[i]) c = this.colors[i];
    return c.slice();
  }
  static createDefaultColorMap() {
    return new ColorMapVisualizer([[-1.0, 0x000000], [-0.2, 0xff0000], [-0.1, 0x9a0000],
      [0.0, 0x660000], [0.1, 0xffff33], [0.2, 0xcccc33], [0.3, 0x666600], [0.4, 0x33ffff],
      [0.5, 0x33cccc], [0.6, 0x006666], [0.7, 0x33ff33], [0.8, 0x33cc33], [0.9, 0x006600]]);
  }
}
globalThis.ColorRampVisualizer = class ColorRampVisualizer {
  constructor(ramps, minVal, maxVal) {
    let stops = ramps.map(p => p[0]);
    if (minVal !== undefined && maxVal !== undefined && stops.length > 1) {
      const lo = stops[0], hi = stops[stops.length - 1];
      stops = stops.map(s => minVal + (s - lo) * (maxVal - minVal) / (hi - lo));
    }
    this.stops = stops;
    this.colors = ramps.map(p => __xa_rgb(p[1]));
  }
  process(val) { return __xa_lerp(val, this.stops, this.colors); }
}
globalThis.ColorGradientVisualizer = class extends globalThis.ColorRampVisualizer {};
})();
"""


def script_version(script: str) -> str | None:
    """The version of the first non-blank line ``//VERSION=N``, or ``None`` without one."""
    for line in script.splitlines():
        if line.strip():
            match = _VERSION.match(line)
            return match.group(1) if match else None
    return None


def version_error(script: str) -> str | None:
    """Why the emulator cannot run ``script`` as the service would, or ``None``."""
    version = script_version(script)
    if version == "3":
        return None
    if version is None:
        return (
            "Evalscript does not start with //VERSION=3: the service then runs it as a legacy "
            "V1 script, which the emulator does not model (start the script with //VERSION=3)"
        )
    return f"Evalscript //VERSION={version}: the emulator runs only Evalscript V3"


def install(ctx: Any) -> None:
    """Define the service's globals in QuickJS context ``ctx``."""
    ctx.set("__XA_MAX_CONSOLE", MAX_CONSOLE_MESSAGES)
    ctx.eval(ENV_JS)


def drain_console(ctx: Any, request_id: str | None = None) -> int:
    """Log the buffered ``console`` messages of ``ctx``; return how many calls were made so far.

    (QuickJS cannot call into Python under a time limit, so messages are buffered in JS.)
    """
    import json

    state = json.loads(ctx.get("__xa_console_drain")())
    for level, message in state["messages"]:
        script_logger.log(
            getattr(logging, str(level).upper(), logging.INFO),
            "evalscript %s: %s",
            request_id or "-",
            message,
        )
    return int(state["n"])
