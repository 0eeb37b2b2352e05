"""The matrix of request inputs shared by the body-schema and grid-vs-emulator tests.

Each case is a dict: ``id``, ``gdf`` (GeoDataFrame), optional ``evalscript`` and any
:func:`xasync.request.build_specs` keyword. :func:`build_case` fills in the rest.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
from shapely.geometry import MultiPolygon, Polygon, box

from xasync.request import RequestSpec, build_specs

TIME = ("2023-06-01", "2023-06-30")

RGB = """//VERSION=3
function setup() { return {input: ["B02", "B03", "B04"], output: {bands: 3}}; }
function evaluatePixel(s) { return [2.5 * s.B04, 2.5 * s.B03, 2.5 * s.B02]; }
"""

MULTI = """//VERSION=3
// NDVI as float, RGB as bytes, the mask as uint16
function setup() {
  return {
    input: [{bands: ["B02", "B03", "B04", "B08", "dataMask"]}],
    output: [
      {id: "ndvi", bands: 1, sampleType: "FLOAT32"},
      {id: "rgb", bands: 3, sampleType: "AUTO"},
      {id: "mask", bands: 1, sampleType: "UINT16"},
    ],
  };
}
function evaluatePixel(s) {
  const ndvi = (s.B08 - s.B04) / (s.B08 + s.B04);
  return {ndvi: [ndvi], rgb: [s.B04, s.B03, s.B02], mask: [s.dataMask]};
}
"""


def _typed(sample_type: str, bands: int, nodata: str = "") -> str:
    nd = f", nodataValue: {nodata}" if nodata else ""
    return (
        "//VERSION=3\nfunction setup() { return {input: ['B04'], output: "
        f"{{bands: {bands}, sampleType: '{sample_type}'{nd}}}}}; }}\n"
        f"function evaluatePixel(s) {{ return [{', '.join(['s.B04'] * bands)}]; }}\n"
    )


def _gdf(geoms: list, crs: Any = 4326) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"name": [f"r{i}" for i in range(len(geoms))]}, geometry=geoms, crs=crs)


LJUBLJANA = box(14.50, 46.04, 14.515, 46.052)
BUENOS_AIRES = box(-58.40, -34.61, -58.388, -34.60)
BERGEN = box(5.30, 60.39, 5.318, 60.40)
TRIANGLE = Polygon([(14.50, 46.04), (14.52, 46.04), (14.51, 46.055)])
MULTI_POLY = MultiPolygon([box(14.50, 46.04, 14.505, 46.045), box(14.51, 46.05, 14.516, 46.056)])
# Web-mercator and UTM versions of small fields.
MERC = _gdf([LJUBLJANA]).to_crs(3857)
UTM33 = _gdf([LJUBLJANA, box(14.52, 46.04, 14.53, 46.05)]).to_crs(32633)

MATRIX: list[dict[str, Any]] = [
    {"id": "4326-res-geometry", "gdf": _gdf([LJUBLJANA]), "resolution": 0.0001},
    {"id": "4326-size", "gdf": _gdf([TRIANGLE]), "size": (64, 48)},
    {
        "id": "4326-res-bbox",
        "gdf": _gdf([TRIANGLE]),
        "resolution": (0.0002, 0.0001),
        "bounds": "bbox",
    },
    {"id": "utm-res10", "gdf": _gdf([LJUBLJANA]), "crs": "utm", "resolution": 10},
    {
        "id": "utm-res20-bbox",
        "gdf": _gdf([TRIANGLE]),
        "crs": "utm",
        "resolution": 20,
        "bounds": "bbox",
    },
    {"id": "utm-size", "gdf": _gdf([LJUBLJANA]), "crs": "utm", "size": (100, 50)},
    {"id": "utm-south", "gdf": _gdf([BUENOS_AIRES]), "crs": "utm", "resolution": 10},
    {
        "id": "utm-zones-3-rows",
        "gdf": _gdf([LJUBLJANA, BUENOS_AIRES, BERGEN]),
        "crs": "utm",
        "resolution": 30,
    },
    {"id": "crs-3857", "gdf": _gdf([LJUBLJANA]), "crs": "EPSG:3857", "resolution": 10},
    {"id": "native-3857-aniso", "gdf": MERC, "resolution": (10, 20)},
    {"id": "native-3857-size-bbox", "gdf": MERC, "size": (33, 17), "bounds": "bbox"},
    {"id": "native-32633", "gdf": UTM33, "resolution": 10},
    {"id": "multipolygon-utm", "gdf": _gdf([MULTI_POLY]), "crs": "utm", "resolution": 10},
    {"id": "multipolygon-4326-size", "gdf": _gdf([MULTI_POLY]), "size": (40, 40)},
    {
        "id": "multi-output",
        "gdf": _gdf([LJUBLJANA]),
        "crs": "utm",
        "resolution": 10,
        "evalscript": MULTI,
    },
    {
        "id": "multi-output-subset",
        "gdf": _gdf([LJUBLJANA]),
        "crs": "utm",
        "resolution": 20,
        "evalscript": MULTI,
        "responses": ["mask", "ndvi"],
    },
    {
        "id": "uint16",
        "gdf": _gdf([LJUBLJANA]),
        "crs": "utm",
        "resolution": 10,
        "evalscript": _typed("UINT16", 2),
    },
    {
        "id": "int16-nodata",
        "gdf": _gdf([LJUBLJANA]),
        "crs": "utm",
        "resolution": 10,
        "evalscript": _typed("INT16", 1, "-9999"),
    },
    {
        "id": "int8",
        "gdf": _gdf([LJUBLJANA]),
        "crs": "utm",
        "resolution": 10,
        "evalscript": _typed("INT8", 4),
    },
    {
        "id": "float32-mask",
        "gdf": _gdf([TRIANGLE]),
        "crs": "utm",
        "resolution": 10,
        "evalscript": _typed("FLOAT32", 1),
        "mask": True,
    },
    {
        "id": "evalscript-reference",
        "gdf": _gdf([LJUBLJANA]),
        "crs": "utm",
        "resolution": 10,
        "evalscript": "s3://scripts-xasync/rgb.js",
        "outputs": {"default": {"bands": 3}},
        "script_source": RGB,
    },
    {
        "id": "s1-full-dict",
        "gdf": _gdf([LJUBLJANA]),
        "crs": "utm",
        "resolution": 20,
        "evalscript": _typed("FLOAT32", 1),
        "data": [
            {
                "type": "sentinel-1-grd",
                "dataFilter": {"acquisitionMode": "IW", "polarization": "DV", "resolution": "HIGH"},
                "processing": {"backCoeff": "GAMMA0_TERRAIN", "orthorectify": True},
            }
        ],
    },
    {
        "id": "fusion-s2-s1",
        "gdf": _gdf([LJUBLJANA]),
        "crs": "utm",
        "resolution": 20,
        "data": [
            {
                "type": "sentinel-2-l2a",
                "id": "s2",
                "dataFilter": {"maxCloudCoverage": 30, "mosaickingOrder": "leastCC"},
            },
            {
                "type": "sentinel-1-grd",
                "id": "s1",
                "dataFilter": {"timeRange": {"from": "2023-05-01", "to": "2023-05-31"}},
            },
        ],
    },
    {
        "id": "byoc",
        "gdf": _gdf([LJUBLJANA]),
        "crs": "utm",
        "resolution": 10,
        "data": "byoc-3f2a1c4e-0000-4000-8000-000000000000",
    },
    {
        "id": "s2l2a-alias-one-day",
        "gdf": _gdf([LJUBLJANA]),
        "crs": "utm",
        "resolution": 10,
        "data": "S2L2A",
        "time": "2023-06-05",
    },
    {
        "id": "landsat-l2",
        "gdf": _gdf([LJUBLJANA]),
        "crs": "utm",
        "resolution": 30,
        "data": [{"type": "landsat-ot-l2", "dataFilter": {"maxCloudCoverage": 50}}],
    },
    {
        "id": "dem",
        "gdf": _gdf([LJUBLJANA]),
        "crs": "utm",
        "resolution": 30,
        "evalscript": _typed("FLOAT32", 1),
        "data": [{"type": "dem", "dataFilter": {"demInstance": "COPERNICUS_30"}}],
    },
    {
        "id": "s2l1c-list-of-str",
        "gdf": _gdf([LJUBLJANA, TRIANGLE]),
        "crs": "EPSG:3857",
        "resolution": 15,
        "data": ["sentinel-2-l1c"],
    },
]

_EXTRA_KEYS = ("id", "gdf", "evalscript", "script_source")


def build_case(case: dict[str, Any], **overrides: Any) -> list[RequestSpec]:
    """Build the specs of one matrix case (``overrides`` win, e.g. ``delivery=``).

    An evalscript reference is read from S3 when ``storage_options`` is given (the emulator
    test stores it there first). Without it (the body-schema test, which has no S3 and checks
    only the shape of bodies) the reference's content is taken from the case's
    ``script_source`` instead of being read.
    """
    kw = {k: v for k, v in case.items() if k not in _EXTRA_KEYS}
    kw.setdefault("time", TIME)
    kw.setdefault("delivery", "s3://xasync-test/matrix")
    kw.update(overrides)
    if "script_source" in case and "storage_options" not in kw:
        from unittest import mock

        with mock.patch("xasync.evalscript.load_evalscript", return_value=case["script_source"]):
            return build_specs(case["gdf"], case.get("evalscript", RGB), **kw)
    return build_specs(case["gdf"], case.get("evalscript", RGB), **kw)
