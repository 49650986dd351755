"""The config of the simulated follower: SO-101 follower fields plus the simulation's own."""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.robots.config import RobotConfig


@RobotConfig.register_subclass("vla_sim_follower")
@dataclass
class VlaSimFollowerConfig(RobotConfig):
    # as SOFollowerConfig: units, LeRobot's own relative-target clip, torque on disconnect (the port is
    # accepted and unused, so an SO-101 follower's config applies as it is)
    port: str | None = None
    use_degrees: bool = True
    max_relative_target: float | dict[str, float] | None = None
    disable_torque_on_disconnect: bool = True
    # the simulation
    task: str = "pick_place"
    seed: int = 0
    fps: float = 30.0
    sim_cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    image_height: int = 224
    image_width: int = 224
    # the order of the joint features (default: SO-101's); another order tests a mismatch with a policy
    joint_order: list[str] | None = None
    # fault injection: send_action raises after this many calls (tests the controlled stop on a robot error)
    fail_after_actions: int | None = None
    # expose the privileged `environment_state` feature (the scripted expert needs it). LeRobot's own
    # RobotClient reads every tuple-shaped feature as a camera image, so `vla-async bench lerobot` turns it off
    environment_state: bool = True
    # when the simulated world's clock starts: at `connect`, or at the client's `first_read` of the arm
    # (so a client that connects, then waits for its server, starts its episode when its loop starts)
    clock: str = "connect"
    # the episode log (`vla-async bench lerobot`): every command sent, with wall and sim time, and the task's
    # status, written as JSON once the world's clock passes `episode_s` (or on disconnect)
    episode_log: str | None = None
    episode_s: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.clock not in ("connect", "first_read"):
            raise ValueError(f"clock must be 'connect' or 'first_read', got {self.clock!r}")
