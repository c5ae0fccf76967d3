"""Small input checks shared by the modules: each raises ``ValueError("<name>: expected ..., got ...")``.

Shape and dtype checks only read metadata, so they are free on any device (no GPU sync). Value
checks (``check_positive`` and friends) are for Python numbers such as hyper-parameters.
"""

from __future__ import annotations

import math
import numbers

import torch


def check_tensor(name: str, t, ndim: int | None = None, what: str = "") -> torch.Tensor:
    """``t`` is a torch.Tensor (with ``ndim`` dimensions, described by ``what``, e.g. "(B, T)")."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor {what}".rstrip() + f", got {type(t).__name__}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name}: expected {what or f'{ndim} dimensions'}, got shape {tuple(t.shape)}")
    return t


def check_floating(name: str, t, ndim: int | None = None, what: str = "") -> torch.Tensor:
    """A floating-point tensor (float16, bfloat16, float32, float64)."""
    check_tensor(name, t, ndim, what)
    if not t.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {t.dtype}")
    return t


def check_token_ids(name: str, t, ndim: int | None = None, what: str = "") -> torch.Tensor:
    """An integer tensor of token ids (or labels)."""
    check_tensor(name, t, ndim, what)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name}: expected integer token ids (torch.long), got {t.dtype}")
    return t


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_positive(name: str, x) -> float:
    """A finite number > 0."""
    if not (_is_real(x) and math.isfinite(x) and x > 0):
        raise ValueError(f"{name}: expected a finite number > 0, got {x!r}")
    return x


def check_nonnegative(name: str, x) -> float:
    """A finite number >= 0."""
    if not (_is_real(x) and math.isfinite(x) and x >= 0):
        raise ValueError(f"{name}: expected a finite number >= 0, got {x!r}")
    return x


def check_int(name: str, x, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (bools and floats are rejected)."""
    if not (isinstance(x, numbers.Integral) and not isinstance(x, bool) and x >= minimum):
        raise ValueError(f"{name}: expected an int >= {minimum}, got {x!r}")
    return x


def check_instance(name: str, x, cls, what: str | None = None) -> object:
    """An instance of ``cls``."""
    if not isinstance(x, cls):
        raise ValueError(f"{name}: expected {what or getattr(cls, '__name__', cls)}, got {type(x).__name__}")
    return x


def check_str_list(name: str, xs, allow_empty: bool = False) -> list:
    """A sequence of strings (a single string is rejected: it would be iterated character-wise)."""
    if isinstance(xs, (str, bytes)) or not hasattr(xs, "__len__"):
        raise ValueError(f"{name}: expected a list of strings, got {type(xs).__name__}")
    if not allow_empty and len(xs) == 0:
        raise ValueError(f"{name}: expected at least one string, got 0")
    return xs


def check_module(name: str, model) -> torch.nn.Module:
    return check_instance(name, model, torch.nn.Module, "a torch.nn.Module")
