"""The PolicyBackend interface every model runner implements, and the backend registry."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence

import numpy as np

from vla_async.config import BackendConfig
from vla_async.extras import install_hint
from vla_async.policy_input import PolicyInput
from vla_async.registry import load
from vla_async.specs import PolicySpec, RobotSpec


class BackendError(RuntimeError):
    """A backend could not load or run; the message is safe to send to a client."""


class PolicyBackend(abc.ABC):
    """Runs a policy: `infer` maps a batch of inputs to one action chunk [H, action_dim] each."""

    #: True when `infer` benefits from several inputs at once (one forward pass for the batch).
    supports_batching: bool = False

    @property
    @abc.abstractmethod
    def spec(self) -> PolicySpec:
        """What the policy needs and produces."""

    def check_robot(self, robot: RobotSpec) -> None:  # noqa: B027 - optional hook
        """Extra per-robot checks beyond `specs.check_compatible` (raise SpecMismatchError)."""

    def warmup(self) -> None:  # noqa: B027 - optional hook
        """Run once before serving so the first real request is not slow (compile, allocate)."""

    @abc.abstractmethod
    def infer(self, batch: Sequence[PolicyInput]) -> list[np.ndarray]:
        """One chunk per input, each float32 [H, action_dim]. Raise BackendError on failure."""

    def infer_stream(self, batch: Sequence[PolicyInput]) -> Iterator[tuple[int, list[np.ndarray]]]:
        """Streamed chunks (a policy whose spec declares `streaming`, FASTER): yields (rows, chunks) as the model
        runs, the first `rows` rows of every chunk final, the last yield with rows = H. The default: `infer`'s
        chunks in one yield."""
        yield self.spec.chunk_length, self.infer(batch)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


# name -> "module:factory"; factory(config: BackendConfig) -> PolicyBackend. Imported lazily.
BACKENDS: dict[str, str] = {
    "linear": "policy_server.backends.linear:LinearBackend",
    "expert": "sim.expert_backend:ExpertBackend",  # the scripted expert, a backend the sim package provides
    "torch": "policy_server.backends.torch_backend:TorchBackend",
    "onnx": "policy_server.backends.onnx_backend:OnnxBackend",
    "lerobot": "policy_server.backends.lerobot_backend:LeRobotBackend",
}


def create_backend(config: BackendConfig) -> PolicyBackend:
    target = BACKENDS.get(config.name)
    if target is None:
        raise BackendError(f"unknown backend {config.name!r}; available: {sorted(BACKENDS)}")
    try:
        factory = load(target)
    except ModuleNotFoundError as exc:
        raise BackendError(
            f"backend {config.name!r} needs {exc.name!r}; "
            + install_hint({"lerobot": "lerobot", "expert": "sim"}.get(config.name, "server"))
        ) from exc
    return factory(config)
