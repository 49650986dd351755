"""Registries name their entries as "module:attr" strings, imported only when an entry is used.

So a package can offer a choice that lives in another package (a policy backend, a robot kind, a latency
model) without importing it: `policy_server` names the sim expert, `robot_client` names the simulated
arm, and neither imports `sim` unless that entry is chosen.
"""

from __future__ import annotations

import importlib
from typing import Any


def load(target: str) -> Any:
    """The object `target` = "module:attr" names (its module imported now; ModuleNotFoundError when missing)."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"registry entry {target!r} is not 'module:attr'")
    return getattr(importlib.import_module(module), attr)
