"""A live check of what the emulator assumes, for people with a Sentinel Hub or CDSE account.

It buys ONE minimal request (about 10 processing units: 100 x 100 px of Sentinel-2 NDVI) on the
real service and compares what the service does with what ``xasync.emulator`` assumes: the
delivery layout, the request copy's file name and cost field, the status answers (200 RUNNING,
then 404), both API path styles and, when asked, the body of a 429. Everything found is printed
at the end of the module, so that differences can be reported.

Opt-in and never in CI: run it with ``pytest -m live tests/live`` after setting

- ``SH_CLIENT_ID`` and ``SH_CLIENT_SECRET`` (and ``SH_DEPLOYMENT=cdse`` or
  ``sentinel-hub-us-west`` when not on Sentinel Hub EU);
- ``XASYNC_LIVE_BUCKET``: ``s3://bucket[/prefix]``, writable by you and by the service;
- the bucket's key pair: ``XASYNC_LIVE_S3_KEY``/``XASYNC_LIVE_S3_SECRET`` (else
  ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``), or ``XASYNC_LIVE_IAM_ROLE_ARN`` for the
  service plus your usual AWS credentials for reading.

Optional: ``XASYNC_LIVE_PROBE_429=1`` sends up to 40 status calls for an unknown id in a burst
(no processing units) to see a rate-limit 429; ``XASYNC_LIVE_KEEP=1`` keeps the delivered files.
See docs/guide/testing.md, "A live check".
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import pytest

from xasync._contract import REQUEST_COPY_COST_FIELD, REQUEST_COPY_FILE, STATUS_RUNNING

pytestmark = [pytest.mark.live, pytest.mark.timeout(3600)]

EVALSCRIPT = """//VERSION=3
function setup() {
  return {input: ["B04", "B08"], output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) {
  const sum = s.B08 + s.B04;
  return [sum === 0 ? 0 : (s.B08 - s.B04) / sum];
}
"""
#: About 1 km x 1 km of farmland near Ljubljana: 100 x 100 px at 10 m (the 10 PU minimum).
BOX = (14.560, 46.090, 14.573, 46.099)


def _missing_setup() -> str | None:
    if os.environ.get("CI"):
        return "the live check never runs in CI (CI is set)"
    missing = [v for v in ("SH_CLIENT_ID", "SH_CLIENT_SECRET") if not os.environ.get(v)]
    if not os.environ.get("XASYNC_LIVE_BUCKET"):
        missing.append("XASYNC_LIVE_BUCKET")
    has_keys = (
        os.environ.get("XASYNC_LIVE_S3_KEY") and os.environ.get("XASYNC_LIVE_S3_SECRET")
    ) or (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"))
    if not has_keys and not os.environ.get("XASYNC_LIVE_IAM_ROLE_ARN"):
        missing.append("XASYNC_LIVE_S3_KEY/XASYNC_LIVE_S3_SECRET (or XASYNC_LIVE_IAM_ROLE_ARN)")
    if missing:
        return "live check against the real service (buys ~10 PU) not configured: set " + ", ".join(
            missing
        )
    return None


_SKIP = _missing_setup()
if _SKIP:
    pytestmark.append(pytest.mark.skip(reason=_SKIP))


# -- helpers ------------------------------------------------------------------------------------
def _token(cfg: Any) -> str:
    import httpx

    resp = httpx.post(
        cfg.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": cfg.client_id,
            "client_secret": cfg.client_secret,
        },
        timeout=60,
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


def _get_status(cfg: Any, token: str, request_id: str, path: str | None = None) -> dict:
    """One raw status call: the HTTP status, the JSON body (or text) and Retry-After."""
    import httpx

    url = f"{cfg.base_url}{path or cfg.api_path}/{request_id}"
    resp = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    try:
        body: Any = resp.json()
    except ValueError:
        body = resp.text[:500]
    return {"code": resp.status_code, "body": body, "retry_after": resp.headers.get("Retry-After")}


def _storage_options(cfg: Any) -> dict[str, Any]:
    key = os.environ.get("XASYNC_LIVE_S3_KEY") or os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("XASYNC_LIVE_S3_SECRET") or os.environ.get("AWS_SECRET_ACCESS_KEY")
    extra: dict[str, Any] = {}
    if os.environ.get("XASYNC_LIVE_S3_ENDPOINT"):
        extra["client_kwargs"] = {"endpoint_url": os.environ["XASYNC_LIVE_S3_ENDPOINT"]}
    if key and secret:
        return cfg.storage_options(key, secret, **extra)
    return cfg.storage_options(**extra)


# -- the one purchase ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def found(pytestconfig):
    """Everything observed, filled by the tests, printed at the end of the module."""
    report: dict[str, Any] = {}
    yield report
    writer = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    text = json.dumps(report, indent=2, default=str, sort_keys=True)
    lines = ["", "=== xasync live check: what the real service did (please report differences)"]
    lines += text.splitlines()
    for line in lines:
        if writer is not None:
            writer.write_line(line)


@pytest.fixture(scope="module")
def purchase(found):
    """Buy one request through the public API; record the raw status answers on the way."""
    import geopandas as gpd
    import s3fs
    from shapely.geometry import box

    import xasync

    client = xasync.Client.from_env()
    cfg = client.config
    token = _token(cfg)
    storage_options = _storage_options(cfg)
    run = f"{os.environ['XASYNC_LIVE_BUCKET'].rstrip('/')}/xasync-live/{uuid.uuid4().hex[:12]}"
    found["deployment"] = {"name": cfg.deployment, "base_url": cfg.base_url, "path": cfg.api_path}
    found["delivery"] = run
    gdf = gpd.GeoDataFrame({"name": ["field"]}, geometry=[box(*BOX)], crs="EPSG:4326")
    results = gdf.set_index("name").xasync.process(
        EVALSCRIPT,
        data="sentinel-2-l2a",
        time=("2024-06-01", "2024-06-30"),
        resolution=10,
        crs="utm",
        delivery=run,
        storage_options=storage_options,
        iam_role_arn=os.environ.get("XASYNC_LIVE_IAM_ROLE_ARN") or None,
        client=client,
    )
    request_id = None
    for _ in range(600):  # the submission runs in the background: at most ~2 min
        request_id = results.status()["request_id"].iloc[0]
        if isinstance(request_id, str) and request_id:
            break
        time.sleep(0.2)
    assert request_id, f"no request id after 2 min: {results.status().to_dict('records')}"
    first = _get_status(cfg, token, request_id)
    results.wait(timeout=float(os.environ.get("XASYNC_LIVE_TIMEOUT", "1800")), progress=False)
    after = _get_status(cfg, token, request_id)
    fs = s3fs.S3FileSystem(**storage_options)
    files = sorted(fs.find(run))
    yield {
        "results": results,
        "request_id": request_id,
        "status_first": first,
        "status_after": after,
        "files": files,
        "fs": fs,
        "run": run,
        "cfg": cfg,
        "token": token,
    }
    if not os.environ.get("XASYNC_LIVE_KEEP"):
        fs.rm(run, recursive=True)
    client.close()


# -- what the emulator assumes ------------------------------------------------------------------
def test_status_answers_running_then_404(purchase, found):
    first, after, rid = purchase["status_first"], purchase["status_after"], purchase["request_id"]
    found["status_while_running"] = first
    found["status_after_finish"] = after
    if first["code"] == 200:
        assert first["body"] == {"id": rid, "status": STATUS_RUNNING}
    else:  # finished before the first look: only a 404 is consistent with the contract
        assert first["code"] == 404, first
    assert after["code"] == 404, after


def test_delivery_layout(purchase, found):
    rid = purchase["request_id"]
    run = purchase["run"].split("://", 1)[-1]
    relative = [f[len(run) :].lstrip("/") for f in purchase["files"]]
    found["delivered_files"] = relative
    state = purchase["results"].status()["state"].iloc[0]
    found["xasync_state"] = state
    assert state == "done", purchase["results"].status().to_dict("records")
    outputs = [r for r in relative if r.endswith(f"{rid}/ndvi.tif")]
    assert outputs, f"expected <row prefix>/{rid}/ndvi.tif, found {relative}"
    ndvi = purchase["results"][0].ndvi
    found["ndvi_shape"] = list(ndvi.shape)
    found["ndvi_mean"] = float(ndvi.mean())
    assert ndvi.shape == (100, 100) or min(ndvi.shape) > 90


def test_request_copy_name_and_cost_field(purchase, found):
    rid = purchase["request_id"]
    fs, run = purchase["fs"], purchase["run"].split("://", 1)[-1]
    folder = [f for f in purchase["files"] if f"/{rid}/" in f]
    others = [f for f in folder if not f.endswith(("/ndvi.tif", "/error.json"))]
    found["request_copy_candidates"] = [f[len(run) :] for f in others]
    copies: dict[str, Any] = {}
    for path in others:
        try:
            copies[path.rsplit("/", 1)[-1]] = json.loads(fs.cat(path))
        except ValueError:
            continue
    found["request_copy_keys"] = {name: sorted(doc) for name, doc in copies.items()}
    found["request_copy_cost_like_fields"] = {
        name: {k: v for k, v in doc.items() if "cost" in k.lower() or "unit" in k.lower()}
        for name, doc in copies.items()
        if isinstance(doc, dict)
    }
    assert REQUEST_COPY_FILE in copies, (
        f"the emulator names the request copy {REQUEST_COPY_FILE!r}; the service wrote "
        f"{sorted(copies) or 'no JSON file'} beside the output"
    )
    doc = copies[REQUEST_COPY_FILE]
    assert REQUEST_COPY_COST_FIELD in doc, (
        f"the emulator puts the cost in {REQUEST_COPY_COST_FIELD!r}; the copy has {sorted(doc)}"
    )


def test_cost_is_the_minimum(purchase, found):
    cost = purchase["results"].status()["cost_pu"].iloc[0]
    found["xasync_cost_pu"] = cost
    assert cost == pytest.approx(10.0), "100 x 100 px of 2 bands: the 10 PU minimum"


def test_path_styles(purchase, found):
    """A status call for an unknown id on both path styles (spec 14.5; costs nothing)."""
    from xasync._contract import API_PATHS

    cfg, token = purchase["cfg"], purchase["token"]
    unknown = str(uuid.uuid4())
    answers = {path: _get_status(cfg, token, unknown, path) for path in API_PATHS}
    found["unknown_id_status_by_path"] = answers
    assert answers[cfg.api_path]["code"] == 404


def test_rate_limit_body(purchase, found):
    """Opt-in: a burst of status calls for an unknown id, until the first 429 (no PU)."""
    if not os.environ.get("XASYNC_LIVE_PROBE_429"):
        pytest.skip("set XASYNC_LIVE_PROBE_429=1 to send a burst of up to 40 status calls")
    cfg, token = purchase["cfg"], purchase["token"]
    unknown = str(uuid.uuid4())
    for i in range(40):
        answer = _get_status(cfg, token, unknown)
        if answer["code"] == 429:
            found["rate_limited_after_calls"] = i + 1
            found["rate_limit_429"] = answer
            return
    found["rate_limit_429"] = "not reached in 40 calls"
