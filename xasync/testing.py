"""A pytest plugin: test pipelines built on xasync offline, against the bundled emulator.

Installed with xasync and registered through the ``pytest11`` entry point, so a test suite gets
these fixtures without any conftest:

``xasync_emulator``
    A running :class:`xasync.emulator.Emulator` on 127.0.0.1 (Async API, token endpoint and an
    S3 server). Started once per session (``xasync_emulator_session``) and reset before and after
    each test: no requests, zeroed ``stats``, the knobs restored.
``xasync_client``
    An :class:`xasync.Client` for that emulator (``Client.from_emulator``).
``xasync_bucket``
    ``"s3://<name>"``: a fresh, empty bucket on the emulator's S3 server, one per test.
``xasync_storage_options``
    The s3fs options of the emulator's S3 server (pass them as ``storage_options=``).
``xasync_gcs_bucket``
    ``"gs://<name>"``: a fresh, empty bucket on the emulator's Google Cloud Storage server.
``xasync_gcs_storage_options``
    The gcsfs options of that server (pass them as ``storage_options=`` for a ``gs://``
    delivery); ``xasync_gcs_credentials`` the service-account dict to pass as
    ``gcs_credentials=``.
``xasync_faults``
    A function ``xasync_faults(**knobs) -> Faults`` switching on the emulator's fault injection
    for the current test (knobs of :class:`xasync.emulator.Faults`, e.g. ``rate_limit=0.3``,
    ``server_error=0.2``, ``failure_rate=1.0``, ``processing_jitter=0.2``).

The marker ``@pytest.mark.xasync_emulator(**knobs)`` sets knobs of ``Emulator.configure`` for
one test (``concurrency_limit``, ``processing_seconds``, ``token_lifetime``, ``tiff_layout``,
``faults``: a :class:`Faults` or a dict of its fields). The emulator's start-up knobs come from
the session fixture ``xasync_emulator_options`` (a dict of ``Emulator`` arguments), which a
conftest may override.

Importing this module costs nothing beyond ``import xasync``: the emulator, moto, Flask and
boto3 are imported only when one of the fixtures is first used.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover - typing only
    from xasync.client import Client
    from xasync.emulator import Emulator, Faults

__all__ = [
    "DEFAULT_EMULATOR_OPTIONS",
    "apply_marker",
    "new_bucket_name",
    "reset_emulator",
    "start_emulator",
]

#: ``Emulator`` arguments of the session emulator: fast requests, a few slots.
DEFAULT_EMULATOR_OPTIONS: dict[str, Any] = {"concurrency_limit": 4, "processing_seconds": 0.2}

MARKER = "xasync_emulator"


# -- machinery (also used by xasync's own test suite) -------------------------------------------
def start_emulator(**options: Any) -> Emulator:
    """Start an :class:`~xasync.emulator.Emulator` with ``options``; the caller stops it.

    Quiets werkzeug's per-request log lines and gives botocore a region when none is set (the
    emulator's S3 server accepts any), so that nothing on the machine needs configuring.
    """
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    try:
        from xasync.emulator import Emulator

        return Emulator(**options).start()
    except ImportError as exc:
        raise pytest.UsageError(
            f"xasync's test fixtures need the emulator's extra: pip install 'xasync[emulator]' "
            f"({exc})"
        ) from None


def reset_emulator(emu: Emulator) -> None:
    """Forget every request, zero the counters and restore the start-up knobs."""
    emu.reset(restore_config=True)


def apply_marker(emu: Emulator, knobs: dict[str, Any]) -> None:
    """Apply ``Emulator.configure`` knobs; ``faults`` may be a dict of :class:`Faults` fields."""
    from xasync.emulator import Faults

    knobs = dict(knobs)
    if isinstance(knobs.get("faults"), dict):
        knobs["faults"] = Faults(**knobs["faults"])
    try:
        emu.configure(**knobs)
    except TypeError as exc:
        raise pytest.UsageError(f"@pytest.mark.{MARKER}: {exc}") from None


def new_bucket_name(prefix: str = "xasync-test") -> str:
    """A bucket name no other test uses (S3 naming rules: lower case, at most 63 characters)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# -- pytest hooks and fixtures ------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**knobs): Emulator.configure knobs for this test (xasync's pytest plugin)",
    )


@pytest.fixture(scope="session")
def xasync_emulator_options() -> dict[str, Any]:
    """``Emulator`` arguments of the session emulator; override this fixture to change them."""
    return dict(DEFAULT_EMULATOR_OPTIONS)


@pytest.fixture(scope="session")
def xasync_emulator_session(xasync_emulator_options: dict[str, Any]) -> Iterator[Emulator]:
    """The emulator of the whole session, not reset between tests (prefer ``xasync_emulator``)."""
    emu = start_emulator(**xasync_emulator_options)
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def xasync_emulator(
    xasync_emulator_session: Emulator, request: pytest.FixtureRequest
) -> Iterator[Emulator]:
    """The session emulator, reset before and after the test; the marker's knobs applied."""
    emu = xasync_emulator_session
    reset_emulator(emu)
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if marker.args:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes keyword arguments only")
        apply_marker(emu, marker.kwargs)
    try:
        yield emu
    finally:
        reset_emulator(emu)


@pytest.fixture
def xasync_client(xasync_emulator: Emulator) -> Iterator[Client]:
    """An :class:`xasync.Client` for ``xasync_emulator``, closed after the test."""
    from xasync.client import Client

    client = Client.from_emulator(xasync_emulator)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def xasync_bucket(xasync_emulator: Emulator) -> str:
    """``"s3://<name>"``: a fresh, empty bucket on the emulator's S3 server."""
    return xasync_emulator.create_bucket(new_bucket_name())


@pytest.fixture
def xasync_storage_options(xasync_emulator: Emulator) -> dict[str, Any]:
    """s3fs options (endpoint and keys) of the emulator's S3 server."""
    return dict(xasync_emulator.storage_options)


@pytest.fixture
def xasync_gcs_bucket(xasync_emulator: Emulator) -> str:
    """``"gs://<name>"``: a fresh, empty bucket on the emulator's GCS server."""
    return xasync_emulator.create_gcs_bucket(new_bucket_name())


@pytest.fixture
def xasync_gcs_storage_options(xasync_emulator: Emulator) -> dict[str, Any]:
    """gcsfs options (endpoint, anonymous token) of the emulator's GCS server."""
    return dict(xasync_emulator.gcs_storage_options)


@pytest.fixture
def xasync_gcs_credentials(xasync_emulator: Emulator) -> dict[str, str]:
    """The made-up service account the emulator accepts for ``gcs_credentials=``."""
    return xasync_emulator.gcs_credentials


@pytest.fixture
def xasync_faults(xasync_emulator: Emulator) -> Callable[..., Faults]:
    """``set_faults(**knobs)``: turn on fault injection for this test (reset afterwards)."""
    from xasync.emulator import Faults

    def set_faults(**knobs: Any) -> Faults:
        faults = Faults(**knobs)
        xasync_emulator.configure(faults=faults)
        return faults

    return set_faults
