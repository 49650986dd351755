"""Typed configuration: schema sections and the YAML/override loader."""

from vla_async.config.loader import (
    CONFIG_DIR,
    ConfigError,
    StrictModel,
    build_config,
    config_from_cli,
    describe_fields,
    load_config,
    parse_overrides,
    split_config_arg,
)
from vla_async.config.schema import (
    BackendConfig,
    BatchingConfig,
    ClientConfig,
    CurveConfig,
    DelayConfig,
    FuserConfig,
    InjectedLatencyConfig,
    LeRobotRobotConfig,
    LogConfig,
    NetworkConfig,
    RobotConfig,
    SafetyConfig,
    ServerConfig,
    SmootherConfig,
    StrategyConfig,
    load_strategy_preset,
    strategy_config,
    strategy_names,
)

__all__ = [
    "CONFIG_DIR", "ConfigError", "StrictModel", "build_config", "config_from_cli", "describe_fields", "load_config",
    "parse_overrides", "split_config_arg", "BackendConfig", "BatchingConfig", "ClientConfig", "CurveConfig", "DelayConfig",
    "FuserConfig", "InjectedLatencyConfig", "LeRobotRobotConfig", "LogConfig", "NetworkConfig", "RobotConfig", "SafetyConfig",
    "ServerConfig", "SmootherConfig", "StrategyConfig", "load_strategy_preset", "strategy_config",
    "strategy_names",
]
