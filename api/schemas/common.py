"""Shared fields and schemas: names, pagination, list envelopes."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

MAX_INT = 2**31 - 1


def _printable(value: str) -> None:
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value):
        raise ValidationError("Must not contain control characters.")
    if value != value.strip():
        raise ValidationError("Must not start or end with spaces.")


def Name(max_len: int = 63, **kw: Any) -> fields.String:
    return fields.String(validate=[validate.Length(min=1, max=max_len), _printable], **kw)


def Slug(**kw: Any) -> fields.String:
    return fields.String(validate=validate.Regexp(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
                                                  error="Lowercase letters, digits and '-', 1-63 characters."), **kw)


def Count(minimum: int = 0, maximum: int = MAX_INT, **kw: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=minimum, max=maximum), **kw)


QUERY_WORDS = {"true": True, "false": False}


class StrictBoolean(fields.Boolean):
    """``true`` or ``false`` and nothing else: marshmallow's Boolean also takes 0, 1, "yes", "on", "t"..."""

    def __init__(self, *, query: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.query = query

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> bool:
        if isinstance(value, bool):
            return value
        if self.query and isinstance(value, str) and value.lower() in QUERY_WORDS:
            return QUERY_WORDS[value.lower()]
        raise self.make_error("invalid", input=value)


def Bool(*, query: bool = False, **kw: Any) -> fields.Boolean:
    """The Boolean of every schema that loads input. In a JSON body only JSON ``true``/``false`` (``0``,
    ``1`` or ``"true"`` are refused with 422); in a query string (``query=True``) the words ``true`` and
    ``false``, in any case."""
    return StrictBoolean(query=query, **kw)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(value[k]) for k in value)
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def refuse_nul(data: Any) -> None:
    """NUL characters are never valid input (and PostgreSQL cannot even compare them: it raises)."""
    if isinstance(data, Mapping):
        bad = {str(k): ["Must not contain NUL characters."] for k in data if _has_nul(k) or _has_nul(data[k])}
        if bad:
            raise ValidationError(bad)


class StrictSchema(Schema):
    """Unknown fields are an error in the body AND in the query string.

    webargs loads query arguments with ``unknown=EXCLUDE`` by default, which would silently ignore a
    typo such as ``?stat=ACTIVE`` and return everything; a strict schema refuses that whoever loads it.
    """

    class Meta:
        unknown = RAISE

    def load(self, data: Any, *, many: bool | None = None, partial: Any = None,
             unknown: str | None = None) -> Any:
        refuse_nul(data)
        return super().load(data, many=many, partial=partial, unknown=RAISE)


class PageArgs(StrictSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_INT))


def page_schema(item: type[Schema], name: str) -> type[Schema]:
    return type(name, (Schema,), {
        "items": fields.List(fields.Nested(item)), "total": fields.Integer(),
        "limit": fields.Integer(), "offset": fields.Integer()})


def page(items: list[Any], total: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": args["limit"], "offset": args["offset"]}
