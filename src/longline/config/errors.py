"""Config errors as ``path: message`` lines, built so that no input value is ever echoed.

Pydantic's own messages quote the offending input, and configs carry tokens, so the lines are
rebuilt here from each error's location, type and context only. Cross-field problems found by
the models travel as one custom pydantic error (see ``Problems``) and come out one line each.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from typing import Annotated

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from longline.processors.registry import REGISTRY

__all__ = ["Problems", "messages"]

_PROBLEMS_TYPE = "longline_config"

_FRIENDLY = {
    "missing": "required",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
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


class Problems:
    """Cross-field problems of one model, raised together, each with its own field path."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.items.append((field, message))

    def raise_any(self) -> None:
        if self.items:
            summary = "; ".join(f"{f}: {m}" for f, m in self.items)
            ctx = {"summary": summary, "problems": tuple(self.items)}
            raise PydanticCustomError(_PROBLEMS_TYPE, "{summary}", ctx)


def _path(loc: Iterable[int | str], field: str = "") -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    if field:
        text += field if field.startswith("[") or not text else f".{field}"
    return text or "(root)"


def _untag(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop the ``kind`` tag pydantic puts after ``processors[i]`` in error locations."""
    if len(loc) > 2 and loc[0] == "processors" and loc[2] in REGISTRY:
        return loc[:2] + loc[3:]
    return loc


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model whose keys live at ``loc`` (to suggest the right spelling of an unknown key)."""
    model = root
    if len(loc) > 2 and loc[0] == "processors" and loc[2] in REGISTRY:
        model, loc = REGISTRY.get(str(loc[2])).model, loc[3:]  # a tagged location, see _untag
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


def messages(error: ValidationError, root: type[BaseModel]) -> list[str]:
    """``path: message`` lines built from location and message only, never the input value.

    ``root`` is the model that was validated; unknown keys are matched against its fields.
    """
    out: list[str] = []
    for e in error.errors(include_url=False, include_input=False):
        tagged: tuple[int | str, ...] = tuple(e["loc"])
        loc = _untag(tagged)
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            out.append(f"{_path(loc, 'kind')}: {_kind_message(e.get('ctx', {}))}")
            continue
        if e["type"] == _PROBLEMS_TYPE:
            out.extend(f"{_path(loc, f)}: {m}" for f, m in e["ctx"]["problems"])
            continue
        if e["type"] == "extra_forbidden":
            model = _model_at(root, tagged[:-1])
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


def _kind_message(ctx: dict[str, object]) -> str:
    """Unknown or missing processor kind; the closest known kind is suggested, the input
    (which may come from ``${VAR}``) is never echoed."""
    known = REGISTRY.names()
    tag = ctx.get("tag")
    close = difflib.get_close_matches(str(tag), known, n=1) if isinstance(tag, str) else []
    if close:
        return f"unknown kind (did you mean {close[0]}?); must be one of {', '.join(known)}"
    if tag is None:
        return f"required: one of {', '.join(known)}"
    return f"unknown kind; must be one of {', '.join(known)}"
