"""Shared fixtures: a real S3 protocol server on 127.0.0.1 and the Async API emulator.

Fixture names and what they yield are part of the test suite's contract; keep them stable:

- ``s3_server`` (session): object with ``endpoint_url``, ``storage_options`` (for
  ``s3fs.S3FileSystem(**storage_options)``), ``reset()``.
- ``s3fs_fs`` (function): a fresh ``s3fs.S3FileSystem`` on ``s3_server`` (instance cache cleared).
- ``s3_admin`` (session): a boto3 client on ``s3_server`` (shared: do not register events on it).
- ``bucket`` (function): name of a fresh, empty bucket on ``s3_server``.
- ``dask_cluster`` (session, started on first use): a ``distributed.LocalCluster`` with two
  worker processes; ``dask_client`` (function): a ``distributed.Client`` on it.
- ``emulator`` (session): a started ``xasync.emulator.Emulator`` on 127.0.0.1 (its own counting
  S3 server; ``processing_seconds=0.2``, ``concurrency_limit=4``, default tiled GeoTIFFs, no
  faults). Read ``base_url``, ``token_url``, ``client_id``, ``client_secret``,
  ``s3_endpoint_url``, ``storage_options`` from it. moto's buckets are process-wide, so buckets
  made through ``s3_server`` are visible to the emulator and vice versa.
- ``emu`` (function): the same instance after ``emulator.reset(restore_config=True)``: no
  requests, zeroed ``stats``, the knobs above restored. Change knobs freely with
  ``emu.configure(...)``; the next test gets the defaults back.

``emulator`` and ``emu`` are the fixtures of xasync's own pytest plugin (``xasync.testing``:
``xasync_emulator_session`` and ``xasync_emulator``) under their historic names, so the suite
tests the plugin users get; its ``xasync_client``, ``xasync_bucket`` and ``xasync_faults`` are
available too.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import pytest

import xasync.testing as xasync_plugin

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for _var in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
    os.environ.pop(_var, None)
logging.getLogger("werkzeug").setLevel(logging.ERROR)


@dataclass
class _MotoS3:
    endpoint_url: str
    server: object = field(repr=False)

    @property
    def storage_options(self) -> dict:
        return {
            "key": "testing-key",
            "secret": "testing-secret",
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": "us-east-1"},
        }

    def reset(self) -> None:
        import httpx

        httpx.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()


@pytest.fixture(scope="session")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield _MotoS3(endpoint_url=f"http://{host}:{port}", server=server)
    finally:
        server.stop()


@pytest.fixture
def s3fs_fs(s3_server):
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(**s3_server.storage_options)
    yield fs
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def s3_admin(s3_server):
    """One boto3 client on ``s3_server`` for the whole session (a new one costs 0.2-0.5 s)."""
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id="testing-key",
        aws_secret_access_key="testing-secret",
        region_name="us-east-1",
    )


@pytest.fixture
def bucket(s3_admin):
    name = xasync_plugin.new_bucket_name("test")
    s3_admin.create_bucket(Bucket=name)
    return name


EMULATOR_DEFAULTS = {"concurrency_limit": 4, "processing_seconds": 0.2}


#: Workers of ``-n auto`` (set in pyproject's addopts): the suite mostly waits on the emulator and
#: on S3, so two processes overlap those waits on the 2-core machines it runs on.
DEFAULT_TEST_WORKERS = 2


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """How many xdist workers ``-n auto`` starts: ``XASYNC_TEST_WORKERS``, else 2.

    None (0) in a pytest run started by a test (``PYTEST_CURRENT_TEST`` is inherited): such runs
    check a few tests and read their summary line, which workers would only slow down.
    """
    if os.environ.get("PYTEST_CURRENT_TEST"):
        return 0
    return int(os.environ.get("XASYNC_TEST_WORKERS", DEFAULT_TEST_WORKERS))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # --dist loadgroup: the tests on the session LocalCluster run in one worker, so that only one
    # cluster is started (before xdist's own hook reads the groups)
    for item in items:
        if "dask_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("dask_cluster"))


def pytest_configure(config):
    # Installed, xasync's plugin is loaded through its pytest11 entry point; from a checkout
    # without that metadata (or with plugin autoloading off) it is registered here instead.
    if not config.pluginmanager.is_registered(xasync_plugin):
        config.pluginmanager.register(xasync_plugin, "xasync")


@pytest.fixture(scope="session")
def dask_cluster():
    """One ``distributed.LocalCluster`` (2 worker processes) for the session's cluster tests.

    Starting one costs 5-15 s (each worker process imports the stack), so the tests that only
    need "workers in other processes" share it; a test that kills a worker makes its own.
    """
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        yield cluster


@pytest.fixture
def dask_client(dask_cluster):
    """A ``distributed.Client`` on ``dask_cluster`` (the default scheduler while the test runs)."""
    import distributed

    with distributed.Client(dask_cluster) as client:
        yield client


@pytest.fixture(scope="session")
def xasync_emulator_options():
    return dict(EMULATOR_DEFAULTS)


@pytest.fixture(scope="session")
def emulator(xasync_emulator_session):
    return xasync_emulator_session


@pytest.fixture
def emu(xasync_emulator):
    return xasync_emulator
