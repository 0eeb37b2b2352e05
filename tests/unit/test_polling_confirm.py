"""Batched confirmation against the emulator's S3 server: one listing for rows that end together,
and no waiting once no other row can join (counted LIST calls, no timing margins)."""

from __future__ import annotations

import asyncio
import os

import s3fs

from xasync import delivery
from xasync._contract import REQUEST_COPY_FILE
from xasync.submitter import SubmitOptions
from xasync.submitter.s3 import Confirmer

HOUR = 3600.0


def _deliver(fs, url: str, request_id: str) -> None:
    fs.pipe_file(f"{url}/{request_id}/ndvi.tif", b"not a real tif")
    fs.pipe_file(f"{url}/{request_id}/{REQUEST_COPY_FILE}", b'{"id": "%s"}' % request_id.encode())


def _rows(emu, n: int):
    root = emu.create_bucket(f"confirm-{os.urandom(5).hex()}")
    fs = s3fs.S3FileSystem(**emu.storage_options)
    urls = [f"{root}/row{i}" for i in range(n)]
    for url in urls:
        _deliver(fs, url, "r1")
    return fs, urls


async def _confirm_all(confirmer: Confirmer, urls: list[str]):
    runner = asyncio.create_task(confirmer.run())
    try:
        return await asyncio.wait_for(
            asyncio.gather(*(confirmer.confirm(u, ("ndvi",), "r1", None) for u in urls)), 60
        )
    finally:
        runner.cancel()


def test_rows_ending_together_share_one_listing_made_when_the_last_one_joins(emu):
    fs, urls = _rows(emu, 3)
    lists = emu.stats["s3"]["list"]
    delivery.probe_rows(fs, {u: ("ndvi",) for u in urls})  # what one listing of the 3 costs
    one_listing = emu.stats["s3"]["list"] - lists

    holder: list[Confirmer] = []
    confirmer = Confirmer(
        fs,
        SubmitOptions(),
        listing_pages=1,
        window=lambda: HOUR,  # only the tail can end the gathering in this test
        tail=lambda: len(holder[0].waiting) == len(urls),
    )
    holder.append(confirmer)
    before = emu.stats["s3"]["list"]
    rows = asyncio.run(_confirm_all(confirmer, urls))
    assert [r.state for r in rows] == ["done"] * 3
    assert emu.stats["s3"]["list"] - before == one_listing


def test_the_last_row_is_listed_at_once(emu):
    fs, urls = _rows(emu, 1)
    confirmer = Confirmer(fs, SubmitOptions(), window=lambda: HOUR, tail=lambda: True)
    (row,) = asyncio.run(_confirm_all(confirmer, urls))  # an hour's window would time out
    assert row.state == "done" and row.request_id == "r1"


def _tail_listings(emu, job_rows: int) -> int:
    """Confirm 4 rows at a job's tail (``job_rows`` rows in all, a root listing takes 3 pages);
    return how many listings that took."""
    fs, urls = _rows(emu, 4)
    confirmer = Confirmer(
        fs, SubmitOptions(), listing_pages=3, rows=job_rows, window=lambda: HOUR, tail=lambda: True
    )
    before = emu.stats["s3"]["list"]
    rows = asyncio.run(_confirm_all(confirmer, urls))
    assert [r.state for r in rows] == ["done"] * 4
    return emu.stats["s3"]["list"] - before


def test_the_last_rows_are_not_held_behind_a_listing_of_several_pages(emu):
    """At the job's end, a few rows are probed one prefix each (small listings in parallel)
    rather than by a listing of the whole root that takes several pages, one after the other
    (at T = 0.5 s the last rows' confirmation took 0.57 s: two pages of 1000 keys)."""
    assert _tail_listings(emu, job_rows=100) == 4  # one small listing per row


def test_the_tail_probes_stay_within_a_share_of_the_jobs_rows(emu):
    """In a job of 20 rows, 4 rows at the tail are 20 %: one root listing, not 4 listings."""
    assert _tail_listings(emu, job_rows=20) == 1
