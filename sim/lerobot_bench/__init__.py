"""`vla-async bench lerobot`: LeRobot 0.4.4's own async stack and ours side by side on the simulated arm
(compare: the harness; launch: LeRobot's processes; metrics: the numbers from the robot's episode log)."""
