"""`vla-async calibrate`: measure a deployment's latencies and write the client settings that fit them.

    vla-async calibrate --config robots/so101 --network.host=gpu-box [--requests 50] [--move] [--out latency.yaml]

Against a running policy server and a connected robot (the same config the client would run):
  1. round trips: `--requests` observations of the robot as it stands (its state, cameras, task), one in
     flight; the round trip and the server's own time (the timing breakdown every chunk carries);
  2. the robot's command→state lag from a small step response, and how far its state trails a moving
     command (a ramp; `robot_client/servo_lag.py`): dry by default (nothing is sent); `--move` moves one joint
     by a small step and back, then along a ramp and back, through the safety layer, within the limits it
     prints first;
  3. writes a client config (the one given, with the latency settings replaced) that
     `vla-async client --config <out>` takes, and prints why each value was chosen.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from robot_client.servo_lag import JointProbe, measure_tracking_lag
from vla_async.config import ClientConfig, ConfigError, config_from_cli
from vla_async.config.loader import deep_merge
from vla_async.messages import Observation
from vla_async.robot import Robot
from vla_async.safety import SafetyLayer
from vla_async.transport import PolicyClient, ReceivedChunk

USAGE = """usage: vla-async calibrate [--requests N] [--move] [--step S] [--out PATH] [--config NAME|PATH] [--section.field=value ...]

Measures round trip, server time and the robot's command→state lag, then writes latency settings
(a client config) to --out (default runs/calibrate/latency.yaml). --move: measure the lag with a small step
of one joint (S robot units; default the smaller of 3 × safety.max_step and 5% of its range); without it nothing is sent.
Fields (the client's; any can be overridden on the command line):"""

_FLAGS = {"--requests": int, "--out": str, "--step": float}


@dataclass(frozen=True)
class Latencies:
    rtt_s: np.ndarray  # round trip per request
    server_ms: np.ndarray  # server total per request
    model_ms: np.ndarray
    lag_ticks: float | None  # command → state (50% of a step); None when not measured
    fps: float
    tracking_lag_ticks: float | None = None  # ticks the state trails a moving command (servo_lag); None: not measured

    def q(self, values: np.ndarray, p: float) -> float:
        return float(np.percentile(values, p)) if len(values) else math.nan


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        opts, rest = _split_flags(args)
    except ValueError as exc:
        print(f"vla-async calibrate: {exc}", file=sys.stderr)
        return 2
    config = config_from_cli(ClientConfig, rest, prog="vla-async calibrate", usage=USAGE)
    if isinstance(config, int):
        return config
    return calibrate(config, requests=int(opts.get("--requests", 30)), move=bool(opts.get("--move")),
                     step=opts.get("--step"), out=Path(opts.get("--out", "runs/calibrate/latency.yaml")))


def _split_flags(args: list[str]) -> tuple[dict[str, Any], list[str]]:
    opts: dict[str, Any] = {}
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        name, eq, value = arg.partition("=")
        if arg == "--move":
            opts["--move"] = True
        elif name in _FLAGS:
            raw = value if eq else next(it, None)
            if raw is None:
                raise ValueError(f"{name} needs a value")
            try:
                opts[name] = _FLAGS[name](raw)
            except ValueError:
                raise ValueError(f"{name}: {raw!r} is not a {_FLAGS[name].__name__}") from None
        else:
            rest.append(arg)
    if opts.get("--requests", 3) < 3:
        raise ValueError("--requests must be at least 3")
    return opts, rest


def calibrate(config: ClientConfig, *, requests: int, move: bool, step: float | None, out: Path) -> int:
    from robot_client.lerobot_units import UnitsError
    from robot_client.robots import RobotUnavailableError, make_robot
    from vla_async.transport import HandshakeError

    try:
        robot = make_robot(config.robot.model_copy(update={"dry_run": False}))
        robot.connect()
    except (RobotUnavailableError, ConfigError, UnitsError) as exc:
        print(f"vla-async calibrate: {exc}", file=sys.stderr)
        return 2
    try:
        with PolicyClient(config.network, config.client_name, robot.spec) as policy:
            welcome = policy.connect(timeout_s=10.0)
            print(f"server {config.network.host}:{config.network.port}: policy {welcome.policy_spec.name!r}, "
                  f"H={welcome.policy_spec.chunk_length}; robot {robot.spec.name} at {robot.spec.fps:g} Hz")
            cameras = tuple(c.name for c in welcome.policy_spec.cameras)
            rtt, server_ms, model_ms = measure_round_trips(policy, robot, config, cameras, requests)
        lag = measure_lag(robot, config, step) if move else None
        tracking = measure_tracking_lag(robot, config) if move else None
    except (HandshakeError, TimeoutError) as exc:
        print(f"vla-async calibrate: could not reach the policy server at {config.network.host}:"
              f"{config.network.port}: {exc}", file=sys.stderr)
        return 1
    finally:
        robot.disconnect()
    lat = Latencies(rtt, server_ms, model_ms, lag, float(robot.spec.fps), tracking)
    print_measurements(lat, requests)
    settings, why = latency_settings(lat, config)
    write_config(config, settings, why, out)
    print("\nsettings written to", out, "(run: vla-async client --config", f"{out})")
    for line in why:
        print(f"  {line}")
    return 0


def measure_round_trips(policy: PolicyClient, robot: Robot, config: ClientConfig, cameras: tuple[str, ...],
                        n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`n` requests with the robot's current observation, one in flight, each within request_timeout_s."""
    task = config.task_instruction or str(getattr(robot, "instruction", "") or "")
    timeout = config.network.request_timeout_s
    rtt, server_ms, model_ms = [], [], []
    for rid in range(1, n + 1):
        obs = robot.get_observation(with_images=bool(cameras))
        t0 = time.monotonic()
        policy.submit(Observation(request_id=rid, tick=0, exec_tick=0, state=obs.state,
                                  images={c: obs.images[c] for c in cameras}, task=task,
                                  environment_state=obs.environment_state, deadline_ms=timeout * 1e3))
        reply = _wait_reply(policy, rid, t0 + timeout + 1.0)
        if isinstance(reply, ReceivedChunk):
            rtt.append(reply.received_at - t0)
            server_ms.append(reply.chunk.timing.total_ms)
            model_ms.append(reply.chunk.timing.model_ms)
    if len(rtt) < max(3, n // 2):
        raise TimeoutError(f"only {len(rtt)} of {n} requests answered within network.request_timeout_s={timeout}")
    return np.asarray(rtt), np.asarray(server_ms), np.asarray(model_ms)


def _wait_reply(policy: PolicyClient, rid: int, until: float) -> object | None:
    while time.monotonic() < until and policy.wait(max(0.0, until - time.monotonic())):
        for item in policy.poll():
            got = item.chunk.request_id if isinstance(item, ReceivedChunk) else getattr(item, "request_id", None)
            if got == rid:
                return item
    return None


def measure_lag(robot: Robot, config: ClientConfig, step: float | None, hold_s: float = 1.5) -> float | None:
    """Step one joint (the first smooth one) by `step` and back, through the safety layer; the lag is the
    number of ticks until the measured state covers half the step (the mean of the way out and back)."""
    spec = robot.spec
    probe = JointProbe.first_smooth(robot, config)
    joint, safety, start, lo, hi = probe.joint, probe.safety, probe.start, probe.low, probe.high
    max_step = probe.of_joint(config.safety.max_step, spec.action_dim)
    size = step if step is not None else min(3.0 * float(max_step), 0.05 * float(hi - lo))
    size = size if start[joint] + size <= hi else -size
    if not lo <= start[joint] + size <= hi:
        print(f"step response skipped: {spec.action_names[joint]} at {start[joint]:.4g} has no room for a "
              f"{abs(size):.4g} step within [{lo:.4g}, {hi:.4g}]")
        return None
    print(f"step response (--move): {spec.action_names[joint]} from {start[joint]:.4g} to {start[joint] + size:.4g} "
          f"and back (limits [{lo:.4g}, {hi:.4g}], at most {config.safety.max_step} per tick, "
          f"{config.safety.max_velocity} units/s), {hold_s:g} s each way")
    safety.reset(start)
    target = start.copy()
    target[joint] += size
    lags = [_step(robot, safety, target, joint, start[joint], hold_s), _step(robot, safety, start, joint,
                                                                              target[joint], hold_s)]
    found = [x for x in lags if x is not None]
    return float(np.mean(found)) if found else None


def _step(robot: Robot, safety: SafetyLayer, target: np.ndarray, joint: int, origin: float, hold_s: float
          ) -> float | None:
    fps = float(robot.spec.fps)
    half = origin + (target[joint] - origin) / 2
    rising = target[joint] > origin
    command_half = state_half = None
    deadline = time.monotonic()
    for k in range(max(1, math.ceil(hold_s * fps))):
        cmd = safety.apply(target)
        robot.send_action(cmd)
        if command_half is None and (cmd[joint] >= half if rising else cmd[joint] <= half):
            command_half = k
        state = robot.get_observation(with_images=False).state[joint]
        if state_half is None and (state >= half if rising else state <= half):
            state_half = k
        deadline += 1.0 / fps
        time.sleep(max(0.0, deadline - time.monotonic()))
    if command_half is None or state_half is None:
        return None
    return float(max(0, state_half - command_half))


def print_measurements(lat: Latencies, n: int) -> None:
    print(f"\n{'ms':<22}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}   ({len(lat.rtt_s)} of {n} requests)")
    for name, values in (("round trip", lat.rtt_s * 1e3), ("server total", lat.server_ms),
                         ("  model", lat.model_ms), ("transport + client", lat.rtt_s * 1e3 - lat.server_ms)):
        print(f"{name:<22}{lat.q(values, 50):>9.2f}{lat.q(values, 90):>9.2f}{lat.q(values, 99):>9.2f}"
              f"{float(np.max(values)):>9.2f}")
    lag = "not measured (dry; --move measures it)" if lat.lag_ticks is None else f"{lat.lag_ticks:.1f} ticks"
    print(f"{'command → state lag':<22}{lag}")
    if lat.tracking_lag_ticks is not None:
        print(f"{'tracking lag':<22}{lat.tracking_lag_ticks:.1f} ticks (state behind a moving command)")


def latency_settings(lat: Latencies, config: ClientConfig) -> tuple[dict[str, Any], list[str]]:
    """The latency settings and one line of explanation per value."""
    dt = 1.0 / lat.fps
    p50, p90, p99 = (lat.q(lat.rtt_s, p) for p in (50, 90, 99))
    lag = lat.lag_ticks or 0.0
    lag_text = "not measured" if lat.lag_ticks is None else f"{lat.lag_ticks:.1f} ticks"
    jitter = max(0.0, p99 - p50)
    warm = math.ceil(p90 / dt)
    margin = max(1, math.ceil(jitter / dt) + 1)
    horizon = config.strategy.execution_horizon
    in_flight = min(4, max(1, math.ceil(p99 / dt / horizon)))
    blend = int(min(30, max(4, math.ceil(2 * jitter / dt + lag), config.strategy.fuser.min_blend_ticks)))
    watchdog = round(max(0.5, 2.0 * (horizon * dt + p99)), 2)
    timeout = round(min(60.0, max(3.0 * p99, p99 + 0.1)), 3)
    settings = {
        "strategy": {"delay": {"fixed_ticks": warm}, "trigger_margin_ticks": margin, "max_in_flight": in_flight,
                     "fuser": {"blend_ticks": blend}},
        "safety": {"watchdog_timeout_s": watchdog},
        "network": {"request_timeout_s": timeout},
    }
    why = [
        f"strategy.delay.fixed_ticks={warm}: the delay estimate d̂ before its first measurements (warm start) = "
        f"round trip p90 {p90 * 1e3:.1f} ms in ticks of {dt * 1e3:.1f} ms, rounded up",
        f"strategy.trigger_margin_ticks={margin}: request when planned ticks left ≤ d̂ + this (trigger=delay); "
        f"covers the round-trip jitter p99−p50 = {jitter * 1e3:.1f} ms, plus one tick",
        f"strategy.max_in_flight={in_flight}: requests in flight so a chunk can land every execution horizon "
        f"({horizon} ticks) even at the round-trip p99 ({p99 / dt:.1f} ticks)",
        f"strategy.fuser.blend_ticks={blend}: blend length covering twice the jitter in ticks plus the robot's "
        f"command→state lag ({lag_text}), "
        f"in [4, 30]",
        f"safety.watchdog_timeout_s={watchdog}: twice the longest normal wait for a chunk (execution horizon "
        f"{horizon * dt:.2f} s + round-trip p99 {p99:.3f} s); past it the arm is brought to rest",
        f"network.request_timeout_s={timeout}: above the round-trip p99 ({p99 * 1e3:.1f} ms; docs/metrics.md): "
        f"3 × p99, at least p99 + 100 ms",
    ]
    _state_lag_setting(lat, config, settings, why)
    return settings, why


def _state_lag_setting(lat: Latencies, config: ClientConfig, settings: dict[str, Any], why: list[str]) -> None:
    """strategy.state_lag_ticks from the tracking lag, for a strategy that reads the servo lag (lag placement,
    rollforward_to: arm); a strategy without one is left without (the value would switch the placement on)."""
    if lat.tracking_lag_ticks is None or not config.strategy.state_lag_ticks:
        return
    ticks = math.ceil(lat.tracking_lag_ticks) + 1
    settings["strategy"]["state_lag_ticks"] = ticks
    why.append(f"strategy.state_lag_ticks={ticks}: the largest servo lag a capture may read (state_lag: measured) or "
               f"the lag itself (fixed) = the tracking lag {lat.tracking_lag_ticks:.1f} ticks rounded up, plus one "
               f"tick (our sim: 3 → 4, the value its evaluations chose)")


def write_config(config: ClientConfig, settings: dict[str, Any], why: list[str], out: Path) -> None:
    """The full client config that was calibrated, with the latency settings replaced (validated first)."""
    data = deep_merge(config.model_dump(mode="json"), settings)
    ClientConfig.model_validate(data)  # what the client will load
    out.parent.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {line}\n" for line in ["Written by vla-async calibrate; latency settings:", *why])
    out.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


if __name__ == "__main__":
    sys.exit(main())
