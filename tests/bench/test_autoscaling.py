"""The pure parts of bench.autoscaling: the shared schedule, KEDA's item-count rule, and how
pod-seconds and queue waits are counted."""

from __future__ import annotations

import pytest

from bench import autoscaling


def test_every_policy_gets_the_same_bounded_mix() -> None:
    plan = autoscaling.schedule(300, 120.0, 0.2)
    assert plan == autoscaling.schedule(300, 120.0, 0.2)  # seeded: the same for each policy
    offsets = [offset for offset, _ in plan]
    assert offsets == sorted(offsets) and offsets[0] >= 0 and offsets[-1] <= 120
    assert sum(kind is autoscaling.LARGE for _, kind in plan) == 60
    assert len(plan) == 300


@pytest.mark.parametrize(("queued", "workers"), [(0, 0), (1, 1), (5, 1), (6, 2), (99, 4)])
def test_item_count_rule_is_kedas(queued: int, workers: int) -> None:
    assert autoscaling.item_count_workers(queued, list_length=5, max_workers=4) == workers


def test_pod_seconds_integrate_the_samples_within_the_window() -> None:
    samples = [(0.0, 0), (10.0, 2), (20.0, 3), (30.0, 0)]
    assert autoscaling.pod_seconds(samples, 0.0, 40.0) == 2 * 10 + 3 * 10
    assert autoscaling.pod_seconds(samples, 15.0, 25.0) == 2 * 5 + 3 * 5
    assert autoscaling.pod_seconds([(0.0, 4)], 0.0, 7.5) == 30.0  # held to the window's end


def test_queue_wait_is_the_first_claim_after_the_submission() -> None:
    submitted = "2026-12-07T10:00:00+00:00"
    jobs = [{"created_at": submitted, "started_at": "2026-12-07T10:00:02.5+00:00"},
            {"created_at": submitted, "started_at": None}]
    assert autoscaling.waits(jobs) == [2.5]
