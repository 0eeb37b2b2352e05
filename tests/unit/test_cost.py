"""The published PU rules on hand-computed figures (each case shows its arithmetic)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xasync.cost import (
    PUFactors,
    area_factor,
    async_pu,
    count_input_bands,
    format_factor,
    fusion_factor,
    input_band_names,
    request_factors,
    request_pu,
    samples_factor,
    sentinel1_factor,
)

RGB = ["B02", "B03", "B04"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # 1. 1 PU definition, async: 512*512/512^2=1 x 3/3 x 1 -> 1; >=10000 px: x2/3 = 0.667;
        #    minimum 10 -> 10.
        ({"width": 512, "height": 512, "input_bands": RGB}, 10.0),
        # 2. 10000x10000 RGB UINT8: 1e8/262144 = 381.4697 x 1 x 1 x 2/3 = 254.3131
        ({"width": 10000, "height": 10000, "input_bands": RGB}, 1e8 / 262144 * 2 / 3),
        # 3. 4096x4096, 4 bands + dataMask (not counted), FLOAT32: 64 x 4/3 x 2 x 2/3 = 113.7778
        (
            {
                "width": 4096,
                "height": 4096,
                "input_bands": [*RGB, "B08", "dataMask"],
                "sample_types": ["FLOAT32"],
            },
            64 * 4 / 3 * 2 * 2 / 3,
        ),
        # 4. 5000x4000, 13 bands, UINT16: 2e7/262144 = 76.2939 x 13/3 x 1 x 2/3 = 220.4047
        (
            {"width": 5000, "height": 4000, "input_bands": 13, "sample_types": ["UINT16"]},
            2e7 / 262144 * 13 / 3 * 2 / 3,
        ),
        # 5. only dataMask counts as 1 band: 8192x8192 = 256 x 1/3 x 1 x 2/3 = 56.8889
        ({"width": 8192, "height": 8192, "input_bands": ["dataMask"]}, 256 / 3 * 2 / 3),
        # 6. 99x100 = 9900 px < 10000: no 2/3; 9900/262144 = 0.0378 x 1 -> minimum 10
        ({"width": 99, "height": 100, "input_bands": RGB}, 10.0),
        # 7. two outputs, UINT8 + FLOAT32: largest format factor once:
        #    2048x2048 = 16 x 2/3 (B04, B08) x 2 x 2/3 = 14.2222
        (
            {
                "width": 2048,
                "height": 2048,
                "input_bands": ["B04", "B08", "dataMask"],
                "sample_types": ["UINT8", "FLOAT32"],
            },
            16 * 2 / 3 * 2 * 2 / 3,
        ),
        # 8. S1 orthorectified + speckle filter, FLOAT32, 2 bands (VV, VH):
        #    3000x3000 = 34.3323 x 2/3 x 2 x (2 x 2) x 2/3 = 122.0703
        (
            {
                "width": 3000,
                "height": 3000,
                "input_bands": ["VV", "VH", "dataMask"],
                "sample_types": ["FLOAT32"],
                "data": [
                    {
                        "type": "sentinel-1-grd",
                        "processing": {"orthorectify": True, "speckleFilter": {"type": "LEE"}},
                    }
                ],
            },
            9e6 / 262144 * 2 / 3 * 2 * 4 * 2 / 3,
        ),
        # 9. S1 RTC replaces ortho: 2048x2048 = 16 x 1/3 (VV) x 1 x 2.5 x 2/3 = 8.8889 -> min 10
        (
            {
                "width": 2048,
                "height": 2048,
                "input_bands": ["VV"],
                "data": [
                    {
                        "type": "sentinel-1-grd",
                        "processing": {"orthorectify": True, "backCoeff": "GAMMA0_TERRAIN"},
                    }
                ],
            },
            10.0,
        ),
        # 10. same at 4096x4096: 64 x 1/3 x 2.5 x 2/3 = 35.5556 (not 64/3*2*2.5*2/3)
        (
            {
                "width": 4096,
                "height": 4096,
                "input_bands": ["VV"],
                "data": [
                    {
                        "type": "sentinel-1-grd",
                        "processing": {"orthorectify": True, "backCoeff": "GAMMA0_TERRAIN"},
                    }
                ],
            },
            64 / 3 * 2.5 * 2 / 3,
        ),
        # 11. ORBIT with 5 scenes: 4096x4096 = 64 x 2/3 x 1 x 5 x 2/3 = 142.2222
        (
            {
                "width": 4096,
                "height": 4096,
                "input_bands": ["B04", "B08"],
                "mosaicking": "ORBIT",
                "scenes": 5,
            },
            64 * 2 / 3 * 5 * 2 / 3,
        ),
        # 12. data fusion S2 L2A + S1 GRD (both local) + Landsat (remote): 1 + 1 + 2 = 4;
        #     4096x4096 = 64 x 6/3 (B04, B08, VV, VH, B10, B11) x 4 x 2/3 = 341.3333
        (
            {
                "width": 4096,
                "height": 4096,
                "input_bands": ["B04", "B08", "VV", "VH", "B10", "B11"],
                "data": [
                    {"type": "sentinel-2-l2a"},
                    {"type": "sentinel-1-grd"},
                    {"type": "landsat-ot-l2"},
                ],
                "remote": 1,
            },
            64 * 2 * 4 * 2 / 3,
        ),
        # 13. the CDSE page's S1 change-detection example (1024x1024, 4 bands, FLOAT32, 2 samples,
        #     ortho) is 4 x 4/3 x 2 x 2 x 2 = 42.667 PU for Process API; Async: x2/3 = 28.4444
        (
            {
                "width": 1024,
                "height": 1024,
                "input_bands": 4,
                "sample_types": ["FLOAT32"],
                "mosaicking": "ORBIT",
                "scenes": 2,
                "data": [{"type": "sentinel-1-grd", "processing": {"orthorectify": True}}],
            },
            4 * 4 / 3 * 2 * 2 * 2 * 2 / 3,
        ),
        # 14. 100x100 = 10000 px exactly gets 2/3, but 0.0381 x 1 x 2/3 -> minimum 10
        ({"width": 100, "height": 100, "input_bands": RGB}, 10.0),
    ],
)
def test_request_pu_hand_computed(kwargs, expected):
    kw = dict(kwargs)
    args = (kw.pop("width"), kw.pop("height"), kw.pop("input_bands"))
    assert request_pu(*args, **kw) == pytest.approx(expected, rel=1e-12)


def test_cdse_example_base_matches_the_published_total():
    """The CDSE page's change-detection example totals 42.667 PU before the Async rules."""
    f = request_factors(
        1024,
        1024,
        ["VV", "VH", "B1", "B2"],
        ["FLOAT32"],
        mosaicking="ORBIT",
        scenes=2,
        data=[{"type": "sentinel-1-grd", "processing": {"orthorectify": True}}],
    )
    assert f.base == pytest.approx(42.667, abs=5e-4)  # 4 x 4/3 x 2 x 2 x 2
    assert f.pu == pytest.approx(42.667 * 2 / 3, abs=5e-4)


def test_cdse_parcel_example_area_minimum():
    """20x20 px is under the 0.01 area minimum: 0.01 x 2/3 = 0.0067 PU base (Process API)."""
    f = request_factors(20, 20, ["B04", "B08"], ["UINT16"])
    assert f.area == 0.01
    assert f.base == pytest.approx(0.0067, abs=5e-5)
    assert f.async_factor == 1.0  # 400 px < 10000
    assert f.pu == 10.0  # the Async minimum


def test_area_factor_minimum_and_unit():
    assert area_factor(512, 512) == 1.0
    assert area_factor(1024, 512) == 2.0
    assert area_factor(51, 51) == 0.01  # 2601/262144 = 0.0099 -> 0.01
    assert area_factor(52, 52) == pytest.approx(2704 / 262144)  # 0.0103


def test_count_input_bands_data_mask_rule():
    assert count_input_bands(["B04", "B08", "dataMask"]) == 2
    assert count_input_bands(["dataMask"]) == 1
    assert count_input_bands(["B01"]) == 1
    assert count_input_bands([]) == 0


def test_input_band_names_forms():
    assert input_band_names(["B04", "dataMask"]) == ("B04", "dataMask")
    assert input_band_names([{"bands": ["B04", "B08"], "units": "DN"}]) == ("B04", "B08")
    assert input_band_names(
        [{"datasource": "s1", "bands": ["VV"]}, {"datasource": "l2a", "bands": ["B04"]}]
    ) == ("VV", "B04")
    assert input_band_names({"bands": ["B02"]}) == ("B02",)
    with pytest.raises(ValueError, match="not a band name"):
        input_band_names([42])
    with pytest.raises(ValueError, match="must be a list"):
        input_band_names("B04")


def test_format_factor():
    assert format_factor("FLOAT32") == 2.0
    assert format_factor("UINT16") == 1.0
    assert format_factor("AUTO") == 1.0
    assert format_factor("UINT8", "application/octet-stream") == 1.4
    assert format_factor("UINT8", "image/png") == 1.0


def test_samples_factor():
    assert samples_factor("SIMPLE", 7) == (1.0, True)  # scenes do not matter for SIMPLE
    assert samples_factor("ORBIT", 7) == (7.0, True)
    assert samples_factor("TILE", None) == (1.0, False)  # unknown: a lower bound


def test_fusion_factor():
    assert fusion_factor(1) == 1.0  # no fusion
    assert fusion_factor(1, remote=1) == 1.0  # a single (remote) collection is not fusion
    assert fusion_factor(2) == 2.0
    assert fusion_factor(3, remote=1) == 4.0  # the CDSE page's S2 L1C + S2 L2A + Landsat-9


def test_sentinel1_factor():
    assert sentinel1_factor(None) == 1.0
    assert sentinel1_factor({"orthorectify": False}) == 1.0
    assert sentinel1_factor({"orthorectify": True}) == 2.0
    assert sentinel1_factor({"orthorectify": True, "backCoeff": "GAMMA0_TERRAIN"}) == 2.5
    assert sentinel1_factor({"speckleFilter": {"type": "NONE"}}) == 1.0
    assert sentinel1_factor({"speckleFilter": {"type": "LEE", "windowSizeX": 3}}) == 2.0
    assert sentinel1_factor({"backCoeff": "GAMMA0_TERRAIN", "speckleFilter": {"type": "LEE"}}) == 5


def test_async_pu_order():
    assert async_pu(30.0, 100, 100) == 20.0  # 30 x 2/3
    assert async_pu(12.0, 99, 100) == 12.0  # under 10000 px: no discount
    assert async_pu(12.0, 100, 100) == 10.0  # 12 x 2/3 = 8 -> minimum 10


def test_factors_are_frozen_and_explain_the_cost():
    f = request_factors(1024, 1024, [*RGB, "dataMask"], ["FLOAT32"])
    assert isinstance(f, PUFactors)
    assert (f.area, f.input_bands, f.bands, f.format, f.samples) == (4.0, 3, 1.0, 2.0, 1.0)
    assert f.base == 8.0  # 4 x 1 x 2
    assert f.pu == pytest.approx(10.0)  # 8 x 2/3 = 5.33 -> 10
    with pytest.raises(AttributeError):
        f.area = 1.0  # type: ignore[misc]


# -- properties of the rules ---------------------------------------------------------------------

SIDES = st.integers(min_value=1, max_value=10_000)
BANDS = st.integers(min_value=1, max_value=40)
STYPES = st.lists(st.sampled_from(["AUTO", "UINT8", "UINT16", "INT16", "FLOAT32"]), min_size=1)
S1 = st.fixed_dictionaries(
    {},
    optional={
        "orthorectify": st.booleans(),
        "backCoeff": st.sampled_from(["BETA0", "SIGMA0_ELLIPSOID", "GAMMA0_TERRAIN"]),
        "speckleFilter": st.sampled_from([{"type": "NONE"}, {"type": "LEE"}]),
    },
)


@settings(max_examples=300, deadline=None)
@given(w=SIDES, h=SIDES, bands=BANDS, stypes=STYPES, s1=S1)
def test_cost_is_at_least_the_minimum_and_the_product_of_its_factors(w, h, bands, stypes, s1):
    data = [{"type": "sentinel-1-grd", "processing": s1}]
    f = request_factors(w, h, bands, stypes, data=data)
    assert f.pu >= 10.0
    assert f.pu == pytest.approx(max(10.0, f.base * f.async_factor))
    assert f.base == pytest.approx(
        f.area * bands / 3 * f.format * f.samples * f.fusion * f.sentinel1
    )
    assert f.async_factor == (2 / 3 if w * h >= 10_000 else 1.0)


@settings(max_examples=300, deadline=None)
@given(w=SIDES, h=SIDES, dw=st.integers(0, 500), dh=st.integers(0, 500), bands=BANDS, stypes=STYPES)
def test_more_pixels_never_cost_less_except_across_the_async_threshold(w, h, dw, dh, bands, stypes):
    """Monotone in the area on each side of 10,000 px (crossing it applies the 2/3 factor)."""
    w2, h2 = min(w + dw, 10_000), min(h + dh, 10_000)
    small = request_pu(w, h, bands, stypes)
    big = request_pu(w2, h2, bands, stypes)
    if (w * h >= 10_000) == (w2 * h2 >= 10_000):
        assert big >= small
    else:  # crossing the threshold: never cheaper than 2/3 of the smaller request's base
        assert big >= min(small, 10.0) and big >= small * 2 / 3


@settings(max_examples=300, deadline=None)
@given(w=SIDES, h=SIDES, bands=BANDS, more=st.integers(1, 20), stypes=STYPES)
def test_more_bands_never_cost_less(w, h, bands, more, stypes):
    assert request_pu(w, h, bands + more, stypes) >= request_pu(w, h, bands, stypes)


@settings(max_examples=200, deadline=None)
@given(w=SIDES, h=SIDES, bands=BANDS, stypes=STYPES)
def test_data_mask_is_free_when_other_bands_are_present(w, h, bands, stypes):
    names = [f"B{i:02d}" for i in range(bands)]
    assert request_pu(w, h, [*names, "dataMask"], stypes) == request_pu(w, h, names, stypes)


@settings(max_examples=200, deadline=None)
@given(w=SIDES, h=SIDES, bands=BANDS, stypes=STYPES)
def test_a_float32_output_never_costs_less_and_at_most_doubles(w, h, bands, stypes):
    plain = request_pu(w, h, bands, stypes)
    with_float = request_pu(w, h, bands, [*stypes, "FLOAT32"])
    assert plain <= with_float <= 2 * plain


@settings(max_examples=200, deadline=None)
@given(
    w=SIDES,
    h=SIDES,
    scenes=st.integers(1, 50),
    extra=st.integers(1, 50),
    mosaicking=st.sampled_from(["ORBIT", "TILE"]),
)
def test_more_scenes_never_cost_less(w, h, scenes, extra, mosaicking):
    kw = {"mosaicking": mosaicking}
    assert request_pu(w, h, 3, scenes=scenes + extra, **kw) >= request_pu(
        w, h, 3, scenes=scenes, **kw
    )
    assert request_pu(w, h, 3, scenes=scenes, mosaicking="SIMPLE") == request_pu(w, h, 3)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 6), remote=st.integers(0, 6), w=SIDES, h=SIDES)
def test_fusion_never_cheaper_with_more_or_remote_collections(n, remote, w, h):
    items = [{"type": "sentinel-2-l2a"}] * n
    more = [*items, {"type": "sentinel-1-grd"}]
    assert request_pu(w, h, 3, data=more, remote=remote) >= request_pu(
        w, h, 3, data=items, remote=remote
    )
    assert request_pu(w, h, 3, data=items, remote=remote + 1) >= request_pu(
        w, h, 3, data=items, remote=remote
    )


@settings(max_examples=200, deadline=None)
@given(s1=S1, w=SIDES, h=SIDES)
def test_s1_options_never_lower_the_cost_and_rtc_replaces_ortho(s1, w, h):
    data = [{"type": "sentinel-1-grd", "processing": s1}]
    assert request_pu(w, h, 2, data=data) >= request_pu(w, h, 2, data=[{"type": "sentinel-1-grd"}])
    f = sentinel1_factor(s1)
    assert f in {1.0, 2.0, 2.5, 4.0, 5.0}
