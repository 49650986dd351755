"""Session-wide test setup."""

import os

# MuJoCo picks its GL back end when first imported; any test module may import it first.
os.environ.setdefault("MUJOCO_GL", "egl")
