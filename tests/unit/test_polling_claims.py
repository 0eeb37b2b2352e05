"""Early claims against the emulator: the next request claims while the slot is busy.

With a configured K and short learned durations, the next request to start writes its claim in
S3 while it waits for a slot (so the S3 write is not between the freed slot and the create). The
emulator holds the running request (``emu.hold()``) until the test looks: no timing margins.
"""

from __future__ import annotations

import os

import geopandas as gpd
import pytest
import s3fs
from integration._shared import until as _until
from shapely.geometry import box

import xasync
from xasync.submitter import get_submitter
from xasync.submitter.claim import claim_path

NDVI = """//VERSION=3
function setup() {
  return {input: ["B04", "B08"], output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04 + 1e-6)]; }
"""


def fields(n: int, lon0: float) -> gpd.GeoDataFrame:
    geoms = [box(lon0 + 0.01 * i, 46.0, lon0 + 0.004 + 0.01 * i, 46.003) for i in range(n)]
    return gpd.GeoDataFrame({"i": range(n)}, geometry=geoms, crs=4326)


def _process(gdf, client, emu, delivery):
    return gdf.xasync.process(
        NDVI,
        time=("2024-06-01", "2024-06-30"),
        resolution=0.0002,
        delivery=delivery,
        storage_options=emu.storage_options,
        client=client,
    )


@pytest.fixture
def one_slot(emu):
    emu.configure(concurrency_limit=1, processing_seconds=0.2)
    # an account of its own: the submitter keeps one Account (K, clock) per client id for the
    # whole process, and other tests use the emulator's default client with another K
    client_id, secret = emu.add_client()
    client = xasync.Client.from_emulator(
        emu, client_id=client_id, client_secret=secret, concurrency=1
    )
    root = emu.create_bucket(f"early-{os.urandom(5).hex()}")
    # the account learns its durations first: claims are taken early only once known short
    _process(fields(3, 20.0), client, emu, f"{root}/warm").wait(timeout=120, progress=False)
    account = get_submitter().account(client)
    assert account.claims_early(xasync.SubmitOptions().claim_timeout)
    yield emu, client, root, s3fs.S3FileSystem(**emu.storage_options)
    emu.release()
    client.close()


def test_the_next_request_claims_while_the_slot_is_busy(one_slot):
    emu, client, root, fs = one_slot
    before = emu.stats["creates"]
    with emu.hold():
        results = _process(fields(2, 14.0), client, emu, f"{root}/run")
        first, second = results.job.urls
        _until(lambda: fs.exists(claim_path(second, 0)), "the second request's claim")
        # K = 1 and the first request is held: the second claimed but was not created
        assert emu.stats["creates"] - before == 1
        assert fs.exists(claim_path(first, 0))
    results.wait(timeout=120, progress=False)
    assert emu.stats["creates"] - before == 2
    assert results.status()["state"].tolist() == ["done", "done"]


def test_cancelling_drops_an_early_claim_and_buys_nothing_more(one_slot):
    emu, client, root, fs = one_slot
    before = emu.stats["creates"]
    with emu.hold():
        results = _process(fields(2, 15.0), client, emu, f"{root}/cancel")
        _first, second = results.job.urls
        _until(lambda: fs.exists(claim_path(second, 0)), "the second request's claim")
        results.cancel()
        # the claim is deleted (another buyer may take the row at once) and nothing is bought
        _until(lambda: not fs.exists(claim_path(second, 0)), "the claim to be dropped")
        assert emu.stats["creates"] - before == 1
    results.wait(timeout=120, progress=False)
    assert emu.stats["creates"] - before == 1
    assert sorted(results.status()["state"].tolist()) == ["done", "failed"]


def test_rows_queued_at_a_cancel_touch_neither_s3_nor_the_api(one_slot):
    """A cancel ends the queued rows without a claim, a listing or a create for any of them.

    Regression: rows waiting for their turn to claim early still wrote their claim (and listed
    their folder) one after the other after the cancel, so that cancelling 1000 queued rows took
    over a minute on a busy machine.
    """
    emu, client, root, _fs = one_slot

    def states() -> list[str]:
        return results.status()["state"].tolist()

    with emu.hold():
        results = _process(fields(40, 16.0), client, emu, f"{root}/queued")
        _until(lambda: "running" in states(), "the first request to run")
        results.cancel()
        s3_before, creates_before = emu.stats["s3"], emu.stats["creates"]
        _until(lambda: states().count("failed") == 39, "the queued rows to end")
        s3_after = emu.stats["s3"]
        assert emu.stats["creates"] == creates_before
    # K = 1: at most the one row claiming ahead at the cancel may still write or drop its claim
    assert s3_after["put"] - s3_before["put"] <= 1
    assert s3_after["list"] - s3_before["list"] <= 2
    results.wait(timeout=120, progress=False)
    assert sorted(states()) == ["done"] + ["failed"] * 39
