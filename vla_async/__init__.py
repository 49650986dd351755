"""vla-async core: protocol, specs, config, and the clock-free ActionScheduler.

Light dependencies only (numpy, scipy, pyzmq, msgpack, pydantic, PyYAML): this package runs on the
robot computer. Nothing here imports torch, MuJoCo or the server.
"""

__version__ = "0.1.0"
