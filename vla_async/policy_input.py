"""What a policy sees of one request: the contract between the wire (an Observation) and any model runner.

The policy server's backends receive `PolicyInput`s; the virtual-time evaluator builds them the same way
for its in-process expert, so both condition the policy on exactly the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_async.messages import Observation
from vla_async.specs import PolicySpec, accepts_action_prefix

#: `PolicySpec.extra` key by which a policy declares it was trained to act for `exec_offset_s` (VLASH
#: fine-tuning); only such a policy is given the offset (docs/metrics.md, "Information contract").
EXEC_OFFSET_KEY = "exec_offset"


def uses_exec_offset(spec: PolicySpec | None) -> bool:
    """Whether the policy declares it was trained for `exec_offset_s` (the strategy never decides this)."""
    return spec is not None and bool(spec.extra.get(EXEC_OFFSET_KEY, False))


def reads_images(spec: PolicySpec | None) -> bool:
    """Whether the policy declares camera inputs (then it sees the arm where the images show it)."""
    return spec is not None and bool(spec.cameras)


@dataclass(frozen=True, eq=False)
class PolicyInput:
    """One robot's request as the model sees it.

    `state` is already the conditioning state: the rollforward state when the client sent one
    (VLASH), the measured state otherwise. `exec_offset_s` is the time from the observation's
    capture to the chunk's first action, `(exec_tick - tick) / fps`, known from the observation
    alone (no clock sync): a VLASH-fine-tuned policy acts for that time, not for the capture time.
    It is 0 for clients without rollforward (they plan for the capture time), and 0 for every client
    unless the policy's spec declares it was trained for it (`uses_exec_offset`). `action_prefix` (real-time
    chunking) likewise reaches only a policy whose spec accepts it (`specs.accepts_action_prefix`).
    """

    state: np.ndarray
    images: Mapping[str, np.ndarray] = field(default_factory=dict)
    task: str = ""
    environment_state: np.ndarray | None = None
    session_id: str = ""
    exec_offset_s: float = 0.0
    action_prefix: np.ndarray | None = None  # [n ≤ H, A]: row i is the client's plan for the chunk's row i
    prefix_frozen: int = 0  # leading rows of `action_prefix` the robot executes before the chunk arrives


def policy_input(obs: Observation, fps: float, session_id: str = "", policy: PolicySpec | None = None) -> PolicyInput:
    """The model's input for `obs` from a robot running at `fps`, for the policy described by `policy`."""
    state = obs.rollforward_state if obs.rollforward_state is not None else obs.state
    # max(0, ...): a chunk placed before its capture tick (state_lag_ticks) is planned for the capture time
    offset = max(0.0, (obs.exec_tick - obs.tick) / float(fps)) if uses_exec_offset(policy) else 0.0
    prefix = obs.action_prefix if obs.action_prefix is not None and accepts_action_prefix(policy) else None
    return PolicyInput(state=np.asarray(state, dtype=np.float32), images=obs.images, task=obs.task,
                       environment_state=obs.environment_state, session_id=session_id, exec_offset_s=offset,
                       action_prefix=prefix, prefix_frozen=obs.prefix_frozen if prefix is not None else 0)


def prefix_fields(request: Any, policy: PolicySpec | None) -> dict[str, Any]:
    """Observation keyword arguments carrying a scheduler request's committed action prefix, when the policy's
    spec accepts one (the strategy asks for it; the spec decides whether it is sent); {} otherwise."""
    prefix = getattr(request, "action_prefix", None)
    if prefix is None or not accepts_action_prefix(policy):
        return {}
    return {"action_prefix": prefix, "prefix_tick": request.exec_tick, "prefix_frozen": request.prefix_frozen}
