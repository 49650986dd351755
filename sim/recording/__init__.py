"""`vla-async record`: expert demonstrations from the sim written as a LeRobotDataset v3."""
