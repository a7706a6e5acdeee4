"""Processor kinds: their config models, their builders, and the entry points that list them.

A kind is a ``ProcessorKind`` object registered as an entry point in the ``longline.processors``
group (``longline.plugins``); longline's own kinds are registered that way in its
``pyproject.toml``, a third-party package registers its own in its own. The kind's module
defines a config model (a subclass of ``ProcessorSettings`` with ``kind: Literal["name"]``) and
a ``build(settings) -> Processor`` function; ``KIND = ProcessorKind("name", Model, build)``.

A ``processors:`` entry is validated by the model of the kind it names, loaded when first named
(``processor_entry``), so its errors name the field (``processors[0].url: ...``) like the rest
of the config and a kind nobody uses is never imported. Kind modules must not import
``longline.config`` (it imports this module) and should import heavy client libraries inside
``build`` or ``start``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Generic, Self, TypeVar, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SerializeAsAny,
    StrictInt,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from longline.core.extras import require
from longline.core.fields import (
    SENSITIVE_HEADERS,
    Duration,
    check_name,
    header_secrets,
    url_secrets,
)
from longline.plugins import PluginError, Registry
from longline.processors.base import Processor

__all__ = [
    "REGISTRY",
    "SENSITIVE_HEADERS",
    "Duration",
    "ProcessorEntry",
    "ProcessorKind",
    "ProcessorSettings",
    "RetrySettings",
    "build_processor",
    "check_extra",
    "header_secrets",
    "kinds",
    "url_secrets",
]

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
        return check_name(v)

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


def _check_kind(kind: ProcessorKind[Any]) -> str:
    tag = kind.model.model_fields["kind"].annotation
    if getattr(tag, "__args__", None) != (kind.kind,):
        raise PluginError(f"{kind.model.__name__}.kind must be Literal[{kind.kind!r}]")
    return kind.kind


REGISTRY: Registry[ProcessorKind[Any]] = Registry(
    "longline.processors", "processor kind", ProcessorKind, _check_kind
)
"""Every processor kind by tag: longline's own, then those of installed plugins."""


def kinds() -> Mapping[str, ProcessorKind[Any]]:
    """Every available kind by tag, all loaded (for listings and docs; a config loads only
    the kinds it names)."""
    return REGISTRY.load_all()


@cache
def _adapter(tag: str) -> TypeAdapter[Any]:
    """Validates one entry of kind ``tag``; errors carry the tag after the index, as a tagged
    union's do (``config.errors`` drops it from the path)."""
    model = REGISTRY.get(tag).model
    return TypeAdapter(Annotated[Union[(model,)], Field(discriminator="kind")])  # noqa: UP007


def _entry(value: object) -> ProcessorSettings:
    if isinstance(value, ProcessorSettings):
        return value
    tag = value.get("kind") if isinstance(value, Mapping) else None
    if not isinstance(tag, str) or tag not in REGISTRY:
        if tag is None:
            raise PydanticCustomError("union_tag_not_found", "processor kind required")
        # ``tag`` is only for the "did you mean" of ``config.errors``, never echoed.
        raise PydanticCustomError("union_tag_invalid", "unknown processor kind", {"tag": tag})
    try:
        adapter = _adapter(tag)
    except PluginError as exc:
        raise PydanticCustomError(
            "longline_config", "{summary}", {"summary": str(exc), "problems": (("kind", str(exc)),)}
        ) from None
    result: ProcessorSettings = adapter.validate_python(value)
    return result


ProcessorEntry = Annotated[SerializeAsAny[ProcessorSettings], PlainValidator(_entry)]
"""The pydantic type of one ``processors:`` entry: validated by the model its ``kind`` names."""


def build_processor(settings: ProcessorSettings) -> Processor:
    """A (not yet started) processor for one validated ``processors:`` entry.

    Raises :class:`~longline.core.extras.MissingExtra` when the kind's client library is not
    installed, before any event is handed to it (it would otherwise dead-letter them all).
    """
    kind = REGISTRY.get(settings.kind)
    check_extra(kind)
    return kind.build(settings)


def check_extra(kind: ProcessorKind[Any]) -> None:
    """Raise :class:`~longline.core.extras.MissingExtra` when ``kind`` needs a missing package."""
    if kind.extra is not None:
        require(f"processor kind {kind.kind!r}", kind.extra, *kind.modules)
