"""The YAML config: load it, validate it, get errors that name the field.

``model`` holds the pydantic models and the loaders; ``checks`` the field validators they
share; ``env`` the ``${VAR}`` interpolation that also collects the secrets to redact;
``errors`` the translation of pydantic's errors into ``path: message`` lines without values.
"""

from __future__ import annotations

from longline.config.model import (
    SENSITIVE_HEADERS,
    BackoffConfig,
    Config,
    ConfigError,
    HttpConfig,
    ResumeConfig,
    StreamConfig,
    TlsConfig,
    WriterConfig,
    load_config,
    loads_config,
    parse_config,
    sqlite_path,
)

__all__ = [
    "SENSITIVE_HEADERS",
    "BackoffConfig",
    "Config",
    "ConfigError",
    "HttpConfig",
    "ResumeConfig",
    "StreamConfig",
    "TlsConfig",
    "WriterConfig",
    "load_config",
    "loads_config",
    "parse_config",
    "sqlite_path",
]
