"""Bad-input matrix (issue 6, test 8): each bad input raises a typed ``XasyncError`` subclass
whose message names the problem, and nothing is bought (``create_calls == 0``)."""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, Point, Polygon, box

import xasync
from xasync.errors import (
    AuthError,
    LabelError,
    OptionError,
    TimeRangeError,
    ValidationError,
    XasyncError,
)

from ._helpers import NDVI, RES, TIME, fields, fresh_root

pytestmark = pytest.mark.faults


def _with_geom(geom, crs=4326):
    gdf = fields(2)
    return gpd.GeoDataFrame(
        gdf.drop(columns="geometry"), geometry=[gdf.geometry.iloc[0], geom], crs=crs
    )


BOWTIE = Polygon([(14, 46), (14.004, 46.003), (14.004, 46), (14, 46.003)])
NO_SETUP = "//VERSION=3\nfunction evaluatePixel(s) { return [s.B04]; }\n"
BAD_SAMPLE = NDVI.replace('sampleType: "FLOAT32"', 'sampleType: "FLOAT99"')

# (id, overrides of the process() arguments, expected error type, regex the message must match)
CASES = [
    ("empty-gdf", {"gdf": fields(0)}, ValidationError, r"empty"),
    ("no-crs", {"gdf": fields(2).set_crs(None, allow_override=True)}, ValidationError, r"CRS"),
    ("invalid-geometry", {"gdf": _with_geom(BOWTIE)}, ValidationError, r"invalid geometry"),
    ("empty-geometry", {"gdf": _with_geom(Polygon())}, ValidationError, r"empty or missing"),
    ("missing-geometry", {"gdf": _with_geom(None)}, ValidationError, r"empty or missing"),
    ("point", {"gdf": _with_geom(Point(14, 46))}, ValidationError, r"Point.*Polygon"),
    (
        "line",
        {"gdf": _with_geom(LineString([(14, 46), (14.01, 46.01)]))},
        ValidationError,
        r"LineString.*Polygon",
    ),
    (
        "over-200000-px",  # beyond 10000 px a side a row is tiled (issue 17), not refused
        {"gdf": _with_geom(box(0, 40, 30, 43)), "resolution": 0.0001},
        ValidationError,
        r"300000 x 30000 px.*200000 px a side even when tiled",
    ),
    (
        "reversed-time",
        {"time": ("2024-06-30", "2024-06-01")},
        ValidationError,
        r"reversed",
    ),
    ("not-a-time", {"time": ("2024-13-45", "2024-06-01")}, ValidationError, r"2024-13-45"),
    ("no-time", {"time": None}, ValidationError, r"(?i)time"),
    ("unknown-sampletype", {"evalscript": BAD_SAMPLE}, ValidationError, r"FLOAT99"),
    ("evalscript-without-setup", {"evalscript": NO_SETUP}, ValidationError, r"setup"),
    ("empty-evalscript", {"evalscript": ""}, ValidationError, r"evalscript"),
    ("delivery-not-s3", {"delivery": "/tmp/out"}, ValidationError, r"s3://"),
    ("delivery-http", {"delivery": "https://bucket/out"}, ValidationError, r"s3://"),
    ("unknown-collection", {"data": "sentinel-9-xyz"}, ValidationError, r"sentinel-9-xyz"),
    (
        "size-and-resolution",
        {"size": (10, 10)},
        ValidationError,
        r"resolution.*size|size.*resolution",
    ),
    ("neither-size-nor-resolution", {"resolution": None}, ValidationError, r"resolution=.*size="),
    (
        "negative-resolution",
        {"resolution": -0.0002},
        ValidationError,
        r"resolution must be positive",
    ),
    ("zero-size", {"resolution": None, "size": (0, 10)}, ValidationError, r"width 0 px"),
    (
        "metres-on-degrees",
        {"resolution": 10},
        ValidationError,
        r"degrees.*metres",
    ),
    (
        "degrees-on-metres",
        {"crs": "utm", "resolution": 0.0002},
        ValidationError,
        r"metres.*degrees",
    ),
    ("unknown-crs", {"crs": "EPSG:999999"}, ValidationError, r"999999"),
    ("unknown-response", {"responses": ["nope"]}, ValidationError, r"nope"),
    ("unknown-bounds-mode", {"bounds": "circle"}, ValidationError, r"circle"),
    # #16 finding 5: chunks are checked before paying
    ("chunks-lots", {"chunks": "lots"}, OptionError, r"lots"),
    ("chunks-zero", {"chunks": 0}, OptionError, r"chunks"),
    ("chunks-float", {"chunks": (512, 2.5)}, OptionError, r"chunks"),
    # #16 finding 3: a zero-length range would find no scene and still be charged
    ("zero-length-time", {"time": pd.Timestamp("2024-06-15T10:00")}, TimeRangeError, r"zero"),
    # #16 finding 9: a NaN label cannot name a row
    ("nan-label", {"gdf": fields(2).set_axis([0.0, np.nan])}, LabelError, r"missing label"),
]


@pytest.fixture
def root(emu):
    return fresh_root(emu, "bad")


def call(emu, root, client, **overrides):
    kwargs = dict(
        time=TIME,
        resolution=RES,
        delivery=f"{root}/bad",
        storage_options=emu.storage_options,
        client=client,
    )
    gdf = overrides.pop("gdf", fields(2))
    evalscript = overrides.pop("evalscript", NDVI)
    kwargs.update(overrides)
    return gdf.xasync.process(evalscript, **kwargs)


@pytest.mark.parametrize(
    ("overrides", "etype", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_refused_before_paying(emu, root, overrides, etype, pattern):
    client = xasync.Client.from_emulator(emu)
    try:
        with pytest.raises(etype, match=pattern) as info:
            call(emu, root, client, **dict(overrides))
    finally:
        client.close()
    assert isinstance(info.value, XasyncError)
    assert emu.stats["create_calls"] == 0


def test_missing_bucket_is_refused_before_paying(emu):
    client = xasync.Client.from_emulator(emu)
    try:
        with pytest.raises(ValidationError, match="no-such-bucket-rel") as info:
            call(emu, "s3://no-such-bucket-rel", client)
    finally:
        client.close()
    assert re.search(r"(?i)bucket|exist|write", str(info.value))
    assert emu.stats["create_calls"] == 0


def test_unreachable_s3_is_refused_before_paying(emu, root):
    # storage_options pointing at a port nothing listens on: the manifest cannot be written
    client = xasync.Client.from_emulator(emu)
    bad = {**emu.storage_options, "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}}
    bad["config_kwargs"] = {"connect_timeout": 1, "retries": {"max_attempts": 1}}
    try:
        with pytest.raises(ValidationError, match=re.escape(root)):
            call(emu, root, client, storage_options=bad)
    finally:
        client.close()
    assert emu.stats["create_calls"] == 0


def test_no_delivery_credentials_is_refused(emu, root, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    client = xasync.Client.from_emulator(emu)
    so = {"client_kwargs": emu.storage_options["client_kwargs"], "anon": True}
    try:
        with pytest.raises(ValidationError, match="credentials"):
            call(emu, root, client, storage_options=so)
    finally:
        client.close()
    assert emu.stats["create_calls"] == 0


def test_wrong_credentials_raise_auth_error_before_any_create(emu, root):
    client = xasync.Client(
        base_url=emu.base_url,
        token_url=emu.token_url,
        client_id=emu.client_id,
        client_secret="not-the-secret",
    )
    with pytest.raises(AuthError, match=r"(?i)invalid_client|credential|401") as info:
        call(emu, root, client)
    client.close()
    assert "not-the-secret" not in str(info.value)
    stats = emu.stats
    assert stats["token_calls"] >= 1 and stats["create_calls"] == 0


def test_missing_credentials_raise_config_error(emu, root, monkeypatch):
    for var in ("SH_CLIENT_ID", "SH_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SH_CONFIG_HOME", str(root))  # no sentinelhub-py config file there
    client = xasync.Client(base_url=emu.base_url, token_url=emu.token_url, client_id=emu.client_id)
    with pytest.raises(XasyncError, match=r"(?i)secret|credential"):
        call(emu, root, client)
    assert emu.stats["create_calls"] == 0


def test_not_a_geodataframe():
    import pandas as pd

    with pytest.raises((ValidationError, AttributeError), match="GeoDataFrame"):
        pd.DataFrame({"a": [1]}).xasync  # noqa: B018


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("problem", ["no-credentials", "dead-endpoint"])
def test_status_command_fails_in_one_line_without_traceback(emu, problem):
    """#16 finding 9: ``xasync status`` exits non-zero with a one-line typed error."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    env["AWS_MAX_ATTEMPTS"] = "1"
    if problem == "no-credentials":
        endpoint = emu.s3_endpoint_url
    else:
        env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        endpoint = f"http://127.0.0.1:{_free_port()}"
    proc = subprocess.run(
        [sys.executable, "-m", "xasync.cli", "status", "s3://some-bucket/runs"]
        + ["--endpoint-url", endpoint],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "DeliveryAccessError" in lines[0]
    assert ("credentials" if problem == "no-credentials" else "cannot be reached") in lines[0]
