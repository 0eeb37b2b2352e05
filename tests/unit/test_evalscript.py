"""Evalscript outputs learned by running setup() in QuickJS, overrides, and S3 references."""

from __future__ import annotations

import math

import pytest

from xasync import evalscript
from xasync.errors import ValidationError
from xasync.evalscript import EvalscriptError, OutputSpec, load_evalscript, parse_outputs

TRUE_COLOR = """//VERSION=3
function setup() {
  return {
    input: ["B02", "B03", "B04"],
    output: { bands: 3 }
  };
}
function evaluatePixel(sample) {
  return [2.5 * sample.B04, 2.5 * sample.B03, 2.5 * sample.B02];
}
"""

MULTI = """//VERSION=3
// Two outputs; comments // and /* */ everywhere, a template literal id
/* function setup() { return {output: {bands: 99}} } -- commented out */
const PREFIX = "nd";
function setup() {
  return {
    input: [{ bands: ["B04", "B08", "dataMask"], units: "REFLECTANCE" }],
    output: [
      { id: `${PREFIX}vi`, bands: 1, sampleType: SampleType.FLOAT32, nodataValue: NaN },
      { id: "mask", bands: 1, sampleType: "UINT8", nodataValue: 255 },
      { id: "rgb", bands: 3, sampleType: 'UINT16' },
    ],
    mosaicking: Mosaicking.ORBIT,
  };
}
function evaluatePixel(s) { return {ndvi: [0], mask: [1], rgb: [0, 0, 0]}; }
"""


def test_single_output_object_defaults():
    (out,) = parse_outputs(TRUE_COLOR)
    assert out == OutputSpec(id="default", bands=3, sample_type="AUTO", dtype="uint8", nodata=None)


def test_output_array_with_constants_template_literal_and_nodata():
    outs = parse_outputs(MULTI)
    assert [o.id for o in outs] == ["ndvi", "mask", "rgb"]
    assert [o.bands for o in outs] == [1, 1, 3]
    assert [o.sample_type for o in outs] == ["FLOAT32", "UINT8", "UINT16"]
    assert [o.dtype for o in outs] == ["float32", "uint8", "uint16"]
    assert math.isnan(outs[0].nodata)
    assert outs[1].nodata == 255.0
    assert outs[2].nodata is None


@pytest.mark.parametrize(
    ("sample_type", "dtype"),
    [
        ("AUTO", "uint8"),
        ("UINT8", "uint8"),
        ("UINT16", "uint16"),
        ("INT8", "int8"),
        ("INT16", "int16"),
        ("FLOAT32", "float32"),
    ],
)
def test_every_sample_type_maps_to_its_dtype(sample_type, dtype):
    script = (
        f"function setup(){{return {{output: {{bands: 2, sampleType: SampleType.{sample_type}}}}}}}"
    )
    (out,) = parse_outputs(script)
    assert (out.sample_type, out.dtype, out.bands) == (sample_type, dtype, 2)


def test_setup_computing_outputs_with_helpers_and_arrow_functions():
    script = """
    const bandsFor = (names) => names.length;
    function setup() {
      const names = ["B04", "B08"];
      return {input: names, output: names.map((n, i) => ({id: "o" + i, bands: bandsFor(names)}))};
    }"""
    outs = parse_outputs(script)
    assert [(o.id, o.bands) for o in outs] == [("o0", 2), ("o1", 2)]


@pytest.mark.parametrize(
    ("script", "needle"),
    [
        ("function evaluatePixel(s){return [s.B04]}", "no setup() function"),
        ("function setup(){ return {output: {bands: 1, sampleType: 'UINT32'}} }", "UINT32"),
        ("function setup(){ return {output: {bands: 1, sampleType: 'float64'}} }", "float64"),
        ("function setup(){ return {output: {bands: 1, sampleType: 'uint16'}} }", "'UINT16'?"),
        ("function setup(){ return {output: {bands: 'three'}} }", "bands"),
        ("function setup(){ return {output: {bands: 0}} }", "at least 1"),
        ("function setup(){ return {output: {}} }", "bands"),
        ("function setup(){ return {input: ['B04']} }", "no 'output'"),
        ("function setup(){ return 42 }", "must return an object"),
        ("function setup(){ return {output: [{bands:1},{bands:2}]} }", "duplicate"),
        ("function setup(){ throw new Error('boom') }", "boom"),
        ("function setup(){ return {output: {bands: lookup()}} }", "'lookup' is not defined"),
        ("function setup( { syntax error", "SyntaxError"),
        ("   ", "empty"),
    ],
)
def test_bad_evalscripts_raise_typed_errors(script, needle):
    with pytest.raises(EvalscriptError) as info:
        parse_outputs(script)
    assert isinstance(info.value, ValidationError)
    assert isinstance(info.value, ValueError)
    assert needle in str(info.value)


def test_unevaluable_setup_tells_how_to_override():
    with pytest.raises(EvalscriptError, match=r'outputs=\{"default": \{"bands": 3'):
        parse_outputs("function setup(){ return {output: {bands: someGlobal.n}} }")


def test_runaway_setup_is_stopped_by_the_time_limit(monkeypatch):
    # QuickJS's limit counts the script's own CPU time, so the check is on what stopped the
    # script (its interrupt), never on the wall clock (a busy machine stretches it)
    monkeypatch.setattr(evalscript, "SETUP_TIME_LIMIT_S", 0.2)
    with pytest.raises(EvalscriptError, match=r"InternalError: interrupted\).*outputs="):
        parse_outputs("function setup(){ while (true) {} }")


def test_contexts_are_fresh_per_call():
    parse_outputs("var leaked = 3; function setup(){return {output:{bands: leaked}}}")
    with pytest.raises(EvalscriptError, match="'leaked' is not defined"):
        parse_outputs("function setup(){return {output:{bands: leaked}}}")


def test_overrides_covering_every_response_skip_javascript():
    # The script cannot run at all: the override must be enough.
    outs = parse_outputs(
        "this is not javascript",
        {"default": {"bands": 3, "sampleType": "FLOAT32"}},
        responses=["default"],
    )
    assert outs == (OutputSpec("default", 3, "FLOAT32", "float32", None),)
    assert parse_outputs(None, {"a": 2, "b": {"bands": 1, "nodataValue": -1}}) == (
        OutputSpec("a", 2, "AUTO", "uint8", None),
        OutputSpec("b", 1, "AUTO", "uint8", -1.0),
    )


def test_overrides_replace_and_add_when_script_runs():
    outs = parse_outputs(
        MULTI, {"rgb": {"bands": 4, "sampleType": "UINT8"}, "extra": 1}, responses=["ndvi", "rgb"]
    )
    assert [(o.id, o.bands, o.dtype) for o in outs] == [
        ("ndvi", 1, "float32"),
        ("mask", 1, "uint8"),
        ("rgb", 4, "uint8"),
        ("extra", 1, "uint8"),
    ]


@pytest.mark.parametrize(
    "override",
    [{"bands": 3, "sampleType": "DOUBLE"}, {"bands": -1}, {"bandz": 3}, "three", {"bands": 2.5}],
)
def test_bad_overrides_are_typed_errors(override):
    with pytest.raises(EvalscriptError):
        parse_outputs(None, {"default": override})


def test_load_evalscript_reads_the_current_content(s3_server, s3fs_fs, bucket):
    url = f"s3://{bucket}/scripts/true_color.js"
    s3fs_fs.pipe(url, TRUE_COLOR.encode())
    assert load_evalscript(url, s3_server.storage_options) == TRUE_COLOR
    s3fs_fs.pipe(url, b"//v2\n" + TRUE_COLOR.encode())  # edited: no stale cached copy
    assert load_evalscript(url, s3_server.storage_options).startswith("//v2")
    s3fs_fs.rm(url)
    with pytest.raises(EvalscriptError, match="could not read"):
        load_evalscript(url, s3_server.storage_options)
    with pytest.raises(EvalscriptError, match="could not read"):
        load_evalscript(f"s3://{bucket}/scripts/missing.js", s3_server.storage_options)


@pytest.mark.parametrize("url", ["https://x/y.js", "s3://bucket-only", "/local/file.js", None])
def test_load_evalscript_rejects_non_s3_urls(url):
    with pytest.raises(EvalscriptError, match="s3://bucket/key"):
        load_evalscript(url)
