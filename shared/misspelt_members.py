"""Members of a body that misspell a field of its model: `"isActive": false` for `is_active`.

The models ignore members the spec does not name, so that an ERP may send more than we read; a
misspelling of one we do read was ignored with them, and its default stood in (a product meant to
be withdrawn stayed on sale). The door refuses those, and so does `publish_order` (shared/orders.py).
It walks the decoded document once, outside pydantic: a check inside each model cost a sixth of
decoding a catalog group, in the workers too.
"""
from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel


def spelling(name: str) -> str:
    """A member's name as a misspelling of it would match: case, underscores, hyphens and spaces aside."""
    return name.casefold().replace("_", "").replace("-", "").replace(" ", "")


@dataclass(frozen=True, slots=True)
class _Shape:
    names: frozenset[str]
    spellings: dict[str, str]  # spelling -> the field's name
    children: tuple[tuple[str, _Shape, bool], ...]  # (field, its model's shape, whether a list of them)

    def misspelt(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        """(member, the field meant) of this object alone."""
        return [(name, meant) for name in data.keys() - self.names
                if isinstance(name, str) and (meant := self.spellings.get(spelling(name))) is not None]


def misspelt_members(document: dict[str, Any], model: type[BaseModel], limit: int,
                     key: str = "message") -> list[dict[str, object]]:
    """Up to `limit` problems, each naming where a misspelt member is (as pydantic's `field`) and, under
    `key`, the spelling meant."""
    found: list[dict[str, object]] = []
    shape = _shape(model)
    if _any_misspelt(document, shape):
        _walk(document, shape, "", found, limit, key)
    return found


def _any_misspelt(data: dict[str, Any], shape: _Shape) -> bool:
    """The walk below without its paths: nearly every body has nothing misspelt, and a catalog group's
    thousands of paths cost more than the check."""
    if not shape.names.issuperset(data) and shape.misspelt(data):
        return True
    for field, child, many in shape.children:
        value = data.get(field)
        if not many:
            if isinstance(value, dict) and _any_misspelt(value, child):
                return True
        elif isinstance(value, list):
            names = child.names
            for item in value:
                # The media of a variant, two a variant: the common case inline, without a call.
                if isinstance(item, dict) and ((not names.issuperset(item) and child.misspelt(item))
                                               or (child.children and _any_misspelt(item, child))):
                    return True
    return False


def _walk(data: dict[str, Any], shape: _Shape, where: str, found: list[dict[str, object]], limit: int,
          key: str) -> None:
    for name, meant in shape.misspelt(data):
        if len(found) < limit:
            found.append({"field": where.rstrip(".") or "(body)",
                          key: f"unknown member {name!r:.100}: the field is spelt {meant!r}"})
    for field, child, many in shape.children:
        value = data.get(field)
        if many and isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    _walk(item, child, f"{where}{field}.{index}.", found, limit, key)
        elif isinstance(value, dict):
            _walk(value, child, f"{where}{field}.", found, limit, key)


@cache
def _shape(model: type[BaseModel]) -> _Shape:
    children = []
    for name, field in model.model_fields.items():
        nested = _nested_model(field.annotation)
        if nested is not None:
            children.append((name, _shape(nested[0]), nested[1]))
    return _Shape(frozenset(model.model_fields), {spelling(name): name for name in model.model_fields},
                  tuple(children))


def _nested_model(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """The model a field holds, and whether a list of them; None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and arguments:
        inner = _nested_model(arguments[0])
        return (inner[0], True) if inner is not None and not inner[1] else None
    if origin in (typing.Union, types.UnionType):
        return next((found for argument in arguments if (found := _nested_model(argument)) is not None), None)
    return None
