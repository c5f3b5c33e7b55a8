"""The float64 adversarial check that every method's point goes through.

x_adv is adversarial for class c when x_adv in [0,1]^d and
margin = max_{l != c} f_l(x_adv) - f_c(x_adv) >= -TOL (the boundary counts, as in
problem (1) of the paper); the strict variant asks margin > 0 (a flipped argmax).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .domain import lp_norm
from .network import ReluNetwork
from .result import Counts, Result, Status

TOL = 1e-9


@dataclass(frozen=True)
class Verdict:
    margin: float
    target: int  # the class that beats c (argmax over l != c)
    in_box: bool

    def adversarial(self, strict: bool = False) -> bool:
        return self.in_box and (self.margin > 0 if strict else self.margin >= -TOL)


def check(net: ReluNetwork, x_adv: np.ndarray, c: int) -> Verdict:
    z = np.asarray(x_adv, dtype=np.float64).reshape(-1)
    logits = net.forward(z)
    others = logits.copy()
    others[c] = -np.inf
    t = int(np.argmax(others))
    in_box = bool(np.all(np.isfinite(z)) and z.min() >= 0.0 and z.max() <= 1.0)
    return Verdict(float(logits[t] - logits[c]), t, in_box)


def push_across(
    net: ReluNetwork, x: np.ndarray, x_adv: np.ndarray, c: int, strict: bool = False, max_scale: float = 1.05
) -> np.ndarray | None:
    """Smallest tried s >= 1 with clip(x + s (x_adv - x), 0, 1) adversarial, else None.

    For points a hair short of the boundary (float32 attacks, solver tolerances);
    s runs over 1 and 1 + 1e-12 * 4^k up to max_scale.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    delta = np.asarray(x_adv, dtype=np.float64).reshape(-1) - x
    scales = [1.0] + [1.0 + 1e-12 * 4.0**k for k in range(40) if 1e-12 * 4.0**k <= max_scale - 1.0]
    for s in scales:
        z = np.clip(x + s * delta, 0.0, 1.0)
        if check(net, z, c).adversarial(strict):
            return z
    return None


def verified_result(
    net: ReluNetwork,
    x: np.ndarray,
    c: int,
    x_adv: np.ndarray | None,
    *,
    method: str,
    norm: float,
    status: Status,
    strict: bool = False,
    **fields,
) -> Result:
    """A Result for candidate point x_adv after the float64 check.

    The candidate is clipped to the box and, if it misses the boundary by a hair,
    pushed across (`push_across`); value is the norm of the point actually returned.
    A candidate that fails stays out of the record: status `failed` for attacks,
    `error` for exact methods.
    """
    fields.setdefault("counts", Counts())
    fields["x"] = np.array(x, dtype=np.float64).reshape(-1)
    if x_adv is None:
        return Result(method, norm, status, c, **fields)
    z = push_across(net, x, x_adv, c, strict=strict)
    if z is None:
        v = check(net, np.clip(x_adv, 0, 1), c)
        bad = Status.FAILED if status in (Status.FOUND, Status.FAILED) else Status.ERROR
        msg = f"candidate failed the float64 check (margin {v.margin:.3g})"
        fields["message"] = "; ".join(m for m in (fields.get("message", ""), msg) if m)
        return Result(method, norm, bad, c, **fields)
    v = check(net, z, c)
    fields.setdefault("target", v.target)
    return Result(method, norm, status, c, value=lp_norm(z - x, norm), x_adv=z, margin=v.margin, **fields)
