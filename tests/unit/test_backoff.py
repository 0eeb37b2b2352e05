"""The one back-off policy: bounds, growth, cap, Retry-After, reproducibility."""

from __future__ import annotations

import pytest

from xasync.backoff import Backoff
from xasync.config import Config


def test_full_jitter_stays_within_the_growing_ceiling():
    policy = Backoff(base=0.5, cap=4.0, seed=1)
    for attempt in range(12):
        ceiling = min(4.0, 0.5 * 2**attempt)
        assert policy.ceiling(attempt) == ceiling
        waits = [policy.delay(attempt) for _ in range(200)]
        assert all(0.0 <= w <= ceiling for w in waits)
        # full jitter: the draws cover the range, they do not cluster at the ceiling
        assert min(waits) < 0.2 * ceiling and max(waits) > 0.8 * ceiling


def test_huge_attempt_numbers_stay_capped():
    assert Backoff(base=1.0, cap=7.0).ceiling(10_000) == 7.0


def test_retry_after_is_a_floor_with_spread_and_bounded():
    policy = Backoff(base=0.01, cap=0.05, max_retry_after=10.0, spread=0.25, seed=2)
    waits = [policy.delay(0, retry_after=2.0) for _ in range(200)]
    assert all(2.0 <= w <= 2.5 for w in waits)
    assert len(set(waits)) > 100  # spread: the waiters sent away do not come back together
    assert all(10.0 <= policy.delay(0, retry_after=3600.0) <= 12.5 for _ in range(20))
    # a hint shorter than the jittered wait does not shorten it
    long = Backoff(base=100.0, cap=100.0, spread=0.0, seed=3)
    assert max(long.delay(3, retry_after=0.001) for _ in range(50)) > 1.0


def test_seeded_policies_draw_the_same_waits():
    a, b = Backoff(seed=42), Backoff(seed=42)
    assert [a.delay(n) for n in range(8)] == [b.delay(n) for n in range(8)]
    assert [Backoff(seed=1).delay(3) for _ in range(2)] != [Backoff(seed=2).delay(3)] * 2


def test_from_config_and_validation():
    cfg = Config(
        base_url="http://127.0.0.1:1",
        token_url="http://127.0.0.1:1/t",
        backoff_base=0.2,
        backoff_max=3.0,
    )
    policy = Backoff.from_config(cfg, seed=5)
    assert (policy.base, policy.cap, policy.seed) == (0.2, 3.0, 5)
    for bad in ({"base": -1}, {"cap": "x"}, {"spread": True}):
        with pytest.raises(ValueError):
            Backoff(**bad)
    with pytest.raises(ValueError):
        policy.delay(-1)
