"""Cost-aware worker autoscaling (`spec.workers.autoscaling`): how many workers the pending
work needs, and when to follow that number.

Counting jobs (KEDA's rule) is wrong for this workload: an AVIF of a 24 MP upload costs a
hundred times a small JPEG. So each pending job is weighed by its cost units - its source's
megapixels times the sizes it asks for - at the render seconds per unit its format took in
the latest jobs (the workers record every render time in PostgreSQL, which the API sums up
in `/healthz/detailed`; being in the database, what was learned survives a scale to zero).
The workers needed are those that start the last pending job within `targetQueueSeconds`:

    work    = sum over formats of (units x seconds per unit + jobs x overhead per job)
    workers = ceil(work / (slots per worker x targetQueueSeconds))

never more than there are jobs for (a job runs in one slot: more workers would idle), at
least one while any job is pending, within [minReplicas, maxReplicas]. If the oldest job
has waited longer than the target although every worker asked for runs, the estimate is
too low: one more worker. Growing follows at once; shrinking only once the lower number
was wanted for `scaleDownDelaySeconds` (the `Damper`), which damps flapping between bursts.

Everything here is pure: the reconcile pass (controller/reconcile.py) feeds it the API's
answer and the running Deployment and applies what it returns.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from thumbnail_operator.api.v1 import Autoscaling, Workers

Obj = dict[str, Any]

# Render seconds per cost unit (megapixel x size) until a format has MIN_SAMPLES rendered
# jobs of its own: on the high side of this engine's measurements (docs/bench/engine.md), so
# that a format never seen yet gets workers too early rather than too late.
PRIOR_SECONDS_PER_UNIT = {
    "jpeg": 0.02, "tiff": 0.02, "png": 0.05, "webp": 0.05, "gif": 0.05, "auto": 0.05,
    "avif": 0.2, "heif": 0.2,
}
UNKNOWN_FORMAT_SECONDS_PER_UNIT = max(PRIOR_SECONDS_PER_UNIT.values())
MIN_SAMPLES = 3
# A job's download, upload and bookkeeping until one was measured.
PRIOR_OVERHEAD_SECONDS = 0.2


@dataclass(frozen=True)
class FormatDemand:
    format: str
    pending_jobs: int
    pending_units: float
    sampled_jobs: int
    seconds_per_unit: float | None

    def seconds(self, overhead: float) -> float:
        """Expected worker-seconds of this format's pending jobs."""
        learned = self.seconds_per_unit is not None and self.sampled_jobs >= MIN_SAMPLES
        rate = (self.seconds_per_unit if learned and self.seconds_per_unit is not None
                else PRIOR_SECONDS_PER_UNIT.get(self.format, UNKNOWN_FORMAT_SECONDS_PER_UNIT))
        return self.pending_units * rate + self.pending_jobs * overhead


@dataclass(frozen=True)
class Demand:
    """The pending work as the API reports it (`workers.demand` of /healthz/detailed)."""

    formats: tuple[FormatDemand, ...]
    overhead_seconds: float | None

    @property
    def pending_jobs(self) -> int:
        return sum(f.pending_jobs for f in self.formats)

    @property
    def work_seconds(self) -> float:
        overhead = (PRIOR_OVERHEAD_SECONDS if self.overhead_seconds is None
                    else self.overhead_seconds)
        return sum(f.seconds(overhead) for f in self.formats)

    @classmethod
    def from_health(cls, demand: Any) -> Demand | None:
        """None unless the answer has the expected shape (an older API has no demand)."""
        if not isinstance(demand, dict) or not isinstance(demand.get("formats"), list):
            return None
        try:
            formats = tuple(
                FormatDemand(
                    format=str(f["format"]), pending_jobs=int(f["pending_jobs"]),
                    pending_units=float(f["pending_megapixel_renders"]),
                    sampled_jobs=int(f["sampled_jobs"]),
                    seconds_per_unit=_number(f.get("render_seconds_per_megapixel_render")),
                )
                for f in demand["formats"]
            )
        except (KeyError, TypeError, ValueError):
            return None
        return cls(formats, _number(demand.get("overhead_seconds_per_job")))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def slots_per_worker(workers: Workers) -> int:
    """Jobs one worker pod runs at once: its processes x threads."""
    return workers.concurrency.processes * workers.concurrency.threads


@dataclass(frozen=True)
class Recommendation:
    replicas: int
    pending_jobs: int
    work_seconds: float
    reason: str


def recommend(
    policy: Autoscaling, demand: Demand, *, slots: int, running: int, ready: int,
    oldest_wait_seconds: float | None,
) -> Recommendation:
    """The workers `demand` needs now. `running`: workers the Deployment asks for now,
    `ready` of them ready; `oldest_wait_seconds`: how long the oldest queued job has waited."""
    jobs, work = demand.pending_jobs, demand.work_seconds
    target = policy.target_queue_seconds
    if jobs == 0:
        return Recommendation(policy.min_replicas, 0, 0.0, "no job is pending")
    useful = math.ceil(jobs / slots)
    replicas = max(1, min(math.ceil(work / (slots * target)), useful))
    reason = (f"{jobs} pending job{'s' if jobs != 1 else ''}, about {work:.1f} worker-seconds "
              f"of work: {replicas} worker{'s' if replicas != 1 else ''} start each within "
              f"{target}s")
    late = oldest_wait_seconds is not None and oldest_wait_seconds > target
    if late and running >= replicas and ready >= running and running < useful:
        replicas = running + 1
        reason = (f"{jobs} pending jobs and the oldest waited {oldest_wait_seconds:.0f}s, "
                  f"more than {target}s with {running} ready: one more worker")
    bounded = min(max(replicas, policy.min_replicas), policy.max_replicas)
    if bounded != replicas:
        limit = "maxReplicas" if bounded < replicas else "minReplicas"
        reason += f" ({limit} {bounded})"
    return Recommendation(bounded, jobs, work, reason)


@dataclass(frozen=True)
class Settled:
    replicas: int
    # Seconds until a pass could shrink further (a held-back scale-down); None: nothing held.
    recheck_after: float | None


class Damper:
    """Follows a recommendation up at once, down only after it stayed lower for the delay:
    the size is the highest recommendation of the last `delay` seconds (as the horizontal
    pod autoscaler's scale-down stabilization). Per resource, in memory: after an operator
    restart what runs is held for one delay before anything shrinks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wanted: dict[tuple[str, str], list[tuple[float, int]]] = {}

    def settle(
        self, key: tuple[str, str], recommended: int, *, running: int, now: float,
        delay: float,
    ) -> Settled:
        with self._lock:
            wanted = self._wanted.setdefault(key, [(now, running)])
            wanted.append((now, recommended))
            wanted[:] = [(t, r) for t, r in wanted if t > now - delay] or [(now, recommended)]
            replicas = max(r for _, r in wanted)
            higher = [t for t, r in wanted if r > recommended]
        return Settled(replicas, max(higher) + delay - now if higher else None)

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._wanted.pop(key, None)


@dataclass(frozen=True)
class Scaling:
    """One pass's decision: the workers to run and what `status.autoscaling` says."""

    replicas: int
    message: str
    recommendation: Recommendation | None = None
    recheck_after: float | None = None

    def as_status(self, previous: Obj, running: int | None, now: str) -> Obj:
        changed = running is not None and running != self.replicas
        last = now if changed else previous.get("lastScaleTime")
        found = self.recommendation
        return {
            "replicas": self.replicas,
            "recommendedReplicas": None if found is None else found.replicas,
            "pendingJobs": None if found is None else found.pending_jobs,
            "expectedWorkSeconds": None if found is None else round(found.work_seconds, 1),
            "lastScaleTime": last,
            "message": self.message,
        }


def decide(
    key: tuple[str, str], workers: Workers, demand: Demand | None, *, unknown_why: str,
    running: int | None, ready: int, oldest_wait_seconds: float | None, damper: Damper,
    now: float,
) -> Scaling:
    """The workers to run under `workers.autoscaling` (which must be set). `demand` None: the
    API's answer is missing (`unknown_why` says why), so what runs stays (clamped)."""
    policy = workers.autoscaling
    assert policy is not None
    if demand is None:
        held = min(max(running or 0, policy.min_replicas), policy.max_replicas)
        return Scaling(held, f"holding {held} workers: the pending work is not known "
                             f"({unknown_why})")
    found = recommend(policy, demand, slots=slots_per_worker(workers), running=running or 0,
                      ready=ready, oldest_wait_seconds=oldest_wait_seconds)
    settled = damper.settle(key, found.replicas, running=running or 0, now=now,
                            delay=policy.scale_down_delay_seconds)
    message = found.reason
    if settled.replicas > found.replicas:
        message += (f"; keeping {settled.replicas} until fewer were enough for "
                    f"{policy.scale_down_delay_seconds}s (scaleDownDelaySeconds)")
    return Scaling(settled.replicas, message, found, settled.recheck_after)
