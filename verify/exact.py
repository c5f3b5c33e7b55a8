"""The one call for exact minimal adversarial perturbations: `minimal_perturbation`."""

from __future__ import annotations

import time

import numpy as np

from .adversarial import TOL, verified_result
from .bnb import BranchAndBound, Incumbent
from .domain import check_image, lp_norm, parse_norm
from .network import InputError, ReluNetwork
from .polytope import region_qp
from .qp import solve_daqp
from .result import Result, Status

METHODS = ("auto", "bnb", "mip")


def _validate(time_limit: float, rel_gap: float, method: str) -> None:
    if not time_limit > 0:
        raise InputError(f"time_limit must be positive, got {time_limit}")
    if not 0 < rel_gap < 1:
        raise InputError(f"rel_gap must lie in (0, 1), got {rel_gap}")
    if method not in METHODS:
        raise InputError(f"unknown exact method {method!r}; use one of {', '.join(METHODS)}")


def minimal_perturbation(
    net: ReluNetwork,
    x,
    norm=2,
    *,
    upper_bound=None,
    time_limit: float = 300.0,
    rel_gap: float = 1e-4,
    method: str = "auto",
) -> Result:
    """Proven minimal ||delta||_p with x + delta in [0,1]^d and max_{t != c} f_t - f_c >= 0 (c = decision on x).

    upper_bound: an adversarial point (array, e.g. from an attack; verified here and used as
    the starting incumbent) or a radius r (float: the domain becomes ||delta||_p <= r, and
    `robust` means no adversarial example within r). Without it, problem (3) on Q(x) gives
    the first incumbent when it can.
    Status: `optimal` when (upper - lower) <= rel_gap * upper; `time_limit` with both bounds;
    `robust`; `error` when the final point fails the float64 check.
    """
    x = check_image(net, x)
    p = parse_norm(norm)
    _validate(time_limit, rel_gap, method)
    start = time.perf_counter()
    c = net.predict(x)
    if net.margin(x, c) >= -TOL:  # x itself lies on the decision boundary
        return verified_result(net, x, c, x, method="mip", norm=p, status=Status.OPTIMAL, lower=0.0, upper=0.0,
                               time_s=time.perf_counter() - start)
    radius = np.inf
    inc = Incumbent()
    if upper_bound is not None and np.ndim(upper_bound) == 0:
        radius = float(upper_bound)
        if not radius > 0:
            raise InputError(f"upper_bound radius must be positive, got {radius}")
    elif upper_bound is not None:
        inc = _incumbent(net, x, c, check_image(net, upper_bound), p, inc)
    if p != 2.0 or method == "mip":
        raise NotImplementedError("the MIP path (L1, Linf and method='mip') is not built yet")
    search = BranchAndBound(net, x, c, incumbent=inc, radius=radius, rel_gap=rel_gap)
    for t, sol in region_qp(net, x, c, solve=solve_daqp).items():
        if sol.status == "optimal":
            search.offer(x + sol.v, t)
    out = search.run(time_limit - (time.perf_counter() - start))
    return _result(net, x, c, p, out.incumbent, out.lower, out.timed_out, radius, rel_gap, out.counts, "bnb", start)


def _incumbent(net, x, c, point, p, inc: Incumbent) -> Incumbent:
    from .adversarial import check, push_across

    z = push_across(net, x, point, c)
    if z is None:
        return inc
    value = lp_norm(z - x, p)
    return Incumbent(value, z, check(net, z, c).target) if value < inc.value else inc


def _result(net, x, c, p, inc, lower, timed_out, radius, rel_gap, counts, scheme, start) -> Result:
    upper = inc.value
    if inc.point is None:
        status = Status.TIME_LIMIT if timed_out else Status.ROBUST
        lower = lower if timed_out else radius
    else:
        status = Status.OPTIMAL if upper - lower <= rel_gap * upper else Status.TIME_LIMIT
    res = verified_result(net, x, c, inc.point, method="mip", norm=p, status=status, lower=float(lower),
                          upper=float(upper), counts=counts, message=f"scheme={scheme}")
    res.time_s = time.perf_counter() - start
    if res.x_adv is not None:
        res.upper = max(res.upper, res.value)
    return res
