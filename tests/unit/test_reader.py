"""xasync.reader: windowed reads of real GeoTIFFs on the moto S3 server."""

from __future__ import annotations

import collections
import pickle
import threading

import numpy as np
import pytest
import rasterio
from affine import Affine
from dask.base import tokenize
from rasterio.windows import Window

from xasync import reader as rd
from xasync.errors import OutputMismatchError, ValidationError, XasyncError
from xasync.reader import DeclaredOutput, ReaderConfig, filesystem_for, read_window


def write_tif(path, data: np.ndarray, *, tiled: bool, nodata=None, block: int = 256) -> None:
    """A GeoTIFF as the service writes one: tiled+DEFLATE, or plain striped."""
    bands, height, width = data.shape
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": bands,
        "dtype": data.dtype,
        "crs": "EPSG:32633",
        "transform": Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_000_000.0),
        "nodata": nodata,
    }
    if tiled:
        profile.update(tiled=True, blockxsize=block, blockysize=block, compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


@pytest.fixture
def config(s3_server):
    return ReaderConfig(storage_options=s3_server.storage_options)


@pytest.fixture(autouse=True)
def _fresh_cache():
    rd.clear_cache()
    yield
    rd.clear_cache()


def upload(fs, tmp_path, bucket, name, data, **kw) -> tuple[str, str]:
    local = tmp_path / name
    write_tif(local, data, **kw)
    url = f"s3://{bucket}/row/REQ/{name}"
    fs.put_file(str(local), url)
    return url, str(local)


def sample(bands: int, height: int, width: int, dtype="uint16") -> np.ndarray:
    rng = np.random.default_rng(42)
    return rng.integers(0, 5000, size=(bands, height, width)).astype(dtype)


@pytest.mark.parametrize("tiled", [True, False], ids=["tiled-deflate", "striped"])
def test_windows_equal_rasterio_full_read(s3fs_fs, tmp_path, bucket, config, tiled):
    data = sample(3, 300, 420)
    url, local = upload(s3fs_fs, tmp_path, bucket, f"t{tiled}.tif", data, tiled=tiled)
    with rasterio.open(local) as src:
        full = src.read()
    np.testing.assert_array_equal(full, data)
    windows = [
        Window(0, 0, 420, 300),  # everything
        Window(0, 0, 128, 100),  # top-left
        Window(292, 200, 128, 100),  # bottom-right edge
        Window(255, 37, 3, 250),  # across tile borders
        Window(419, 299, 1, 1),  # last pixel
    ]
    for w in windows:
        got = read_window(url, config, w)
        r, c = int(w.row_off), int(w.col_off)
        expected = full[:, r : r + int(w.height), c : c + int(w.width)]
        assert got.shape == (3, int(w.height), int(w.width))
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got, expected)


def test_window_past_the_edge_is_filled(s3fs_fs, tmp_path, bucket, config):
    data = sample(1, 50, 60)
    url, _ = upload(s3fs_fs, tmp_path, bucket, "nd.tif", data, tiled=False, nodata=9999)
    got = read_window(url, config, Window(40, 30, 32, 32))
    assert got.shape == (1, 32, 32)
    np.testing.assert_array_equal(got[:, :20, :20], data[:, 30:50, 40:60])
    assert (got[:, 20:, :] == 9999).all()
    assert (got[:, :, 20:] == 9999).all()
    floats = read_window(url, config, Window(-2, 0, 4, 4), out_dtype="float32")
    assert floats.dtype == np.float32
    assert (floats[:, :, :2] == 9999).all()  # the file's nodata, whatever the output dtype
    np.testing.assert_array_equal(floats[:, :, 2:], data[:, 0:4, 0:2].astype("float32"))
    url, _ = upload(s3fs_fs, tmp_path, bucket, "no-nd.tif", data, tiled=False)
    floats = read_window(url, config, Window(-2, 0, 4, 4), out_dtype="float32")
    assert np.isnan(floats[:, :, :2]).all()  # no nodata: NaN for floats
    assert (read_window(url, config, Window(-2, 0, 4, 4))[:, :, :2] == 0).all()  # 0 for ints


def test_a_file_unlike_its_declared_output_is_a_typed_error(s3fs_fs, tmp_path, bucket, config):
    """#16 finding 6: declared bands/dtype are checked against the delivered file."""
    data = sample(1, 20, 20)
    url, _ = upload(s3fs_fs, tmp_path, bucket, "one-band.tif", data, tiled=False)
    file_dtype = np.dtype(data.dtype).name
    w = Window(0, 0, 4, 4)
    ok = read_window(url, config, w, declared=DeclaredOutput("ndvi", 1, file_dtype))
    assert ok.shape == (1, 4, 4)
    with pytest.raises(OutputMismatchError, match=r"'ndvi'.*bands 3.*1") as info:
        read_window(url, config, w, declared=DeclaredOutput("ndvi", 3, file_dtype))
    assert (info.value.output, info.value.what, info.value.declared) == ("ndvi", "bands", 3)
    assert info.value.delivered == 1
    with pytest.raises(OutputMismatchError, match=rf"dtype 'float32'.*'{file_dtype}'"):
        read_window(url, config, w, declared=DeclaredOutput("ndvi", 1, "float32"))


def test_expected_shape_mismatch_and_empty_window(s3fs_fs, tmp_path, bucket, config):
    url, _ = upload(s3fs_fs, tmp_path, bucket, "s.tif", sample(1, 20, 30), tiled=False)
    with pytest.raises(XasyncError, match="20x30 px, expected 21x30"):
        read_window(url, config, Window(0, 0, 5, 5), expected_shape=(21, 30))
    with pytest.raises(ValidationError):
        read_window(url, config, Window(0, 0, 0, 5))


def test_missing_file_raises(config, bucket):
    with pytest.raises((FileNotFoundError, rasterio.errors.RasterioIOError)):
        read_window(f"s3://{bucket}/nope/R/default.tif", config, Window(0, 0, 1, 1))


def test_dataset_cache_reuses_open_files(s3fs_fs, tmp_path, bucket, config, s3_server):
    data = sample(2, 128, 128)
    url, _ = upload(s3fs_fs, tmp_path, bucket, "c.tif", data, tiled=True, block=64)
    for r in (0, 64):
        for c in (0, 64):
            read_window(url, config, Window(c, r, 64, 64))
    assert rd.cache_stats() == {"opens": 1, "hits": 3}
    # Another config is another cache entry (it may reach S3 differently).
    other = ReaderConfig(storage_options=s3_server.storage_options, block_size=128 * 1024)
    read_window(url, other, Window(0, 0, 8, 8))
    assert rd.cache_stats()["opens"] == 2
    # Another thread gets its own handle (rasterio datasets are not thread-safe).
    results = []
    t = threading.Thread(
        target=lambda: results.append(read_window(url, config, Window(0, 0, 128, 128))),
    )
    t.start()
    t.join()
    np.testing.assert_array_equal(results[0], data)
    assert rd.cache_stats()["opens"] == 3


def test_outputs_of_one_folder_and_one_file_twice_coexist(s3fs_fs, tmp_path, bucket, config):
    """rasterio 1.4 keys openers by folder: two outputs of one request must not clash."""
    a = sample(1, 40, 40)
    b = sample(2, 40, 40, dtype="float32")
    url_a, _ = upload(s3fs_fs, tmp_path, bucket, "rgb.tif", a, tiled=False)
    url_b, _ = upload(s3fs_fs, tmp_path, bucket, "ndvi.tif", b, tiled=True, block=16)
    np.testing.assert_array_equal(read_window(url_a, config, Window(0, 0, 40, 40)), a)
    np.testing.assert_array_equal(read_window(url_b, config, Window(0, 0, 40, 40)), b)
    # Close one of them: the other (same folder) keeps reading.
    rd.clear_cache()
    np.testing.assert_array_equal(read_window(url_b, config, Window(3, 5, 7, 9)), b[:, 5:14, 3:10])
    # The same file open in two threads at once, closed in either order.
    barrier = threading.Barrier(2)
    errors = []

    def work() -> None:
        try:
            read_window(url_a, config, Window(0, 0, 10, 10))
            barrier.wait(timeout=30)
            rd.clear_cache()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    np.testing.assert_array_equal(read_window(url_a, config, Window(0, 0, 40, 40)), a)


def test_reader_config_is_small_hashable_and_masks_secrets(s3_server):
    opts = s3_server.storage_options
    a = ReaderConfig(storage_options=opts)
    b = ReaderConfig(storage_options=dict(opts))
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != ReaderConfig()
    assert "testing-secret" not in repr(a)
    assert "testing-key" not in repr(a)
    assert s3_server.endpoint_url in repr(a)
    c = pickle.loads(pickle.dumps(a))
    assert c == a
    assert c.storage_options == opts
    assert tokenize(a) == tokenize(b)
    assert "testing-secret" not in tokenize(a)
    assert pickle.loads(pickle.dumps(ReaderConfig())).storage_options is None
    env = ReaderConfig(gdal_env=(("GDAL_CACHEMAX", "64"),))
    assert env.gdal_env == (("GDAL_CACHEMAX", "64"),)
    with pytest.raises(ValidationError):
        ReaderConfig(block_size=0)
    with pytest.raises(ValidationError):
        ReaderConfig(storage_options=["not", "a", "mapping"])


def test_one_window_of_a_large_tiled_file_costs_little(s3fs_fs, tmp_path, bucket, config):
    """Bytes and requests for one 512x512 window of a 4096x4096 tiled file (FIELD-NOTES)."""
    rng = np.random.default_rng(1)
    data = rng.integers(0, 255, size=(1, 4096, 4096), dtype="uint8")  # incompressible
    url, _ = upload(s3fs_fs, tmp_path, bucket, "big.tif", data, tiled=True, block=512)
    size = s3fs_fs.size(url)

    fs = filesystem_for(url, config)  # the very instance read_window uses (fsspec cache)
    calls: collections.Counter = collections.Counter()
    nbytes = collections.Counter()

    def hook(event_name: str, parsed=None, **_kw) -> None:
        op = event_name.rsplit(".", 1)[-1]
        calls[op] += 1
        if op == "GetObject" and parsed:
            nbytes[op] += int(parsed.get("ContentLength", 0))

    fs.s3.meta.events.register("after-call.s3", hook)
    got = read_window(url, config, Window(1024, 2048, 512, 512))
    np.testing.assert_array_equal(got, data[:, 2048:2560, 1024:1536])
    first = sum(calls.values()), nbytes["GetObject"]
    read_window(url, config, Window(1536, 2048, 512, 512))
    second = sum(calls.values()) - first[0], nbytes["GetObject"] - first[1]

    # open + first window: a handful of requests, about one tile of bytes, not the file.
    assert first[0] <= 8, calls
    assert first[1] < 0.05 * size, (first, size)
    # a second window of the open file: the one tile it needs.
    assert second[0] <= 2
    assert 512 * 512 <= second[1] < 3 * 512 * 512
    rd_figures = {"file": size, "open+window": first, "next window": second}
    print("reader figures (requests, bytes):", rd_figures)
