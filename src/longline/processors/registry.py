"""Processor kinds: their config models, their builders, and the list of modules that hold them.

Adding a kind means one module and one line in ``KIND_MODULES``. The module defines a config
model (a subclass of ``ProcessorSettings`` with ``kind: Literal["name"]``), a
``build(settings) -> Processor`` function, and ``KINDS = (ProcessorKind("name", Model, build),)``
(a module may hold several kinds, as ``aws.py`` does). ``longline.config`` builds the
``processors:`` union from ``kinds()``, so a kind's fields are validated and its errors name
the field (``processors[0].url: ...``) like the rest of the config.

Kind modules are imported whenever a config is loaded: they must not import
``longline.config`` (it imports this module) and should import heavy client libraries inside
``build`` or ``start`` so a config without that kind loads without them.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Generic, Self, TypeVar, Union
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

from longline.core.extras import require
from longline.core.units import parse_duration
from longline.processors.base import Processor

__all__ = [
    "KIND_MODULES",
    "SENSITIVE_HEADERS",
    "Duration",
    "ProcessorKind",
    "ProcessorSettings",
    "RetrySettings",
    "build_processor",
    "check_extra",
    "header_secrets",
    "kinds",
    "processor_union",
    "url_secrets",
]

KIND_MODULES: tuple[str, ...] = (
    "longline.processors.python",  # python
    "longline.processors.webhook",  # webhook
    "longline.processors.command",  # command
    "longline.processors.redis",  # redis
    "longline.processors.nats",  # nats
    "longline.processors.aws",  # sqs, sns, eventbridge, kinesis
)
"""Modules holding kinds. One that does not exist (yet) is skipped; one that fails to import
for any other reason is an error, so a broken kind is never silently missing."""

# The same names as ``longline.config.SENSITIVE_HEADERS`` (which imports this module).
SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "x-api-key", "proxy-authorization"})
_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _duration(v: object) -> object:
    return parse_duration(v)  # type: ignore[arg-type]


Duration = Annotated[float, BeforeValidator(_duration)]
"""Seconds, written as a number or as ``500ms``, ``30s``, ``5m`` (see ``longline.core.units``)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetrySettings(_Model):
    """Delivery retries: full-jitter backoff (``core.backoff``), ``max_attempts`` in all."""

    max_attempts: StrictInt = Field(default=8, ge=1)
    initial: Duration = Field(default=1.0, gt=0)
    max: Duration = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.initial > self.max:
            raise ValueError("initial must be <= max")
        return self


class ProcessorSettings(_Model):
    """The fields every kind has. Subclasses add ``kind: Literal[...]`` and their own fields."""

    name: str
    kind: str
    streams: list[str] | None = None  # None: every stream of the config
    batch: StrictInt = Field(default=100, ge=1, le=100_000)
    retry: RetrySettings = Field(default_factory=lambda: RetrySettings())

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError("must be letters, digits, _ or - only ([A-Za-z0-9_-]+)")
        return v

    def secret_values(self) -> set[str]:
        """Values that must never be shown (passwords in URLs, tokens); kinds override."""
        return set()


S = TypeVar("S", bound=ProcessorSettings)


@dataclass(frozen=True, slots=True)
class ProcessorKind(Generic[S]):
    """One kind: its ``kind:`` tag, its config model and how to build a processor from it."""

    kind: str
    model: type[S]
    build: Callable[[S], Processor]
    extra: str | None = None
    """The ``pip install 'longline[EXTRA]'`` extra that provides ``modules``."""
    modules: tuple[str, ...] = ()
    """Client libraries the kind imports when it starts (checked by ``build_processor``)."""


@cache
def kinds() -> Mapping[str, ProcessorKind[Any]]:
    """Every available kind by tag, in ``KIND_MODULES`` order."""
    found: dict[str, ProcessorKind[Any]] = {}
    for name in KIND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        for kind in getattr(module, "KINDS", ()):
            if kind.kind in found:
                raise RuntimeError(f"processor kind {kind.kind!r} registered twice ({name})")
            tag = kind.model.model_fields["kind"].annotation
            if getattr(tag, "__args__", None) != (kind.kind,):
                raise RuntimeError(f"{kind.model.__name__}.kind must be Literal[{kind.kind!r}]")
            found[kind.kind] = kind
    return found


def processor_union() -> Any:
    """The pydantic type of one ``processors:`` entry: the kind models, tagged by ``kind``."""
    models = tuple(k.model for k in kinds().values())
    return Annotated[Union[models], Field(discriminator="kind")]  # noqa: UP007


def build_processor(settings: ProcessorSettings) -> Processor:
    """A (not yet started) processor for one validated ``processors:`` entry.

    Raises :class:`~longline.core.extras.MissingExtra` when the kind's client library is not
    installed, before any event is handed to it (it would otherwise dead-letter them all).
    """
    kind = kinds()[settings.kind]
    check_extra(kind)
    return kind.build(settings)


def check_extra(kind: ProcessorKind[Any]) -> None:
    """Raise :class:`~longline.core.extras.MissingExtra` when ``kind`` needs a missing package."""
    if kind.extra is not None:
        require(f"processor kind {kind.kind!r}", kind.extra, *kind.modules)


def url_secrets(url: str | None) -> set[str]:
    """The password of a URL (``redis://:pw@host``), if any: it goes into ``Config.secrets``."""
    if not url:
        return set()
    try:
        password = urlsplit(url).password
    except ValueError:
        return set()
    return {password} if password else set()


def header_secrets(headers: Mapping[str, str]) -> set[str]:
    """Values of credential headers and their token part (``Bearer <token>``)."""
    out: set[str] = set()
    for name, value in headers.items():
        if name.lower() in SENSITIVE_HEADERS:
            out.add(value)
            parts = value.strip().split(None, 1)
            if len(parts) == 2:
                out.add(parts[1])
    return out
