"""The guarded operations behind :mod:`celeryref.mapreduce.expressions`.

Every operation checks its operand types first and its result after, so an
expression can only ever produce ``None``, a bool, a number within
:data:`MAX_MAGNITUDE` or a string within :data:`MAX_STRING` characters, and any
failure surfaces as :class:`EvaluationError` (never ``TypeError``, ``OverflowError``,
a complex number or a huge allocation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: Largest absolute value of any number an expression reads or produces.
MAX_MAGNITUDE = 10**18
#: Largest absolute exponent of ``**``; with :data:`MAX_MAGNITUDE` it bounds the work.
MAX_EXPONENT = 64
#: Longest string an expression reads or produces (characters).
MAX_STRING = 10_000
#: Largest absolute ``ndigits`` of ``round()``.
MAX_ROUND_DIGITS = 18

Number = int | float
_NUMBER_TYPES = (int, float)


class EvaluationError(ValueError):
    """A valid expression has no value for this item (missing field, wrong type, ...)."""


def check(value: Any) -> Any:
    """``value`` if an expression may hold it, else :class:`EvaluationError`."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
            return value
        raise EvaluationError(f"number larger than {MAX_MAGNITUDE:.0e}")
    if isinstance(value, float):
        if math.isfinite(value) and abs(value) <= MAX_MAGNITUDE:
            return value
        raise EvaluationError(f"number {value!r} is not finite or larger than {MAX_MAGNITUDE:.0e}")
    if isinstance(value, str):
        if len(value) <= MAX_STRING:
            return value
        raise EvaluationError(f"string longer than {MAX_STRING} characters")
    raise EvaluationError(f"{type(value).__name__} values are not supported")


def field(item: Mapping[str, Any], name: str) -> Any:
    try:
        value = item[name]
    except KeyError:
        raise EvaluationError(f"missing field {name!r}") from None
    return check(value)


def number(value: Any, where: str) -> Number:
    if type(value) in _NUMBER_TYPES:  # fast path; bool is not int here
        return value  # type: ignore[no-any-return]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EvaluationError(f"{where} needs numbers, got {type(value).__name__}")
    return value


def _arith(name: str, compute: Callable[[Number, Number], Any]) -> Callable[[Any, Any], Any]:
    def apply(left: Any, right: Any) -> Any:
        a, b = number(left, name), number(right, name)
        try:
            result = compute(a, b)
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise EvaluationError(f"{name}: {exc}") from None
        return check(result)

    return apply


def add(left: Any, right: Any) -> Any:
    if isinstance(left, str) and isinstance(right, str):
        if len(left) + len(right) > MAX_STRING:
            raise EvaluationError(f"string longer than {MAX_STRING} characters")
        return left + right
    return _add(left, right)


def _power(a: Number, b: Number) -> Any:
    if abs(b) > MAX_EXPONENT:
        raise ValueError(f"exponent larger than {MAX_EXPONENT}")
    result = a**b
    if not isinstance(result, int | float):  # e.g. (-8) ** 0.5 is complex
        raise ValueError("result is not a real number")
    return result


_add = _arith("+", lambda a, b: a + b)
sub = _arith("-", lambda a, b: a - b)
mul = _arith("*", lambda a, b: a * b)
truediv = _arith("/", lambda a, b: a / b)
floordiv = _arith("//", lambda a, b: a // b)
mod = _arith("%", lambda a, b: a % b)  # numbers only: never string formatting
power = _arith("**", _power)


def neg(value: Any) -> Any:
    return check(-number(value, "-"))


def pos(value: Any) -> Any:
    return number(value, "+")


def not_(value: Any) -> bool:
    return not value


def _ordered(name: str, compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def apply(left: Any, right: Any) -> bool:
        if isinstance(left, str) and isinstance(right, str):
            return compare(left, right)
        return compare(number(left, name), number(right, name))

    return apply


def eq(left: Any, right: Any) -> bool:
    return bool(left == right)


def ne(left: Any, right: Any) -> bool:
    return bool(left != right)


lt = _ordered("<", lambda a, b: a < b)
le = _ordered("<=", lambda a, b: a <= b)
gt = _ordered(">", lambda a, b: a > b)
ge = _ordered(">=", lambda a, b: a >= b)


def contains(left: Any, right: Any) -> bool:
    if not isinstance(left, str) or not isinstance(right, str):
        raise EvaluationError("'in' needs two strings")
    return left in right


def not_contains(left: Any, right: Any) -> bool:
    return not contains(left, right)


Evaluator = Callable[[Mapping[str, Any]], Any]


def chain_compare(
    tests: Sequence[Callable[[Any, Any], bool]],
    operands: Sequence[Evaluator],
    item: Mapping[str, Any],
) -> bool:
    """``a < b <= c``: each operand evaluated at most once, stop at the first false."""
    left = operands[0](item)
    for test, operand in zip(tests, operands[1:], strict=True):
        right = operand(item)
        if not test(left, right):
            return False
        left = right
    return True


def all_of(parts: Sequence[Evaluator], item: Mapping[str, Any]) -> Any:
    value: Any = True
    for part in parts:
        value = part(item)
        if not value:
            return value
    return value


def any_of(parts: Sequence[Evaluator], item: Mapping[str, Any]) -> Any:
    value: Any = False
    for part in parts:
        value = part(item)
        if value:
            return value
    return value


# -- the whitelisted functions --------------------------------------------------------


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise EvaluationError(f"{name}() needs a string, got {type(value).__name__}")
    return value


def _round(value: Any, digits: Any = None) -> Any:
    x = number(value, "round()")
    if digits is None:
        return check(round(x)) if math.isfinite(x) else check(x)
    if isinstance(digits, bool) or not isinstance(digits, int):
        raise EvaluationError("round() digits must be an integer")
    if abs(digits) > MAX_ROUND_DIGITS:
        raise EvaluationError(f"round() digits beyond {MAX_ROUND_DIGITS}")
    return check(round(x, digits))


def _extreme(pick: Callable[..., Any], name: str) -> Callable[..., Any]:
    def apply(*values: Any) -> Any:
        if all(isinstance(v, str) for v in values):
            return pick(values)
        return pick([number(v, f"{name}()") for v in values])

    return apply


def _convert(kind: type[int] | type[float]) -> Callable[[Any], Any]:
    name = kind.__name__

    def apply(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise EvaluationError(f"{name}() needs a number or string")
        if isinstance(value, str) and len(value) > 40:
            raise EvaluationError(f"{name}() of a string longer than 40 characters")
        try:
            return check(kind(value))
        except (ValueError, OverflowError) as exc:
            raise EvaluationError(f"{name}(): {exc}") from None

    return apply


#: name -> (function, fewest arguments, most arguments).
FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    "abs": (lambda v: abs(number(v, "abs()")), 1, 1),
    "round": (_round, 1, 2),
    "min": (_extreme(min, "min"), 2, 16),
    "max": (_extreme(max, "max"), 2, 16),
    "len": (lambda v: len(_text(v, "len")), 1, 1),
    "lower": (lambda v: check(_text(v, "lower").lower()), 1, 1),
    "upper": (lambda v: check(_text(v, "upper").upper()), 1, 1),
    "float": (_convert(float), 1, 1),
    "int": (_convert(int), 1, 1),
}
