"""What a dataset item looks like, how it is normalized and how its fields are typed.

Items are JSON objects (``dataset_items.data``), for example::

    {"id": 17, "category": "books", "region": "eu-west", "amount": 23.5,
     "quantity": 2, "email": "user17@example.com", "created_at": "2025-03-01T10:00:00+00:00"}

Real data is messy, and the generator makes it so on purpose: fields go missing,
amounts arrive as strings or ``None``, categories in odd case. :func:`normalize`
fixes what can be fixed without guessing; :data:`TYPE_CHECKS` decide validity.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

#: Every field of a generated item.
FIELDS = ("id", "category", "region", "amount", "quantity", "email", "created_at")

#: The type each field should have (see :data:`TYPE_CHECKS`).
DEFAULT_TYPES: dict[str, str] = {
    "id": "integer",
    "category": "string",
    "region": "string",
    "amount": "number",
    "quantity": "integer",
    "email": "email",
    "created_at": "datetime",
}

#: Text fields compared case- and space-insensitively: stripped and lower-cased.
TEXT_FIELDS = ("category", "region", "email")

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_string(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _is_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 254 and _EMAIL.fullmatch(value) is not None


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 40:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


#: Type name -> check. Options name types by these keys only.
TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "number": _is_number,
    "integer": _is_integer,
    "string": _is_string,
    "email": _is_email,
    "datetime": _is_datetime,
    "boolean": lambda value: isinstance(value, bool),
}


def _parse_number(value: str) -> int | float | None:
    text = value.strip()
    if not text or len(text) > 40:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return number


def normalize(item: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``(normalized item, names of the fields it changed)``; ``item`` itself when
    nothing changed (it is never modified).

    Text fields are stripped and lower-cased; a numeric string ``amount`` becomes a
    float and a digit-string ``quantity`` an int. Anything else is left as it is
    (validation decides about it).
    """
    changes: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        value = item.get(name)
        if isinstance(value, str):
            clean = value.strip().lower()
            if clean != value:
                changes[name] = clean
    amount = item.get("amount")
    if isinstance(amount, str):
        parsed = _parse_number(amount)
        if parsed is not None:
            changes["amount"] = parsed
    quantity = item.get("quantity")
    if isinstance(quantity, str):
        digits = quantity.strip()
        if digits.isascii() and digits.isdigit() and len(digits) <= 18:
            changes["quantity"] = int(digits)
    if not changes:  # the common case: no copy
        return (item if isinstance(item, dict) else dict(item)), ()
    return {**item, **changes}, tuple(changes)
