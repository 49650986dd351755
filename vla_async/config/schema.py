"""The config schema: one section class per concern, one root per process.

Sections are shared between roots (the client and the evaluator use the same `StrategyConfig`, so
what is benchmarked is what runs on the robot). Field descriptions show up in `--help`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vla_async.config.loader import CONFIG_DIR, ConfigError, StrictModel, deep_merge, did_you_mean, read_yaml

#: The strategy a client runs when neither `--config` nor `--strategy.preset` names one.
DEFAULT_STRATEGY = "vlash_rail"
#: The simulated tasks (sim/tasks/*; a test checks the simulator has exactly these).
SimTask = Literal["reach_jump", "track", "pick_place", "pick_place_push", "reach_dodge", "track_sweep"]
SIM_TASKS: tuple[str, ...] = ("reach_jump", "track", "pick_place", "pick_place_push", "reach_dodge", "track_sweep")

# ---------------------------------------------------------------- network


class CurveConfig(StrictModel):
    enabled: bool = Field(False, description="encrypt and authenticate with CurveZMQ")
    server_secret_key: str | None = Field(None, description="server: path to its secret key file")
    authorized_keys_dir: str | None = Field(None, description="server: folder of allowed client public keys")
    server_public_key: str | None = Field(None, description="client: path to the server's public key file")
    client_secret_key: str | None = Field(None, description="client: path to its own secret key file")


class NetworkConfig(StrictModel):
    host: str = Field("127.0.0.1", description="bind (server) or connect (client) address")
    port: int = Field(5555, ge=0, le=65535, description="0 (server only): bind any free port and print it")
    request_timeout_s: float = Field(2.0, gt=0, le=60, description="deadline for one inference request")
    heartbeat_interval_s: float = Field(0.5, gt=0, le=30)
    heartbeat_timeout_s: float = Field(3.0, gt=0, le=300, description="peer considered gone after this silence")
    reconnect_min_s: float = Field(0.05, gt=0, le=10)
    reconnect_max_s: float = Field(2.0, gt=0, le=60)
    max_message_bytes: int = Field(64 * 1024 * 1024, ge=1024, le=2**31 - 1, description="all frames of one message")
    max_frame_bytes: int = Field(
        0, ge=0, le=2**31 - 1,
        description="largest single frame (ZMQ_MAXMSGSIZE: libzmq drops a bigger one before buffering it); "
        "0 = server: largest frame of its policy spec x2 + 1 MiB, client: 16 MiB")
    zero_copy: bool = Field(False, description="send array frames without copying (helps only for large arrays)")
    image_encoding: Literal["raw", "jpeg"] = Field("raw", description="jpeg for Wi-Fi/WAN links")
    jpeg_quality: int = Field(90, ge=10, le=100)
    curve: CurveConfig = CurveConfig()
    route_url: str | None = Field(
        None, pattern=r"^https?://[^\s]+$",
        description="client in a fleet: the fleet's route (http://HEAD:8000/route, see docs/fleet.md); asked at "
        "start and whenever the connection is lost, it names the replica (host:port, CURVE key); host/port are "
        "then only the fallback when the route cannot be reached")
    route_timeout_s: float = Field(1.0, gt=0, le=30, description="client in a fleet: longest wait for the route")


# ---------------------------------------------------------------- server


class InjectedLatencyConfig(StrictModel):
    """Extra latency added to every chunk, to emulate a large VLA on a GPU."""

    distribution: Literal["constant", "normal", "lognormal"] = "constant"
    mean_ms: float = Field(0.0, ge=0, le=10_000)
    jitter_ms: float = Field(0.0, ge=0, le=10_000, description="std (normal) or spread (lognormal)")
    spike_probability: float = Field(0.0, ge=0, le=1)
    spike_ms: float = Field(0.0, ge=0, le=10_000, description="added on a spike")
    min_ms: float = Field(0.0, ge=0)
    seed: int = 0


class BackendConfig(StrictModel):
    name: str = Field("linear", description="expert | linear | replay | torch | onnx | lerobot")
    path: str | None = Field(None, description="model file or checkpoint directory")
    device: str = Field("cpu", description="cpu | cuda | cuda:N")
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    chunk_length: int = Field(50, ge=1, le=10_000)
    options: dict[str, Any] = Field(default_factory=dict, description="backend-specific options")


class BatchingConfig(StrictModel):
    max_batch: int = Field(8, ge=1, le=256)
    max_wait_ms: float = Field(2.0, ge=0, le=1000, description="wait this long to fill a batch")
    inline_max_ms: float = Field(
        1.0, ge=0, le=100, description="the server's I/O thread runs a request itself (no hand-off to the "
        "inference worker) when the worker is idle, no batch could form, no other message is waiting and the "
        "model's last 8 runs each took at most this long; 0 = always hand off (docs/deploy.md)")


class PenaltyBoxConfig(StrictModel):
    """A peer (ZeroMQ identity) that sends `strikes` rejected messages within `window_s` is ignored
    (its messages dropped unread and unanswered) for `cooldown_s`; docs/hardening.md."""

    strikes: int = Field(10, ge=0, le=1_000_000, description="protocol errors that put a peer in the box; 0 = off")
    window_s: float = Field(1.0, gt=0, le=3600, description="the strikes must fall within this window")
    cooldown_s: float = Field(1.0, gt=0, le=3600, description="how long a boxed peer is ignored")
    max_tracked: int = Field(4096, ge=1, le=1_000_000, description="peers remembered at once (memory bound)")


class AdmissionConfig(StrictModel):
    """A decode budget shared by every message that is not from a session in good standing (a peer
    without a session, or one whose last message was rejected): over budget such messages are
    dropped unread, so an attacker with ever new connections cannot take the I/O thread from the
    robots; docs/hardening.md."""

    rate: float = Field(200.0, ge=0, le=1_000_000, description="such messages decoded per second; the rest are "
                        "dropped unread; 0 = off (decode every message)")
    burst: float = Field(100.0, ge=1, le=1_000_000, description="such messages decoded at once after a quiet spell")
    hello_share: float = Field(0.5, gt=0, le=1, description="part of rate and burst reserved for Hellos (new "
                               "robots); Hellos may use the rest too")


class ServerConfig(StrictModel):
    network: NetworkConfig = NetworkConfig()
    backend: BackendConfig = BackendConfig()
    batching: BatchingConfig = BatchingConfig()
    injected_latency: InjectedLatencyConfig = InjectedLatencyConfig()
    max_clients: int = Field(64, ge=1, le=4096)
    hello_grace_s: float = Field(
        5.0, gt=0, le=3600, description="when full, a session with no Observation this long after its Hello is "
        "evicted to make room for a new robot")
    idle_timeout_s: float = Field(
        30.0, gt=0, le=86_400, description="when full, a session with no Observation for this long is evicted "
        "to make room for a new robot (it re-handshakes when it comes back)")
    max_sessions_per_peer: int = Field(0, ge=0, le=4096, description="sessions per peer IP address; 0 = no limit")
    penalty_box: PenaltyBoxConfig = PenaltyBoxConfig()
    admission: AdmissionConfig = AdmissionConfig()
    log_level: Literal["debug", "info", "warning", "error"] = "info"


# ---------------------------------------------------------------- strategy (scheduler)


class DelayConfig(StrictModel):
    """How the client estimates d̂, the delay from capture to a usable chunk."""

    mode: Literal["measured", "fixed"] = "measured"
    fixed_ticks: int = Field(0, ge=0, le=1000, description="used when mode=fixed, and before warm-up ends")
    window: int = Field(20, ge=1, le=10_000, description="latency samples kept")
    quantile: float = Field(0.9, ge=0, le=1)
    margin_ticks: float = Field(0.0, ge=0, le=100)
    warmup_samples: int = Field(1, ge=0, le=1000, description="first samples ignored (cold start)")
    min_ticks: int = Field(0, ge=0)
    max_ticks: int = Field(100, ge=0, le=10_000)


class SmootherConfig(StrictModel):
    enabled: bool = False
    degree: int = Field(3, ge=0, le=9)
    window: int = Field(0, ge=0, le=10_000, description="0: fit the whole chunk; else sliding window length")
    stepwise_window: int = Field(1, ge=1, le=1000, description="stepwise (gripper) dims: moving-average length")
    stepwise_snap: Literal["none", "limits"] = Field(
        "none", description="stepwise dims: snap to the nearer position limit (closed/open), held between changes"
    )


class FuserConfig(StrictModel):
    kind: Literal["latest_only", "lerobot", "temporal_ensemble", "rail"] = "rail"
    align: bool = Field(True, description="place chunks by tick (drop passed actions); false = naive")
    blend_ticks: int = Field(8, ge=1, le=1000, description="rail: length of the quintic blend")
    adaptive_blend: bool = Field(True, description="rail: scale blend length with the size of the mismatch")
    max_blend_ticks: int = Field(30, ge=1, le=1000, description="rail: upper bound of the adaptive blend length")
    blend_speed: float = Field(
        1.0, gt=0, le=1000, description="rail adaptive: blend lasts at least mismatch / blend_speed seconds"
    )
    blend_limits: bool = Field(
        False,
        description="rail: shortest blend in [min_blend_ticks, maximum] whose peak velocity and acceleration stay "
        "within the safety limits and peak jerk within blend_max_jerk (maximum: blend_ticks, or max_blend_ticks "
        "with adaptive_blend)",
    )
    min_blend_ticks: int = Field(2, ge=1, le=1000, description="rail with blend_limits: shortest blend")
    blend_max_jerk: float = Field(1500.0, gt=0, description="rail with blend_limits: peak jerk of a blend, units/s³")
    lerobot_old_weight: float = Field(0.3, ge=0, le=1)
    ensemble_m: float = Field(0.01, ge=0, le=10, description="temporal_ensemble: w_i = exp(-m i)")


class StrategyConfig(StrictModel):
    """One named way of running async inference; presets in vla_async/configs/strategies/<name>.yaml.

    The bare schema defaults below are building blocks, not a strategy: a client without a preset
    runs DEFAULT_STRATEGY's preset (see ClientConfig).
    """

    extra_cli_fields: ClassVar[dict[str, tuple[Any, str, str]]] = {
        "preset": (lambda: strategy_names(), DEFAULT_STRATEGY,
                   "start from this preset; other --strategy.* fields override it"),
    }

    name: str = DEFAULT_STRATEGY
    sync: bool = Field(False, description="hold position while waiting for each chunk")
    trigger: Literal["horizon", "delay", "every_tick", "queue"] = Field(
        "delay",
        description="horizon: every s ticks; delay: planned ticks left <= d̂ + margin; "
        "queue: planned ticks left / H <= lerobot_queue_threshold; every_tick: whenever a slot is free",
    )
    execution_horizon: int = Field(10, ge=1, le=10_000, description="s: actions executed per chunk")
    trigger_margin_ticks: int = Field(2, ge=0, le=1000, description="trigger when planned ticks left ≤ d̂ + this")
    lerobot_queue_threshold: float = Field(0.5, ge=0, le=1)
    emulate: Literal["none", "lerobot_0_4_4"] = Field(
        "none", description="virtual-time evaluation only: lerobot_0_4_4 runs LeRobot 0.4.4's client queue and "
        "server filter (sim/eval/lerobot_emulation.py) instead of this scheduler; the robot client ignores it")
    max_in_flight: int = Field(1, ge=1, le=64)
    rollforward: Literal["none", "commanded", "delta", "tracking", "last_command", "auto"] = Field(
        "commanded", description="conditioning state; last_command: the previous command, at the capture tick "
        "(no rollforward: the chunk starts at the capture tick); auto (the vlash_rail default): commanded for a "
        "policy whose spec declares it was trained for exec_offset_s (VLASH); none with the state_lag_ticks placement "
        "for another policy with cameras when state_lag_ticks > 0 (lag_rail's conditioning); last_command otherwise")
    state_lag_ticks: int = Field(
        0, ge=0, le=1000, description="rollforward=none (or auto resolving to none): the arm trails its command by about this many ticks (servo "
        "lag), so the measured state the policy is conditioned on is where the plan was that many ticks ago; its chunk is "
        "placed that many ticks before the capture tick (the lag_rail preset; its passed rows are dropped); with "
        "rollforward_to: arm it shortens the rollforward instead; ignored under any other conditioning and when an "
        "action prefix is sent")
    state_lag: Literal["fixed", "measured"] = Field(
        "fixed", description="with state_lag_ticks: fixed = place every chunk state_lag_ticks before its capture tick; "
        "measured = at each capture, the lag is how many ticks back (0..state_lag_ticks) the command lies that the "
        "measured state is nearest to (gradual joints), so a slow or resting arm (a grasp) gets little or none")
    rollforward_to: Literal["command", "arm"] = Field(
        "command", description="with a rollforward that shifts the chunk (commanded, delta, tracking): command = VLASH, "
        "the state at exec_tick = capture + d̂; arm = where a lagging arm will be when the chunk arrives: the horizon "
        "is d̂ less the servo lag (state_lag_ticks, fixed or measured at each capture as for the lag placement), the "
        "chunk placed at that tick (its passed rows dropped and blended); when d̂ ≤ the lag, the measured state placed by "
        "the lag. With the commanded rollforward the policy then sees the command the arm will have reached, not the "
        "one it is still chasing (vlash_rail: arm)")
    tracking_forgetting: float = Field(
        0.99, gt=0, le=1, description="rollforward=tracking: RLS forgetting factor of the servo-lag model"
    )
    delay: DelayConfig = DelayConfig()
    smoother: SmootherConfig = SmootherConfig()
    fuser: FuserConfig = FuserConfig()
    action_prefix: Literal["none", "committed", "auto"] = Field(
        "none", description="committed: requests carry the plan from exec_tick (its first d̂ ticks committed) for "
        "real-time chunking; sent only to a policy whose spec accepts an action prefix. auto (the vlash_rail "
        "default): committed for a policy whose spec accepts a prefix, and then rollforward auto conditions on the "
        "command at the capture tick, where the prefix starts (vlash_rtc_rail's configuration); none otherwise, and "
        "when the strategy conditions on the measured state explicitly (rollforward: none)")
    prefix_rows: int | None = Field(
        None, ge=1, le=10_000, description="action_prefix=committed: rows of the plan sent as the prefix, counted from "
        "exec_tick (RTC's H - s: the committed rows, then soft-masked ones that pull the new chunk toward the old "
        "plan, up to this row; never fewer than the committed rows); None: the whole plan. The soft region then "
        "shrinks as the delay grows: learned pick_place at 16 rows, 100 held-out seeds: d = 12 70% vs 49%, but d = 6 "
        "67% vs 84% (README, issue 16)")
    streaming: bool = Field(
        False, description="ask for streamed chunks (FASTER): a policy whose spec declares streaming sends each chunk's "
        "first rows as soon as they are denoised, then the rest; the plan fuses rows as they arrive")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """`{preset: rail, fuser: {...}}` → the preset's YAML with the given fields on top."""
        if isinstance(data, dict) and "preset" in data:
            data = dict(data)
            preset = data.pop("preset")
            data = deep_merge(load_strategy_preset(preset), data)
        return data

    @model_validator(mode="after")
    def _state_lag_needs_measured_state(self) -> StrategyConfig:
        # The lag places chunks planned from the measured state; the scheduler ignores it for any other conditioning
        # (so a preset's value survives an override such as rollforward: commanded). A committed prefix with the
        # measured state stated explicitly is refused: RTC with the lag placement lost (session 25, 28); `auto` then
        # sends none (`resolve_action_prefix`).
        if self.state_lag_ticks and self.rollforward == "none" and self.action_prefix == "committed":
            raise ValueError(f"state_lag_ticks={self.state_lag_ticks} places chunks planned from the measured state: it "
                             f"needs action_prefix: none (got action_prefix: {self.action_prefix})")
        return self


def strategy_names() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "strategies").glob("*.yaml"))


def load_strategy_preset(name: str) -> dict[str, Any]:
    path = CONFIG_DIR / "strategies" / f"{name}.yaml"
    if not isinstance(name, str) or not path.is_file():
        names = strategy_names()
        raise ConfigError(f"unknown strategy preset {name!r}; allowed: {' | '.join(names)}{did_you_mean(name, names)}")
    data = read_yaml(path)
    data.setdefault("name", name)
    return data


def strategy_config(name: str, **overrides: Any) -> StrategyConfig:
    return StrategyConfig.model_validate(deep_merge(load_strategy_preset(name), overrides))


class SafetyConfig(StrictModel):
    enabled: bool = True
    limit_margin: float = Field(0.0, ge=0, description="shrink the robot's position limits by this much")
    max_velocity: float | list[float] = Field(6.0, description="per joint, units/s (scalar or per-joint list)")
    max_acceleration: float | list[float] = Field(60.0, description="per joint, units/s²")
    max_step: float | list[float] = Field(0.35, description="max change of a command in one tick")
    watchdog_timeout_s: float = Field(1.0, gt=0, le=60, description="no chunk for this long → come to rest")
    rest_deceleration: float = Field(10.0, gt=0, description="units/s² used to bring the arm to rest")
    server_lost_stop_s: float = Field(
        5.0, gt=0, le=3600, description="end the run (controlled stop) when the server has been unreachable this "
        "long; the watchdog already brings the arm to rest after watchdog_timeout_s")


# ---------------------------------------------------------------- robot and client


class CameraConfig(StrictModel):
    height: int = Field(224, ge=16, le=4096)
    width: int = Field(224, ge=16, le=4096)


class LeRobotRobotConfig(BaseModel):
    """robot.kind=lerobot: a LeRobot 0.4.4 robot. `type` picks LeRobot's robot config class
    (so101_follower, koch_follower, ... or a plugin's type); every field but `units` is forwarded to it
    (e.g. --robot.lerobot.use_degrees=false, --robot.lerobot.max_relative_target=5), and LeRobot checks them."""

    model_config = ConfigDict(extra="allow", frozen=True, validate_default=True)

    type: str | None = Field(None, description="LeRobot robot type, e.g. so101_follower, koch_follower")
    port: str | None = Field(None, description="serial port of the motor bus, e.g. /dev/ttyACM0")
    id: str | None = Field(None, description="LeRobot robot id: names the calibration file (lerobot-calibrate)")
    cameras: dict[str, dict[str, Any]] | None = Field(
        None, description="LeRobot camera configs, e.g. {front: {type: opencv, index_or_path: 0, "
        "width: 640, height: 480, fps: 30}}; null: none (clears a preset's)")
    units: Literal["native", "radians"] = Field(
        "native", description="units of the robot spec the policy sees: native = LeRobot's (degrees or -100..100, "
        "gripper 0..100); radians = arm joints in rad, gripper 0..1 (the simulated arm's units)")

    def forwarded(self) -> dict[str, Any]:
        """The fields LeRobot's robot config receives (unset optional ones left to LeRobot's defaults)."""
        data = {k: v for k, v in self.model_dump().items() if k != "units"}
        return {k: v for k, v in data.items() if v is not None}


class RobotConfig(StrictModel):
    kind: Literal["sim", "lerobot"] = "sim"
    task: SimTask = Field("pick_place", description="sim task")
    seed: int = 0
    fps: float = Field(30.0, gt=0, le=1000)
    cameras: list[str] = Field(default_factory=lambda: ["front", "wrist"], description="cameras to render")
    camera: CameraConfig = CameraConfig()
    render: bool = Field(True, description="render camera images (off when the policy ignores them)")
    lerobot: LeRobotRobotConfig = LeRobotRobotConfig()
    dry_run: bool = Field(False, description="run the whole loop on the robot's observations, log the commands, "
                          "never send them")
    on_stop: Literal["hold", "release"] = Field(
        "hold", description="after the controlled stop brought the arm to rest: keep torque on or release it")
    stop_timeout_s: float = Field(3.0, gt=0, le=60, description="longest the controlled stop may take to "
                                  "decelerate the arm (safety.rest_deceleration) before torque is held or released")
    options: dict[str, Any] = Field(default_factory=dict)


class LogConfig(StrictModel):
    path: str | None = Field(None, description="per-tick log file (.jsonl); none = no file")
    print_summary: bool = True
    live_status: bool = True


class ClientConfig(StrictModel):
    network: NetworkConfig = NetworkConfig()
    robot: RobotConfig = RobotConfig()
    strategy: StrategyConfig = Field(default_factory=lambda: strategy_config(DEFAULT_STRATEGY))
    safety: SafetyConfig = SafetyConfig()
    log: LogConfig = LogConfig()
    duration_s: float = Field(20.0, gt=0, le=86_400, description="stop after this long")
    stop_on_success: bool = True
    task_instruction: str | None = Field(None, description="override the task's language instruction")
    client_name: str = "robot"

    @model_validator(mode="before")
    @classmethod
    def _strategy_from_preset(cls, data: Any) -> Any:
        """A strategy section without `preset` starts from a preset too, so what runs is what is named:
        `name` when it names a preset (`--strategy.name=sync` runs sync), else DEFAULT_STRATEGY."""
        if not isinstance(data, dict) or not isinstance(data.get("strategy"), dict):
            return data
        section = dict(data["strategy"])
        if "preset" not in section:
            name = section.get("name")
            section["preset"] = name if isinstance(name, str) and name in strategy_names() else DEFAULT_STRATEGY
        return {**data, "strategy": section}
