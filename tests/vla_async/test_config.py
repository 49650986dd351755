"""Config loader: YAML + overrides, unknown keys and bad values fail with the field path."""

from __future__ import annotations

import pytest

from vla_async.config import ConfigError, ServerConfig, describe_fields, load_config


def test_yaml_preset_plus_overrides():
    cfg = load_config(ServerConfig, "server/linear.yaml", ["--network.port=0", "--backend.options.seed=3",
                                                           "--batching.max_wait_ms=0.5"])
    assert cfg.network.port == 0 and cfg.backend.name == "linear"
    assert cfg.backend.options == {"seed": 3, "use_images": True} and cfg.batching.max_wait_ms == 0.5


@pytest.mark.parametrize("override,needle", [
    ("--network.bogus=1", "network.bogus: unknown field"),
    ("--network.port=70000", "network.port"),
    ("--network.image_encoding=png", "network.image_encoding"),
    ("--batching.max_batch=zero", "batching.max_batch"),
])
def test_bad_overrides_name_the_field_and_value(override, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")) as info:
        load_config(ServerConfig, None, [override])
    assert override.split("=", 1)[1] in str(info.value)


def test_malformed_override_and_missing_file():
    with pytest.raises(ConfigError, match="--section.field=value"):
        load_config(ServerConfig, None, ["network.port=1"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(ServerConfig, "no/such.yaml")


def test_help_lists_nested_fields():
    lines = "\n".join(describe_fields(ServerConfig))
    assert "--network.curve.authorized_keys_dir" in lines and "--injected_latency.mean_ms" in lines
