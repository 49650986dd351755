"""Layout of `environment_state`, the simulator state experts plan from.

It holds only what a camera-and-proprioception policy could see: object poses now, and the target's
position in the last three frames (a policy with a 3-frame observation history); never a velocity or an
acceleration. See docs/metrics.md, "Information contract".

The same size for every task (LeRobot's `observation.environment_state`), so one policy spec
serves every task. Unused entries are zero.
"""

from __future__ import annotations

from vla_async.config.schema import SIM_TASKS

TASKS: tuple[str, ...] = SIM_TASKS  # the names live in the core config schema (robot.task)
#: what the policy is told (the one-hot): a variant task looks like its base task to the policy
POLICY_TASKS: tuple[str, ...] = ("reach_jump", "track", "pick_place")
#: tasks that always run their full duration and are judged at the end (no completion time)
FIXED_LENGTH_TASKS: tuple[str, ...] = ("reach_jump", "track", "reach_dodge", "track_sweep")

TASK_ONE_HOT = slice(0, 3)
TARGET_POS = slice(3, 6)  # reach_jump / track: target xyz
TARGET_PREV = slice(6, 9)  # reach_jump / track: target xyz one control tick (frame) earlier
CUBE = {"cube_red": slice(9, 14), "cube_blue": slice(14, 19)}  # x, y, z, yaw, grasped (0/1)
ZONE = {"zone_green": slice(19, 21), "zone_yellow": slice(21, 23)}  # x, y
TARGET_PREV2 = slice(23, 26)  # reach_jump / track: target xyz two frames earlier (motion only from frames)
ENV_STATE_DIM = 26


def task_index(name: str) -> int:
    """Index of a policy-visible task in the one-hot."""
    if name not in POLICY_TASKS:
        raise ValueError(f"unknown policy task {name!r}; available: {list(POLICY_TASKS)}")
    return POLICY_TASKS.index(name)


#: names of `scene_targets` columns (what an auxiliary training loss asks a policy to read off its images)
SCENE_TARGET_NAMES: tuple[str, ...] = ("object_x", "object_y", "object_z", "object_yaw", "object_grasped",
                                       "goal_x", "goal_y")


def scene_targets(environment_states, instructions) -> np.ndarray:  # noqa: F821
    """[N, 7] float32: per frame, what the camera shows that the instruction is about (SCENE_TARGET_NAMES):
    pick_place: the named cube (x, y, z, yaw, grasped) and the named zone (x, y); reach_jump/track: the
    target's xyz, the rest 0. Privileged state, for an auxiliary training loss only (never a policy input)."""
    import numpy as np

    from sim.experts import parse_instruction

    env = np.asarray(environment_states, np.float32)
    out = np.zeros((len(env), len(SCENE_TARGET_NAMES)), np.float32)
    parsed: dict[str, tuple[slice, slice] | None] = {}
    for i, text in enumerate(instructions):
        if text not in parsed:
            try:
                cube, zone = parse_instruction(text)
                parsed[text] = (CUBE[cube], ZONE[zone])
            except ValueError:
                parsed[text] = None
        picked = parsed[text]
        if picked is None:
            out[i, :3] = env[i, TARGET_POS]
        else:
            out[i, :5] = env[i, picked[0]]
            out[i, 5:] = env[i, picked[1]]
    return out
