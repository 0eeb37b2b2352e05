"""PixelGrid constructors: outward snapping to a global grid, exact sizes, UTM zones, limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from affine import Affine

from xasync.errors import ValidationError
from xasync.grid import (
    GridError,
    PixelGrid,
    smallest_fitting_resolution,
    snapped_size,
    utm_epsg,
    utm_epsg_for,
)


def test_from_resolution_snaps_outward_to_multiples():
    g = PixelGrid.from_resolution((426003.2, 3960007.9, 461995.1, 3993991.0), 32633, 10)
    assert g.bbox == (426000.0, 3960000.0, 462000.0, 3994000.0)
    assert (g.width, g.height) == (3600, 3400)
    assert g.transform == Affine(10.0, 0.0, 426000.0, 0.0, -10.0, 3994000.0)
    assert g.resolution == (10.0, 10.0)


def test_bounds_on_the_grid_are_not_grown_by_float_noise():
    # 0.1 * 3 is 0.30000000000000004: already on the 0.1 grid, must not grow a pixel.
    g = PixelGrid.from_resolution((0.1 * 3, 0.0, 0.1 * 7, 0.1 * 2), 4326, 0.1)
    assert (g.width, g.height) == (4, 2)
    g = PixelGrid.from_resolution((426000.0000000001, 0, 426100 - 1e-9, 50), 32633, 10)
    assert g.bbox == (426000.0, 0.0, 426100.0, 50.0)


def test_negative_coordinates_snap_outward_too():
    g = PixelGrid.from_resolution((-15.5, -25.1, -4.9, -0.2), 3857, 10)
    assert g.bbox == (-20.0, -30.0, 0.0, 0.0)
    assert (g.width, g.height) == (2, 3)


def test_neighbours_share_one_grid():
    a = PixelGrid.from_resolution((500003.0, 0.0, 500517.0, 100.0), 32633, 20)
    b = PixelGrid.from_resolution((500511.0, 0.0, 501003.0, 100.0), 32633, 20)
    # Every pixel edge of b lies on a's grid lines (integer offsets), so mosaics need no resampling.
    offset = (b.transform.c - a.transform.c) / 20
    assert offset == round(offset)
    assert a.transform.a == b.transform.a == 20


def test_anisotropic_resolution():
    g = PixelGrid.from_resolution((0, 0, 95, 95), 3857, (10, 20))
    assert (g.width, g.height, g.bbox) == (10, 5, (0.0, 0.0, 100.0, 100.0))
    assert g.resolution == (10.0, 20.0)


def test_degenerate_bounds_get_one_pixel():
    g = PixelGrid.from_resolution((5.0, 5.0, 5.0, 5.0), 3857, 10)
    assert (g.width, g.height) == (1, 1)


def test_pixel_centres_match_transform():
    g = PixelGrid.from_resolution((0, 0, 30, 20), 3857, 10)
    np.testing.assert_array_equal(g.x_coords(), [5.0, 15.0, 25.0])
    np.testing.assert_array_equal(g.y_coords(), [15.0, 5.0])
    assert g.crs.to_epsg() == 3857
    assert g.crs_url == "http://www.opengis.net/def/crs/EPSG/0/3857"


def test_from_size_keeps_bounds_exactly():
    g = PixelGrid.from_size((13.1, 45.2, 13.35, 45.4), 4326, (512, 256))
    assert g.bbox == (13.1, 45.2, 13.35, 45.4)
    assert g.shape == (256, 512)
    assert g.transform.a == (13.35 - 13.1) / 512


@pytest.mark.parametrize("res", [0, -10, float("nan"), float("inf"), "10", (10,), (10, -1), True])
def test_bad_resolutions(res):
    with pytest.raises(GridError):
        PixelGrid.from_resolution((0, 0, 100, 100), 3857, res)


@pytest.mark.parametrize("size", [(0, 10), (10, 10001), (10.5, 10), (10,), "10x10", (True, 5)])
def test_bad_sizes(size):
    with pytest.raises(GridError):
        PixelGrid.from_size((0, 0, 100, 100), 3857, size)


@pytest.mark.parametrize("bounds", [(0, 0, 1), (1, 0, 0, 1), (0, 0, float("nan"), 1), "abcd"])
def test_bad_bounds(bounds):
    with pytest.raises(GridError):
        PixelGrid.from_resolution(bounds, 3857, 1)


def test_more_than_10000_px_says_size_and_fitting_resolution():
    bounds = (0.0, 0.0, 200_000.0, 50_000.0)
    with pytest.raises(GridError) as info:
        PixelGrid.from_resolution(bounds, 32633, 10)
    msg = str(info.value)
    assert isinstance(info.value, ValidationError)
    assert "20000 x 5000 px" in msg
    assert "at least 20" in msg
    fit = smallest_fitting_resolution(bounds, 10)
    assert fit == 20.0
    assert max(PixelGrid.from_resolution(bounds, 32633, fit).shape) == 10_000


def test_smallest_fitting_resolution_really_fits_and_is_tight():
    bounds = (123.4, 567.8, 123.4 + 123_456.7, 567.8 + 9_999.0)
    fit = smallest_fitting_resolution(bounds, 1)
    assert max(snapped_size(bounds, fit)) <= 10_000
    assert max(snapped_size(bounds, fit * 0.99)) > 10_000
    # Already fitting: the requested resolution comes back.
    assert smallest_fitting_resolution((0, 0, 100, 100), (2, 5)) == 5


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [
        (14.5, 46.0, 32633),  # Ljubljana
        (-0.1, 51.5, 32630),  # London
        (-58.4, -34.6, 32721),  # Buenos Aires
        (151.2, -33.9, 32756),  # Sydney
        (-180.0, 10.0, 32601),
        (179.99, -10.0, 32760),
        (180.0, 10.0, 32601),  # wraps
        (5.3, 60.4, 32632),  # Bergen: the Norway exception (would be 31)
        (2.0, 60.4, 32631),
        (15.6, 78.2, 32633),  # Longyearbyen, Svalbard
        (8.0, 78.0, 32631),
        (25.0, 78.0, 32635),
        (40.0, 78.0, 32637),
        (0.0, 0.0, 32631),
    ],
)
def test_utm_epsg(lon, lat, epsg):
    assert utm_epsg(lon, lat) == epsg


def test_utm_epsg_rejects_non_lonlat_and_takes_geometries():
    import shapely

    with pytest.raises(GridError):
        utm_epsg(500000.0, 5000000.0)
    with pytest.raises(GridError):
        utm_epsg(math.nan, 0)
    assert utm_epsg_for(shapely.box(14, 46, 15, 47)) == 32633


@pytest.mark.parametrize("resolution", [10, (10, 20), 0.0001, 3.3])
def test_snapped_grids_equal_from_resolution_one_by_one(resolution):
    from xasync.grid import snapped_grids

    rng = np.random.default_rng(5)
    res = np.broadcast_to(np.asarray(resolution, dtype=float), (2,))
    lo = rng.uniform(-5e5, 5e5, (400, 2)) * res / 10
    size = rng.integers(0, 60, (400, 2)) * res
    noise = rng.choice([0.0, 1e-9, -1e-9, 0.4, 0.5, 0.5000001], (400, 4)) * np.tile(res, 2)
    boxes = np.column_stack([lo, lo + size]) + noise
    boxes[::7, 2:] = boxes[::7, :2]  # zero extent: one pixel
    boxes[5] = [0.0, 0.0, 1e9, 10.0]  # too wide
    boxes[6] = [np.nan, 0, 1, 1]  # not finite
    boxes[8] = [5.0, 0.0, 1.0, 1.0]  # reversed
    epsgs = np.full(len(boxes), 32633)
    got = snapped_grids(boxes, epsgs, resolution, 10000)
    refused = 0
    for i, grid in enumerate(got):
        try:
            want = PixelGrid.from_resolution(boxes[i], 32633, resolution)
        except GridError:
            assert grid is None
            refused += 1
            continue
        assert grid == want
        assert [type(v) for v in (grid.epsg, *grid.bbox, grid.width, grid.height)] == [
            int,
            *[float] * 4,
            int,
            int,
        ]
    assert 3 <= refused < 100


def test_resolution_is_the_transforms_pixel_size_exactly():
    rng = np.random.default_rng(3)
    for _ in range(200):
        x0, y0 = rng.uniform(-1e6, 1e6, 2)
        w, h = (int(v) for v in rng.integers(1, 5000, 2))
        grid = PixelGrid(32633, (x0, y0, x0 + rng.uniform(1, 1e5), y0 + rng.uniform(1, 1e5)), w, h)
        t = grid.transform
        assert grid.resolution == (t.a, -t.e)


def test_coords_and_geotransform_equal_the_affine_ones_bit_for_bit():
    """x/y coords and the GDAL geotransform text come from the bbox; the same floats as the
    Affine transform's (``c + (i + 0.5) * a``) and rioxarray's ``to_gdal`` text."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        minx, miny = rng.uniform(-1e6, 1e6, 2)
        w, h = (int(v) for v in rng.integers(1, 3000, 2))
        res = float(rng.choice([0.1, 1.0, 10.0, 20.0, 60.0, 1 / 3, 8.983e-5]))
        g = PixelGrid(32633, (minx, miny, minx + w * res * 1.0001, miny + h * res), w, h)
        t = g.transform
        assert np.array_equal(g.x_coords(), t.c + (np.arange(w) + 0.5) * t.a)
        assert np.array_equal(g.y_coords(), t.f + (np.arange(h) + 0.5) * t.e)
        assert g.geotransform() == " ".join(str(v) for v in t.to_gdal())


def test_cached_pixel_offsets_give_the_same_coordinates_as_the_full_formula():
    """x/y centres from the cached offsets equal ``origin + (i + 0.5) * step`` computed in
    full, bit for bit, for small (cached) and long (not cached) axes."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        w, h = (int(v) for v in rng.choice([1, 7, 64, 513, 2048, 2049, 3000], size=2))
        minx, miny = rng.uniform(-2e6, 2e6, size=2).round(1)
        res = float(rng.choice([10.0, 20.0, 60.0, 0.3]))
        g = PixelGrid(32633, (minx, miny, minx + w * res, miny + h * res), w, h)
        full_x = np.arange(0.5, w)
        full_x *= (g.bbox[2] - g.bbox[0]) / w
        full_x += g.bbox[0]
        full_y = np.arange(0.5, h)
        full_y *= -(g.bbox[3] - g.bbox[1]) / h
        full_y += g.bbox[3]
        x, y = g.x_coords(), g.y_coords()
        assert np.array_equal(x, full_x) and np.array_equal(y, full_y)
        assert x.flags.writeable and y.flags.writeable  # new arrays, not the cache
