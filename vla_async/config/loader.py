"""Typed config: YAML presets + `--section.field=value` overrides, validated at start-up.

Every config root is a pydantic model with `extra="forbid"`, so unknown keys, wrong types and
out-of-range values fail before anything starts, with the field path, the value and what is allowed.
"""

from __future__ import annotations

import copy
import difflib
import sys
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

#: The shipped YAML configs (package data: present in every install, wheel or editable).
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

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
    """A file on disk if `path` names one; else a shipped config by name.

    Names are relative to the shipped `configs/` folder, `.yaml` optional, a leading `configs/`
    ignored: `server/expert`, `server/expert.yaml` and `configs/server/expert.yaml` are the same file.
    """
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    name = candidate.as_posix().removeprefix("./").removeprefix("configs/")
    for shipped in (CONFIG_DIR / name, CONFIG_DIR / f"{name}.yaml"):
        if shipped.is_file():
            return shipped
    names = shipped_config_names()
    raise ConfigError(f"config file not found: {path} (not a file, nor a shipped config name; "
                      f"shipped: {', '.join(names)}){did_you_mean(name.removesuffix('.yaml'), names)}")


def shipped_config_names() -> list[str]:
    """`server/expert`, `strategies/vlash_rail`, ...: every YAML file shipped with the package."""
    return sorted(p.relative_to(CONFIG_DIR).with_suffix("").as_posix() for p in CONFIG_DIR.rglob("*.yaml"))


def did_you_mean(value: object, allowed: Iterable[object]) -> str:
    """`" (did you mean 'x'?)"` for the closest allowed value, or `""` when nothing is close."""
    options = [str(a) for a in allowed]
    close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def format_validation_error(exc: ValidationError, root: str = "", model: type[BaseModel] | None = None) -> str:
    """One line per bad field: `path: what is wrong (got value); allowed ... (did you mean ...?)`.

    A single bad field gives a single line (`invalid config: path: ...`); `model` (the validated
    class) lets unknown fields suggest the closest real field name.
    """
    lines = [_error_line(err, root, model) for err in exc.errors()]
    if len(lines) == 1:
        return f"invalid config: {lines[0]}"
    return "invalid config:\n" + "\n".join(f"  {line}" for line in lines)


def _error_line(err: Mapping[str, Any], root: str, model: type[BaseModel] | None) -> str:
    loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
    path = ".".join([root, *loc] if root else loc) or "<root>"
    value = err.get("input")
    shown = _shown(value)
    kind = err["type"]
    if kind == "extra_forbidden":
        fields = _fields_at(model, loc[:-1]) if model is not None else []
        allowed = f"; fields here: {', '.join(fields)}" if fields else ""
        return f"{path}: unknown field (got {shown}){did_you_mean(loc[-1], fields)}{allowed}"
    if kind in ("literal_error", "enum"):
        expected = _expected_values(err)
        return f"{path}: {shown} is not allowed; allowed: {' | '.join(expected)}{did_you_mean(value, expected)}"
    if kind == "value_error":  # our validators' messages name the value already
        msg = str(err["msg"]).removeprefix("Value error, ")
        return msg if path == "<root>" or msg.startswith(f"{path}: ") else f"{path}: {msg}"
    return f"{path}: {err['msg']} (got {shown})"


def _shown(value: Any) -> str:
    """A short, bounded rendering of a bad value for an error line."""
    shown = repr(value) if not isinstance(value, dict) else "{...}"
    return shown[:77] + "..." if len(shown) > 80 else shown


def _expected_values(err: Mapping[str, Any]) -> list[str]:
    """The allowed values pydantic lists in a literal/enum error ("'a', 'b' or 'c'")."""
    text = str(err.get("ctx", {}).get("expected", "")).replace(" or ", ",")
    return [x.strip("'\" ") for x in text.split(",") if x.strip()]


def _fields_at(model: type[BaseModel], loc: Sequence[str]) -> list[str]:
    """The field names of the (nested) section at `loc`, or [] when `loc` is not a section."""
    current: Any = model
    for part in loc:
        info = current.model_fields.get(part) if _is_model(current) else None
        if info is None:
            return []
        current = info.annotation
    return list(current.model_fields) + list(getattr(current, "extra_cli_fields", {})) if _is_model(current) else []


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def build_config(model: type[T], data: Mapping[str, Any]) -> T:
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, model=model)) from None


def load_config(
    model: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> T:
    """Load `model` from an optional YAML file, then apply overrides, then validate everything."""
    data: dict[str, Any] = read_yaml(path) if path else {}
    update = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
    return build_config(model, deep_merge(data, update))


def describe_fields(model: type[BaseModel], prefix: str = "", defaults: BaseModel | None = None) -> list[str]:
    """One line per leaf field: `--path.to.field=<type or allowed values>  (default)  description`.

    Defaults come from `defaults` (an instance; e.g. a root whose section defaults are a preset's)
    or the schema. A section may list extra command-line keys in `extra_cli_fields`
    (`{name: (allowed values, default, description)}`), e.g. the strategy's `preset`.
    """
    lines: list[str] = []
    for name, (allowed, default, description) in getattr(model, "extra_cli_fields", {}).items():
        lines.append(f"  --{prefix}{name}=<{' | '.join(allowed())}>  (default {default!r})  {description}")
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = info.annotation
        default = getattr(defaults, name) if defaults is not None else info.get_default(call_default_factory=True)
        if _is_model(annotation):
            lines.extend(describe_fields(annotation, prefix=f"{path}.", defaults=default))
            continue
        desc = f"  {info.description}" if info.description else ""
        lines.append(f"  --{path}=<{type_label(annotation)}>  (default {default!r}){desc}")
    return lines


def type_label(annotation: Any) -> str:
    """`Literal['a', 'b']` → `a | b`; `float | list[float]` → `float | list[float]`; `int` → `int`."""
    if typing.get_origin(annotation) is typing.Literal:
        return " | ".join(str(v) for v in typing.get_args(annotation))
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


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
        print(usage + "\n" + "\n".join(describe_fields(model, defaults=model())))
        return 0
    try:
        path, overrides = split_config_arg(args)
        return load_config(model, path, overrides)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
