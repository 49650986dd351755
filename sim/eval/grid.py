"""The evaluation config (`vla_async/configs/eval/*.yaml`) and its expansion into cells and episodes.

A *cell* is one (task, strategy, latency) combination; it is run once per seed (an *episode*) and
reported as one row. The zero-latency synchronous reference (`sync` at 0 ms) is added per task
unless `reference: false`, because most quality targets are stated relative to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from vla_async.config import (
    BackendConfig,
    ConfigError,
    InjectedLatencyConfig,
    SafetyConfig,
    StrategyConfig,
    StrictModel,
    load_config,
    load_strategy_preset,
    strategy_names,
)
from vla_async.config.loader import deep_merge, did_you_mean, format_validation_error
from vla_async.config.schema import SIM_TASKS
from vla_async.seed_ranges import parse_seeds

REFERENCE_STRATEGY = "sync"


class MetricsConfig(StrictModel):
    """Thresholds that turn trajectories into reaction / hit times (see docs/metrics.md)."""

    reaction_distance_m: float = Field(0.01, gt=0, description="commanded tool must close this much on the new target")
    reaction_speed_mps: float = Field(0.05, ge=0, description="...while moving toward it at least this fast")
    hit_radius_m: float = Field(0.025, gt=0, description="reach_jump: measured tool within this of the target = hit")


class RealtimeConfig(StrictModel):
    """Settings of the real-time engine (server and client as separate processes over ZeroMQ)."""

    startup_timeout_s: float = Field(60.0, gt=0, le=600)
    episode_timeout_margin_s: float = Field(30.0, gt=0, le=600, description="kill an episode this long past max")


class EvalConfig(StrictModel):
    engine: Literal["virtual", "realtime"] = "virtual"
    tasks: list[str] = Field(default_factory=lambda: ["pick_place"])
    strategies: list[str] = Field(default_factory=lambda: ["vlash_rail"], description="preset or variant names")
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="extra strategies: name -> {preset: <name>, <field>: <value>...}"
    )
    latencies_ms: list[float] = Field(default_factory=lambda: [200.0], description="mean injected latency")
    jitter_fraction: float = Field(0.15, ge=0, le=5, description="jitter = this × mean (when jitter_ms is unset)")
    jitter_ms: float | None = Field(None, ge=0, description="fixed jitter for every latency")
    latency_distribution: Literal["constant", "normal", "lognormal"] = "normal"
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    reference: bool = Field(True, description="add the zero-latency sync reference per task")
    fps: float = Field(30.0, gt=0, le=1000)
    chunk_length: int = Field(50, ge=1, le=10_000)
    max_duration_s: float = Field(30.0, gt=0, le=3600, description="episode timeout")
    server_workers: int = Field(1, ge=1, le=64, description="requests the server computes in parallel")
    policy_exec_offset: bool = Field(False, description="the expert declares it was trained for exec_offset_s "
                                     "(VLASH fine-tuning): every strategy's requests then carry it (virtual engine)")
    expert_lag_s: float = Field(0.0, ge=0, le=1, description="the scripted expert plans from a lag-compensated "
                                "estimate of the arm: the given state advanced this long along its own motion "
                                "(the sim arm's servo lag is ~0.08 s, sim.experts.ARM_LAG_S); 0 = from the state as given")
    workers: int = Field(1, ge=1, le=64, description="episodes run in parallel (processes)")
    strategy_overrides: dict[str, Any] = Field(default_factory=dict, description="applied to every strategy")
    safety: SafetyConfig = SafetyConfig()
    metrics: MetricsConfig = MetricsConfig()
    realtime: RealtimeConfig = RealtimeConfig()
    backend: BackendConfig | None = Field(
        None, description="policy to evaluate (name, path, options); unset = the scripted expert in process")
    cameras: list[str] | None = Field(None, description="cameras to render for the backend (default: its spec's)")
    image_size: int | None = Field(None, ge=8, le=4096, description="rendered image side (default: the spec's)")

    @model_validator(mode="after")
    def _backend_engine(self) -> EvalConfig:
        if self.expert_lag_s > 0 and (self.backend is not None or self.engine == "realtime"):
            raise ValueError("expert_lag_s: only the virtual engine's in-process scripted expert is lag-compensated; "
                             "drop backend / use engine=virtual, or set expert_lag_s=0")
        return self

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        return parse_seeds(value) if isinstance(value, str | int) else value

    @field_validator("strategies", "tasks", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return [v for v in value.split(",") if v] if isinstance(value, str) else value

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str]) -> list[str]:
        for task in tasks:
            if task not in SIM_TASKS:
                raise ValueError(f"unknown task {task!r}; allowed: {' | '.join(SIM_TASKS)}{did_you_mean(task, SIM_TASKS)}")
        return tasks

    @model_validator(mode="after")
    def _known_strategies(self) -> EvalConfig:
        allowed = [*strategy_names(), *self.variants]
        for name in self.strategies:
            if name not in allowed:
                raise ValueError(f"strategies: unknown strategy {name!r}; allowed: {' | '.join(allowed)}"
                                 f"{did_you_mean(name, allowed)}")
        return self

    @field_validator("latencies_ms", mode="before")
    @classmethod
    def _latency_list(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return [value]
        if isinstance(value, str):
            return [float(v) for v in value.split(",") if v]
        return value


@dataclass(frozen=True)
class Cell:
    """One row of the report: a task, a strategy, an injected latency; run once per seed."""

    task: str
    strategy_name: str
    strategy: StrategyConfig
    latency: InjectedLatencyConfig

    @property
    def key(self) -> tuple[str, str, float]:
        return (self.task, self.strategy_name, self.latency.mean_ms)

    @property
    def is_reference(self) -> bool:
        return self.strategy_name == REFERENCE_STRATEGY and self.latency.mean_ms == 0.0


@dataclass(frozen=True)
class Episode:
    cell: Cell
    seed: int


def resolve_strategy(config: EvalConfig, name: str) -> StrategyConfig:
    """A preset (vla_async/configs/strategies/<name>.yaml) or a variant from the grid, plus grid-wide overrides."""
    data = dict(config.variants[name]) if name in config.variants else load_strategy_preset(name)
    data.setdefault("name", name)
    data = deep_merge(data, config.strategy_overrides)
    try:
        return StrategyConfig.model_validate(data)
    except ValidationError as exc:  # → one readable line per field, named where the user wrote it
        first = str(exc.errors()[0]["loc"][0]) if exc.errors() and exc.errors()[0]["loc"] else ""
        root = "strategy_overrides" if first in config.strategy_overrides else f"strategy {name}"
        raise ConfigError(format_validation_error(exc, root=root, model=StrategyConfig)) from None


def latency_config(config: EvalConfig, mean_ms: float, seed: int = 0) -> InjectedLatencyConfig:
    jitter = config.jitter_ms if config.jitter_ms is not None else config.jitter_fraction * mean_ms
    dist = config.latency_distribution if mean_ms > 0 else "constant"
    return InjectedLatencyConfig(
        distribution=dist, mean_ms=mean_ms, jitter_ms=jitter if mean_ms > 0 else 0.0, seed=seed
    )


def expand_cells(config: EvalConfig) -> list[Cell]:
    """Every (task, strategy, latency) of the grid, reference first per task, no duplicates."""
    cells: list[Cell] = []
    seen: set[tuple[str, str, float]] = set()
    for task in config.tasks:
        combos: list[tuple[str, float]] = []
        if config.reference:
            combos.append((REFERENCE_STRATEGY, 0.0))
        combos += [(s, float(lat)) for s in config.strategies for lat in config.latencies_ms]
        for name, lat in combos:
            cell = Cell(task, name, resolve_strategy(config, name), latency_config(config, lat))
            if cell.key not in seen:
                seen.add(cell.key)
                cells.append(cell)
    return cells


def expand_episodes(config: EvalConfig) -> list[Episode]:
    return [Episode(cell, seed) for cell in expand_cells(config) for seed in config.seeds]


def load_eval_config(path: str | None, overrides: Sequence[str] | dict[str, Any] = ()) -> EvalConfig:
    return load_config(EvalConfig, path, overrides)
