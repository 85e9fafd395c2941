"""The one JSON intake for every API body: bounded and strict, before anything else reads the body.

The async chat views, DRF (`StrictJSONParser`) and the Stripe webhook all parse through
`json_loads`. It refuses, with the project's JSON error (a 4xx, never a traceback):

- a body over `DATA_UPLOAD_MAX_MEMORY_SIZE` (413), or nested deeper than `JSON_MAX_DEPTH` (checked
  on the raw bytes before parsing, so no parser recursion ever runs away);
- text that is not UTF-8, a lone surrogate (`"\\ud800"`) or a NUL anywhere in a string or key
  (PostgreSQL, orjson and the upstreams cannot carry them);
- `NaN`/`Infinity`, floats that overflow (`1e999`), integers outside 64 bits (what orjson, the
  database and every upstream can hold), numbers written with thousands of digits;
- a top-level value that is not an object, when an object is asked for.

The strict DRF fields at the end (`StrictIntegerField`, `StrictFloatField`) refuse booleans as
numbers and digits that are not ASCII (`"١٢"` is not 12); the hot path's plain checks
(`gateway.openai_format`) apply the same rules.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from rest_framework import serializers
from rest_framework.parsers import BaseParser

from .errors import InvalidRequest, RequestTooLarge

DEFAULT_MAX_DEPTH = 64
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
# 20 digits hold every 64-bit integer; 64 bits is what orjson, bigint columns and upstreams take.
_MAX_INT_CHARS = 21
# A float literal longer than this is no number a client means (and Decimal would keep all of it).
_MAX_FLOAT_CHARS = 64
# Decimal exponents beyond this overflow any arithmetic the gateway does (prices, credits).
_MAX_DECIMAL_EXPONENT = 100

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS_ONLY = bytes(range(256)).translate(None, b"[]{}")
# Only a \u escape can put a surrogate or a NUL into a decoded string (raw ones are refused as
# invalid UTF-8 or as control characters by the parser).
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


class InvalidJSON(InvalidRequest):
    code = "invalid_json"
    default_message = "The body must be valid JSON."


def _max_depth() -> int:
    return int(getattr(settings, "JSON_MAX_DEPTH", DEFAULT_MAX_DEPTH))


def _depth_check(raw: bytes, limit: int) -> None:
    """Refuse nesting deeper than `limit`, on the bytes (brackets inside strings do not count)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    structure = _STRING.sub(b"", raw).translate(None, _BRACKETS_ONLY)
    depth = 0
    for byte in structure:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                raise InvalidJSON(f"The body nests deeper than {limit} levels.", code="json_too_deep")
        else:
            depth -= 1


def _refuse_constant(name: str):
    raise InvalidJSON(f"{name} is not a JSON number; send a finite number.", code="invalid_number")


def _parse_int(text: str) -> int:
    if len(text) > _MAX_INT_CHARS:
        raise InvalidJSON("An integer in the body is out of the 64-bit range.", code="number_out_of_range")
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise InvalidJSON("An integer in the body is out of the 64-bit range.", code="number_out_of_range")
    return value


def _parse_float(text: str) -> float:
    value = float(text) if len(text) <= _MAX_FLOAT_CHARS else math.inf
    if not math.isfinite(value):
        raise InvalidJSON("A number in the body is out of range.", code="number_out_of_range")
    return value


def _parse_decimal(text: str) -> Decimal:
    try:
        value = Decimal(text) if len(text) <= _MAX_FLOAT_CHARS else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or abs(value.adjusted()) > _MAX_DECIMAL_EXPONENT:
        raise InvalidJSON("A number in the body is out of range.", code="number_out_of_range")
    return value


def _bad_text(text: str) -> bool:
    if "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _walk(value: Any):
    """(path, item) of every value and key in a parsed body (depth already bounded), keys as str items."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        yield path, item
        if isinstance(item, dict):
            for key, child in item.items():
                at = f"{path}.{key}" if path else str(key)
                yield at, key
                stack.append((at, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(item))


def _named(path: str, message: str) -> str:
    # The path is the client's own field names, cut short and made printable for the message.
    return f"{ascii(path[:200])[1:-1]}: {message}" if path else message


def _text_check(value: Any) -> None:
    """Refuse NULs and lone surrogates in any string or key, naming where."""
    for path, item in _walk(value):
        if isinstance(item, str) and _bad_text(item):
            raise InvalidJSON(
                _named(path, "strings may not contain NUL characters or lone surrogates (\\ud800-\\udfff)."),
                code="invalid_text",
            )


def _bad_number(item: Any) -> bool:
    if isinstance(item, bool):
        return False
    if isinstance(item, int):
        return not INT_MIN <= item <= INT_MAX
    if isinstance(item, float):
        return not math.isfinite(item)
    return False


def _number_located(text: str, error: InvalidJSON) -> InvalidJSON:
    """The number refusal again, naming the field: the body re-read leniently (an error path only)."""
    try:
        value = json.loads(text, parse_constant=float)
    except (ValueError, RecursionError):
        return error
    for path, item in _walk(value):
        if _bad_number(item):
            return InvalidJSON(_named(path, error.message), code=error.code)
    return error


def json_loads(
    raw: bytes | str,
    *,
    decimals: bool = False,
    want_object: bool = True,
    max_bytes: int | None = None,
    max_depth: int | None = None,
) -> Any:
    """Parse one API body under the limits above; `decimals` reads fractions as exact `Decimal`s."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE if max_bytes is None else max_bytes
    if limit is not None and len(raw) > limit:
        raise RequestTooLarge()
    _depth_check(raw, _max_depth() if max_depth is None else max_depth)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJSON("The body must be JSON in UTF-8.")
    try:
        value = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_decimal if decimals else _parse_float,
            parse_constant=_refuse_constant,
        )
    except InvalidJSON as exc:
        raise _number_located(text, exc) from None
    except (ValueError, RecursionError):
        raise InvalidJSON("The body must be valid JSON.")
    if _SUSPECT_ESCAPE.search(raw):
        _text_check(value)
    if want_object and not isinstance(value, dict):
        raise InvalidJSON("The body must be a JSON object.")
    return value


class StrictJSONParser(BaseParser):
    """DRF's JSON parser through `json_loads` (limits, strict text and numbers, our error shape)."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        return json_loads(raw, want_object=False)


# --- Strict numbers for DRF fields -------------------------------------------------------------


def lenient_number(data: Any) -> bool:
    """A value Python's int()/float() would read as a number that a strict API must not: a boolean
    (True is 1), or a string with non-ASCII digits ("١٢" is 12) or underscores ("1_0" is 10)."""
    return isinstance(data, bool) or (isinstance(data, str) and (not data.isascii() or "_" in data))


class StrictIntegerField(serializers.IntegerField):
    """An IntegerField that refuses booleans and non-ASCII digits."""

    def to_internal_value(self, data):
        if lenient_number(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A FloatField that refuses booleans and non-ASCII digits."""

    def to_internal_value(self, data):
        if lenient_number(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictDecimalField(serializers.DecimalField):
    """A DecimalField that refuses booleans and non-ASCII digits."""

    def to_internal_value(self, data):
        if lenient_number(data):
            self.fail("invalid")
        return super().to_internal_value(data)
