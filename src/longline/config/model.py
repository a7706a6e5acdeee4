"""The YAML config: pydantic models, loading, and the public entry points.

Two promises shape the config. Every error says where it is (``streams[2].transport: ...``)
so a user fixes it without guessing; and no error or dump ever shows a secret, because configs
carry tokens. Pydantic's own messages echo the input value, so errors are rebuilt from the
location and message only (``errors``), then passed through the redactor as a second
guard, using the secrets that ``env`` collects while it interpolates ``${VAR}``.
After validation each field holds its final value: float seconds, int bytes, and the
transport-dependent defaults (key, cursor, resume, ping_interval) resolved.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Self

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

from longline.config.checks import (
    HEADER_NAME,
    Duration,
    Size,
    check_headers,
    check_processors,
    check_selector,
    check_store,
    check_url,
    check_url_credentials,
    none_word,
    sqlite_path,
)
from longline.config.env import Interpolator, redact_tree
from longline.config.errors import Problems, messages
from longline.core.address import is_loopback, parse_listen
from longline.core.fields import SENSITIVE_HEADERS, check_name, header_secrets, url_secrets
from longline.core.resume import CURSOR_PLACEHOLDER
from longline.core.secrets import redact
from longline.plugins import PluginError, spell_list
from longline.processors.registry import ProcessorEntry
from longline.sessions.base import Session
from longline.sessions.generic import GenericSession
from longline.sessions.registry import SessionLoadError, load_factory, load_preset
from longline.transports.registry import REGISTRY as TRANSPORTS
from longline.transports.registry import NoOptions, TransportKind

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = [
    "SENSITIVE_HEADERS",
    "BackoffConfig",
    "Config",
    "ConfigError",
    "HttpConfig",
    "ResumeConfig",
    "SessionConfig",
    "StreamConfig",
    "WriterConfig",
    "load_config",
    "loads_config",
    "parse_config",
    "sqlite_path",
]

DEFAULT_STORE = "sqlite:///longline.db"


class ConfigError(Exception):
    """The config is invalid; ``errors`` holds one ``path: message`` per problem, secret-free."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackoffConfig(_Model):
    """Reconnect delays: full jitter under a cap that doubles from ``initial`` up to ``max``."""

    initial: Duration = Field(default=0.5, gt=0)
    max: Duration = 30.0

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.initial > self.max:
            problems = Problems()
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
        if self.header is not None and not HEADER_NAME.fullmatch(self.header):
            raise ValueError("header must be an HTTP header name")
        if self.query is not None and not self.query:
            raise ValueError("query must name a query parameter")
        return self


class TlsConfig(_Model):
    """TLS for a stream's ``https://`` or ``wss://`` connection: a private CA, a client
    certificate, or (for a test server only) no verification."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: StrictBool = True

    @model_validator(mode="after")
    def _files(self) -> Self:
        p = Problems()
        for field in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, field)
            if path is not None and not Path(path).is_file():
                p.add(field, f"no such file: {path}")
        if self.key_file is not None and self.cert_file is None:
            p.add("key_file", "needs cert_file")
        if not self.verify and self.ca_file is not None:
            p.add("verify", "false ignores ca_file: set one or the other")
        p.raise_any()
        return self


class WriterConfig(_Model):
    """Group commit: a batch is written at ``batch_max`` events or after ``batch_window``."""

    batch_max: StrictInt = Field(default=1000, ge=1)
    batch_window: Duration = 0.02


class HttpConfig(_Model):
    """The operators' HTTP listener (metrics, health, status page); off unless ``listen``."""

    listen: str | None = None
    token: str | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        if v is not None:
            parse_listen(v)  # a ValueError names what is wrong
        return v

    @field_validator("token")
    @classmethod
    def _token(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty (leave token out for no authentication)")
        return v

    @model_validator(mode="after")
    def _guarded(self) -> Self:
        if self.listen is not None and self.token is None:
            host, _ = parse_listen(self.listen)
            if not is_loopback(host):
                problems = Problems()
                problems.add("token", f"required: {self.listen} is not a loopback address")
                problems.raise_any()
        return self


class SessionConfig(BaseModel):
    """``session:`` on a ws stream: a ``preset``, a ``factory`` (``package.module:Class``) or
    the generic building blocks (docs/sessions.md). Every key besides ``preset``/``factory``
    is an option of that session, validated by its own ``Options`` model."""

    model_config = ConfigDict(extra="allow")
    preset: str | None = None
    factory: str | None = None
    _cls: type[Session] = PrivateAttr(default=GenericSession)
    _options: BaseModel | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _load(self) -> Self:
        p = Problems()
        if self.preset is not None and self.factory is not None:
            p.add("factory", "set preset or factory, not both")
            p.raise_any()
        try:
            if self.preset is not None:
                self._cls = load_preset(self.preset)
            elif self.factory is not None:
                self._cls = load_factory(self.factory)
        except SessionLoadError as e:
            p.add("preset" if self.preset is not None else "factory", str(e))
            p.raise_any()
        options = self._cls.Options
        try:
            self._options = options.model_validate(dict(self.model_extra or {}))
        except ValidationError as e:
            for line in messages(e, options):
                field, _, msg = line.partition(": ")
                p.add(field, msg)
        p.raise_any()
        return self

    @property
    def session_class(self) -> type[Session]:
        """The ``Session`` subclass to make per connection."""
        return self._cls

    @property
    def options(self) -> BaseModel:
        """The validated options."""
        assert self._options is not None
        return self._options

    @property
    def needs_url(self) -> bool:
        """Whether the stream's ``url`` is used (not when the session finds the URL)."""
        if self._cls is GenericSession:
            return getattr(self._options, "connect_url", None) is None
        return self._cls.needs_url

    def secret_values(self) -> set[str]:
        """Option values never to show (the session's ``secret_options``, OAuth2 secrets)."""
        found: set[str] = set()
        for name in self._cls.secret_options:
            value = getattr(self._options, name, None)
            if isinstance(value, str):
                found.add(value)
        auth = getattr(self._options, "auth", None)
        if auth is not None:
            found.add(auth.client_secret)
        return found


# Shared by every stream that leaves them out (~360 B each per stream otherwise).
_NO_OPTIONS = NoOptions()  # the options of every stream whose transport takes none
_DEFAULT_BACKOFF = BackoffConfig()


@functools.cache
def _default_options(model: type[BaseModel]) -> BaseModel | None:
    """``model`` with every field at its default (None if a field is required)."""
    try:
        return model.model_validate({})
    except ValidationError:
        return None


class StreamConfig(_Model):
    """One provider connection (and its redundant twins), as described in docs/configuration.md."""

    name: str
    transport: str
    url: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    subscribe: list[str] = Field(default_factory=list)
    key: str = ""
    cursor: Annotated[str | None, BeforeValidator(none_word)] = None
    resume: Annotated[ResumeConfig | None, BeforeValidator(none_word)] = None
    stall_timeout: Duration = Field(default=30.0, gt=0)
    max_lifetime: Annotated[Duration | None, BeforeValidator(none_word)] = Field(default=None, gt=0)
    redundancy: StrictInt = Field(default=1, ge=1, le=16)
    max_message_size: Size = Field(default=1_000_000, gt=0)
    backoff: BackoffConfig = Field(default_factory=lambda: _DEFAULT_BACKOFF)  # never mutated
    ping_interval: Duration = Field(default=0.0, gt=0)
    session: SessionConfig | None = None
    tls: TlsConfig | None = None

    _options: BaseModel = PrivateAttr(default_factory=lambda: _NO_OPTIONS)

    @property
    def transport_options(self) -> BaseModel:
        """``options`` as validated by the transport's own model."""
        return self._options

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v)

    @field_validator("transport")
    @classmethod
    def _transport(cls, v: str) -> str:
        if v not in TRANSPORTS:
            raise ValueError(f"must be {spell_list(TRANSPORTS.names())}")
        return v

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        p = Problems()
        try:
            kind = TRANSPORTS.get(self.transport)
        except PluginError as e:
            p.add("transport", str(e))
            p.raise_any()
            raise
        ws, sse, given = kind.subscribe, kind.sse, self.model_fields_set
        self._check_options(kind, p)
        session = self.session
        if session is not None and self.transport != "ws":  # sessions drive a WebSocket
            p.add("session", f"sessions drive a WebSocket: transport ws, not {self.transport}")
        if self.url or session is None or session.needs_url:
            if not self.url and "url" not in given:
                p.add("url", "required")
            else:
                check_url(self.url, self.transport, kind.url_schemes, p)
        if session is not None:
            most = session.session_class.max_redundancy
            if most is not None and self.redundancy > most:
                p.add("redundancy", f"this provider allows at most {most} connections")
            if self.max_lifetime is not None and not session.session_class.allows_max_lifetime:
                p.add("max_lifetime", "not with this session: it reconnects when asked to")
        check_headers(self.headers, p)
        check_url_credentials(self.url, self.headers, p)
        cannot_send = f"transport {self.transport} does not send messages (ws does)"
        if self.subscribe and not ws:
            p.add("subscribe", cannot_send)
        if "key" not in given:  # sse-id: the event's own id, else a hash of type and data
            self.key = "sse-id" if sse else "hash"
        check_selector("key", self.key, sse, ("sse-id", "hash"), p)
        if "cursor" not in given:
            self.cursor = "sse-id" if sse else None
        if self.cursor is not None:
            check_selector("cursor", self.cursor, sse, ("sse-id", "none"), p)
        if "resume" not in given and sse and self.cursor is not None:
            self.resume = ResumeConfig(header="Last-Event-ID")
        if self.resume is not None:
            if self.resume.subscribe and not ws:
                p.add("resume.subscribe", cannot_send)
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

    def _check_options(self, kind: TransportKind, p: Problems) -> None:
        """``options`` by the transport's model; its errors name ``options.<field>``."""
        if not kind.options.model_fields:
            # No model instance nor dumped copy per stream: ~1 KB each of 10,000 idle streams.
            if self.options:
                p.add("options", f"transport {kind.name} takes no options")
            return
        if not self.options and (shared := _default_options(kind.options)) is not None:
            self._options = shared  # the same, so shared, by every stream that sets none
            return
        try:
            self._options = kind.options.model_validate(self.options)
        except ValidationError as e:
            for line in messages(e, kind.options):
                field, message = line.split(": ", 1)
                p.add("options" if field == "(root)" else f"options.{field}", message)
            return
        self.options = self._options.model_dump(mode="json")

    def secret_values(self) -> set[str]:
        """Credential headers, the URL's password, and what the transport's options name."""
        found = header_secrets(self.headers) | url_secrets(self.url)
        more = getattr(self._options, "secret_values", None)
        return found | (set(more()) if callable(more) else set())


class Config(_Model):
    """A whole config file. ``secrets`` holds every value that must never be shown."""

    store: str = DEFAULT_STORE
    writer: WriterConfig = Field(default_factory=lambda: WriterConfig())
    # How long a stop (signal, --duration) may spend committing what is buffered.
    shutdown_timeout: Duration = Field(default=10.0, gt=0)
    # How long store writes may keep failing before the run gives up (exit 1); 0: for ever.
    store_patience: Duration = Field(default=300.0, ge=0)
    # New connections per second across the process (jittered): a start or a provider-wide
    # outage then opens thousands of connections in a bounded storm, not all at once.
    connect_rate: float = Field(default=500.0, gt=0)
    streams: list[StreamConfig]
    processors: list[ProcessorEntry] = Field(default_factory=list)
    log_summary_interval: Duration = Field(default=60.0, ge=0)  # INFO summaries; 0: none
    http: HttpConfig = Field(default_factory=lambda: HttpConfig())
    _secrets: frozenset[str] = PrivateAttr(default_factory=frozenset)

    @property
    def secrets(self) -> frozenset[str]:
        return self._secrets

    @field_validator("store")
    @classmethod
    def _store(cls, v: str) -> str:
        return check_store(v)

    @field_validator("streams")
    @classmethod
    def _some(cls, v: list[StreamConfig], info: ValidationInfo) -> list[StreamConfig]:
        # A file needs streams; ``longline.App`` may start empty and add them while running.
        if not v and not (info.context or {}).get("allow_no_streams"):
            raise ValueError("at least one stream is required")
        return v

    @model_validator(mode="after")
    def _unique(self, info: ValidationInfo) -> Self:
        p = Problems()
        first: dict[str, int] = {}
        for i, stream in enumerate(self.streams):
            if stream.name in first:
                p.add(f"streams[{i}].name", f"duplicate name (also streams[{first[stream.name]}])")
            first.setdefault(stream.name, i)
        check_processors(self.processors, list(first), p)
        p.raise_any()
        given = (info.context or {}).get("secrets", ())
        found = set(given) | url_secrets(self.store)
        for stream in self.streams:
            found |= stream.secret_values()
            if stream.session is not None:
                found |= stream.session.secret_values()
        for proc in self.processors:
            found |= proc.secret_values()
        if self.http.token:
            found.add(self.http.token)
        self._secrets = frozenset(s for s in found if s)
        return self

    def redacted(self) -> dict[str, Any]:
        """A JSON-ready dump for display, every secret replaced by ``***``."""
        dump: dict[str, Any] = redact_tree(self.model_dump(mode="json"), self._secrets)
        return dump


# --- entry points ----------------------------------------------------------------------------


def parse_config(
    data: object,
    env: Mapping[str, str] | None = None,
    *,
    read_only: bool = False,
    allow_no_streams: bool = False,
) -> Config:
    """Validate already-parsed YAML/JSON data; ``env`` defaults to ``os.environ``.

    ``read_only`` (``status``, ``events``, listing dead letters): only the store's ``${VAR}``
    must be set; the streams' and processors' credentials are not needed to read the store.
    ``allow_no_streams`` accepts an empty ``streams`` list (``longline.App`` adds them later).
    """
    if data is None:
        raise ConfigError(["(root): the config is empty; it needs at least a `streams` list"])
    if not isinstance(data, Mapping):
        raise ConfigError([f"(root): expected a mapping, got {type(data).__name__}"])
    interp = Interpolator(os.environ if env is None else env, read_only=read_only)
    resolved = interp.config(data)
    errors = interp.errors
    try:
        context = {"secrets": frozenset(interp.secrets), "allow_no_streams": allow_no_streams}
        config = Config.model_validate(resolved, context=context)
    except ValidationError as e:
        # A field whose variable is missing was validated as if the variable were empty: its
        # own errors would only be noise next to "environment variable X is not set".
        for m in messages(e, Config):
            where = m.split(": ", 1)[0]
            if where in interp.skipped:  # read_only let it through, but this field needs it
                m = f"{where}: environment variable {interp.skipped[where]} is not set"
            if where not in interp.paths and m not in errors:
                errors = [*errors, m]
    if errors:
        raise ConfigError([redact(m, interp.secrets) for m in errors])
    return config


class _UniqueKeyLoader(_SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one.

    On libyaml's parser (``CSafeLoader``) where PyYAML has it, as its wheels do: the pure-Python
    one took ~7 s of a worker's start on a config of 50,000 streams (docs/benchmarks.md)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            mark = key_node.start_mark
            if isinstance(key, list | dict):  # `{[a]: 1}`: unhashable, and no config key
                raise yaml.MarkedYAMLError(problem="a key must be a plain value", problem_mark=mark)
            if isinstance(key, str) and key in seen:
                raise yaml.MarkedYAMLError(problem=f"duplicate key {key!r}", problem_mark=mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _document(text: str) -> Any:
    """The config document. JSON (a generated config, often) is read by the JSON parser: a
    50,000-stream config in 0.06 s instead of 4 s; anything else, and JSON with a duplicate
    key, by the YAML loader, whose errors say where."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text, object_pairs_hook=_unique_keys)
        except ValueError:  # not JSON after all (YAML flow style), or a duplicate key
            pass
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a (C)SafeLoader subclass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise ValueError("duplicate key")
    return found


def load_config(
    path: str | Path, env: Mapping[str, str] | None = None, *, read_only: bool = False
) -> Config:
    """Read, parse and validate a YAML config file (``read_only``: see ``parse_config``)."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise ConfigError([f"{where}: cannot read: {reason}"]) from None
    return loads_config(text, where, env, read_only=read_only)


def loads_config(
    text: str,
    where: str = "-",
    env: Mapping[str, str] | None = None,
    *,
    read_only: bool = False,
) -> Config:
    """Parse and validate YAML config text (``where`` names it in errors: a path, ``-``;
    ``read_only``: see ``parse_config``)."""
    try:
        data = _document(text)
    except yaml.MarkedYAMLError as e:
        # Only problem and position: str(e) quotes the offending line, which may hold a secret.
        mark = e.problem_mark
        pos = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError([f"{where}: {pos}: {e.problem or 'invalid YAML'}"]) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"{where}: invalid YAML ({type(e).__name__})"]) from None
    return parse_config(data, env, read_only=read_only)
