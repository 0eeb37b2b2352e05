"""Claims taken over by a chain, never by deleting a stale claim (real S3 server, moto)."""

from __future__ import annotations

import pytest

from xasync.submitter import claim


@pytest.fixture
def url(s3fs_fs, bucket):
    return f"s3://{bucket}/root/0123456789abcdef01234567"


def test_the_first_claim_keeps_its_name_and_takeovers_are_numbered(url):
    assert claim.claim_path(url, 0) == f"{url}/_xasync_claim.0.json"
    assert claim.claim_path(url, 0, 0) == f"{url}/_xasync_claim.0.json"
    assert claim.claim_path(url, 1, 2) == f"{url}/_xasync_claim.1.2.json"


def test_of_two_racers_that_saw_the_same_stale_claim_one_takes_it_over(s3fs_fs, url):
    assert claim.take(s3fs_fs, url, 0, "dead")[0] == claim.WON
    for racer in ("x", "y"):  # both find the dead process's claim
        got, age = claim.take(s3fs_fs, url, 0, racer)
        assert got == claim.HELD and age is not None
    # both judge it stale: each writes the next claim of the chain; the second one loses
    assert claim.take(s3fs_fs, url, 0, "x", 1)[0] == claim.WON
    assert claim.take(s3fs_fs, url, 0, "y", 1)[0] == claim.HELD
    # the stale claim was not deleted: a newcomer walks the chain to the live holder
    assert claim.exists(s3fs_fs, url, 0) and claim.exists(s3fs_fs, url, 0, 1)
    assert claim.take(s3fs_fs, url, 0, "z")[0] == claim.HELD
    assert claim.take(s3fs_fs, url, 0, "z", 1)[0] == claim.HELD
    assert claim.take(s3fs_fs, url, 0, "x", 1)[0] == claim.WON  # its own claim


def test_a_holder_releases_only_its_own_link_of_the_chain(s3fs_fs, url):
    claim.take(s3fs_fs, url, 0, "dead")
    claim.take(s3fs_fs, url, 0, "x", 1)
    claim.release(s3fs_fs, url, 0, 1)  # x's create bought nothing
    assert not claim.exists(s3fs_fs, url, 0, 1) and claim.exists(s3fs_fs, url, 0)
    assert claim.take(s3fs_fs, url, 0, "y", 1)[0] == claim.WON  # the next buyer at once
