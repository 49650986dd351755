"""Metrics from papers.md ("Metrics"), as pure functions of per-tick arrays and events.

Definitions (also in docs/metrics.md):
- junction: a tick whose command comes from a different chunk than the previous tick's (both
  real chunks, not a hold). |Δp|, |Δv|, |Δa| are the first, second and third backward differences
  of the command at that tick (scaled to units, units/s, units/s²), max over gradual joints.
  |Δp| p95 is compared with the reference's p95 per-tick step while moving (same quantile), and the
  discontinuity |Δ³p| (deviation from constant-acceleration extrapolation) with the reference's
  p95 |Δ³p| while moving: the switch itself, not the speed of the motion.
- stall: a tick with no fresh planned action (last command held), after the first chunk arrived;
  the wait for the very first chunk is start-up, reported separately.
- reaction latency: event time → first tick whose *measured* tool position has closed at least
  `distance` on the new target since the event while moving toward it at ≥ `speed` (`reaction_s`);
  the same on the *commanded* tool is `reaction_cmd_s`. A miss is censored at the end of its window
  (the next event or the episode's end), never dropped; `time_to_hit_s` likewise.
- junction metrics on the command after the safety layer (`junction_*`) and on the plan before it
  (`junction_pre_*`); `clip_ticks`: ticks where the safety layer changed a planned action.
- completion: over all episodes, a failure counting as its full duration (the timeout); successes only
  as `completion_ok_s`.
- TTFA: capture tick of a request → first tick executed from its chunk.
- staleness: age of the observation behind each executed action (tick − capture tick of its chunk).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from sim.eval.episode_log import EpisodeLog, EventRecord, RequestRecord

MOVING_STEP = 1e-6  # |Δp| per tick above which the command counts as moving (typical-step statistics)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% for z = 1.96)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _gradual(command: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    command = np.asarray(command, dtype=float)
    return command if mask is None else command[:, np.asarray(mask, dtype=bool)]


def rms_jerk(command: np.ndarray, fps: float, mask: np.ndarray | None = None) -> float:
    """RMS of the third derivative of the commanded trajectory (finite differences), gradual joints."""
    p = _gradual(command, mask)
    if p.shape[0] < 4:
        return 0.0
    jerk = np.diff(p, n=3, axis=0) * fps**3
    return float(np.sqrt(np.mean(jerk**2)))


def command_steps(command: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """|Δp| per tick (max over gradual joints), length T-1."""
    p = _gradual(command, mask)
    if p.shape[0] < 2:
        return np.zeros(0)
    return np.abs(np.diff(p, axis=0)).max(axis=1)


def third_differences(command: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """|Δ³p| per tick (max over gradual joints), length T: row i = |p[i] − (3p[i−1] − 3p[i−2] + p[i−3])|,
    the command's deviation from constant-acceleration extrapolation of the three ticks before it.
    The first three rows (no history) are NaN. A smooth move, however fast, has a small Δ³p; a plan
    switch that jumps, kinks or bends shows up in it."""
    p = _gradual(command, mask)
    out = np.full(p.shape[0], np.nan)
    if p.shape[0] >= 4:
        out[3:] = np.abs(np.diff(p, n=3, axis=0)).max(axis=1)
    return out


def junction_ticks(source_request_id: np.ndarray) -> np.ndarray:
    """Indices i where a chunk takes over from a different earlier chunk (holds in between allowed).

    A hold (-1) repeats the last command, so a junction right after a stall measures the jump from
    the held pose into the new chunk (what `sync` does at every chunk).
    """
    out: list[int] = []
    last = -1
    for i, r in enumerate(np.asarray(source_request_id)):
        if r >= 0:
            if last >= 0 and r != last:
                out.append(i)
            last = int(r)
    return np.asarray(out, dtype=int)


def junction_jumps(
    command: np.ndarray, source_request_id: np.ndarray, fps: float, mask: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """|Δp| (units), |Δv| (units/s), |Δa| (units/s²) at every junction, max over gradual joints, and
    `disc` (units): |Δ³p|, the deviation of the junction's command from constant-acceleration
    extrapolation of the three commands before it (see `third_differences`).

    Δv and Δa need 2 and 3 earlier rows; junctions too early for them are skipped for that term.
    """
    p = _gradual(command, mask)
    out: dict[str, list[float]] = {"dp": [], "dv": [], "da": [], "disc": []}
    for i in junction_ticks(source_request_id):
        out["dp"].append(float(np.abs(p[i] - p[i - 1]).max()))
        if i >= 2:
            out["dv"].append(float(np.abs(p[i] - 2 * p[i - 1] + p[i - 2]).max() * fps))
        if i >= 3:
            third = float(np.abs(p[i] - 3 * p[i - 1] + 3 * p[i - 2] - p[i - 3]).max())
            out["disc"].append(third)
            out["da"].append(third * fps**2)
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def first_chunk_index(source_request_id: np.ndarray) -> int | None:
    idx = np.nonzero(np.asarray(source_request_id) >= 0)[0]
    return int(idx[0]) if idx.size else None


def stall_stats(stalled: np.ndarray, source_request_id: np.ndarray) -> dict[str, int]:
    """Stalled ticks and stall runs after the first chunk started; start-up ticks before it."""
    stalled = np.asarray(stalled, dtype=bool)
    first = first_chunk_index(source_request_id)
    if first is None:
        return {"stall_ticks": 0, "stall_runs": 0, "startup_ticks": int(stalled.shape[0])}
    s = stalled[first:]
    runs = int(np.count_nonzero(s[1:] & ~s[:-1]) + (1 if s.size and s[0] else 0))
    return {"stall_ticks": int(s.sum()), "stall_runs": runs, "startup_ticks": first}


def staleness_ticks(tick: np.ndarray, source_request_id: np.ndarray, capture_tick: Mapping[int, int]) -> np.ndarray:
    """Per executed tick: tick − capture tick of the chunk the command came from."""
    out = [int(k) - capture_tick[int(r)] for k, r in zip(tick, source_request_id, strict=False) if r >= 0 and int(r) in capture_tick]
    return np.asarray(out, dtype=float)


def ttfa_ticks(tick: np.ndarray, source_request_id: np.ndarray, requests: Sequence[RequestRecord]) -> dict[int, int]:
    """request_id → ticks from its capture to the first tick executed from its chunk (executed ones only)."""
    first_exec: dict[int, int] = {}
    for k, r in zip(tick, source_request_id, strict=False):
        if r >= 0 and int(r) not in first_exec:
            first_exec[int(r)] = int(k)
    return {q.request_id: first_exec[q.request_id] - q.capture_tick for q in requests if q.request_id in first_exec}


def event_tick(time_s: float, fps: float) -> int:
    """First control tick at or after an event (the first one that can observe it)."""
    return int(math.ceil(time_s * fps - 1e-9))


def reaction_latency_s(
    tick: np.ndarray, commanded_tool: np.ndarray, event: EventRecord, fps: float,
    distance_m: float, speed_mps: float, until_tick: int | None = None,
) -> float | None:
    """Seconds from the event until the commanded tool closes on its target (see module doc); None if never."""
    ke = event_tick(event.time_s, fps)
    tick = np.asarray(tick)
    target = np.asarray(event.target, dtype=float)
    dist = np.linalg.norm(np.asarray(commanded_tool, dtype=float) - target, axis=1)
    rows = np.nonzero(tick >= ke)[0]
    if rows.size == 0:
        return None
    i0 = int(rows[0])
    base = dist[i0 - 1] if i0 > 0 else dist[i0]
    for i in rows:
        if until_tick is not None and tick[i] >= until_tick:
            break
        if i == 0:
            continue
        toward = (dist[i - 1] - dist[i]) * fps
        if base - dist[i] >= distance_m and toward >= speed_mps:
            return float(tick[i] / fps - event.time_s)
    return None


def time_to_hit_s(
    tick: np.ndarray, measured_tool: np.ndarray, event: EventRecord, fps: float, radius_m: float,
    until_tick: int | None = None,
) -> float | None:
    """Seconds from the event until the measured tool is within `radius_m` of the event's target."""
    ke = event_tick(event.time_s, fps)
    dist = np.linalg.norm(np.asarray(measured_tool, dtype=float) - np.asarray(event.target, dtype=float), axis=1)
    for k, d in zip(np.asarray(tick), dist, strict=False):
        if until_tick is not None and k >= until_tick:
            break
        if k >= ke and d <= radius_m:
            return float(k / fps - event.time_s)
    return None


def reversal_lag_s(
    tick: np.ndarray, commanded_tool: np.ndarray, target: np.ndarray, event: EventRecord, fps: float,
    speed_rad_s: float = 0.05, until_tick: int | None = None,
) -> float | None:
    """Tracking: seconds from the target's sideways reversal until the command reverses the same way.

    Sideways = pan angle atan2(y, x) about the base. The new direction is the target's pan velocity
    sign after the event; the lag ends at the first tick whose commanded pan velocity has that sign
    and at least `speed_rad_s`. None when the target column is missing (real-time logs) or never.
    """
    tick = np.asarray(tick)
    ke = event_tick(event.time_s, fps)
    rows = np.nonzero(tick >= ke)[0]
    if rows.size < 3 or not np.all(np.isfinite(target[rows[:3]])):
        return None
    i0 = int(rows[0])
    tgt_pan = np.unwrap(np.arctan2(target[:, 1], target[:, 0]))
    cmd_pan = np.unwrap(np.arctan2(commanded_tool[:, 1], commanded_tool[:, 0]))
    new_dir = np.sign(tgt_pan[min(i0 + 2, tgt_pan.size - 1)] - tgt_pan[i0])
    if new_dir == 0:
        return None
    for i in rows:
        if until_tick is not None and tick[i] >= until_tick:
            break
        if i > 0 and (cmd_pan[i] - cmd_pan[i - 1]) * fps * new_dir >= speed_rad_s:
            return float(tick[i] / fps - event.time_s)
    return None


def censored(value: float | None, event: EventRecord, until_tick: int | None, last_tick: int, fps: float) -> float:
    """`value`, or for a miss the time from the event to the end of its window (a lower bound, not dropped)."""
    if value is not None:
        return value
    end = (until_tick if until_tick is not None else last_tick + 1) / fps
    return max(0.0, end - event.time_s)


def clipped_ticks(planned: np.ndarray, command: np.ndarray, source_request_id: np.ndarray,
                  mask: np.ndarray | None = None, tol: float = 1e-9) -> int:
    """Ticks whose planned action the safety layer changed (held and watchdog ticks excluded)."""
    diff = np.abs(_gradual(planned, mask) - _gradual(command, mask))
    changed = diff.max(axis=1) > tol if diff.size else np.zeros(0, dtype=bool)
    return int(np.count_nonzero(changed & (np.asarray(source_request_id) >= 0)))


def _event_metrics(log: EpisodeLog, events: list[EventRecord], distance_m: float, speed_mps: float,
                   hit_radius_m: float) -> dict[str, list[float | None]]:
    """Per event: reaction on the measured and the commanded tool, time to hit, reversal lag (None: miss)."""
    fps = log.fps
    out: dict[str, list[float | None]] = {"reaction": [], "reaction_cmd": [], "hit": [], "lag": [], "window": []}
    for n, ev in enumerate(events):
        nxt = event_tick(events[n + 1].time_s, fps) if n + 1 < len(events) else None
        if ev.kind == "direction_change":
            out["lag"].append(reversal_lag_s(log.tick, log.commanded_tool, log.target, ev, fps, until_tick=nxt))
            continue
        out["reaction"].append(reaction_latency_s(log.tick, log.measured_tool, ev, fps, distance_m, speed_mps,
                                                  until_tick=nxt))
        out["reaction_cmd"].append(reaction_latency_s(log.tick, log.commanded_tool, ev, fps, distance_m, speed_mps,
                                                      until_tick=nxt))
        out["hit"].append(time_to_hit_s(log.tick, log.measured_tool, ev, fps, hit_radius_m, until_tick=nxt))
        last = int(log.tick[-1]) if log.num_ticks else 0
        out["window"].append(censored(None, ev, nxt, last, fps))
    return out


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


def steady_events(log: EpisodeLog) -> list[EventRecord]:
    """Events after the first chunk started executing (the initial target placement is start-up)."""
    first = first_chunk_index(log.source_request_id)
    if first is None:
        return []
    start = int(log.tick[first])
    return [ev for ev in log.events if event_tick(ev.time_s, log.fps) > start]


def episode_metrics(
    log: EpisodeLog, *, reaction_distance_m: float = 0.01, reaction_speed_mps: float = 0.05, hit_radius_m: float = 0.025
) -> dict[str, object]:
    """Scalars and pooled samples of one episode (samples are lists, pooled across seeds later)."""
    fps = log.fps
    mask = log.gradual_mask
    jumps = junction_jumps(log.command, log.source_request_id, fps, mask)
    steps = command_steps(log.command, mask)
    third = third_differences(log.command, mask)
    stalls = stall_stats(log.stalled, log.source_request_id)
    capture = log.capture_ticks()
    ttfa = ttfa_ticks(log.tick, log.source_request_id, log.requests)
    events = steady_events(log)
    per_event = _event_metrics(log, events, reaction_distance_m, reaction_speed_mps, hit_radius_m)
    reactions, hits, lags, windows = per_event["reaction"], per_event["hit"], per_event["lag"], per_event["window"]
    planned = log.planned if log.planned is not None else log.command
    pre = junction_jumps(planned, log.source_request_id, fps, mask)
    event_ttfa: list[float] = []
    for ev in events:
        ke = event_tick(ev.time_s, fps)
        after = [q for q in log.requests if q.capture_tick >= ke and q.request_id in ttfa]
        if after:
            event_ttfa.append(ttfa[after[0].request_id] / fps)
    latencies = [q.latency_s for q in log.requests if q.latency_s is not None]
    return {
        "success": bool(log.success),
        "completion_time_s": log.completion_time_s,
        # over all episodes: a failure counts as its whole duration (the timeout), never dropped
        "completion_all_s": log.completion_time_s if log.success and log.completion_time_s is not None
        else log.duration_s,
        "duration_s": log.duration_s,
        "rms_jerk": rms_jerk(log.command, fps, mask),
        "junction_dp": jumps["dp"].tolist(), "junction_dv": jumps["dv"].tolist(), "junction_da": jumps["da"].tolist(),
        "junction_disc": jumps["disc"].tolist(),
        "junction_pre_dp": pre["dp"].tolist(), "junction_pre_dv": pre["dv"].tolist(),
        "junction_pre_da": pre["da"].tolist(),
        "clip_ticks": clipped_ticks(planned, log.command, log.source_request_id, mask),
        "steps": steps.tolist(),
        "moving_third_diffs": _finite(third[1:][steps > MOVING_STEP]).tolist(),
        **stalls,
        "stall_time_s": stalls["stall_ticks"] / fps,
        "startup_s": stalls["startup_ticks"] / fps,
        "reaction_s": [r if r is not None else w for r, w in zip(reactions, windows, strict=True)],
        "reaction_missed": sum(r is None for r in reactions),
        "reaction_cmd_s": [r if r is not None else w for r, w in zip(per_event["reaction_cmd"], windows, strict=True)],
        "time_to_hit_s": [h if h is not None else w for h, w in zip(hits, windows, strict=True)],
        "hit_missed": sum(h is None for h in hits),
        **task_hits(log.task_metrics),
        "track_error_m": tracking_error(log.task_metrics),
        "reversal_lag_s": [g for g in lags if g is not None],
        "events": len(events),
        "ttfa_s": [t / fps for t in ttfa.values()],
        "event_ttfa_s": event_ttfa,
        "staleness_s": (staleness_ticks(log.tick, log.source_request_id, capture) / fps).tolist(),
        "rollforward_error": _finite(log.rollforward_error).tolist(),
        "client_cost_s": log.client_cost_s.tolist(),
        "latency_s": latencies,
        "requests": len(log.requests),
        "failed_requests": sum(q.failed for q in log.requests),
    }


def _stat(values: Sequence[float], kind: str) -> float | None:
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return None
    if kind == "mean":
        return float(arr.mean())
    if kind == "max":
        return float(arr.max())
    return float(np.percentile(arr, float(kind[1:])))


def task_hits(task_metrics: Mapping[str, float]) -> dict[str, float | None]:
    """The task's own count of targets hit in time and targets judged (reach_jump), None for other tasks."""
    if "hits" not in task_metrics or "targets" not in task_metrics:
        return {"task_hits": None, "task_targets": None}
    return {"task_hits": float(task_metrics["hits"]), "task_targets": float(task_metrics["targets"])}


def tracking_error(task_metrics: Mapping[str, float]) -> float | None:
    """track / track_sweep: the episode's mean measured tool-to-target distance after the grace period, m
    (the task's own `mean_error_m`); None for other tasks."""
    value = task_metrics.get("mean_error_m")
    return float(value) if value is not None and np.isfinite(value) else None


def pooled_hit_fraction(episodes: Sequence[Mapping[str, object]]) -> float | None:
    """Targets hit within the task's time limit / targets judged, pooled over the cell's episodes."""
    counted = [ep for ep in episodes if ep.get("task_targets") is not None]
    targets = sum(float(ep["task_targets"]) for ep in counted)  # type: ignore[arg-type]
    return sum(float(ep["task_hits"]) for ep in counted) / targets if targets else None  # type: ignore[arg-type]


def aggregate(episodes: Sequence[Mapping[str, object]]) -> dict[str, object]:
    """One report row from the episodes of a cell: pooled samples, Wilson interval, means."""

    def pool(key: str) -> list[float]:
        return [float(v) for ep in episodes for v in ep[key]]  # type: ignore[attr-defined]

    def mean_of(key: str) -> float | None:
        vals = [ep[key] for ep in episodes if ep.get(key) is not None]  # a stream from an older version: "–"
        return float(np.mean(vals)) if vals else None  # type: ignore[arg-type]

    n = len(episodes)
    wins = sum(bool(ep["success"]) for ep in episodes)
    lo, hi = wilson_interval(wins, n)
    completion = [ep["completion_time_s"] for ep in episodes if ep["success"] and ep["completion_time_s"] is not None]
    total_time = sum(float(ep["duration_s"]) for ep in episodes)  # type: ignore[arg-type]
    steps = pool("steps")
    moving = [s for s in steps if s > MOVING_STEP]
    row: dict[str, object] = {
        "episodes": n, "successes": wins, "success_rate": wins / n if n else 0.0, "success_ci95": [lo, hi],
        "completion_ok_s": float(np.mean(completion)) if completion else None,
        "completion_time_s": mean_of("completion_all_s"),
        "clip_ticks": mean_of("clip_ticks"),
        "throughput_per_min": 60.0 * wins / total_time if total_time > 0 else 0.0,
        "rms_jerk": mean_of("rms_jerk"),
        "stall_ticks": mean_of("stall_ticks"), "stall_runs": mean_of("stall_runs"),
        "stall_time_s": mean_of("stall_time_s"), "startup_ticks": mean_of("startup_ticks"),
        "startup_s": mean_of("startup_s"),
        # p95, the same quantile as the junction statistics it is compared with (quality.py)
        "typical_step": _stat(moving, "p95"), "typical_step_p50": _stat(moving, "p50"),
        "typical_third_diff": _stat(pool("moving_third_diffs"), "p95"),
        "events": sum(int(ep["events"]) for ep in episodes),  # type: ignore[call-overload]
        "reaction_missed": sum(int(ep["reaction_missed"]) for ep in episodes),  # type: ignore[call-overload]
        "hit_missed": sum(int(ep["hit_missed"]) for ep in episodes),  # type: ignore[call-overload]
        "hit_fraction": pooled_hit_fraction(episodes),
        "track_error_m": mean_of("track_error_m"),
        "requests": mean_of("requests"), "failed_requests": sum(int(ep["failed_requests"]) for ep in episodes),  # type: ignore[call-overload]
    }
    for key, stats in {
        "junction_dp": ("p95", "max"), "junction_dv": ("p95", "max"), "junction_da": ("p95", "max"),
        "junction_disc": ("p95", "max"),
        "junction_pre_dp": ("p95", "max"), "junction_pre_dv": ("p95", "max"), "junction_pre_da": ("p95", "max"),
        "reaction_s": ("mean", "p95", "max"), "reaction_cmd_s": ("mean", "p95", "max"), "time_to_hit_s": ("mean", "max"), "reversal_lag_s": ("mean", "max"),
        "ttfa_s": ("mean", "p95"), "event_ttfa_s": ("mean", "max"), "staleness_s": ("mean", "p95", "max"),
        "rollforward_error": ("mean", "p95"), "client_cost_s": ("mean", "p95"),
        "latency_s": ("p50", "p95", "p99"),
    }.items():
        samples = pool(key)
        for kind in stats:
            row[f"{key}_{kind}"] = _stat(samples, kind)
    return row
