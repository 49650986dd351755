"""Rollforward (VLASH, arXiv 2512.01031): the state the robot will be in when the new chunk starts.

At capture tick k with exec_tick = k + d̂, the commands for ticks k .. exec_tick-1 are already
committed (the plan, or a hold on underrun). Each mode predicts ŝ(exec_tick) from them:
- `none`: no rollforward (the policy sees the captured state);
- `commanded`: absolute targets, ŝ = the last committed command (VLASH, ideal tracker);
- `delta`: delta actions, ŝ = s_k + Σ committed deltas (VLASH);
- `last_command` (not VLASH; the default `vlash_rail`'s conditioning): condition on the command sent at
  k, for a chunk that still starts at the capture tick (exec_tick = k): the state consistent with the
  observation's time, for a policy not fine-tuned for `exec_offset_s`; the fuser drops the passed
  actions (with rail, the C2 blend absorbs the jump ahead);
- `auto`: `commanded` for a policy whose spec declares it was trained for `exec_offset_s` (VLASH
  fine-tuning: it can use a state ahead of its images; with `vlash_rail`'s `rollforward_to: arm` the horizon is
  d̂ less the servo lag, which the scheduler applies); `none` for any other policy that reads camera images,
  when the strategy places chunks by the servo lag (`state_lag_ticks` > 0): such a policy reads the scene
  relative to the arm its images show, so it gets the measured state they agree with (`lag_rail`'s
  conditioning); `last_command` otherwise (no cameras: the scripted expert; or no lag placement, which is the
  case when the strategy sends a committed action prefix: the prefix starts at the command at k)
  (`resolve_rollforward`; `action_prefix: auto` is resolved first, by `resolve_action_prefix`);
- `tracking` (beyond VLASH): a real arm lags its command. A per-joint first-order servo model
  s_{t+1} = s_t + α_j (c_t − s_t) is identified online by recursive least squares from
  (command, measured) pairs, and the measured state is simulated forward over the committed
  commands from s_k. With α = 1 (ideal tracker) it equals `commanded`.
"""

from __future__ import annotations

import abc

import numpy as np


class RollForward(abc.ABC):
    last_only = False  # True: `predict` reads only the last committed command (the scheduler passes just that row)
    shifts_exec = True  # False: the chunk still starts at the capture tick (exec_tick = k); only the state changes

    def observe(self, measured: np.ndarray, previous_command: np.ndarray | None) -> None:  # noqa: B027
        """Called every tick with s_k and c_{k-1} (the command sent at the previous tick)."""

    @abc.abstractmethod
    def predict(
        self, measured: np.ndarray, committed: np.ndarray, previous_command: np.ndarray | None
    ) -> np.ndarray | None:
        """ŝ at exec_tick from s_k (`measured`) and the committed commands [exec_tick − k, D]."""


class NoRollForward(RollForward):
    def predict(self, measured, committed, previous_command):  # noqa: D102
        return None


class CommandedRollForward(RollForward):
    last_only = True

    def predict(self, measured, committed, previous_command):  # noqa: D102
        if len(committed):
            return np.array(committed[-1], dtype=float)
        return np.array(measured if previous_command is None else previous_command, dtype=float)


class LastCommandRollForward(CommandedRollForward):
    """The scheduler passes this tick's command as the only committed row (exec_tick = k)."""

    shifts_exec = False


class DeltaRollForward(RollForward):
    def predict(self, measured, committed, previous_command):  # noqa: D102
        return np.asarray(measured, dtype=float) + np.sum(committed, axis=0)


class TrackingRollForward(RollForward):
    """Online per-joint servo-lag model; see the module docstring."""

    def __init__(self, action_dim: int, forgetting: float = 0.99, prior_alpha: float = 1.0):
        self.forgetting = forgetting
        self.alpha = np.full(action_dim, prior_alpha)
        self.p = np.full(action_dim, 100.0)  # RLS covariance of each joint's α
        self._prev_measured: np.ndarray | None = None
        self.updates = 0

    def observe(self, measured: np.ndarray, previous_command: np.ndarray | None) -> None:  # noqa: B027
        measured = np.asarray(measured, dtype=float)
        prev = self._prev_measured
        if np.count_nonzero(np.isfinite(measured)) != measured.size:  # a bad reading: no update, no predecessor
            self._prev_measured = None
            return
        self._prev_measured = measured.copy()
        if prev is None or previous_command is None:
            return
        x = previous_command - prev  # what the servo was asked to close
        y = measured - prev  # what it closed
        excited = np.abs(x) > 1e-6  # no information (and no covariance wind-up) when the error is ~0
        if not excited.any():
            return
        lam = self.forgetting
        gain = self.p * x / (lam + x * self.p * x)
        alpha = self.alpha + gain * (y - self.alpha * x)
        p = (self.p - gain * x * self.p) / lam
        self.alpha = np.where(excited, np.clip(alpha, 0.0, 2.0), self.alpha)
        self.p = np.where(excited, np.minimum(p, 1e6), self.p)
        self.updates += 1

    def predict(self, measured, committed, previous_command):  # noqa: D102
        s = np.array(measured, dtype=float)
        if np.count_nonzero(np.isfinite(s)) != s.size:  # a bad reading: the commanded prediction instead
            return CommandedRollForward().predict(measured, committed, previous_command)
        for c in committed:
            s += self.alpha * (c - s)
        return s


def resolve_rollforward(mode: str, policy_uses_exec_offset: bool, policy_reads_images: bool = False,
                        places_by_lag: bool = False) -> str:
    """The mode `auto` stands for, given whether the policy declares it was trained for `exec_offset_s`, whether
    it reads camera images, and whether the strategy places chunks by the servo lag (`state_lag_ticks` > 0)."""
    if mode != "auto":
        return mode
    if policy_uses_exec_offset:
        return "commanded"
    return "none" if policy_reads_images and places_by_lag else "last_command"


def resolve_action_prefix(mode: str, rollforward: str, policy_accepts_prefix: bool) -> str:
    """The `action_prefix` mode `auto` stands for: `committed` (real-time chunking) for a policy whose spec accepts
    a prefix, unless the strategy conditions on the measured state explicitly (`rollforward: none`, whose lag
    placement a prefix would contradict); `none` otherwise. Held out (learned pick_place, constant 0 / 200 / 400 ms,
    200 scenes): the prefix with the command at capture 96.0 / 94.5 / 95.0% against the measured state placed by the
    lag 97.0 / 90.0 / 83.5% (README, "Delay sweeps")."""
    if mode != "auto":
        return mode
    return "committed" if policy_accepts_prefix and rollforward != "none" else "none"


def create_rollforward(mode: str, action_dim: int, forgetting: float = 0.99) -> RollForward:
    factories = {
        "none": NoRollForward,
        "commanded": CommandedRollForward,
        "delta": DeltaRollForward,
        "last_command": LastCommandRollForward,
        "tracking": lambda: TrackingRollForward(action_dim, forgetting),
    }
    if mode not in factories:
        raise ValueError(f"unknown rollforward {mode!r}; available: {sorted(factories)}")
    return factories[mode]()
