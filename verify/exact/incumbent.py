"""The best verified adversarial point found so far (the exact solvers' upper bound)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..adversarial import check, push_across
from ..domain import lp_norm
from ..network import ReluNetwork


@dataclass(frozen=True)
class Incumbent:
    value: float = np.inf  # ||point - x||_p
    point: np.ndarray | None = None
    target: int = -1


def improve(net: ReluNetwork, x: np.ndarray, c: int, p: float, inc: Incumbent, candidate: np.ndarray,
            radius: float = np.inf) -> Incumbent:
    """inc, or the candidate (clipped to the box, pushed across the boundary if a hair short)
    when it passes the float64 check with a smaller norm, no larger than `radius`.

    radius: the search's domain ||delta||_p <= radius. A point outside it is no answer there:
    kept as the incumbent, it would stand as an adversarial example "within r" where the search
    proves there is none (the certification mode, `minimal_perturbation(upper_bound=r)`)."""
    z = push_across(net, x, np.clip(candidate, 0.0, 1.0), c)
    if z is None:
        return inc
    value = lp_norm(z - x, p)
    return Incumbent(value, z, check(net, z, c).target) if value < inc.value and value <= radius else inc
