"""The real-time robot runtime: the control loop, robot adapters, logging. No torch needed."""
