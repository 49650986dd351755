"""The simulated SO-101-class arm as plain data: joint names, limits, link lengths, the RobotSpec.

No MuJoCo import here: the expert backend on a policy server needs the spec and the kinematics
without a simulator. `sim/assets/so101.xml` must agree with the numbers below (a test checks the
forward kinematics against MuJoCo).

Units: the five arm joints in radians; `gripper.pos` is the normalised opening, 0 = closed,
1 = fully open (each finger slides `GRIPPER_TRAVEL_M`).
"""

from __future__ import annotations

from collections.abc import Sequence

from vla_async.specs import ActionKind, CameraSpec, RobotSpec

JOINTS: tuple[str, ...] = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
ARM_JOINTS: tuple[str, ...] = JOINTS[:5]
NAMES: tuple[str, ...] = tuple(f"{j}.pos" for j in JOINTS)

# Joint ranges close to the real SO-101 (radians), gripper normalised.
LIMITS: tuple[tuple[float, float], ...] = (
    (-1.92, 1.92),
    (-1.75, 1.75),
    (-1.69, 1.69),
    (-1.66, 1.66),
    (-2.74, 2.84),
    (0.0, 1.0),
)

# Link geometry (metres); the planar chain is described in sim/kinematics.py.
SHOULDER_HEIGHT = 0.12  # shoulder_lift axis above the table (the pan axis is the world z axis)
UPPER_ARM = 0.12  # shoulder_lift -> elbow_flex
FOREARM = 0.135  # elbow_flex -> wrist_flex
TOOL = 0.10  # wrist_flex -> tool point (between the fingertips)
GRIPPER_TRAVEL_M = 0.035  # per finger: inner face offset from the gripper axis when fully open

CAMERAS: tuple[str, ...] = ("front", "wrist")
ROBOT_NAME = "so101_sim"


def robot_spec(
    fps: float = 30.0,
    cameras: Sequence[str] = CAMERAS,
    image_size: tuple[int, int] = (224, 224),
    environment_state_dim: int | None = None,
) -> RobotSpec:
    """The spec every simulated task shares (same names, limits and environment_state size)."""
    from sim.tasks.layout import ENV_STATE_DIM

    unknown = [c for c in cameras if c not in CAMERAS]
    if unknown:
        raise ValueError(f"unknown camera(s) {unknown}; the sim arm has {list(CAMERAS)}")
    h, w = image_size
    return RobotSpec(
        name=ROBOT_NAME,
        fps=float(fps),
        state_names=NAMES,
        action_names=NAMES,
        action_kind=ActionKind.ABSOLUTE,
        cameras=tuple(CameraSpec(c, int(h), int(w)) for c in cameras),
        stepwise_actions=("gripper.pos",),
        position_limits=LIMITS,
        environment_state_dim=ENV_STATE_DIM if environment_state_dim is None else environment_state_dim,
    )
