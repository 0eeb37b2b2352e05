"""xasync.awaiting.await_delivery: the ledger in this process, S3 elsewhere, typed errors only."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from xasync import awaiting
from xasync._contract import ERROR_FILE
from xasync.awaiting import await_delivery
from xasync.errors import DeliveryTimeout, ProcessingError, TransportError
from xasync.ledger import LEDGER, Entry, Stage
from xasync.reader import ReaderConfig

IDS = ("ndvi",)


@pytest.fixture(autouse=True)
def _clean():
    LEDGER.clear()
    yield
    LEDGER.clear()


@pytest.fixture
def config(s3_server):
    return ReaderConfig(storage_options=s3_server.storage_options)


def _await(url, config, timeout=10.0, poll=0.05):
    return await_delivery("tok", url, IDS, "tif", "row-0", config, timeout, poll)


def test_unreachable_s3_raises_a_typed_transport_error(monkeypatch, caplog):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there any more
    reader = ReaderConfig(
        storage_options={
            "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
            "anon": True,
        }
    )
    monkeypatch.setattr(awaiting, "MAX_PROBE_FAILURES", 2)
    with caplog.at_level("WARNING", logger="xasync.awaiting"), pytest.raises(TransportError):
        _await("s3://nowhere/p/abc", reader, timeout=60)
    assert [r.getMessage().endswith("retrying") for r in caplog.records] == [True]


def test_ledger_outcome_needs_no_s3(config):
    url = "s3://not-a-bucket-anyone-made/p/abc"  # any S3 call would fail
    LEDGER.record(url, Entry(url, Stage.DONE, "R1", outputs={"ndvi": f"{url}/R1/ndvi.tif"}))
    assert _await(url, config) == {"ndvi": f"{url}/R1/ndvi.tif"}
    LEDGER.record(url, Entry(url, Stage.FAILED, "R1", error="boom"))
    with pytest.raises(ProcessingError, match="boom"):
        _await(url, config)


def test_waits_for_the_follower_in_this_process(config):
    url = "s3://not-a-bucket-anyone-made/p/def"
    LEDGER.record(url, Entry(url, Stage.RUNNING, "R2", follower=99))
    got: list = []
    worker = threading.Thread(target=lambda: got.append(_await(url, config, timeout=60)))
    worker.start()
    worker.join(0.3)
    assert worker.is_alive() and not got  # still waiting: nothing is delivered
    LEDGER.update(url, stage=Stage.DONE, outputs={"ndvi": "s3://x/R2/ndvi.tif"})
    worker.join(30)
    assert got == [{"ndvi": "s3://x/R2/ndvi.tif"}]


def test_follows_s3_when_nobody_here_follows(s3fs_fs, bucket, config):
    url = f"s3://{bucket}/p/ghi"
    s3fs_fs.pipe_file(f"{url}/R3/{ERROR_FILE}", json.dumps({"message": "no data"}).encode())
    with pytest.raises(ProcessingError, match="no data"):
        _await(url, config)
    s3fs_fs.pipe_file(f"{url}/R4/ndvi.tif", b"x")
    s3fs_fs.pipe_file(f"{url}/R4/request.json", b"{}")
    assert _await(url, config) == {"ndvi": f"{url}/R4/ndvi.tif"}


def test_times_out_with_a_typed_error(bucket, config):
    start = time.monotonic()
    with pytest.raises(DeliveryTimeout, match="within 0.3 s"):
        _await(f"s3://{bucket}/p/none", config, timeout=0.3)
    assert time.monotonic() - start < 30  # a guard against hanging, not a margin
