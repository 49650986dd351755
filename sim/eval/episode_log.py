"""Per-tick records of one episode, the same for both engines, and their JSONL form.

Engines append one row per control tick with `EpisodeRecorder.tick(...)`; `finish()` turns the rows
into column arrays (`EpisodeLog`) that the pure functions in `metrics.py` consume. The commanded
tool position (forward kinematics of the command) is recorded by the engine, so metrics never
need the simulator.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_NAN3 = (float("nan"),) * 3


@dataclass
class RequestRecord:
    """One inference request: when it was captured, where its chunk starts, when it was usable."""

    request_id: int
    capture_tick: int
    exec_tick: int
    arrival_tick: int | None = None  # first tick that could use the chunk (None: never arrived)
    latency_s: float | None = None  # capture -> chunk usable, engine's clock
    accepted: bool = False
    dropped_actions: int = 0
    failed: bool = False

    def arrived(self, tick: int, latency_s: float | None, accepted: bool, dropped: int) -> None:
        """A chunk, or a part of a streamed one, reached the scheduler at `tick`: the first arrival is when the
        chunk became usable; parts add their dropped actions, and any accepted part accepts the chunk."""
        if self.arrival_tick is None:
            self.arrival_tick, self.latency_s = tick, latency_s
        self.accepted = self.accepted or accepted
        self.dropped_actions += dropped


@dataclass(frozen=True)
class EventRecord:
    """A stimulus the robot must react to (e.g. the target jumped to `target`)."""

    time_s: float
    kind: str
    target: tuple[float, float, float]


@dataclass
class EpisodeLog:
    meta: dict[str, Any]
    fps: float
    gradual_mask: np.ndarray  # [A] bool: joints (True) vs stepwise gripper (False)
    tick: np.ndarray  # [T] int
    command: np.ndarray  # [T, A] after the safety layer (what the robot was sent)
    state: np.ndarray  # [T, S]
    commanded_tool: np.ndarray  # [T, 3]
    measured_tool: np.ndarray  # [T, 3]
    target: np.ndarray  # [T, 3] (nan where none)
    stalled: np.ndarray  # [T] bool
    watchdog: np.ndarray  # [T] bool
    source_request_id: np.ndarray  # [T] int, -1 when held
    delay_ticks: np.ndarray  # [T] float
    rollforward_error: np.ndarray  # [T] float, nan when not measured
    client_cost_s: np.ndarray  # [T] float: scheduler time spent for this tick
    planned: np.ndarray | None = None  # [T, A] the plan's action before the safety layer (= command when held)
    requests: list[RequestRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    success: bool = False
    completion_time_s: float | None = None
    task_metrics: dict[str, float] = field(default_factory=dict)  # the task's own scalars at the end (reach_jump: hits, targets)

    @property
    def num_ticks(self) -> int:
        return int(self.tick.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_ticks / self.fps

    def capture_ticks(self) -> dict[int, int]:
        return {r.request_id: r.capture_tick for r in self.requests}

    # ------------------------------------------------------------ JSONL
    def save_jsonl(self, path: str | Path) -> None:
        header = {
            "meta": self.meta, "fps": self.fps, "gradual_mask": self.gradual_mask.tolist(),
            "requests": [asdict(r) for r in self.requests],
            "events": [asdict(e) for e in self.events],
            "success": self.success, "completion_time_s": self.completion_time_s,
            "task_metrics": self.task_metrics,
        }
        with open(path, "w") as fh:
            fh.write(json.dumps(header) + "\n")
            for i in range(self.num_ticks):
                fh.write(json.dumps(self._row(i)) + "\n")

    def _row(self, i: int) -> dict[str, Any]:
        rf = float(self.rollforward_error[i])
        return {
            "tick": int(self.tick[i]), "command": self.command[i].tolist(), "state": self.state[i].tolist(),
            "commanded_tool": self.commanded_tool[i].tolist(), "measured_tool": self.measured_tool[i].tolist(),
            "target": [None if np.isnan(v) else float(v) for v in self.target[i]],
            "stalled": bool(self.stalled[i]), "watchdog": bool(self.watchdog[i]),
            "source_request_id": int(self.source_request_id[i]), "delay_ticks": float(self.delay_ticks[i]),
            "rollforward_error": None if np.isnan(rf) else rf, "client_cost_s": float(self.client_cost_s[i]),
            "planned": (self.planned if self.planned is not None else self.command)[i].tolist(),
        }

    @classmethod
    def load_jsonl(cls, path: str | Path) -> EpisodeLog:
        with open(path) as fh:
            header = json.loads(fh.readline())
            rows = [json.loads(line) for line in fh if line.strip()]
        rec = EpisodeRecorder(header["meta"], header["fps"], np.array(header["gradual_mask"], dtype=bool))
        for row in rows:
            rec.tick(**{k: v for k, v in row.items()})
        rec.requests = {r["request_id"]: RequestRecord(**r) for r in header["requests"]}
        rec.add_events(EventRecord(e["time_s"], e["kind"], tuple(e["target"])) for e in header["events"])
        rec.task_metrics = dict(header.get("task_metrics", {}))
        return rec.finish(header["success"], header["completion_time_s"])


class EpisodeRecorder:
    """Collects rows while an episode runs; cheap per tick (plain Python lists)."""

    def __init__(self, meta: Mapping[str, Any], fps: float, gradual_mask: np.ndarray):
        self.meta = dict(meta)
        self.fps = float(fps)
        self.gradual_mask = np.asarray(gradual_mask, dtype=bool)
        self.rows: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
        self.requests: dict[int, RequestRecord] = {}
        self._events: dict[tuple[float, str], EventRecord] = {}
        self.task_metrics: dict[str, float] = {}  # the task's latest status metrics (set as the episode runs)

    def tick(
        self, *, tick: int, command: Any, state: Any, commanded_tool: Any = _NAN3, measured_tool: Any = _NAN3,
        target: Any = None, stalled: bool = False, watchdog: bool = False, source_request_id: int = -1,
        delay_ticks: float = 0.0, rollforward_error: float | None = None, client_cost_s: float = 0.0,
        planned: Any = None,
    ) -> None:
        r = self.rows
        r["tick"].append(int(tick))
        r["command"].append(np.asarray(command, dtype=float))
        r["planned"].append(np.array(command if planned is None else planned, dtype=float))  # a copy: plan rows change
        r["state"].append(np.asarray(state, dtype=float))
        r["commanded_tool"].append(np.asarray(commanded_tool, dtype=float))
        r["measured_tool"].append(np.asarray(measured_tool, dtype=float))
        tgt = _NAN3 if target is None else [np.nan if v is None else v for v in target]
        r["target"].append(np.asarray(tgt, dtype=float))
        r["stalled"].append(bool(stalled))
        r["watchdog"].append(bool(watchdog))
        r["source_request_id"].append(int(source_request_id))
        r["delay_ticks"].append(float(delay_ticks))
        r["rollforward_error"].append(np.nan if rollforward_error is None else float(rollforward_error))
        r["client_cost_s"].append(float(client_cost_s))

    def request(self, request_id: int, capture_tick: int, exec_tick: int) -> RequestRecord:
        rec = RequestRecord(request_id, capture_tick, exec_tick)
        self.requests[request_id] = rec
        return rec

    def add_events(self, events: Iterable[Any]) -> None:
        """Stimulus events (anything with time_s, kind, target); duplicates are ignored."""
        for ev in events:
            key = (round(float(ev.time_s), 9), str(ev.kind))
            if key not in self._events:
                target = tuple(float(v) for v in np.asarray(ev.target, dtype=float).reshape(-1)[:3])
                self._events[key] = EventRecord(float(ev.time_s), str(ev.kind), target)  # type: ignore[arg-type]

    def finish(self, success: bool, completion_time_s: float | None) -> EpisodeLog:
        r = self.rows
        n = len(r["tick"])
        a_dim = self.gradual_mask.shape[0]

        def stack(name: str, width: int) -> np.ndarray:
            return np.vstack(r[name]) if n else np.zeros((0, width))

        return EpisodeLog(
            meta=self.meta, fps=self.fps, gradual_mask=self.gradual_mask,
            tick=np.asarray(r["tick"], dtype=int), command=stack("command", a_dim),
            state=stack("state", a_dim), commanded_tool=stack("commanded_tool", 3),
            measured_tool=stack("measured_tool", 3), target=stack("target", 3),
            stalled=np.asarray(r["stalled"], dtype=bool), watchdog=np.asarray(r["watchdog"], dtype=bool),
            source_request_id=np.asarray(r["source_request_id"], dtype=int),
            delay_ticks=np.asarray(r["delay_ticks"], dtype=float),
            rollforward_error=np.asarray(r["rollforward_error"], dtype=float),
            client_cost_s=np.asarray(r["client_cost_s"], dtype=float), planned=stack("planned", a_dim),
            requests=sorted(self.requests.values(), key=lambda q: q.request_id),
            events=sorted(self._events.values(), key=lambda e: e.time_s),
            success=bool(success), completion_time_s=completion_time_s,
            task_metrics={k: float(v) for k, v in self.task_metrics.items()},
        )


_COLUMNS = (
    "tick", "command", "state", "commanded_tool", "measured_tool", "target", "stalled", "watchdog",
    "source_request_id", "delay_ticks", "rollforward_error", "client_cost_s", "planned",
)
