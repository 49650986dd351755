"""What a policy sees of one request: the contract between the wire (an Observation) and any model runner.

The policy server's backends receive `PolicyInput`s; the virtual-time evaluator builds them the same way
for its in-process expert, so both condition the policy on exactly the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from vla_async.messages import Observation
from vla_async.specs import PolicySpec

#: `PolicySpec.extra` key by which a policy declares it was trained to act for `exec_offset_s` (VLASH
#: fine-tuning); only such a policy is given the offset (docs/metrics.md, "Information contract").
EXEC_OFFSET_KEY = "exec_offset"


def uses_exec_offset(spec: PolicySpec | None) -> bool:
    """Whether the policy declares it was trained for `exec_offset_s` (the strategy never decides this)."""
    return spec is not None and bool(spec.extra.get(EXEC_OFFSET_KEY, False))


@dataclass(frozen=True, eq=False)
class PolicyInput:
    """One robot's request as the model sees it.

    `state` is already the conditioning state: the rollforward state when the client sent one
    (VLASH), the measured state otherwise. `exec_offset_s` is the time from the observation's
    capture to the chunk's first action, `(exec_tick - tick) / fps`, known from the observation
    alone (no clock sync): a VLASH-fine-tuned policy acts for that time, not for the capture time.
    It is 0 for clients without rollforward (they plan for the capture time), and 0 for every client
    unless the policy's spec declares it was trained for it (`uses_exec_offset`).
    """

    state: np.ndarray
    images: Mapping[str, np.ndarray] = field(default_factory=dict)
    task: str = ""
    environment_state: np.ndarray | None = None
    session_id: str = ""
    exec_offset_s: float = 0.0


def policy_input(obs: Observation, fps: float, session_id: str = "", policy: PolicySpec | None = None) -> PolicyInput:
    """The model's input for `obs` from a robot running at `fps`, for the policy described by `policy`."""
    state = obs.rollforward_state if obs.rollforward_state is not None else obs.state
    offset = (obs.exec_tick - obs.tick) / float(fps) if uses_exec_offset(policy) else 0.0
    return PolicyInput(state=np.asarray(state, dtype=np.float32), images=obs.images, task=obs.task,
                       environment_state=obs.environment_state, session_id=session_id, exec_offset_s=offset)
