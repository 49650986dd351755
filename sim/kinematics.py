"""Closed-form kinematics of the simulated SO-101-class arm (no MuJoCo, microseconds per call).

The chain: `shoulder_pan` turns about the world z axis; the other pitch joints turn about the
arm's horizontal axis, so the tool lives in a vertical plane with coordinates (r, z). Angles are
measured from vertical toward the reach direction: the upper arm points at angle q1, the forearm at
a2 = q1 + q2 + pi/2 (the forearm is perpendicular to the upper arm at q2 = 0, as on the real
SO-101's calibration pose), the gripper at pitch a3 = a2 + q3 (pi = pointing straight down).
`wrist_roll` turns about the gripper axis and leaves the tool point where it is.
"""

from __future__ import annotations

import math

import numpy as np

from sim.so101 import FOREARM, LIMITS, SHOULDER_HEIGHT, TOOL, UPPER_ARM

PITCH_DOWN = math.pi
PITCH_REACH = 0.75 * math.pi  # gripper 45 degrees below horizontal, used for reach and track
_HALF_PI = 0.5 * math.pi


def tool_position(q: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """World position of the tool point for joints q (at least the first four arm joints)."""
    pan, q1, q2, q3 = float(q[0]), float(q[1]), float(q[2]), float(q[3])
    a2 = q1 + q2 + _HALF_PI
    a3 = a2 + q3
    r = UPPER_ARM * math.sin(q1) + FOREARM * math.sin(a2) + TOOL * math.sin(a3)
    z = SHOULDER_HEIGHT + UPPER_ARM * math.cos(q1) + FOREARM * math.cos(a2) + TOOL * math.cos(a3)
    return np.array([r * math.cos(pan), r * math.sin(pan), z])


def solve_ik(x: float, y: float, z: float, pitch: float, margin: float = 0.0) -> tuple[float, float, float, float] | None:
    """(pan, lift, elbow, wrist_flex) putting the tool at (x, y, z) with the given gripper pitch.

    Elbow-up solution; None when the point is out of reach or a joint would leave its range
    (shrunk by `margin`).
    """
    r = math.hypot(x, y)
    pan = math.atan2(y, x) if r > 1e-9 else 0.0
    dr = r - TOOL * math.sin(pitch)
    dz = z - TOOL * math.cos(pitch) - SHOULDER_HEIGHT
    d2 = dr * dr + dz * dz
    c = (d2 - UPPER_ARM**2 - FOREARM**2) / (2.0 * UPPER_ARM * FOREARM)
    if not -1.0 <= c <= 1.0:
        return None
    bend = math.acos(c)
    q1 = math.atan2(dr, dz) - math.atan2(FOREARM * math.sin(bend), UPPER_ARM + FOREARM * math.cos(bend))
    q2 = bend - _HALF_PI
    q3 = pitch - q1 - bend
    sol = (pan, q1, q2, q3)
    for value, (lo, hi) in zip(sol, LIMITS, strict=False):
        if not lo + margin <= value <= hi - margin:
            return None
    return sol


def solve_reach(x: float, y: float, z: float, margin: float = 0.0) -> tuple[float, float, float, float] | None:
    """IK for reaching a point: the 45-degree pitch first, then steeper or flatter ones."""
    for pitch in (PITCH_REACH, 0.7 * math.pi, 0.8 * math.pi, 0.65 * math.pi, 0.85 * math.pi, 0.6 * math.pi):
        sol = solve_ik(x, y, z, pitch, margin)
        if sol is not None:
            return sol
    return None


def roll_for_yaw(pan: float, yaw: float) -> float:
    """Wrist roll that lines the fingers up with a box of the given yaw, gripper pointing down.

    Pointing down, the finger axis lies at world angle pan + pi/2 - roll; a box is symmetric under
    quarter turns, so the smallest such roll is chosen.
    """
    roll = pan + _HALF_PI - yaw
    return (roll + 0.25 * math.pi) % _HALF_PI - 0.25 * math.pi
