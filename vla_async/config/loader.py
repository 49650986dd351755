"""Typed config: YAML presets + `--section.field=value` overrides, validated at start-up.

Every config root is a pydantic model with `extra="forbid"`, so unknown keys, wrong types and
out-of-range values fail before anything starts, with the field path, the value and what is allowed.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "configs"

T = TypeVar("T", bound=BaseModel)


class ConfigError(ValueError):
    """A config could not be loaded; the message names every bad field."""


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def parse_override_value(text: str) -> Any:
    """`--a.b=1e-3` → 0.001, `=true` → True, `=[1,2]` → [1, 2], anything else → the string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """Turn `--section.field=value` arguments into a nested dict."""
    tree: dict[str, Any] = {}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise ConfigError(f"override {arg!r} must look like --section.field=value")
        key, _, raw = arg[2:].partition("=")
        parts = [p for p in key.split(".") if p]
        if not parts:
            raise ConfigError(f"override {arg!r} has no field name")
        node = tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {arg!r} conflicts with an earlier override of {part!r}")
            node = child
        node[parts[-1]] = parse_override_value(raw)
    return tree


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge `update` into a copy of `base` (mappings merge, everything else replaces)."""
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = resolve_config_path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def resolve_config_path(path: str | Path) -> Path:
    """A path as given, or relative to the repository's `configs/` folder."""
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    in_repo = CONFIG_DIR / candidate
    if in_repo.is_file():
        return in_repo
    raise ConfigError(f"config file not found: {path} (also looked in {CONFIG_DIR})")


def format_validation_error(exc: ValidationError, root: str = "") -> str:
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        if root:
            path = f"{root}.{path}" if path else root
        value = err.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        if len(shown) > 80:
            shown = shown[:77] + "..."
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"  {path or '<root>'}: {msg} (got {shown})")
    return "invalid config:\n" + "\n".join(lines)


def build_config(model: type[T], data: Mapping[str, Any]) -> T:
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def load_config(
    model: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> T:
    """Load `model` from an optional YAML file, then apply overrides, then validate everything."""
    data: dict[str, Any] = read_yaml(path) if path else {}
    update = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
    return build_config(model, deep_merge(data, update))


def describe_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """One line per leaf field: `--path.to.field  type  (default)  description`, for `--help`."""
    lines: list[str] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.extend(describe_fields(annotation, prefix=f"{path}."))
            continue
        type_name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        default = info.get_default(call_default_factory=True)
        desc = f"  {info.description}" if info.description else ""
        lines.append(f"  --{path}=<{type_name}>  (default {default!r}){desc}")
    return lines


def split_config_arg(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """Pull `--config PATH` / `--config=PATH` out of argv; the rest are `--section.field=value` overrides."""
    path: str | None = None
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--config":
            path = next(args, None)
            if path is None:
                raise ConfigError("--config needs a path")
        elif arg.startswith("--config="):
            path = arg.partition("=")[2]
        else:
            rest.append(arg)
    return path, rest


def config_from_cli(model: type[T], argv: Sequence[str], *, prog: str, usage: str) -> T | int:
    """The start of every config-driven command: `--help` prints `usage` and every field (returns 0);
    a bad config prints `prog: <what is wrong>` to stderr (returns 2); otherwise the validated config."""
    args = list(argv)
    if any(a in ("-h", "--help") for a in args):
        print(usage + "\n" + "\n".join(describe_fields(model)))
        return 0
    try:
        path, overrides = split_config_arg(args)
        return load_config(model, path, overrides)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
