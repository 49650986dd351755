"""The reference payload used by the round-trip tool, the transport benchmark and tests.

A bimanual-arm-sized robot: 14-D state and actions, three 224×224×3 cameras, 50 Hz; the linear
backend serves exactly this spec by default, so a client built from `reference_robot_spec()`
handshakes with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from vla_async.specs import ActionKind, CameraSpec, PolicySpec, RobotSpec

REFERENCE_CAMERAS = ("cam_high", "cam_left_wrist", "cam_right_wrist")


def joint_names(n: int) -> tuple[str, ...]:
    return tuple(f"joint_{i}.pos" for i in range(n))


def reference_robot_spec(
    state_dim: int = 14,
    cameras: Sequence[str] = REFERENCE_CAMERAS,
    image_size: tuple[int, int] = (224, 224),
    fps: float = 50.0,
    name: str = "reference14",
) -> RobotSpec:
    names = joint_names(state_dim)
    return RobotSpec(
        name=name, fps=fps, state_names=names, action_names=names, action_kind=ActionKind.ABSOLUTE,
        cameras=tuple(CameraSpec(c, image_size[0], image_size[1], 3) for c in cameras),
    )


def policy_spec_for(robot: RobotSpec, chunk_length: int, name: str) -> PolicySpec:
    """A policy that consumes everything `robot` offers and drives all of its actions."""
    return PolicySpec(
        name=name, state_names=robot.state_names, action_names=robot.action_names, chunk_length=chunk_length,
        action_kind=robot.action_kind, cameras=robot.cameras, fps=None,
        environment_state_dim=robot.environment_state_dim,
    )
