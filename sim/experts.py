"""Scripted experts: action chunks from (state, environment_state, instruction), standing in for a VLA.

Stateless in time: a chunk depends only on the given state (measured, stale or rolled forward)
and the environment state (object poses and the target's last three frames: what cameras show,
never an analytic velocity), never on hidden memory. Every motion is the exact solution
of an autonomous ODE in the joint error (constant speed far from the goal, exponential approach
near it), sampled at the control ticks. The flow property makes chunks line up: a chunk planned
from a state on an earlier chunk continues that chunk exactly. Phases (approach, descend, close,
lift, carry, release, retreat) are re-decided from the planned state at every tick inside a chunk.
"""

from __future__ import annotations

import math
import re

import numpy as np

from sim import so101
from sim.kinematics import PITCH_DOWN, roll_for_yaw, solve_ik, solve_reach, tool_position
from sim.tasks.layout import CUBE, POLICY_TASKS, TARGET_POS, TARGET_PREV, TARGET_PREV2, TASK_ONE_HOT, ZONE
from vla_async.policy_input import EXEC_OFFSET_KEY
from vla_async.specs import ActionKind, PolicySpec, RobotSpec

MAX_JOINT_SPEED = 2.5  # rad/s, every arm joint
APPROACH_TAU_S = 0.08  # exponential approach time constant near a goal
GRIPPER_SPEED = 3.0  # normalised opening per second
# The arm's own lag, a fixed property of the sim arm (not of latency): the servo follows the command
# ~2.5 ticks late and the exponential approach adds ~APPROACH_TAU_S, so the expert aims this far ahead
# of where a moving target will be when each action executes.
TRACK_LEAD_S = 0.11
# The sim arm's measured joints trail a ramp command by 0.071–0.082 s (activation filter + PD; measured per
# joint at 0.5 rad/s): the lag a lag-compensated expert (`lag_compensation_s`) adds back to a given state.
ARM_LAG_S = 0.08

GRASP_Z, PRE_Z, CARRY_Z, PLACE_Z, RETREAT_Z = 0.018, 0.08, 0.09, 0.022, 0.12
XY_TOL, Z_TOL, ALIGN_TOL = 0.008, 0.008, 0.015
CLOSED, RELEASED, OPEN = 0.05, 0.5, 0.9


def flow(q: np.ndarray, goal: np.ndarray, dt: float, speed: float = MAX_JOINT_SPEED, tau: float = APPROACH_TAU_S) -> np.ndarray:
    """Exact state after `dt` of du/dt = -min(1, u/tau) along the straight joint-space line to goal.

    u = time to go at full speed (slowest joint). Memoryless: flow(flow(q, a), b) == flow(q, a + b).
    """
    e = goal - q
    u = float(np.max(np.abs(e))) / speed
    if u < 1e-12:
        return goal.copy()
    if u - dt >= tau:
        u_next = u - dt
    elif u > tau:
        u_next = tau * math.exp(-(dt - (u - tau)) / tau)
    else:
        u_next = u * math.exp(-dt / tau)
    return goal - e * (u_next / u)


def target_motion(env: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(velocity, acceleration) of the target estimated from its last three frames `dt` apart
    (second-order backward differences): all a policy with a 3-frame history can know of the motion."""
    p0, p1, p2 = env[TARGET_POS], env[TARGET_PREV], env[TARGET_PREV2]
    return (3 * p0 - 4 * p1 + p2) / (2 * dt), (p0 - 2 * p1 + p2) / (dt * dt)


def extrapolate(position: np.ndarray, velocity: np.ndarray, acceleration: np.ndarray, dt: float) -> np.ndarray:
    """Where a moving point will be after `dt` at constant acceleration (what a policy can infer from
    a few frames). Beyond ~0.4 s the target's changing acceleration dominates the error (see
    docs/metrics.md, "track"), which is why tracking degrades with latency for every strategy."""
    return position + velocity * dt + 0.5 * acceleration * dt * dt


def _toward(value: float, target: float, step: float) -> float:
    return target if abs(target - value) <= step else value + math.copysign(step, target - value)


def parse_instruction(instruction: str) -> tuple[str, str]:
    """(cube, zone) named in a pick-and-place instruction, e.g. 'pick up the red cube ... green zone'."""
    text = instruction.lower()
    cube = re.search(r"\b(red|blue)\b", text)
    zone = re.search(r"\b(green|yellow)\b", text)
    if cube is None or zone is None:
        raise ValueError(f"instruction must name a cube (red|blue) and a zone (green|yellow): {instruction!r}")
    return f"cube_{cube.group(1)}", f"zone_{zone.group(1)}"


def policy_spec(chunk_length: int = 50, fps: float = 30.0, robot: RobotSpec | None = None,
                exec_offset: bool = False) -> PolicySpec:
    """The expert's spec: the sim arm's names, no cameras, the full environment_state; `exec_offset`
    declares it acts for `exec_offset_s` (a VLASH-fine-tuned policy), else it is never given one."""
    robot = robot or so101.robot_spec(fps, cameras=())
    return PolicySpec(
        name="expert",
        state_names=robot.state_names,
        action_names=robot.action_names,
        chunk_length=int(chunk_length),
        action_kind=ActionKind.ABSOLUTE,
        fps=float(fps),
        environment_state_dim=robot.environment_state_dim,
        extra={"kind": "scripted expert", "tasks": list(POLICY_TASKS), EXEC_OFFSET_KEY: bool(exec_offset)},
    )


class ExpertPolicy:
    """One expert for every task; the task comes from environment_state, the goal from the instruction."""

    def __init__(self, chunk_length: int = 50, fps: float = 30.0, exec_offset: bool = False,
                 lag_compensation_s: float = 0.0):
        """`lag_compensation_s` > 0: plan from a lag-compensated estimate of the arm (`lag_compensated`),
        the same for whatever state a strategy sends; 0 plans from the given state as it is."""
        if chunk_length < 1:
            raise ValueError(f"chunk_length must be >= 1, got {chunk_length}")
        if not math.isfinite(lag_compensation_s) or not 0.0 <= lag_compensation_s <= 1.0:
            raise ValueError(f"lag_compensation_s must be in [0, 1] s, got {lag_compensation_s!r}")
        self.chunk_length = int(chunk_length)
        self.fps = float(fps)
        self.dt = 1.0 / self.fps
        self.exec_offset = bool(exec_offset)
        self.lag_compensation_s = float(lag_compensation_s)

    def spec(self, robot_spec: RobotSpec | None = None) -> PolicySpec:
        return policy_spec(self.chunk_length, self.fps, robot_spec, self.exec_offset)

    def plan(self, state: np.ndarray, environment_state: np.ndarray, instruction: str,
             exec_offset_s: float = 0.0) -> np.ndarray:
        """H absolute joint targets [H, 6] float32, action i for the tick after the given state's + i.

        `exec_offset_s` = time from the capture of `environment_state` to the chunk's first action
        (the VLASH rollforward delay). Moving elements are extrapolated to the time each action
        executes, like a policy fine-tuned on (o_t, s_{t+δ}) -> a_{t+δ:} learns to do; 0 plans for
        the capture time (what a policy without rollforward does).
        """
        if not math.isfinite(exec_offset_s) or exec_offset_s < 0:
            raise ValueError(f"exec_offset_s must be finite and >= 0, got {exec_offset_s!r}")
        q = np.asarray(state, dtype=np.float64).reshape(-1)
        env = np.asarray(environment_state, dtype=np.float64).reshape(-1)
        if q.shape != (6,) or not np.all(np.isfinite(q)):
            raise ValueError(f"state must be 6 finite values, got {q.tolist()}")
        task = POLICY_TASKS[int(np.argmax(env[TASK_ONE_HOT]))]
        if self.lag_compensation_s > 0:
            q = self.lag_compensated(q, env, instruction, task, float(exec_offset_s))
        if task == "pick_place":
            out = self._pick_place(q.copy(), env, instruction)
        else:
            out = self._reach(q.copy(), env, moving=task == "track", offset_s=float(exec_offset_s))
        return out.astype(np.float32)

    def lag_compensated(self, q: np.ndarray, env: np.ndarray, instruction: str, task: str,
                        offset_s: float = 0.0) -> np.ndarray:
        """Where the arm's command is, estimated from the given state alone: a servo-lagged arm that follows
        this expert's motion trails its command by the lag, so the estimate is the state advanced
        `lag_compensation_s` along the motion the expert would command from it (toward the same goal).
        An arm at its goal stays where it is. The gripper is left as given. Measured, commanded or
        rolled-forward states all get the same treatment: the expert cannot tell them apart."""
        if task == "pick_place":
            goal = self._pick_place_goal(q, env, instruction)
        else:
            goal = self._reach_goal(q, env, moving=task == "track", aim_s=offset_s + TRACK_LEAD_S)
        out = q.copy()
        out[:5] = flow(q[:5], goal, self.lag_compensation_s)
        return out

    def _reach_goal(self, q: np.ndarray, env: np.ndarray, moving: bool, aim_s: float) -> np.ndarray:
        target = env[TARGET_POS]
        if moving:
            target = extrapolate(target, *target_motion(env, self.dt), aim_s)
        sol = solve_reach(*target)
        goal = q[:5].copy()
        if sol is not None:
            goal[:4] = sol
        return goal

    def _pick_place_goal(self, q: np.ndarray, env: np.ndarray, instruction: str) -> np.ndarray:
        cube_name, zone_name = parse_instruction(instruction)
        cx, cy, cz, yaw, flag = env[CUBE[cube_name]]
        tool = tool_position(q)
        held = flag > 0.5 and q[5] < RELEASED
        cube = tool if held else np.array([cx, cy, cz])
        return self._phase(q, tool, cube, yaw, env[ZONE[zone_name]], held)[0]

    # ---------------------------------------------------------------- reach_jump / track
    def _reach(self, q: np.ndarray, env: np.ndarray, moving: bool, offset_s: float = 0.0) -> np.ndarray:
        out = np.empty((self.chunk_length, 6))
        target = env[TARGET_POS]
        velocity, acceleration = target_motion(env, self.dt)
        goal = q[:5].copy()
        for i in range(self.chunk_length):
            aim = extrapolate(target, velocity, acceleration, offset_s + (i + 1) * self.dt + TRACK_LEAD_S) if moving else target
            sol = solve_reach(*aim)
            if sol is not None:
                goal[:4] = sol
            q[:5] = flow(q[:5], goal, self.dt)
            out[i] = q
        return out

    # ---------------------------------------------------------------- pick_place
    def _pick_place(self, q: np.ndarray, env: np.ndarray, instruction: str) -> np.ndarray:
        cube_name, zone_name = parse_instruction(instruction)
        cx, cy, cz, yaw, flag = env[CUBE[cube_name]]
        cube = np.array([cx, cy, cz])
        zone = env[ZONE[zone_name]]
        held = flag > 0.5 and q[5] < RELEASED
        if held:
            cube = tool_position(q)
        out = np.empty((self.chunk_length, 6))
        for i in range(self.chunk_length):
            tool = tool_position(q)
            g = q[5]
            if held and g >= RELEASED:
                held = False
            elif not held and g <= CLOSED and np.linalg.norm(tool - cube) < 0.06:
                held = True
            if held:
                cube = tool
            goal, g_target = self._phase(q, tool, cube, yaw, zone, held)
            q[:5] = flow(q[:5], goal, self.dt)
            q[5] = _toward(g, g_target, GRIPPER_SPEED * self.dt)
            out[i] = q
        return out

    def _phase(self, q, tool, cube, yaw, zone, held) -> tuple[np.ndarray, float]:
        """(arm goal, gripper target) for the planned state."""
        if held:
            dxy = math.hypot(tool[0] - zone[0], tool[1] - zone[1])
            if dxy < ALIGN_TOL and tool[2] < PLACE_Z + Z_TOL:
                return self._pose(zone[0], zone[1], PLACE_Z, q[4], q), 1.0  # release
            if dxy < ALIGN_TOL:
                return self._pose(zone[0], zone[1], PLACE_Z, q[4], q), 0.0  # descend to place
            if tool[2] < CARRY_Z - 0.015 and dxy > 0.03:
                return self._pose(tool[0], tool[1], CARRY_Z + 0.01, q[4], q), 0.0  # lift
            return self._pose(zone[0], zone[1], CARRY_Z, q[4], q), 0.0  # carry
        if math.hypot(cube[0] - zone[0], cube[1] - zone[1]) < 0.03 and cube[2] < 0.04:
            return self._pose(zone[0], zone[1], RETREAT_Z, q[4], q), 1.0  # done: retreat
        roll = roll_for_yaw(math.atan2(cube[1], cube[0]), yaw)
        dxy = math.hypot(tool[0] - cube[0], tool[1] - cube[1])
        if dxy < XY_TOL and abs(tool[2] - GRASP_Z) < Z_TOL:
            return self._pose(cube[0], cube[1], GRASP_Z, roll, q), 0.0  # close
        if dxy < ALIGN_TOL and q[5] >= OPEN and tool[2] < PRE_Z + 0.01:
            return self._pose(cube[0], cube[1], GRASP_Z, roll, q), 1.0  # descend
        return self._pose(cube[0], cube[1], PRE_Z, roll, q), 1.0  # approach

    @staticmethod
    def _pose(x: float, y: float, z: float, roll: float, q: np.ndarray) -> np.ndarray:
        sol = solve_ik(x, y, z, PITCH_DOWN)
        if sol is None:
            return q[:5].copy()
        return np.array([*sol, roll])
