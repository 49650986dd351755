"""LeRobot plugin: this project's simulated SO-101-class arm as a LeRobot 0.4.4 robot, type `vla_sim_follower`.

Importing it registers the type (`@RobotConfig.register_subclass`), the way LeRobot registers
third-party robots; LeRobot's `make_robot_from_config` then finds `VlaSimFollower` next to its config
class. Needs LeRobot and the `sim` extra (MuJoCo).
"""

from lerobot_robot_vla_sim.config_vla_sim_follower import VlaSimFollowerConfig
from lerobot_robot_vla_sim.vla_sim_follower import VlaSimFollower

__all__ = ["VlaSimFollower", "VlaSimFollowerConfig"]
