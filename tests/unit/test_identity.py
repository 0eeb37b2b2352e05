"""Request identity is what is bought (#13 item 1): labels, positions and float noise play no part."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from dask.base import tokenize
from shapely.geometry import box

from xasync.geometry import round_decimals
from xasync.request import build_specs

ES = """//VERSION=3
function setup() {
  return {input: ["B04", "B08"], output: [{id: "ndvi", bands: 1, sampleType: "FLOAT32"}]};
}
function evaluatePixel(s) { return {ndvi: [0]}; }
"""
TIME = ("2023-06-01", "2023-06-30")


def fields(n: int = 5) -> gpd.GeoDataFrame:
    geoms = [box(14.5 + 0.02 * i, 46.0, 14.51 + 0.02 * i, 46.01) for i in range(n)]
    return gpd.GeoDataFrame(
        {"name": [f"f{i}" for i in range(n)]},
        geometry=geoms,
        index=[f"row-{i}" for i in range(n)],
        crs="EPSG:4326",
    )


def tokens(gdf: gpd.GeoDataFrame, script: str = ES, **kw) -> dict:
    args = {"time": TIME, "resolution": 10, "crs": "utm", "delivery": "s3://bkt/runs/a"}
    args.update(kw)
    return {s.label: s.token for s in build_specs(gdf, script, **args)}


@pytest.mark.parametrize(
    "move",
    [
        pytest.param(lambda g: g.iloc[::-1], id="reordered"),
        pytest.param(lambda g: g.iloc[[1, 3]], id="filtered"),
        pytest.param(lambda g: g.reset_index(drop=True), id="reset_index"),
        pytest.param(lambda g: g.reset_index(), id="reset_index-keep"),
        pytest.param(lambda g: g.set_index(g["name"] + "!", drop=False), id="new-labels"),
    ],
)
def test_rows_moved_around_keep_their_tokens(move):
    gdf = fields()
    before = dict(zip(gdf["name"], tokens(gdf).values(), strict=True))
    moved = move(gdf)
    after = dict(zip(moved["name"], tokens(moved).values(), strict=True))
    assert after == {k: before[k] for k in after}


def test_duplicated_rows_share_one_token():
    gdf = fields(3)
    doubled = gdf.iloc[[0, 1, 2, 0, 1, 2]].reset_index(drop=True)
    t = list(tokens(doubled).values())
    assert t[:3] == t[3:]
    assert len(set(t)) == 3


@pytest.mark.parametrize("crs", ["utm", None])
def test_reprojected_and_back_keeps_tokens(crs):
    gdf = fields()
    res = 10 if crs == "utm" else 0.0001
    back = gdf.to_crs(3857).to_crs(32633).to_crs(4326)
    moved = np.abs(np.asarray(back.get_coordinates()) - np.asarray(gdf.get_coordinates()))
    assert moved.max() > 0  # the round trip did add float noise
    assert tokens(back, crs=crs, resolution=res) == tokens(gdf, crs=crs, resolution=res)


def test_size_mode_bbox_is_noise_free_too():
    gdf = fields()
    back = gdf.to_crs(3857).to_crs(4326)
    kw = {"crs": None, "resolution": None, "size": (64, 64)}
    assert tokens(back, **kw) == tokens(gdf, **kw)


def test_a_changed_request_changes_the_token():
    gdf = fields(2)
    base = tokens(gdf)
    assert tokens(gdf, time=("2023-06-01", "2023-06-29")).values() != base.values()
    assert set(tokens(gdf, resolution=20).values()).isdisjoint(base.values())
    assert set(tokens(gdf, script=ES.replace("[0]", "[1]")).values()).isdisjoint(base.values())
    shifted = gdf.set_geometry(gdf.translate(0.001))
    assert set(tokens(shifted).values()).isdisjoint(base.values())


def test_equality_and_dask_tokenize_ignore_labels():
    a = build_specs(fields(1), ES, time=TIME, resolution=10, crs="utm", delivery="s3://bkt/p")[0]
    other = fields(1).rename(index={"row-0": "something-else"})
    b = build_specs(other, ES, time=TIME, resolution=10, crs="utm", delivery="s3://bkt/p")[0]
    assert a.label != b.label
    assert a == b
    assert tokenize(a) == tokenize(b)
    c = build_specs(other, ES, time=TIME, resolution=10, crs="utm", delivery="s3://bkt/q")[0]
    assert a.token == c.token and a.row_url != c.row_url and a != c


def test_edited_referenced_script_changes_the_token(s3_server, s3fs_fs, bucket):
    url = f"s3://{bucket}/scripts/ndvi.js"
    so = s3_server.storage_options
    s3fs_fs.pipe(url, ES.encode())
    first = tokens(fields(2), script=url, storage_options=so)
    assert tokens(fields(2), script=url, storage_options=so) == first
    s3fs_fs.pipe(url, ES.replace("[0]", "[2]").encode())
    edited = tokens(fields(2), script=url, storage_options=so)
    assert set(edited.values()).isdisjoint(first.values())
    # with outputs= covering every response the script is still read for its digest
    kw = {"outputs": {"ndvi": {"bands": 1, "sampleType": "FLOAT32"}}, "storage_options": so}
    assert tokens(fields(2), script=url, **kw) == edited


@pytest.mark.parametrize(("pixel", "decimals"), [(10, 2), (20, 2), (60, 2), (1, 3), (1e-4, 7)])
def test_rounding_is_at_most_a_thousandth_of_a_pixel(pixel, decimals):
    assert round_decimals(pixel) == decimals
    assert 10.0**-decimals <= pixel / 1000 * (1 + 1e-9)
    assert round_decimals(pixel * (1 + 1e-12)) == round_decimals(pixel * (1 - 1e-12))


# -- pinned identities ----------------------------------------------------------------------------
# Tokens computed by the code of 2026-12-01 (before the P4 build-at-scale work). A token is what a
# user bought: if one of these changes, re-running an old call would buy its rows a second time.
# Never update these values to make a test pass.

PINNED_ES = """//VERSION=3
function setup() {
  return {input: ["B04", "B08"], output: [{id: "ndvi", bands: 1, sampleType: "FLOAT32"}, {id: "rgb", bands: 3, sampleType: "UINT8"}]};
}
function evaluatePixel(s) { return {ndvi: [0], rgb: [0,0,0]}; }
"""
PINNED_ROOT = "s3://bkt/runs/a"
PINNED_TOKENS = {
    "utm": [
        "51b5266c8098e85cd38f862747885d0d7cbe1325aa0b59d54740382946834899",
        "bb66e5aec8c28c85f93d52bd3b057fb9050ce971884235b2a29540ca982aa921",
        "183ba1c8b7868f9927e3d46efd595d7b99f13d0eda43e5ed319146cb5dd015db",
        "b847be1c188b2e2910117b800e1e86284b42c6dda098913a44d4a1a5ccea17f3",
        "fa40c9a36b1b25aa12d2da3e1ee62abd715b2469161ddfcbf089db3591c11889",
    ],
    "utm-bbox-mask": [
        "d89f36d8f8b309a7505c498a7de64fd0cb3d5199e8d4e221f4a611f596c29c43",
        "cdf7bec0e526addebc5d6e751f7caee1b2fdfec777e2e6d2615c768535335cf9",
        "6a4dddf2783d5d0e077e719d766305b84b20238d85e943c9da00d29461dbfa41",
        "7b557a1c33fa33c2d1f359cbfb9bdec4818620cb06f27764db2565c2e8797ff3",
        "2a21cbae633210252b64f2caa760f666ea82f5b675d9139604c69b5dfd8359fa",
    ],
    "4326": [
        "5596386d56707f028ae0a706c6477544973c145e61e252b66551a0205208d030",
        "2845e3e50db37808549c16e8a64cb1cba67f929fbfeb658afcb4cf20c18f0fcf",
        "d2d2fad68792be35679bf4d7119917f175d4e40425f0ddddbffd0adead2865eb",
        "afe1728f830915f7b6403aae691d1d87ad4a7f7c24532b588e5e51af433fe9b8",
        "538c92800bad42a65892d8474f699e4403ec5a3169ac881607a2e197ad8ae4ee",
    ],
    "size": [
        "4de81f8bd716ee3c072fca763e43a2711ee82ea841963ce538e3bae151da6e8c",
        "abe08dff482a1891d2b4e82c16e505a9c22125fbb1ddc7a8c0cf21d46618e509",
        "1d355e473ed6688e376dbbf3cfa139fdf7a5af5f7c84b5cf568b9f49144eff75",
        "15830756b9dac5f2d4c447dd0079de7ec5e0bbd71951387ebc40e5addb33b301",
        "d708675d523c3f358ed53d2b35c5010a76694ec2264526d79633b509ba70afa6",
    ],
}
PINNED_CASES = {
    "utm": {"resolution": 10, "crs": "utm"},
    "utm-bbox-mask": {
        "resolution": 20,
        "crs": "utm",
        "bounds": "bbox",
        "mask": True,
        "responses": ["rgb"],
    },
    "4326": {"resolution": 0.0001, "crs": None},
    "size": {"size": (64, 48), "crs": 3857},
}
PINNED_PACK = "01b19fb1c3eeee930bdedd97c9a8f36143bb8f49470535f969fd997050ab6066"
PINNED_TILES = [
    "d948a7baa865d3138235c0f23d49b8ad10c73c05b089ebda1be4088e572ed4e9",
    "3b61f0ff99dd68a49871971f23cd7dbc2068a8bb379eda28cb98e60ba45b24a1",
    "804f14b5deb93f8c22b2a393ee49953aad145f0cc5acec0db836483611732d3d",
    "f167566842f15c10b0906df24be1d07410e914d5a085056e2b40b3ef9e498b6f",
]
PINNED_PLANS = "abba2cd5526fd6c3b18689096f5434c2947485f78924aa0a0659c4a938078220"
PINNED_SOURCES = "a585bee090220d75a13fb7d25749d5c4f5c48e1e6f5d079a25a446aea31a8fc8"
PINNED_DATASETS = [
    "5a314c4364aae8638221050f1c77665d026d263071539277d5fd95be6430f39a",
    "ff3d096065d5f2e66e3b0f47d822e0208192486ee4eb0e0163bf644cd451af69",
]
PINNED_PACKED_DATASETS = [
    "55c602ce13c33417ca8e482466f1082cd6d06cdb97323112da2319f5db1b49fa",
    "7e40afe8b1fc17aa586df0975872d5488312b07391c5fc3b148ebd53f1dbeae8",
]


def pinned_frame() -> gpd.GeoDataFrame:
    from shapely.geometry import Polygon

    geoms = [box(14.5 + 0.02 * i, 46.0, 14.51 + 0.02 * i, 46.01) for i in range(3)]
    geoms.append(Polygon([(179.99, -16.5), (180.0, -16.5), (180.0, -16.49), (179.99, -16.49)]))
    geoms.append(Polygon([(9.1, 47.3), (9.13, 47.31), (9.12, 47.33), (9.101, 47.32)]))
    return gpd.GeoDataFrame({"n": range(5)}, geometry=geoms, crs=4326)


def small_fields() -> gpd.GeoDataFrame:
    geoms = [box(14.0 + 0.001 * i, 46.0, 14.0005 + 0.001 * i, 46.0005) for i in range(6)]
    return gpd.GeoDataFrame(geometry=geoms, crs=4326)


def _digest(doc) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def dataset_fingerprint(ds) -> str:
    """Digest of what a user sees of a lazy Dataset (no graph key names, no values)."""
    import hashlib

    def text(mapping):
        return {k: str(v) for k, v in mapping.items()}

    return _digest(
        {
            "dims": dict(ds.sizes),
            "coords": {
                k: hashlib.sha256(np.ascontiguousarray(ds[k].values).tobytes()).hexdigest()[:16]
                for k in ds.coords
            },
            "coord_attrs": {k: text(ds[k].attrs) for k in ds.coords},
            "vars": {
                k: [
                    list(v.dims),
                    str(v.dtype),
                    [list(c) for c in v.chunks],
                    text(v.attrs),
                    text(v.encoding),
                ]
                for k, v in ds.data_vars.items()
            },
            "attrs": text(ds.attrs),
            "encoding": text(ds.encoding),
        }
    )


@pytest.mark.parametrize("case", sorted(PINNED_CASES))
def test_tokens_are_pinned(case):
    specs = build_specs(
        pinned_frame(), PINNED_ES, time=TIME, delivery=PINNED_ROOT, **PINNED_CASES[case]
    )
    assert [s.token for s in specs] == PINNED_TOKENS[case]
    assert [s.row_url for s in specs] == [f"{PINNED_ROOT}/{t[:24]}" for t in PINNED_TOKENS[case]]


def test_pack_and_tile_tokens_are_pinned():
    from xasync.planned import plan_call

    kw = {"time": TIME, "resolution": 10, "crs": "utm", "delivery": PINNED_ROOT, "tiled": True}
    planned = plan_call(build_specs(small_fields(), PINNED_ES, **kw), pack=True)
    assert [s.token for s in planned.requests] == [PINNED_PACK]
    big = gpd.GeoDataFrame(geometry=[box(14.0, 46.0, 14.05, 46.03)], crs=4326)
    planned = plan_call(build_specs(big, PINNED_ES, **kw), max_request_px=200)
    assert [s.token for s in planned.requests] == PINNED_TILES


def test_read_plans_sources_and_datasets_are_pinned():
    from xasync.lazy import build_dataset
    from xasync.planned import plan_call, source_to_dict
    from xasync.reader import ReaderConfig
    from xasync.tiledjob import planned_builder

    kw = {"time": TIME, "resolution": 10, "crs": "utm", "delivery": PINNED_ROOT, "mask": True}
    specs = build_specs(pinned_frame(), PINNED_ES, **kw)
    assert _digest([s.read_plan().to_dict() for s in specs]) == PINNED_PLANS
    reader = ReaderConfig()
    built = [build_dataset(s.read_plan(), reader=reader, chunks=16) for s in specs[:2]]
    assert [dataset_fingerprint(ds) for ds in built] == PINNED_DATASETS
    specs = build_specs(small_fields(), PINNED_ES, tiled=True, **kw)
    planned = plan_call(specs, pack=True)
    sources = [[source_to_dict(s) for s in src] for src in planned.sources]
    assert _digest(sources) == PINNED_SOURCES
    build = planned_builder(planned, specs, [s.read_plan() for s in specs], reader=reader)
    assert [dataset_fingerprint(build(i)) for i in range(2)] == PINNED_PACKED_DATASETS


def _slow_text(spec) -> str:
    """The canonical text as the earlier code built it: the body dict, dumped whole."""
    from xasync.canonical import canonical

    return canonical({"body": spec.canonical_body(), "script": spec.evalscript_digest})


def test_template_text_equals_the_full_dump_for_awkward_geometries():
    import dataclasses

    import shapely
    from shapely.geometry import MultiPolygon, Polygon

    from xasync.canonical import body_texts, canonical, fill_tokens, geometry_texts, request_text

    hole = Polygon(
        [(0, 0), (10, 0), (10, 10), (0, 10)], [[(2, 2), (2, 4), (4, 4)], [(6, 6), (7, 6), (7, 7)]]
    )
    clockwise = Polygon([(0.1 + 0.2, -0.0), (1e-7, 1e21), (123456789012.5, 1 / 3)])
    multi = MultiPolygon([hole, Polygon([(20, 20), (21, 20), (21, 21)])])
    geoms = [hole, clockwise, multi, shapely.force_3d(hole, 1.5)]
    wkbs = [shapely.to_wkb(g) for g in geoms]
    import json

    expected = [
        json.dumps(json.loads(shapely.to_geojson(g)), sort_keys=True, separators=(",", ":"))
        for g in geoms
    ]
    assert geometry_texts(wkbs) == expected
    assert geometry_texts(wkbs, shapely.from_wkb(wkbs)) == expected
    simple = [g.exterior for g in geoms[:2]]  # one ring each: the usual case's own path
    simple = [Polygon(r) for r in simple]
    assert geometry_texts([shapely.to_wkb(g) for g in simple]) == [
        json.dumps(json.loads(shapely.to_geojson(g)), sort_keys=True, separators=(",", ":"))
        for g in simple
    ]
    base = build_specs(
        pinned_frame(), PINNED_ES, time=TIME, delivery=PINNED_ROOT, resolution=10, crs="utm"
    )
    specs = [dataclasses.replace(base[i % 5], geometry_wkb=w) for i, w in enumerate(wkbs)]
    specs += [dataclasses.replace(base[0], bounds_mode="bbox", userdata=True)]
    for spec in specs:
        assert request_text(spec) == _slow_text(spec)
    fresh = [dataclasses.replace(s) for s in specs]
    fill_tokens(fresh)
    assert [s.token for s in fresh] == [s.token for s in specs]
    assert [s.row_url for s in fresh] == [f"{s.delivery_root}/{s.token[:24]}" for s in specs]
    assert body_texts(specs) == [canonical(s.canonical_body()) for s in specs]


def test_string_and_number_texts_are_what_json_dumps_writes():
    import json

    import numpy as np

    from xasync.canonical import bbox_text, canonical, string_text

    for value in ["s3://b/p/abc", 'a"b', "a\\b", "\u00e9", "tab\there", "\x7f", "", "{x}"]:
        assert string_text(value) == canonical(value) == json.dumps(value, separators=(",", ":"))
    for box_ in [(1.5, -0.0, 1e21, 1e-7), (1, 2.0, 3, 4), (np.float64(0.1), 2.0, 3.0, 4.0)]:
        assert bbox_text(box_) == canonical([float(v) if isinstance(v, float) else v for v in box_])
    with pytest.raises(ValueError):
        bbox_text((float("nan"), 0.0, 1.0, 1.0))


@pytest.mark.parametrize("at_once", [7, 1 << 15])
def test_bbox_texts_at_once_equal_one_by_one(at_once, monkeypatch):
    import numpy as np

    from xasync import canonical as canonical_module
    from xasync.canonical import bbox_text, bbox_texts, canonical

    monkeypatch.setattr(canonical_module, "_PAIRS_AT_ONCE", at_once)
    rng = np.random.default_rng(0)
    floats = [tuple(v) for v in rng.uniform(-1e7, 1e7, (500, 4)).round(2).tolist()]
    awkward = [(1.5, -0.0, 1e21, 1e-7), (0.1 + 0.2, 1 / 3, 5e-324, -1e16)]
    for boxes in (floats + awkward, [(1, 2.0, 3, 4)], [(np.float64(0.1), 2.0, 3.0, 4.0)], []):
        expected = [canonical([float(v) if isinstance(v, float) else v for v in b]) for b in boxes]
        assert bbox_texts(boxes) == [bbox_text(b) for b in boxes] == expected
    with pytest.raises(ValueError):
        bbox_texts([(0.0, 0.0, 1.0, 1.0), (float("inf"), 0.0, 1.0, 1.0)])


def test_coordinate_texts_are_what_repr_writes():
    """The vectorised writer of rounded coordinates against ``repr``, value by value."""
    import numpy as np

    from xasync.canonical import _pair_texts

    rng = np.random.default_rng(7)
    n = 50_000
    places = rng.integers(0, 10, (n, 2))
    cases = [
        rng.uniform(2e5, 1e7, (n, 2)).round(2),  # UTM metres at 10 m
        rng.uniform(-180, 180, (n, 2)).round(7),  # degrees
        np.rint(rng.uniform(-10, 10, (n, 2)) * 10.0**places) / 10.0**places,
        rng.integers(-(2**51), 2**51, (n, 2)) / 10.0**places,  # near the limit of 2**51
        rng.integers(-(2**53), 2**53, (n, 2)) / 10.0 ** rng.integers(0, 12, (n, 2)),
        rng.uniform(-1, 1, (n, 2)),  # not decimals: repr
        np.array(
            [[0.0, -0.0], [1e-5, 1e-4], [9.999999999999999e-05, -0.0001], [0.5, 100.0]]
            + [[1e15, -(2.0**51) / 100], [5e-324, 1e21], [0.1 + 0.2, 1 / 3], [1.0, 1e16]]
        ),
    ]
    for xy in cases:
        assert _pair_texts(xy) == [f"{x!r},{y!r}" for x, y in xy.tolist()]
    with pytest.raises(ValueError):
        _pair_texts(np.array([[0.0, float("nan")]]))


def test_a_call_writes_each_geometry_text_once(monkeypatch):
    """``fill_tokens`` keeps each row's geometry text for the manifest's ``body_texts``, which
    uses it and lets it go: the same bodies, one serialisation of each geometry per call."""
    from xasync import canonical as canonical_module
    from xasync.canonical import body_texts, canonical

    specs = build_specs(
        pinned_frame(), PINNED_ES, time=TIME, delivery=PINNED_ROOT, resolution=10, crs="utm"
    )
    key = canonical_module._GEOMETRY_TEXT
    assert all(key in s.__dict__ for s in specs)  # kept by build_specs' fill_tokens
    written: list[int] = []
    real = canonical_module.geometry_texts

    def counted(wkbs, shapes=None):
        written.append(len(wkbs))
        return real(wkbs, shapes)

    monkeypatch.setattr(canonical_module, "geometry_texts", counted)
    expected = [canonical(s.canonical_body()) for s in specs]
    assert body_texts(specs) == expected
    assert written == [] and not any(key in s.__dict__ for s in specs)  # used once, let go
    assert body_texts(specs) == expected  # without it: written again, the same text
    assert written == [len(specs)]
