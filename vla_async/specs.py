"""What a robot and a policy declare about themselves, and the handshake check between them.

A spec is plain data (frozen dataclasses) that travels in Hello/Welcome as a dict. Everything the
codec checks at run time (array names, shapes, dtypes) is derived from the agreed specs, so a
mismatch is found once, at connect time, with every difference listed in one error.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


class SpecError(ValueError):
    """A spec is malformed (bad field, inconsistent sizes)."""


class SpecMismatchError(SpecError):
    """Robot and policy specs disagree; `mismatches` lists every difference."""

    def __init__(self, mismatches: Sequence[str]):
        self.mismatches = list(mismatches)
        lines = "\n  - ".join(self.mismatches)
        super().__init__(f"robot and policy specs do not match ({len(self.mismatches)} problems):\n  - {lines}")


class ActionKind(str, enum.Enum):
    """How an action vector is interpreted by the robot."""

    ABSOLUTE = "absolute_joint_position"
    DELTA = "delta_joint_position"
    END_EFFECTOR = "end_effector"


@dataclass(frozen=True)
class CameraSpec:
    name: str
    height: int
    width: int
    channels: int = 3

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise SpecError(f"camera name must be a non-empty string, got {self.name!r}")
        for attr in ("height", "width", "channels"):
            value = getattr(self, attr)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 8192:
                raise SpecError(f"camera {self.name!r}: {attr} must be an int in 1..8192, got {value!r}")
        if self.channels not in (1, 3):
            raise SpecError(f"camera {self.name!r}: channels must be 1 or 3, got {self.channels}")


def _check_names(owner: str, what: str, names: Sequence[str]) -> None:
    if len(names) == 0:
        raise SpecError(f"{owner}: {what} must not be empty")
    if any(not isinstance(n, str) or not n for n in names):
        raise SpecError(f"{owner}: {what} must be non-empty strings, got {list(names)!r}")
    if len(set(names)) != len(names):
        raise SpecError(f"{owner}: {what} has duplicates: {list(names)!r}")


class _SpecAccessors:
    """Sizes and (de)serialisation shared by RobotSpec and PolicySpec."""

    state_names: tuple[str, ...]
    action_names: tuple[str, ...]

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        """Build a spec from untrusted data (a network message or YAML), with clear errors."""
        return _from_dict(cls, data)


@dataclass(frozen=True)
class RobotSpec(_SpecAccessors):
    """What a robot offers: state and action names, action kind, cameras, control rate.

    `stepwise_actions` names gripper-like dimensions (open/closed) that are step-held, never fitted
    or blended as smooth curves. `position_limits` (one (low, high) pair per action) are hard limits
    the safety layer clamps to.
    """

    name: str
    fps: float
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    action_kind: ActionKind = ActionKind.ABSOLUTE
    cameras: tuple[CameraSpec, ...] = ()
    stepwise_actions: tuple[str, ...] = ()
    position_limits: tuple[tuple[float, float], ...] | None = None
    environment_state_dim: int = 0

    def __post_init__(self) -> None:
        _validate_common(self, f"robot {self.name!r}")
        if not (0 < float(self.fps) <= 1000):
            raise SpecError(f"robot {self.name!r}: fps must be in (0, 1000], got {self.fps!r}")
        if self.position_limits is not None:
            if len(self.position_limits) != len(self.action_names):
                raise SpecError(
                    f"robot {self.name!r}: position_limits has {len(self.position_limits)} pairs "
                    f"for {len(self.action_names)} actions"
                )
            for name, (lo, hi) in zip(self.action_names, self.position_limits, strict=True):
                if not lo < hi:
                    raise SpecError(f"robot {self.name!r}: limit for {name!r} must have low < high, got ({lo}, {hi})")

    @property
    def stepwise_mask(self) -> tuple[bool, ...]:
        return tuple(name in self.stepwise_actions for name in self.action_names)


@dataclass(frozen=True)
class PolicySpec(_SpecAccessors):
    """What a policy needs and produces. `chunk_length` is H, the number of actions per chunk."""

    name: str
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    chunk_length: int
    action_kind: ActionKind = ActionKind.ABSOLUTE
    cameras: tuple[CameraSpec, ...] = ()
    fps: float | None = None
    environment_state_dim: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _validate_common(self, f"policy {self.name!r}")
        if not isinstance(self.chunk_length, int) or not 1 <= self.chunk_length <= 10_000:
            raise SpecError(f"policy {self.name!r}: chunk_length must be an int in 1..10000, got {self.chunk_length!r}")


#: `PolicySpec.extra` key by which a policy declares it takes the committed action prefix (real-time chunking):
#: "inpaint" (inference-time RTC: guided denoising toward it) or "trained" (trained with prefix conditioning).
ACTION_PREFIX_KEY = "action_prefix"
ACTION_PREFIX_MODES = ("inpaint", "trained")


def action_prefix_mode(spec: PolicySpec | None) -> str | None:
    """How the policy uses a committed action prefix ("inpaint" | "trained"), or None when it takes none."""
    mode = spec.extra.get(ACTION_PREFIX_KEY) if spec is not None else None
    return mode if mode in ACTION_PREFIX_MODES else None


def accepts_action_prefix(spec: PolicySpec | None) -> bool:
    """Whether requests to this policy may carry `Observation.action_prefix` (the spec decides, never the strategy)."""
    return action_prefix_mode(spec) is not None


#: `PolicySpec.extra` key by which a flow policy declares streamed chunks (FASTER's horizon-aware schedule):
#: {"steps": N, "clean_rows": [rows final after each of the N steps], "first_rows": r, "every_step": bool}. The
#: server sends the rows final after the first step with at least r of them as a part, then (every_step, the
#: default) the rows each later step finishes, or (every_step false) the rest at the end.
STREAMING_KEY = "streaming"
_MAX_STREAM_STEPS = 1000


@dataclass(frozen=True)
class StreamingPlan:
    """When a streaming policy's parts are ready: `sends` = ((flow step after which a part is sent, rows final by
    then), ...), non-decreasing, the last (steps, H): the whole chunk."""

    steps: int
    sends: tuple[tuple[int, int], ...]

    @property
    def first_step(self) -> int:
        return self.sends[0][0]

    @property
    def first_rows(self) -> int:
        return self.sends[0][1]

    @property
    def fraction(self) -> float:
        """The share of the flow steps done when the first part is sent."""
        return self.first_step / self.steps


def streaming_plan(spec: PolicySpec | None) -> StreamingPlan | None:
    """The policy's streaming plan from its spec (untrusted: from a Welcome), or None when it declares none or
    the declaration is malformed (then it is treated as a policy that does not stream)."""
    decl = spec.extra.get(STREAMING_KEY) if spec is not None else None
    if not isinstance(decl, Mapping) or not _valid_streaming(decl, spec.chunk_length):
        return None
    rows, first, h = decl["clean_rows"], decl["first_rows"], spec.chunk_length
    step = next(i for i, r in enumerate(rows) if r >= first)
    if rows[step] >= h:  # nothing to stream before the end
        return None
    sends = [(step + 1, int(rows[step]))]
    if decl.get("every_step", True) is not False:
        sends += [(i + 1, int(rows[i])) for i in range(step + 1, len(rows) - 1) if rows[i] > rows[i - 1]]
    sends.append((len(rows), h))
    return StreamingPlan(int(decl["steps"]), tuple(sends))


def _valid_streaming(decl: Mapping[str, Any], h: int) -> bool:
    """Whether a streaming declaration is well formed for chunks of `h` rows (bounded, ints, non-decreasing,
    every row clean after the last step)."""
    steps, rows, first = decl.get("steps"), decl.get("clean_rows"), decl.get("first_rows")
    if not (_is_int(steps) and 1 <= steps <= _MAX_STREAM_STEPS and _is_int(first) and 1 <= first <= h):
        return False
    if not isinstance(rows, Sequence) or isinstance(rows, str) or len(rows) != steps:
        return False
    return all(_is_int(r) and 0 <= r <= h for r in rows) and list(rows) == sorted(rows) and rows[-1] == h


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_common(spec: RobotSpec | PolicySpec, owner: str) -> None:
    if not isinstance(spec.name, str) or not spec.name:
        raise SpecError(f"{owner}: name must be a non-empty string")
    _check_names(owner, "state_names", spec.state_names)
    _check_names(owner, "action_names", spec.action_names)
    if not isinstance(spec.action_kind, ActionKind):
        raise SpecError(f"{owner}: action_kind must be one of {[k.value for k in ActionKind]}")
    cam_names = [c.name for c in spec.cameras]
    if len(set(cam_names)) != len(cam_names):
        raise SpecError(f"{owner}: duplicate camera names {cam_names!r}")
    if not isinstance(spec.environment_state_dim, int) or not 0 <= spec.environment_state_dim <= 4096:
        raise SpecError(f"{owner}: environment_state_dim must be an int in 0..4096")


def _to_dict(spec: RobotSpec | PolicySpec) -> dict[str, Any]:
    data = asdict(spec)
    data["action_kind"] = spec.action_kind.value
    if "extra" in data:
        data["extra"] = dict(data["extra"])
    return data


_TUPLE_FIELDS = ("state_names", "action_names", "stepwise_actions")


def _from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Build a spec from untrusted data (a network message or YAML), with clear errors."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{cls.__name__} must be a mapping, got {type(data).__name__}")
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(f"{cls.__name__}: unknown fields {unknown}; allowed: {sorted(known)}")
    try:
        return cls(**_typed_fields(data))
    except SpecError:
        raise
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{cls.__name__}: {exc}") from exc


def _typed_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with tuples, enums and camera specs where the dataclasses want them (TypeError/ValueError if bad)."""
    kwargs: dict[str, Any] = dict(data)
    for key in _TUPLE_FIELDS:
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    if "action_kind" in kwargs:
        kwargs["action_kind"] = ActionKind(kwargs["action_kind"])
    if "cameras" in kwargs:
        kwargs["cameras"] = tuple(c if isinstance(c, CameraSpec) else CameraSpec(**dict(c)) for c in kwargs["cameras"])
    if kwargs.get("position_limits") is not None:
        kwargs["position_limits"] = tuple((float(lo), float(hi)) for lo, hi in kwargs["position_limits"])
    return kwargs


def spec_mismatches(robot: RobotSpec, policy: PolicySpec) -> list[str]:
    """Every way `policy` cannot drive `robot`; empty when they are compatible."""
    problems: list[str] = []
    if tuple(robot.state_names) != tuple(policy.state_names):
        problems.append(_name_diff("state", robot.state_names, policy.state_names))
    if tuple(robot.action_names) != tuple(policy.action_names):
        problems.append(_name_diff("action", robot.action_names, policy.action_names))
    if robot.action_kind != policy.action_kind:
        problems.append(
            f"action kind: robot executes {robot.action_kind.value!r}, policy produces {policy.action_kind.value!r}"
        )
    problems += _camera_mismatches(robot, policy)
    if policy.fps is not None and abs(float(policy.fps) - float(robot.fps)) > 1e-6:
        problems.append(f"fps: robot runs at {robot.fps} Hz, policy was trained at {policy.fps} Hz")
    if policy.environment_state_dim and policy.environment_state_dim != robot.environment_state_dim:
        problems.append(
            f"environment_state: policy needs {policy.environment_state_dim} values, "
            f"robot provides {robot.environment_state_dim}"
        )
    return problems


def _camera_mismatches(robot: RobotSpec, policy: PolicySpec) -> list[str]:
    robot_cams = {c.name: c for c in robot.cameras}
    problems = []
    for cam in policy.cameras:
        have = robot_cams.get(cam.name)
        if have is None:
            problems.append(f"camera {cam.name!r}: policy needs it, robot has {sorted(robot_cams) or 'no cameras'}")
        elif have.shape != cam.shape:
            problems.append(f"camera {cam.name!r}: robot gives {have.shape}, policy expects {cam.shape}")
    return problems


def _name_diff(what: str, robot_names: Sequence[str], policy_names: Sequence[str]) -> str:
    missing = [n for n in policy_names if n not in robot_names]
    extra = [n for n in robot_names if n not in policy_names]
    if not missing and not extra:
        return f"{what} names: same names in a different order (robot {list(robot_names)}, policy {list(policy_names)})"
    parts = []
    if missing:
        parts.append(f"policy expects {missing} which the robot lacks")
    if extra:
        parts.append(f"robot has {extra} which the policy does not use")
    return f"{what} names: " + "; ".join(parts)


def check_compatible(robot: RobotSpec, policy: PolicySpec) -> None:
    """Raise SpecMismatchError listing every mismatch, or return when the pair is compatible."""
    problems = spec_mismatches(robot, policy)
    if problems:
        raise SpecMismatchError(problems)
