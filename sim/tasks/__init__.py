"""Simulated tasks: reach_jump, track, pick_place, and the feedback variants pick_place_push and reach_dodge
(feedback.py), and track_sweep (track.py); the layout needs no MuJoCo."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.tasks.layout import ENV_STATE_DIM, TASKS

if TYPE_CHECKING:
    from sim.tasks.base import Task


def make_task(name: str) -> Task:
    """A fresh task object by name (imports MuJoCo)."""
    from sim.tasks.feedback import PickPlacePush, ReachDodge
    from sim.tasks.pick_place import PickPlace
    from sim.tasks.reach_jump import ReachJump
    from sim.tasks.track import Track, TrackSweep

    classes = {"reach_jump": ReachJump, "track": Track, "pick_place": PickPlace, "pick_place_push": PickPlacePush,
               "reach_dodge": ReachDodge, "track_sweep": TrackSweep}
    if name not in classes:
        raise ValueError(f"unknown task {name!r}; available: {list(TASKS)}")
    return classes[name]()


__all__ = ["ENV_STATE_DIM", "TASKS", "make_task"]
