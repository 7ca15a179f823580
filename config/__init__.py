"""mario-dqn constants: typed, frozen config dataclasses, overrides and JSON round trip."""

from config.overrides import (
    CONFIG_FORMAT_VERSION,
    ConfigError,
    apply_overrides,
    field_docs,
    from_dict,
    from_json,
    parse_stage,
    replace,
    to_dict,
    to_json,
    validate,
)
from config.settings import (
    ACTION_SETS,
    NETWORKS,
    SECTIONS,
    AgentConfig,
    Config,
    EnvConfig,
    PathsConfig,
    ReplayConfig,
    RunnerConfig,
)

__all__ = [
    "ACTION_SETS", "NETWORKS", "SECTIONS", "AgentConfig", "Config", "EnvConfig", "PathsConfig", "ReplayConfig",
    "RunnerConfig", "CONFIG_FORMAT_VERSION", "ConfigError", "apply_overrides", "field_docs", "from_dict",
    "from_json", "parse_stage", "replace", "to_dict", "to_json", "validate",
]
