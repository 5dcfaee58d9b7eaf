"""The checks every topic needs, once: whole numbers in a range, finite numbers, flags, choices.

Each returns the value in its plain Python type or raises `LabError` (or the subclass given as
`error`) with one sentence that says what is allowed. Numbers come from the browser, the API and
notebooks alike, so ints, floats, numpy scalars and (where `text=True`) " 3 " are accepted; a bool
is never a number.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np

from vlmlab.errors import LabError

__all__ = ["choice", "finite_number", "flag", "whole_number"]


def _number(value, text: bool) -> float | None:
    """`value` as a float, or None when it is not a number (or is not finite)."""
    if isinstance(value, str) and text:
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return None  # numpy's ints and floats are numbers.Real
    try:
        number = float(value)
    except OverflowError:  # an int past float's range
        return math.inf
    return number if math.isfinite(number) else None


def _range(low, high) -> str:
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" of at least {low}"
    if high is not None:
        return f" of at most {high}"
    return ""


def whole_number(
    value,
    what: str,
    low: int | None = None,
    high: int | None = None,
    *,
    text: bool = False,
    message: str | None = None,
    error: type[LabError] = LabError,
) -> int:
    """`value` as an int if it is a whole number (3 or 3.0) from `low` to `high` (either may be
    None: unbounded), else `error`("The {what} must be a whole number from low to high.")."""
    number = _number(value, text)
    inside = (
        number is not None
        and math.isfinite(number)
        and number == int(number)
        and (low is None or number >= low)
        and (high is None or number <= high)
    )
    if not inside:
        raise error(message or f"The {what} must be a whole number{_range(low, high)}.")
    return int(number)


def finite_number(
    value,
    what: str,
    low: float | None = None,
    high: float | None = None,
    *,
    text: bool = False,
    message: str | None = None,
    error: type[LabError] = LabError,
) -> float:
    """`value` as a float if it is a finite number from `low` to `high` (either may be None),
    else `error`("The {what} must be a number from low to high.")."""
    number = _number(value, text)
    inside = (
        number is not None
        and math.isfinite(number)
        and (low is None or number >= low)
        and (high is None or number <= high)
    )
    if not inside:
        raise error(message or f"The {what} must be a number{_range(low, high)}.")
    return number


def flag(
    value, what: str, *, message: str | None = None, error: type[LabError] = LabError
) -> bool:
    """`value` if it is True or False (numpy's too), else `error`."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise error(message or f"The {what} must be switched on (True) or off (False).")


def choice(
    value,
    what: str,
    options: Iterable[str],
    *,
    message: str | None = None,
    error: type[LabError] = LabError,
) -> str:
    """`value` if it is one of `options`, else `error`("The {what} must be one of a, b, c.")."""
    options = tuple(options)
    if isinstance(value, str) and value in options:
        return value
    raise error(message or f"The {what} must be one of {', '.join(options)}.")
