"""Replica count from the registry's load: Serve's autoscaler cannot see ZeroMQ traffic, so each replica
reports what the registry counts on it (robots, queue depth, server latency) as custom autoscaling
metrics, and this policy turns them into a replica count. Serve pickles this module by value into its
controller: it imports nothing but the standard library.
"""

from __future__ import annotations

import math
from typing import Any

#: the custom metrics a replica reports (policy_server/fleet/ray_app.py: record_autoscaling_stats)
METRICS = ("robots", "queue_depth", "latency_ms")


def desired_replicas(robots: float, queue_depth: float, latency_ms: float, current: int, *,
                     robots_per_replica: int, max_queue_depth: float, max_latency_ms: float) -> int:
    """Enough replicas for `robots` at `robots_per_replica`, one more while the replicas queue or run
    slower than the targets (0 disables a target); the min/max bounds are applied by Serve."""
    want = max(1, math.ceil(robots / max(1, robots_per_replica)))
    overloaded = ((max_queue_depth > 0 and queue_depth > max_queue_depth * max(current, 1))
                  or (max_latency_ms > 0 and latency_ms > max_latency_ms))
    if overloaded and want <= current:
        want = current + 1
    return want


class FleetAutoscalingPolicy:
    """Serve's class-callable autoscaling policy (autoscaling_config.policy)."""

    def __init__(self, robots_per_replica: int = 8, max_queue_depth: float = 0.0, max_latency_ms: float = 0.0):
        self.robots_per_replica = int(robots_per_replica)
        self.max_queue_depth = float(max_queue_depth)
        self.max_latency_ms = float(max_latency_ms)

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        metrics = ctx.aggregated_metrics or {}
        per_replica = {name: metrics.get(name) or {} for name in METRICS}
        robots = sum(per_replica["robots"].values())
        queue = sum(per_replica["queue_depth"].values())
        latencies = list(per_replica["latency_ms"].values())
        latency = max(latencies) if latencies else 0.0
        want = desired_replicas(robots, queue, latency, int(ctx.current_num_replicas),
                                robots_per_replica=self.robots_per_replica, max_queue_depth=self.max_queue_depth,
                                max_latency_ms=self.max_latency_ms)
        return want, {"robots": robots}
