"""The JavaScript half of the multi-temporal wrapper (:func:`xasync.temporal.wrap_evalscript`).

Appended after the user's script, which is closed in a function scope (``__xat``); the constants
``__xat_I`` (intervals: ``[from ms, to ms, closed, from ISO, to ISO]``), ``__xat_OUT``
(``[id, bands]`` of the user's outputs) and ``__xat_R`` (the reducer) come before it.

- ``setup()``: the user's inputs plus ``dataMask``, ``mosaicking: "ORBIT"``, each output
  FLOAT32 with ``intervals x bands`` bands.
- Which interval an ORBIT scene belongs to: its documented ``dateFrom``/``dateTo`` (the UTC day
  of the orbit, ``scenes.orbits[i]`` in the service's Evalscript V3 docs and its examples); when
  that day straddles an interval boundary, the acquisition time of its first tile decides
  (``tiles[0].date``; without it, the interval holding ``dateFrom``). TILE scenes by ``date``.
  The acquisition time (``tiles[0].date``, else ``dateFrom``) orders ``first``/``last`` and is
  what ``userdata.json`` lists.
- ``evaluatePixel(samples, scenes, ...)``: the user's ``evaluatePixel`` on every sample whose
  ``dataMask`` is set and whose scene falls in an interval; per interval and band, NaN values
  skipped, the values are reduced (median, mean, min, max, first/last by acquisition time,
  count); no value -> NaN (count: 0).
- ``updateOutputMetadata``: ``userData = {xasync: "temporal", reducer, intervals: [{from, to,
  scenes: [acquisition dates, oldest first]}]}`` (delivered as ``userdata.json``).
"""

WRAPPER_JS = r"""
function __xat_input(input) {
  var items = Array.isArray(input) ? input.slice() : [input];
  var has = items.some(function (x) {
    return x === "dataMask" || (x && Array.isArray(x.bands) && x.bands.indexOf("dataMask") >= 0);
  });
  if (has) return items;
  if (items.every(function (x) { return typeof x === "string"; })) return items.concat(["dataMask"]);
  for (var i = 0; i < items.length; i++) {
    var x = items[i];
    if (x && typeof x === "object" && Array.isArray(x.bands)) {
      var y = Object.assign({}, x);
      y.bands = x.bands.concat(["dataMask"]);
      if (Array.isArray(x.units)) y.units = x.units.concat(["DN"]);
      items[i] = y;
      return items;
    }
  }
  return items.concat(["dataMask"]);
}
function setup() {
  var s = __xat.setup();
  var out = {input: __xat_input(s.input), mosaicking: "ORBIT"};
  out.output = __xat_OUT.map(function (o) {
    return {id: o[0], bands: o[1] * __xat_I.length, sampleType: "FLOAT32"};
  });
  return out;
}
function __xat_list(scenes) {
  if (!scenes) return [];
  return scenes.orbits || scenes.tiles || scenes;
}
function __xat_tile_date(s) {
  return (s.tiles && s.tiles.length && s.tiles[0].date) || s.date;
}
function __xat_date(s) {
  return __xat_tile_date(s) || s.dateFrom;
}
function __xat_which(t) {
  for (var k = 0; k < __xat_I.length; k++) {
    var iv = __xat_I[k];
    if (t >= iv[0] && (iv[2] ? t <= iv[1] : t < iv[1])) return k;
  }
  return -1;
}
function __xat_slot(s) {
  if (!s.dateFrom) return __xat_which(Date.parse(s.date));
  var a = __xat_which(Date.parse(s.dateFrom));
  var b = s.dateTo ? __xat_which(Date.parse(s.dateTo)) : a;
  if (a === b) return a;
  var t = Date.parse(__xat_tile_date(s));
  return isNaN(t) ? (a >= 0 ? a : b) : __xat_which(t);
}
var __xat_ref = null, __xat_k = [], __xat_t = [];
function __xat_index(scenes) {
  if (scenes === __xat_ref && __xat_ref !== null) return;
  var list = __xat_list(scenes);
  __xat_k = []; __xat_t = [];
  for (var i = 0; i < list.length; i++) {
    var t = Date.parse(__xat_date(list[i])), k = __xat_slot(list[i]);
    __xat_t.push(t); __xat_k.push(isNaN(k) ? -1 : k);
  }
  __xat_ref = scenes;
}
function __xat_reduce(vals, times) {
  var n = vals.length;
  if (__xat_R === "count") return n;
  if (n === 0) return NaN;
  var i, best;
  if (__xat_R === "first" || __xat_R === "last") {
    best = 0;
    for (i = 1; i < n; i++) {
      if (__xat_R === "last" ? times[i] > times[best] : times[i] < times[best]) best = i;
    }
    return vals[best];
  }
  if (__xat_R === "min") return Math.min.apply(null, vals);
  if (__xat_R === "max") return Math.max.apply(null, vals);
  if (__xat_R === "mean") {
    var sum = 0;
    for (i = 0; i < n; i++) sum += vals[i];
    return sum / n;
  }
  var v = vals.slice().sort(function (a, b) { return a - b; });
  var h = n >> 1;
  return n % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}
function evaluatePixel(samples, scenes, inputMetadata, customData, outputMetadata) {
  __xat_index(scenes);
  var NI = __xat_I.length, list = __xat_list(scenes), acc = [], o, b, c;
  for (o = 0; o < __xat_OUT.length; o++) {
    var cells = new Array(NI * __xat_OUT[o][1]);
    for (c = 0; c < cells.length; c++) cells[c] = [[], []];
    acc.push(cells);
  }
  for (var i = 0; i < samples.length; i++) {
    var s = samples[i], k = i < __xat_k.length ? __xat_k[i] : -1;
    if (k < 0 || !s.dataMask) continue;
    var r = __xat.evaluatePixel(s, [list[i]], inputMetadata, customData, outputMetadata);
    if (Array.isArray(r) || typeof r === "number") {
      var one = {};
      one[__xat_OUT[0][0]] = Array.isArray(r) ? r : [r];
      r = one;
    }
    if (r === null || typeof r !== "object") continue;
    for (o = 0; o < __xat_OUT.length; o++) {
      var vals = r[__xat_OUT[o][0]], nb = __xat_OUT[o][1];
      if (vals === undefined || vals === null) continue;
      for (b = 0; b < nb; b++) {
        var x = +vals[b];
        if (x !== x) continue;
        acc[o][k * nb + b][0].push(x);
        acc[o][k * nb + b][1].push(__xat_t[i]);
      }
    }
  }
  var res = {};
  for (o = 0; o < __xat_OUT.length; o++) {
    res[__xat_OUT[o][0]] = acc[o].map(function (cell) { return __xat_reduce(cell[0], cell[1]); });
  }
  return res;
}
function updateOutputMetadata(scenes, inputMetadata, outputMetadata) {
  var list = __xat_list(scenes), per = __xat_I.map(function () { return []; });
  for (var i = 0; i < list.length; i++) {
    var k = __xat_slot(list[i]);
    if (k >= 0) per[k].push(__xat_date(list[i]));
  }
  per.forEach(function (p) { p.sort(); });
  outputMetadata.userData = {
    xasync: "temporal", reducer: __xat_R,
    intervals: __xat_I.map(function (iv, k) { return {from: iv[3], to: iv[4], scenes: per[k]}; })
  };
}
"""
