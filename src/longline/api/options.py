"""Stream and processor options of the Python API, validated by the config's own models.

``App.stream(name, transport=..., url=..., **options)`` takes the keys of a YAML stream entry
(``StreamOptions``, a ``TypedDict`` so that ``mypy`` checks them in user code), and the same
pydantic models validate them: a bad option raises ``ConfigError`` naming the field, as
``longline check`` does, with ``streams.NAME`` / ``processors.NAME`` in place of the list index.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from pydantic import ValidationError

from longline.config import Config, ConfigError, StreamConfig, parse_config
from longline.config.errors import messages
from longline.core.secrets import redact
from longline.processors.registry import ProcessorSettings

__all__ = ["StreamOptions", "assemble", "parse_stream", "relabel"]


class StreamOptions(TypedDict, total=False):
    """The optional keys of a stream, as in docs/configuration.md (durations as seconds or
    ``"500ms"``/``"30s"``, sizes as bytes or ``"1MB"``; ``"none"`` where YAML takes ``none``)."""

    key: str
    cursor: str | None
    resume: Mapping[str, Any] | str | None
    headers: Mapping[str, str]
    subscribe: Sequence[str]
    stall_timeout: float | str
    max_lifetime: float | str | None
    redundancy: int
    max_message_size: int | str
    backoff: Mapping[str, float | str]
    ping_interval: float | str
    session: Mapping[str, Any] | None  # docs/sessions.md; with a preset, url may be ""
    options: Mapping[str, Any]  # the transport's own settings (docs/plugins.md)
    tls: Mapping[str, Any] | None  # docs/configuration.md


_INDEXED = re.compile(r"^(streams|processors)\[(\d+)\]")


def relabel(lines: Sequence[str], names: Mapping[str, Sequence[str]]) -> list[str]:
    """``streams[1].url: ...`` -> ``streams.wiki.url: ...``: the API has no list indexes."""

    def sub(m: re.Match[str]) -> str:
        listed = names.get(m.group(1), ())
        i = int(m.group(2))
        return f"{m.group(1)}.{listed[i]}" if i < len(listed) else m.group(0)

    return [_INDEXED.sub(sub, line) for line in lines]


def parse_stream(
    entry: Mapping[str, Any], env: Mapping[str, str] | None
) -> tuple[StreamConfig, frozenset[str]]:
    """Validate one stream entry as a file's would be (``${VAR}`` from ``env``, default
    ``os.environ``); returns it with the secrets it carries."""
    try:
        config = parse_config({"streams": [entry]}, env, allow_no_streams=True)
    except ConfigError as e:
        raise ConfigError(relabel(e.errors, {"streams": [str(entry.get("name"))]})) from None
    return config.streams[0], config.secrets


def assemble(
    base: Config,
    streams: Sequence[StreamConfig | Mapping[str, Any]],
    processors: Sequence[ProcessorSettings | Mapping[str, Any]],
    secrets: frozenset[str],
) -> Config:
    """A validated ``Config``: every top-level setting of ``base`` (store, writer,
    shutdown_timeout, ...) with these streams and processors (validated models, or raw entries
    to validate now).

    Cross-checks run as for a file (unique names, processors naming known streams); an empty
    stream list is allowed. Raises ``ConfigError`` with API-style paths.
    """
    data: dict[str, Any] = {
        name: getattr(base, name)
        for name in Config.model_fields
        if name not in ("streams", "processors")
    }
    data.update(streams=streams, processors=processors)
    try:
        return Config.model_validate(data, context={"secrets": secrets, "allow_no_streams": True})
    except ValidationError as e:
        names = {
            "streams": [_name_of(s) for s in streams],
            "processors": [_name_of(p) for p in processors],
        }
        lines = relabel(messages(e, Config), names)
        raise ConfigError([redact(line, secrets) for line in lines]) from None


def _name_of(entry: StreamConfig | ProcessorSettings | Mapping[str, Any]) -> str:
    name = entry.get("name") if isinstance(entry, Mapping) else entry.name
    return str(name)
