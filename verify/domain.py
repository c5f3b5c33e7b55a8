"""The threat model: an image x in the box [0,1]^d, a norm p in {1, 2, inf}, an optional radius.

Every public entry point validates its input here, so bad shapes, pixels outside
[0,1] and unknown norms fail with one clear message.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

import numpy as np

from .network import InputError, ReluNetwork

NORMS = {"1": 1.0, "2": 2.0, "inf": np.inf}
E = TypeVar("E", bound=Enum)


def parse_norm(p) -> float:
    """1, 2 or inf from 1 / "1" / 2 / "l2" / "inf" / "linf" / np.inf; anything else is an error."""
    key = str(p).lower().removeprefix("l")
    key = {"1.0": "1", "2.0": "2", "infinity": "inf"}.get(key, key)
    if key not in NORMS:
        raise InputError(f"unknown norm {p!r}: use 1, 2 or inf")
    return NORMS[key]


def choice(kind: type[E], value: E | str, what: str) -> E:
    """`value` as a member of the enum `kind` (given as the member or its value); anything else is an
    InputError naming the choices."""
    try:
        return kind(value)
    except ValueError:
        raise InputError(f"unknown {what} {value!r}; use one of {', '.join(m.value for m in kind)}") from None


def box_min(q: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """min of q . z over the box lo <= z <= hi (along the last axis): q_i lo_i where q_i > 0,
    q_i hi_i where q_i < 0, and nothing where q_i = 0 (also when a bound there is infinite)."""
    with np.errstate(invalid="ignore"):
        return np.where(q > 0, q * lo, np.where(q < 0, q * hi, 0.0)).sum(axis=-1)


def norm_name(p: float) -> str:
    return {1.0: "1", 2.0: "2"}.get(float(p), "inf")


def lp_norm(delta: np.ndarray, p: float) -> float:
    return float(np.linalg.norm(np.ravel(delta), ord=p))


def check_image(net: ReluNetwork, x) -> np.ndarray:
    """x as a flat float64 vector of the network's input size, every pixel in [0, 1]."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.size != net.n_inputs:
        raise InputError(f"image has {arr.size} values (shape {arr.shape}); the network takes {net.n_inputs}")
    arr = arr.reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise InputError("image contains NaN or infinite values")
    if arr.min() < 0.0 or arr.max() > 1.0:
        raise InputError(f"image values must lie in [0, 1]; got [{arr.min():.4g}, {arr.max():.4g}]")
    return arr


@dataclass(frozen=True)
class Domain:
    """{x + delta : lo <= x + delta <= hi, ||delta||_p <= radius}; lo = 0, hi = 1 for images, or
    per-pixel arrays (an input box, e.g. a VNN-LIB property's, with x any point inside it)."""

    x: np.ndarray
    norm: float = 2.0
    radius: float = np.inf
    lo: float | np.ndarray = 0.0
    hi: float | np.ndarray = 1.0

    @classmethod
    def of(cls, net: ReluNetwork, x, norm=2, radius: float = np.inf) -> Domain:
        if not radius > 0:
            raise InputError(f"radius must be positive, got {radius}")
        return cls(check_image(net, x), parse_norm(norm), float(radius))

    @property
    def delta_lo(self) -> np.ndarray:
        """Lower bound of delta from the box (and from the radius for p = inf)."""
        lo = self.lo - self.x
        return np.maximum(lo, -self.radius) if self.norm == np.inf else lo

    @property
    def delta_hi(self) -> np.ndarray:
        hi = self.hi - self.x
        return np.minimum(hi, self.radius) if self.norm == np.inf else hi
