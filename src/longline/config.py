"""The YAML config: pydantic models, ``${ENV}`` interpolation, and errors that name the field.

Two promises shape this module. Every error says where it is (``streams[2].transport: ...``)
so a user fixes it without guessing; and no error or dump ever shows a secret, because configs
carry tokens. Pydantic's own messages echo the input value, so errors are rebuilt here from
the location and message only, then passed through the redactor as a second guard.
After validation each field holds its final value: float seconds, int bytes, and the
transport-dependent defaults (key, cursor, resume, ping_interval) resolved.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from longline.core.keys import parse_json_path
from longline.core.units import parse_duration, parse_size
from longline.ops.logging import redact
from longline.processors.registry import ProcessorSettings, kinds, processor_union

__all__ = [
    "SENSITIVE_HEADERS",
    "BackoffConfig",
    "Config",
    "ConfigError",
    "ResumeConfig",
    "StreamConfig",
    "WriterConfig",
    "load_config",
    "parse_config",
    "sqlite_path",
]

DEFAULT_STORE = "sqlite:///longline.db"
SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "x-api-key", "proxy-authorization"})
STORE_SCHEMES = ("sqlite", "postgresql", "postgres", "dynamodb")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 header field name
_ENV_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")
_URL_SCHEMES = {"sse": ("http", "https"), "lines": ("http", "https"), "ws": ("ws", "wss")}
CURSOR_PLACEHOLDER = "{cursor}"


class ConfigError(Exception):
    """The config is invalid; ``errors`` holds one ``path: message`` per problem, secret-free."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def _none_word(v: object) -> object:
    """YAML ``none`` (the word) means the same as ``null`` for optional settings."""
    return None if isinstance(v, str) and v.strip().lower() == "none" else v


def _duration(v: object) -> object:
    return v if v is None else parse_duration(v)  # type: ignore[arg-type]


def _size(v: object) -> int:
    return parse_size(v)  # type: ignore[arg-type]


Duration = Annotated[float, BeforeValidator(_duration)]
Size = Annotated[int, BeforeValidator(_size)]


class _Problems:
    """Cross-field problems of one model, raised together, each with its own field path."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.items.append((field, message))

    def raise_any(self) -> None:
        if self.items:
            summary = "; ".join(f"{f}: {m}" for f, m in self.items)
            ctx = {"summary": summary, "problems": tuple(self.items)}
            raise PydanticCustomError("longline_config", "{summary}", ctx)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackoffConfig(_Model):
    """Reconnect delays: full jitter under a cap that doubles from ``initial`` up to ``max``."""

    initial: Duration = Field(default=0.5, gt=0)
    max: Duration = 30.0

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.initial > self.max:
            problems = _Problems()
            problems.add("initial", "must be <= backoff.max")
            problems.raise_any()
        return self


class ResumeConfig(_Model):
    """How the stored cursor goes back to the provider; exactly one way is set."""

    header: str | None = None
    query: str | None = None
    subscribe: StrictBool = False

    @model_validator(mode="after")
    def _one(self) -> Self:
        if sum((self.header is not None, self.query is not None, self.subscribe)) != 1:
            raise ValueError(
                "set exactly one of header, query or subscribe: true (or resume: none)"
            )
        if self.header is not None and not _TOKEN.fullmatch(self.header):
            raise ValueError("header must be an HTTP header name")
        if self.query is not None and not self.query:
            raise ValueError("query must name a query parameter")
        return self


class WriterConfig(_Model):
    """Group commit: a batch is written at ``batch_max`` events or after ``batch_window``."""

    batch_max: StrictInt = Field(default=1000, ge=1)
    batch_window: Duration = 0.02


class StreamConfig(_Model):
    """One provider connection (and its redundant twins), as described in docs/configuration.md."""

    name: str
    transport: Literal["sse", "ws", "lines"]
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    subscribe: list[str] = Field(default_factory=list)
    key: str = ""
    cursor: Annotated[str | None, BeforeValidator(_none_word)] = None
    resume: Annotated[ResumeConfig | None, BeforeValidator(_none_word)] = None
    stall_timeout: Duration = Field(default=30.0, gt=0)
    max_lifetime: Annotated[Duration | None, BeforeValidator(_none_word)] = Field(
        default=None, gt=0
    )
    redundancy: StrictInt = Field(default=1, ge=1, le=16)
    max_message_size: Size = Field(default=1_000_000, gt=0)
    backoff: BackoffConfig = Field(default_factory=lambda: BackoffConfig())
    ping_interval: Duration = Field(default=0.0, gt=0)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError("must be letters, digits, _ or - only ([A-Za-z0-9_-]+)")
        return v

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        p = _Problems()
        ws, sse, given = self.transport == "ws", self.transport == "sse", self.model_fields_set
        _check_url(self.url, self.transport, p)
        _check_headers(self.headers, p)
        if self.subscribe and not ws:
            p.add("subscribe", "subscribe messages are only for transport ws")
        if "key" not in given:
            self.key = "sse-id" if sse else "hash"
        _check_selector("key", self.key, sse, ("sse-id", "hash"), p)
        if "cursor" not in given:
            self.cursor = "sse-id" if sse else None
        if self.cursor is not None:
            _check_selector("cursor", self.cursor, sse, ("sse-id", "none"), p)
        if "resume" not in given and sse and self.cursor is not None:
            self.resume = ResumeConfig(header="Last-Event-ID")
        if self.resume is not None:
            if self.resume.subscribe and not ws:
                p.add("resume.subscribe", "only for transport ws")
            if self.cursor is None:
                p.add("resume", "needs a cursor: set cursor, or resume: none")
        placeholders = any(CURSOR_PLACEHOLDER in m for m in self.subscribe)
        if self.resume is not None and self.resume.subscribe and not placeholders:
            p.add("resume.subscribe", "no subscribe message contains {cursor}")
        if placeholders and ws and not (self.resume and self.resume.subscribe):
            p.add("subscribe", "a message contains {cursor}; set resume: {subscribe: true}")
        if "ping_interval" not in given:  # used by ws only; harmless elsewhere
            self.ping_interval = self.stall_timeout / 3
        elif self.ping_interval >= self.stall_timeout:
            p.add(
                "ping_interval", "must be shorter than stall_timeout (pongs keep the stream live)"
            )
        p.raise_any()
        return self


def _check_url(url: str, transport: str, p: _Problems) -> None:
    """Scheme by transport; the URL itself is never quoted (it may hold a token)."""
    allowed = _URL_SCHEMES[transport]
    try:
        parts = urlsplit(url)
        ok = parts.scheme.lower() in allowed and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        p.add(
            "url", f"must use {' or '.join(s + '://' for s in allowed)} for transport {transport}"
        )


def _check_headers(headers: dict[str, str], p: _Problems) -> None:
    seen: set[str] = set()
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            p.add(f"headers.{name}", "not a valid HTTP header name")
        elif name.lower() in seen:
            p.add(f"headers.{name}", "repeated header (names are case-insensitive)")
        if any(c in value for c in "\r\n\0"):
            p.add(f"headers.{name}", "value must not contain CR, LF or NUL")
        seen.add(name.lower())


def _check_selector(
    field: str, value: str, sse: bool, words: tuple[str, str], p: _Problems
) -> None:
    """``key``/``cursor``: one of ``words``, or a JSON path; ``sse-id`` needs SSE."""
    if value == "sse-id" and not sse:
        p.add(field, "sse-id is only for transport sse")
    elif value.startswith("$"):
        try:
            parse_json_path(value)
        except ValueError as e:
            p.add(field, str(e))
    elif value not in words:
        p.add(field, f"must be {words[0]}, {words[1]} or a JSON path such as $.data.id")


def sqlite_path(store_url: str) -> Path:
    """The database file of a ``sqlite:///relative.db`` or ``sqlite:////abs/path.db`` URL.

    Relative paths are relative to the working directory; ``sqlite:///:memory:`` gives
    ``Path(":memory:")``. Raises ValueError (without quoting the URL) for anything else.
    """
    prefix = "sqlite:///"
    if not store_url.lower().startswith(prefix) or len(store_url) == len(prefix):
        raise ValueError("expected sqlite:///relative/path.db or sqlite:////absolute/path.db")
    return Path(store_url[len(prefix) :])


def _check_store(url: str) -> str:
    """The store URL: a known scheme, a path for SQLite, a table for DynamoDB. Never quoted."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in STORE_SCHEMES:
        raise ValueError(
            "must be sqlite:///PATH, postgresql://..., postgres://... or dynamodb://TABLE"
        )
    if scheme == "sqlite" and str(sqlite_path(url)) == ":memory:":
        raise ValueError("sqlite:///:memory: keeps nothing after the process exits; use a file")
    if scheme == "dynamodb" and not urlsplit(url).netloc:
        raise ValueError("dynamodb:// needs a table name: dynamodb://TABLE?region=...")
    return url


if typing.TYPE_CHECKING:
    ProcessorEntry = ProcessorSettings
else:  # the kind models of processors/registry.py, tagged by ``kind``
    ProcessorEntry = processor_union()


class Config(_Model):
    """A whole config file. ``secrets`` holds every value that must never be shown."""

    store: str = DEFAULT_STORE
    writer: WriterConfig = Field(default_factory=lambda: WriterConfig())
    streams: list[StreamConfig]
    processors: list[ProcessorEntry] = Field(default_factory=list)
    _secrets: frozenset[str] = PrivateAttr(default_factory=frozenset)

    @property
    def secrets(self) -> frozenset[str]:
        return self._secrets

    @field_validator("store")
    @classmethod
    def _store(cls, v: str) -> str:
        return _check_store(v)

    @field_validator("streams")
    @classmethod
    def _some(cls, v: list[StreamConfig]) -> list[StreamConfig]:
        if not v:
            raise ValueError("at least one stream is required")
        return v

    @model_validator(mode="after")
    def _unique(self, info: ValidationInfo) -> Self:
        p = _Problems()
        first: dict[str, int] = {}
        for i, stream in enumerate(self.streams):
            if stream.name in first:
                p.add(f"streams[{i}].name", f"duplicate name (also streams[{first[stream.name]}])")
            first.setdefault(stream.name, i)
        _check_processors(self.processors, list(first), p)
        p.raise_any()
        given = (info.context or {}).get("secrets", ())
        found = set(given) | _url_secrets(self.store)
        for stream in self.streams:
            found |= _header_secrets(stream.headers) | _url_secrets(stream.url)
        for proc in self.processors:
            found |= proc.secret_values()
        self._secrets = frozenset(s for s in found if s)
        return self

    def redacted(self) -> dict[str, Any]:
        """A JSON-ready dump for display, every secret replaced by ``***``."""
        dump: dict[str, Any] = _redact_tree(self.model_dump(mode="json"), self._secrets)
        return dump


def _check_processors(procs: list[ProcessorSettings], streams: list[str], p: _Problems) -> None:
    """Processor names are unique and name only streams of this config."""
    first: dict[str, int] = {}
    for i, proc in enumerate(procs):
        if proc.name in first:
            p.add(f"processors[{i}].name", f"duplicate name (also processors[{first[proc.name]}])")
        first.setdefault(proc.name, i)
        for j, name in enumerate(proc.streams or ()):
            if name not in streams:
                p.add(
                    f"processors[{i}].streams[{j}]",
                    f"no stream named {name!r} (streams: {', '.join(streams)})",
                )


def _header_secrets(headers: Mapping[str, object]) -> set[str]:
    """Values of credential headers, and their token part (``Bearer <token>``)."""
    out: set[str] = set()
    for name, value in headers.items():
        if isinstance(name, str) and isinstance(value, str) and name.lower() in SENSITIVE_HEADERS:
            out.add(value)
            scheme_token = value.strip().split(None, 1)
            if len(scheme_token) == 2:
                out.add(scheme_token[1])
    return out


def _url_secrets(url: object) -> set[str]:
    try:
        password = urlsplit(url).password if isinstance(url, str) else None
    except ValueError:
        return set()
    return {password} if password else set()


def _redact_tree(node: Any, secrets: frozenset[str]) -> Any:
    if isinstance(node, str):
        return redact(node, secrets)
    if isinstance(node, dict):
        return {k: _redact_tree(v, secrets) for k, v in node.items()}
    if isinstance(node, list):
        return [_redact_tree(v, secrets) for v in node]
    return node


# --- interpolation ---------------------------------------------------------------------------


class _Interpolator:
    """Replaces ``${VAR}`` from ``env`` in the fields that may carry credentials."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.secrets: set[str] = set()
        self.errors: list[str] = []
        self.paths: set[str] = set()  # fields with an interpolation error

    def text(self, value: object, path: str) -> object:
        if not isinstance(value, str):
            return value

        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$${":
                return "${"
            name = m.group(1)
            if name is None:
                self.paths.add(path)
                self.errors.append(
                    f"{path}: malformed ${{...}}: write ${{NAME}} (letters, digits, _) "
                    "or $${ for a literal ${"
                )
                return ""
            if name not in self.env:
                self.paths.add(path)
                self.errors.append(f"{path}: environment variable {name} is not set")
                return ""
            self.secrets.add(self.env[name])
            return self.env[name]

        return _ENV_REF.sub(sub, value)

    def config(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(data)
        if "store" in out:
            out["store"] = self.text(out["store"], "store")
        streams = out.get("streams")
        if isinstance(streams, list):
            out["streams"] = [self.stream(s, f"streams[{i}]") for i, s in enumerate(streams)]
        procs = out.get("processors")
        if isinstance(procs, list):
            out["processors"] = [self.tree(x, f"processors[{i}]") for i, x in enumerate(procs)]
        return out

    def tree(self, node: object, path: str) -> object:
        """Every string in a processor entry may carry a credential (URLs, secrets, headers)."""
        if isinstance(node, Mapping):
            return {k: self.tree(v, f"{path}.{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [self.tree(v, f"{path}[{j}]") for j, v in enumerate(node)]
        return self.text(node, path)

    def stream(self, raw: object, path: str) -> object:
        if not isinstance(raw, Mapping):
            return raw
        s = dict(raw)
        if "url" in s:
            s["url"] = self.text(s["url"], f"{path}.url")
        if isinstance(s.get("headers"), Mapping):
            s["headers"] = {k: self.text(v, f"{path}.headers.{k}") for k, v in s["headers"].items()}
            self.secrets |= _header_secrets(s["headers"])
        if isinstance(s.get("subscribe"), list):
            s["subscribe"] = [
                self.text(m, f"{path}.subscribe[{j}]") for j, m in enumerate(s["subscribe"])
            ]
        return s


# --- errors ----------------------------------------------------------------------------------

_FRIENDLY = {
    "missing": "required",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "int_type": "expected an integer",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "list_type": "expected a list",
}

_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def _path(loc: Iterable[int | str], field: str = "") -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    if field:
        text += field if field.startswith("[") or not text else f".{field}"
    return text or "(root)"


def _untag(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop the ``kind`` tag pydantic puts after ``processors[i]`` in error locations."""
    if len(loc) > 2 and loc[0] == "processors" and loc[2] in kinds():
        return loc[:2] + loc[3:]
    return loc


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model whose keys live at ``loc`` (to suggest the right spelling of an unknown key)."""
    model: type[BaseModel] = Config
    if len(loc) > 2 and loc[0] == "processors" and loc[2] in kinds():
        model, loc = kinds()[str(loc[2])].model, loc[3:]  # a tagged location, see _untag
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        found = _find_model(field.annotation) if field else None
        if found is None:
            return None
        model = found
    return model


def _find_model(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, Annotated):
        for arg in typing.get_args(annotation):
            if (found := _find_model(arg)) is not None:
                return found
    return None


def _messages(error: ValidationError) -> list[str]:
    """``path: message`` lines built from location and message only, never the input value."""
    out: list[str] = []
    for e in error.errors(include_url=False, include_input=False):
        tagged: tuple[int | str, ...] = tuple(e["loc"])
        loc = _untag(tagged)
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            out.append(f"{_path(loc, 'kind')}: must be one of {', '.join(kinds())}")
            continue
        if e["type"] == "longline_config":
            out.extend(f"{_path(loc, f)}: {m}" for f, m in e["ctx"]["problems"])
            continue
        if e["type"] == "extra_forbidden":
            model = _model_at(tagged[:-1])
            allowed = sorted(model.model_fields) if model else []
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; allowed: {', '.join(allowed)}"
            out.append(f"{_path(loc)}: unknown key{hint}")
            continue
        ctx = e.get("ctx", {})
        if e["type"] in _BOUNDS:
            bound = next(iter(ctx.values()))
            msg = f"must be {_BOUNDS[e['type']]} {bound:g}"
        elif e["type"] == "literal_error":
            msg = f"must be {ctx['expected']}"
        else:
            msg = _FRIENDLY.get(e["type"], e["msg"].removeprefix("Value error, "))
        out.append(f"{_path(loc)}: {msg}")
    return out


# --- entry points ----------------------------------------------------------------------------


def parse_config(data: object, env: Mapping[str, str] | None = None) -> Config:
    """Validate already-parsed YAML/JSON data; ``env`` defaults to ``os.environ``."""
    if data is None:
        raise ConfigError(["(root): the config is empty; it needs at least a `streams` list"])
    if not isinstance(data, Mapping):
        raise ConfigError([f"(root): expected a mapping, got {type(data).__name__}"])
    interp = _Interpolator(os.environ if env is None else env)
    resolved = interp.config(data)
    errors = interp.errors
    try:
        config = Config.model_validate(resolved, context={"secrets": frozenset(interp.secrets)})
    except ValidationError as e:
        # A field whose variable is missing was validated as if the variable were empty: its
        # own errors would only be noise next to "environment variable X is not set".
        errors = errors + [m for m in _messages(e) if m.split(": ", 1)[0] not in interp.paths]
    if errors:
        raise ConfigError([redact(m, interp.secrets) for m in errors])
    return config


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                mark = key_node.start_mark
                raise yaml.MarkedYAMLError(problem=f"duplicate key {key!r}", problem_mark=mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate a YAML config file."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise ConfigError([f"{where}: cannot read: {reason}"]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        # Only problem and position: str(e) quotes the offending line, which may hold a secret.
        mark = e.problem_mark
        pos = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError([f"{where}: {pos}: {e.problem or 'invalid YAML'}"]) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"{where}: invalid YAML ({type(e).__name__})"]) from None
    return parse_config(data, env)
