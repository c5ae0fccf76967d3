"""Checks for the boundaries (configs, ``train_*`` entry points, loaders): each raises
``ValueError("<name>: expected ..., got ...")``. They read Python numbers only, never tensors."""

from __future__ import annotations

import math
import numbers


def _real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def check_positive(name: str, x) -> float:
    """A finite number > 0."""
    if not (_real(x) and x > 0):
        raise ValueError(f"{name}: expected a finite number > 0, got {x!r}")
    return x


def check_nonnegative(name: str, x) -> float:
    """A finite number >= 0."""
    if not (_real(x) and x >= 0):
        raise ValueError(f"{name}: expected a finite number >= 0, got {x!r}")
    return x


def check_int(name: str, x, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (bools and floats are rejected)."""
    if not (isinstance(x, numbers.Integral) and not isinstance(x, bool) and x >= minimum):
        raise ValueError(f"{name}: expected an int >= {minimum}, got {x!r}")
    return x


def check_instance(name: str, x, cls) -> object:
    """An instance of ``cls``."""
    if not isinstance(x, cls):
        raise ValueError(f"{name}: expected a {cls.__name__}, got {type(x).__name__}")
    return x
