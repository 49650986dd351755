"""The demo's report for a robotics engineer: a compact table with its legend, the quality bar with
its misses listed, a plain-words reading of the numbers, and the trajectory plot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sim.eval.episode_log import EpisodeLog
from sim.eval.grid import EvalConfig
from sim.eval.quality import quality_checks
from sim.eval.report import legend, markdown_table, select_columns

#: the columns that matter for pick-and-place (eval prints all of them)
DEMO_COLUMNS = ("success", "done s", "start s", "stalls", "TTFA ms", "stale ms", "δ p95 ms", "jerk", "Δp p95", "Δv p95")


@dataclass(frozen=True)
class DemoReport:
    text: str
    checks: list[dict[str, Any]]
    reading: str
    plot: Path


def demo_report(rows: Sequence[Mapping[str, Any]], config: EvalConfig, strategy: str, live_log: EpisodeLog,
                live_row: Mapping[str, Any], logs: Mapping[tuple[str, str, float], EpisodeLog],
                out: Path, conditioning: str = "") -> DemoReport:
    """`conditioning`: what the strategy's `auto` fields resolved to for the served policy, in words."""
    from sim import so101
    from sim.eval.cli import velocity_jump_cap
    from sim.eval.plots import plot_junction_trajectory

    columns = select_columns(DEMO_COLUMNS)
    virtual = [r for r in rows if r.get("engine") != "realtime"]
    checks = quality_checks(virtual, fps=config.fps, default=strategy)
    reading = plain_reading(virtual, live_row, live_log, strategy, config)
    lat = config.latencies_ms[0]
    traj = {f"{strategy} @ {lat:.0f} ms, real time": live_log}
    traj.update({f"{k[1]} @ {k[2]:.0f} ms, virtual time": v for k, v in sorted(logs.items(), key=_order)
                 if k[1] != strategy})
    plot = plot_junction_trajectory(
        traj, out / "trajectory.png", joint_names=so101.NAMES,
        title=f"{config.tasks[0]}: the most-moving joint, command vs measured (first seed of each row)")
    parts = [
        markdown_table(rows, columns), "",
        "Rows: the first is the live run (real server process, real sockets, wall clock); the others are "
        f"virtual-time episodes (same scheduler code, seeds {_seeds(config)}), sync @ 0 ms = an instant model."
        + (f" {strategy} sent the policy {conditioning}." if conditioning else ""),
        legend(columns, velocity_jump_cap=velocity_jump_cap(config)), "",
        quality_text(checks, strategy), "",
        "Reading: " + reading,
    ]
    return DemoReport("\n".join(parts), [asdict(c) for c in checks], reading, plot)


def _order(item: tuple[tuple[str, str, float], EpisodeLog]) -> tuple[float, str]:
    (_, name, lat), _ = item
    return (-lat, name)


def _seeds(config: EvalConfig) -> str:
    s = config.seeds
    return f"{s[0]}–{s[-1]}" if s == list(range(s[0], s[-1] + 1)) and len(s) > 1 else ", ".join(map(str, s))


def quality_text(checks: Sequence[Any], strategy: str) -> str:
    """The quality bar this comparison can evaluate, misses first and listed by name."""
    if not checks:
        return f"Quality bar: no target of the bar applies to these rows ({strategy})."
    misses = [c for c in checks if not c.passed]
    lines = [f"Quality bar for {strategy} (virtual rows): {len(checks) - len(misses)}/{len(checks)} targets met."]
    if misses:
        lines.append("Missed:")
        lines += [f"  - {c.target}: {_num(c.value)} (limit {_num(c.limit)})" for c in misses]
    lines.append("Met: " + "; ".join(f"{c.target} ({_num(c.value)} vs {_num(c.limit)})" for c in checks if c.passed))
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _find(rows: Sequence[Mapping[str, Any]], strategy: str, latency_ms: float) -> Mapping[str, Any] | None:
    return next((r for r in rows if r["strategy"] == strategy and abs(r["latency_ms"] - latency_ms) < 1e-9), None)


def plain_reading(rows: Sequence[Mapping[str, Any]], live_row: Mapping[str, Any], live_log: EpisodeLog,
                  strategy: str, config: EvalConfig) -> str:
    """One paragraph, in plain words, of what the numbers say."""
    lat, task = config.latencies_ms[0], config.tasks[0]
    ours, sync, ref = _find(rows, strategy, lat), _find(rows, "sync", lat), _find(rows, "sync", 0.0)
    words = [f"With a model that answers in {lat:.0f} ms (± {config.jitter_ms or 0:.0f} ms) on {task},"]
    if ours and sync and ours["completion_time_s"] and sync["completion_time_s"]:
        ratio = sync["completion_time_s"] / ours["completion_time_s"]
        words.append(
            f"{strategy} finished in {ours['completion_time_s']:.2f} s on average and synchronous inference in "
            f"{sync['completion_time_s']:.2f} s ({ratio:.2f}× longer): sync holds the arm still while each chunk is "
            f"computed ({sync['stall_ticks']:.0f} held ticks per episode), {strategy} keeps executing the previous "
            f"chunk meanwhile ({ours['stall_ticks']:.0f} held ticks).")
    if ours and ref and ours["completion_time_s"] and ref["completion_time_s"]:
        words.append(_versus_reference(ours, ref, strategy, config))
    if ours and sync and ours.get("rms_jerk") and sync.get("rms_jerk"):
        words.append(f"Its commands are smoother: RMS jerk {ours['rms_jerk']:.0f} vs {sync['rms_jerk']:.0f} rad/s³ "
                     f"for sync, and 95% of its chunk switches move the command by less than {ours['junction_dp_p95']:.3f} rad.")
    if ours and sync:
        words.append(f"Success: {100 * ours['success_rate']:.0f}% vs {100 * sync['success_rate']:.0f}% for sync over "
                     f"{ours['episodes']} seed{'s' if ours['episodes'] != 1 else ''}.")
    live = (f"succeeded after {live_log.completion_time_s:.2f} s" if live_log.success and live_log.completion_time_s
            else "did not succeed")
    words.append(f"The live run (real server process and sockets, wall clock, seed {live_log.meta.get('seed')}) {live} "
                 f"with {live_row['stall_ticks']:.0f} stalled ticks after start-up; it differs from the virtual rows "
                 "by the real latency draws and the 0.2 s resolution of the real-time success check.")
    return " ".join(words)


def _versus_reference(ours: Mapping[str, Any], ref: Mapping[str, Any], strategy: str, config: EvalConfig) -> str:
    pct = 100 * (ours["completion_time_s"] / ref["completion_time_s"] - 1)
    text = (f"The reference, sync with an instant model (0 ms), took {ref['completion_time_s']:.2f} s, so {strategy} is "
            f"{abs(pct):.0f}% {'slower' if pct > 0 else 'faster'} than a model with no latency at all")
    from sim.eval.grid import resolve_strategy

    if pct <= 0 and resolve_strategy(config, strategy).rollforward != "none":
        text += (": the reference plans every chunk from the measured joint positions, which trail the commands by "
                 "the servo's tracking lag, so each of its chunks restarts a little behind; this strategy plans from the "
                 "commanded state, so the motion continues without restarts.")
    elif pct > 0:
        text += ": the latency costs that much time even with the chunks overlapped."
    else:
        text += "."
    return text
