"""Numbers read back from what the product stores (run folders, site files, checkpoints' metadata): a hand edit, or
a file laid out by another version, may have left a value of another kind there. Each helper gives the number, or
None where the value is not one of its kind, so a page shows "n/a" instead of raising."""

from __future__ import annotations

import math


def is_finite_number(value) -> bool:
    """An int or a float (not a bool) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def finite(value) -> float | None:
    """A finite number, else None."""
    return float(value) if is_finite_number(value) else None


def share(value) -> float | None:
    """A figure from 0 to 1 (a sensitivity, an AUC...), else None."""
    return float(value) if is_finite_number(value) and 0 <= value <= 1 else None


def whole(value, most: int = 2**31 - 1) -> int | None:
    """A whole number from 0 to ``most`` (an epoch, a step, a process id), else None."""
    return int(value) if is_finite_number(value) and 0 <= value <= most else None


def section(obj: dict, key: str) -> dict:
    """``obj[key]`` where it is a dict (a section of a stored report), else {}."""
    value = obj.get(key)
    return value if isinstance(value, dict) else {}
