"""The pure parts of bench.real_node: the steady-state rule and the pod timelines it reports."""

from __future__ import annotations

from datetime import UTC, datetime

from bench import pipeline, real_node

T0 = datetime(2026, 12, 4, 3, 0, 0, tzinfo=UTC).timestamp()


def test_steady_rate_counts_from_the_first_full_window_to_the_last_submission() -> None:
    submitted = [float(i) for i in range(10)]  # one submission a second, 0..9
    finished = [float(i) + 0.5 for i in range(12)]  # one completion a second
    # window 2: completions 2.5 .. 8.5 (<= last submission 9), 6 intervals over 6 s
    assert pipeline.steady_rate(finished, submitted, 2) == 1.0
    assert pipeline.steady_rate([1.0, 2.0], [0.0, 3.0], 0) == 0.0  # too few to tell
    assert pipeline.steady_rate([], [], 4) == 0.0


def test_pod_timeline_is_relative_to_the_apply() -> None:
    pod = {
        "metadata": {"creationTimestamp": "2026-12-04T03:00:01Z", "namespace": "ns",
                     "labels": {"app.kubernetes.io/component": "server"}},
        "status": {
            "conditions": [
                {"type": "PodScheduled", "status": "True",
                 "lastTransitionTime": "2026-12-04T03:00:01Z"},
                {"type": "Initialized", "status": "True",
                 "lastTransitionTime": "2026-12-04T03:00:09Z"},
                {"type": "Ready", "status": "False",
                 "lastTransitionTime": "2026-12-04T03:00:02Z"},
            ],
            "initContainerStatuses": [
                {"name": "wait-postgresql",
                 "state": {"terminated": {"finishedAt": "2026-12-04T03:00:06Z"}}},
                {"name": "migrate",
                 "state": {"terminated": {"finishedAt": "2026-12-04T03:00:09Z"}}},
            ],
            "containerStatuses": [
                {"state": {"running": {"startedAt": "2026-12-04T03:00:10Z"}}},
            ],
        },
    }
    timeline = real_node.pod_timeline(pod, T0 + 0.5)
    assert timeline["created"] == 0.5 and timeline["scheduled"] == 0.5
    assert timeline["initialized"] == 8.5 and timeline["started"] == 9.5
    assert timeline["ready"] is None  # a False condition is not a time it became Ready
    assert timeline["init"] == {"wait-postgresql": 5.5, "migrate": 8.5}
    assert real_node.component_of(pod) == "server"


def test_median_timeline_skips_missing_fields() -> None:
    rounds = [
        {"created": 0.0, "ready": 10.0, "init": {"migrate": 8.0}},
        {"created": 1.0, "ready": 12.0, "init": {"migrate": 9.0}},
        {"created": 2.0, "ready": None, "init": {}},
    ]
    median = real_node.median_timeline(rounds)
    assert median["created"] == 1.0 and median["ready"] == 11.0 and median["started"] is None
    assert median["init"] == {"migrate": 8.5}
