"""What the sender of a body that does not decode is told: JSON's problem, or each field's, in its terms."""
from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

from pydantic import ValidationError

# What json.loads raises for a body: not UTF-8, not JSON, an integer of 4,300+ digits, nesting deeper
# than the stack, or (parsing numbers as Decimal) an exponent beyond Decimal's (1E+99999999999999999999).
JSON_ERRORS = (UnicodeDecodeError, ValueError, RecursionError, ArithmeticError)
MAX_PART_CHARS = 40


class NameRepeated(ValueError):
    """A JSON object that names one member twice: parsers keep one value or the other, unsaid."""


def members_named_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads's `object_pairs_hook`: the object, or NameRepeated naming the member given twice."""
    members = dict(pairs)
    if len(members) < len(pairs):
        [(repeated, _)] = Counter(name for name, _ in pairs).most_common(1)
        raise NameRepeated(f"an object names {repeated!r:.{MAX_PART_CHARS}} twice, and only one of its values "
                           "would be kept")
    return members


def json_problem(exc: UnicodeDecodeError | ValueError | RecursionError | ArithmeticError) -> str:
    """What is wrong with a body json.loads refused, in the sender's terms rather than Python's."""
    if isinstance(exc, UnicodeDecodeError):
        return f"it must be UTF-8, and byte {exc.object[exc.start]:#04x} at position {exc.start} is not"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, ArithmeticError):
        return "a number's exponent is out of range"
    if not isinstance(exc, json.JSONDecodeError):
        # int()'s guard against quadratic conversions: "Exceeds the limit (4300 digits) ... sys.set_int_max_str_digits()"
        return f"a number has more than {sys.get_int_max_str_digits()} digits"
    return str(exc)


def field_errors(exc: ValidationError, limit: int, key: str = "message") -> list[dict[str, Any]]:
    """The first `limit` of pydantic's errors as `{"field": "data.variants.0.price", key: ...}`, in our words alone."""
    details = []
    for error in exc.errors(include_url=False, include_input=False)[:limit]:
        path = ".".join(_shortened(str(part)) for part in error["loc"])
        details.append({"field": path or "(body)", key: error["msg"].removeprefix("Value error, ")})
    return details


def _shortened(part: str) -> str:
    # A path part can be the sender's own text (an attribute's name): named, not echoed whole.
    return part if len(part) <= MAX_PART_CHARS else f"{part[:MAX_PART_CHARS]}…"
