"""Secret scan (issue 6, test 9) with distinctive fake secrets.

The Sentinel Hub client secret and the OAuth2 tokens must appear nowhere: not in any repr/str,
dataset attrs, status table, log record (the ``xasync`` loggers and the in-process emulator's,
scanned separately, at DEBUG), exception message, pickled dask graph or object written to S3.
The S3 key/secret may travel in the graph only when the user passed them in ``storage_options``
(the workers need them to read) and must appear nowhere else.
"""

from __future__ import annotations

import logging
import pickle
import re
import uuid

import cloudpickle
import pytest
import s3fs

import xasync
from xasync.emulator import Faults

from ._helpers import NDVI, RES, TIME, fields

pytestmark = pytest.mark.faults

JWT = re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}")


@pytest.fixture
def secrets(emu):
    tag = uuid.uuid4().hex[:8]
    sh_secret = f"SHSECRETzq{tag}xv"
    client_id, _ = emu.add_client(f"rel-client-{tag}", sh_secret)
    s3_key, s3_secret = f"AKIARELKEY{tag}", f"S3SECRETwq{tag}jk"
    so = {**emu.storage_options, "key": s3_key, "secret": s3_secret}
    # short tokens: several are fetched during the run, each a chance to leak
    emu.configure(token_lifetime=2, processing_seconds=0.3, faults=Faults(failure_rate=0.3, seed=2))
    client = xasync.Client(
        base_url=emu.base_url, token_url=emu.token_url, client_id=client_id, client_secret=sh_secret
    )
    yield client, sh_secret, so, s3_key, s3_secret
    client.close()


def sh_leaks(text: str, sh_secret: str) -> list[str]:
    found = [sh_secret] if sh_secret in text else []
    return found + JWT.findall(text)


def s3_leaks(text: str, key: str, secret: str) -> list[str]:
    return [s for s in (key, secret) if s in text]


def test_no_secret_anywhere(emu, secrets, caplog):
    client, sh_secret, so, s3_key, s3_secret = secrets
    root = emu.create_bucket(f"rel-secret-{uuid.uuid4().hex[:8]}")
    caplog.set_level(logging.DEBUG)
    gdf = fields(6)
    results = gdf.xasync.process(
        NDVI, time=TIME, resolution=RES, delivery=f"{root}/s", storage_options=so, client=client
    )
    graph_blob = cloudpickle.dumps(results[0].__dask_graph__())
    ds_blob = cloudpickle.dumps(results[0])
    results.wait(timeout=60, progress=False)
    status = results.status()
    assert (status["state"] == "failed").any() and (status["state"] == "done").any(), status
    errors: list[str] = []
    for ds in results:
        try:
            ds.compute()
        except xasync.XasyncError as exc:
            errors.append(f"{type(exc).__name__}: {exc!r} {exc}")
    assert errors  # the failed rows raised, and their messages are scanned below
    # a wrong-secret client: its AuthError must not echo the secret it was given
    wrong = f"WRONGSECRET{uuid.uuid4().hex[:6]}"
    bad = xasync.Client(
        base_url=emu.base_url,
        token_url=emu.token_url,
        client_id=client.config.client_id,
        client_secret=wrong,
    )
    with pytest.raises(xasync.AuthError) as info:
        fields(1).xasync.process(
            NDVI, time=TIME, resolution=RES, delivery=f"{root}/w", storage_options=so, client=bad
        )
    errors.append(f"{info.value!r} {info.value}")
    assert wrong not in " ".join(errors) and wrong not in repr(bad)
    bad.close()

    texts = {
        "client": f"{client!r} {client!s} {client.config!r} {client.config!s} {client.auth!r}",
        "api": f"{client.api!r}",
        "results": f"{results!r} {results._repr_html_()} {status.to_string()}",
        "job": repr(results.job) + repr(results.job.snapshot()),
        "datasets": " ".join(f"{ds!r} {ds.attrs!r} {ds._repr_html_()}" for ds in results),
        "errors": " ".join(errors),
    }
    for where, text in texts.items():
        assert not sh_leaks(text, sh_secret), where
        assert not s3_leaks(text, s3_key, s3_secret), where

    # logs: the library's, the emulator's (in-process) and everything else, separately
    lib = [r for r in caplog.records if r.name.startswith("xasync") and ".emulator" not in r.name]
    emu_logs = [r for r in caplog.records if r.name.startswith("xasync.emulator")]
    others = [r for r in caplog.records if not r.name.startswith("xasync")]
    assert lib, "the library logged nothing at DEBUG?"
    lib_text = "\n".join(r.getMessage() for r in lib)
    assert not sh_leaks(lib_text, sh_secret) and not s3_leaks(lib_text, s3_key, s3_secret)
    emu_text = "\n".join(r.getMessage() for r in emu_logs)
    assert not sh_leaks(emu_text, sh_secret) and s3_secret not in emu_text
    other_text = "\n".join(r.getMessage() for r in others)
    assert not sh_leaks(other_text, sh_secret)

    # the graph: never the SH secret or a token; the S3 secret is allowed (it was passed
    # explicitly in storage_options and the workers need it)
    for blob in (graph_blob, ds_blob):
        text = blob.decode("latin-1")
        assert not sh_leaks(text, sh_secret)

    # everything in the bucket: manifests and request copies hold no credentials
    fs = s3fs.S3FileSystem(**so, use_listings_cache=False)
    paths = [p for p in fs.find(root.removeprefix("s3://")) if not p.endswith(".tif")]
    assert any("_xasync" in p for p in paths) and any(p.endswith("request.json") for p in paths)
    for path in paths:
        text = fs.cat_file(path).decode()
        assert not sh_leaks(text, sh_secret), path
        assert not s3_leaks(text, s3_key, s3_secret), path

    # the client itself refuses to be pickled (its secret stays in the submitting process)
    for obj in (client, client.auth):
        with pytest.raises(TypeError):
            pickle.dumps(obj)


def test_graph_without_storage_options_carries_no_s3_secret(emu, monkeypatch):
    """Credentials from the environment stay out of the graph (workers use their own)."""
    tag = uuid.uuid4().hex[:8]
    s3_key, s3_secret = f"AKIAENVKEY{tag}", f"ENVSECRETwq{tag}jk"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_secret)
    monkeypatch.setenv("AWS_ENDPOINT_URL", emu.s3_endpoint_url)
    s3fs.S3FileSystem.clear_instance_cache()
    root = emu.create_bucket(f"rel-envsecret-{tag}")
    client = xasync.Client.from_emulator(emu)
    try:
        results = fields(2).xasync.process(
            NDVI, time=TIME, resolution=RES, delivery=f"{root}/e", client=client
        )
        blob = cloudpickle.dumps(results[0].__dask_graph__()) + cloudpickle.dumps(results[1])
        results.wait(timeout=60, progress=False)
        assert (results.status()["state"] == "done").all()
        assert results[0]["ndvi"].notnull().any().compute()  # workers read with the env creds
    finally:
        client.close()
        s3fs.S3FileSystem.clear_instance_cache()
    text = blob.decode("latin-1")
    assert s3_secret not in text and s3_key not in text
    assert emu.client_secret not in text
