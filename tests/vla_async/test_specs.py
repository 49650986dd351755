"""Spec validation, dict round trips (as in Hello/Welcome), and the handshake compatibility check."""

from __future__ import annotations

import pytest

from vla_async.reference_specs import policy_spec_for, reference_robot_spec
from vla_async.specs import CameraSpec, PolicySpec, RobotSpec, SpecError, SpecMismatchError, check_compatible


def test_round_trip_through_dicts():
    robot = reference_robot_spec()
    assert RobotSpec.from_dict(robot.to_dict()) == robot
    policy = policy_spec_for(robot, 50, "p")
    assert PolicySpec.from_dict(policy.to_dict()) == policy


@pytest.mark.parametrize("data,needle", [
    ({"fps": 0}, "fps"), ({"state_names": ["a", "a"]}, "duplicates"), ({"bogus": 1}, "unknown fields"),
    ({"position_limits": [[1, 0]] * 14}, "low < high"), ({"action_kind": "teleport"}, "teleport"),
])
def test_bad_specs_name_the_problem(data, needle):
    with pytest.raises(SpecError, match=needle):
        RobotSpec.from_dict({**reference_robot_spec().to_dict(), **data})


def test_bad_camera():
    with pytest.raises(SpecError, match="channels"):
        CameraSpec("c", 10, 10, 2)


def test_compatible_pair_passes_and_mismatch_lists_everything():
    robot = reference_robot_spec()
    check_compatible(robot, policy_spec_for(robot, 50, "p"))
    other = reference_robot_spec(state_dim=12, cameras=("cam_high",), fps=30.0)
    policy = PolicySpec("p", robot.state_names, robot.action_names, 50, cameras=robot.cameras, fps=50.0)
    with pytest.raises(SpecMismatchError) as info:
        check_compatible(other, policy)
    assert len(info.value.mismatches) == 5  # state, action, two cameras, fps
