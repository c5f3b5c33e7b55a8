"""The one call for exact minimal adversarial perturbations: `minimal_perturbation`."""

from __future__ import annotations

import time

import numpy as np

from .adversarial import TOL, verified_result
from .bnb import BranchAndBound
from .domain import check_image, parse_norm
from .incumbent import Incumbent, improve
from .mip_exact import MipSearch
from .network import InputError, ReluNetwork
from .polytope import region_qp
from .qp import QPStatus, solve_norm
from .result import Result, Status, Stop

METHODS = ("auto", "bnb", "mip")
TIGHTENING = ("crown", "lp", "mip")


def check_options(p: float, time_limit: float = 300.0, rel_gap: float = 1e-4, method: str = "auto",
                  tightening: str = "lp") -> None:
    """Refuse bad options with a clear InputError (called before any work is done)."""
    if not time_limit > 0:
        raise InputError(f"time_limit must be positive, got {time_limit}")
    if not 0 < rel_gap < 1:
        raise InputError(f"rel_gap must lie in (0, 1), got {rel_gap}")
    if method not in METHODS:
        raise InputError(f"unknown exact method {method!r}; use one of {', '.join(METHODS)}")
    if tightening not in TIGHTENING:
        raise InputError(f"unknown tightening {tightening!r}; use one of {', '.join(TIGHTENING)}")


def minimal_perturbation(
    net: ReluNetwork,
    x,
    norm=2,
    *,
    upper_bound=None,
    time_limit: float = 300.0,
    rel_gap: float = 1e-4,
    method: str = "auto",
    tightening: str = "lp",
) -> Result:
    """Proven minimal ||delta||_p (p in {1, 2, inf}) with x + delta in [0,1]^d and
    max_{t != c} f_t(x+delta) - f_c(x+delta) >= 0, c the network's decision on x.

    method: 'bnb' (branch-and-bound over ReLU splits with QP node bounds, LPs for L1 / Linf),
    'mip' (the Tjeng MILP in Pyomo + HiGHS; for L2 a loop of MILPs over an outer approximation),
    'auto' (bnb for every norm: the faster by measurement, see docs/performance-log.md).
    tightening (mip only): bounds of layers >= 2 by 'crown' back-substitution, plus per-neuron
    'lp' or short 'mip' solves. The first layer is always exact over box cap ball.
    upper_bound: an adversarial point (array, e.g. from an attack; verified here and used as
    the first incumbent) or a radius r (float: the domain becomes ||delta||_p <= r, and `robust`
    means no adversarial example within r). Problem (3) on Q(x) also offers an incumbent.
    Status: `optimal` when upper - lower <= rel_gap * upper; `time_limit` with both bounds;
    `robust`; `error` (solver failure, or a final point that fails the float64 check).
    """
    x = check_image(net, x)
    p = parse_norm(norm)
    check_options(p, time_limit, rel_gap, method, tightening)
    start = time.perf_counter()
    c = net.predict(x)
    if net.margin(x, c) >= -TOL:  # x itself lies on the decision boundary
        return verified_result(net, x, c, x, method="mip", norm=p, status=Status.OPTIMAL, lower=0.0, upper=0.0,
                               time_s=time.perf_counter() - start)
    radius, inc = np.inf, Incumbent()
    if upper_bound is not None and np.ndim(upper_bound) == 0:
        radius = float(upper_bound)
        if not radius > 0:
            raise InputError(f"upper_bound radius must be positive, got {radius}")
    elif upper_bound is not None:
        inc = improve(net, x, c, p, inc, check_image(net, upper_bound))
    for sol in region_qp(net, x, c, solve=lambda qp: solve_norm(qp, p)).values():
        if sol.status == QPStatus.OPTIMAL:
            inc = improve(net, x, c, p, inc, x + sol.v, radius)
    scheme = "mip" if method == "mip" else "bnb"
    if scheme == "bnb":
        search = BranchAndBound(net, x, c, p, incumbent=inc, radius=radius, rel_gap=rel_gap)
    else:
        search = MipSearch(net, x, c, p, incumbent=inc, radius=radius, rel_gap=rel_gap, tightening=tightening)
    lower, reason = search.run(time_limit - (time.perf_counter() - start))
    return _result(net, x, c, p, search.inc, lower, reason, radius, rel_gap, search.counts, scheme, start)


# the answer of a search that stopped (Stop) without any adversarial point in the domain ...
WITHOUT_POINT = {Stop.DONE: Status.ROBUST, Stop.TIME_LIMIT: Status.TIME_LIMIT, Stop.ERROR: Status.ERROR}
# ... and with one, but the gap still open (DONE should have closed it: something went wrong)
GAP_OPEN = {Stop.DONE: Status.ERROR, Stop.TIME_LIMIT: Status.TIME_LIMIT, Stop.ERROR: Status.ERROR}


def _result(net, x, c, p, inc: Incumbent, lower, reason: Stop, radius, rel_gap, counts, scheme, start) -> Result:
    upper = inc.value
    if inc.point is None:
        status = WITHOUT_POINT[reason]
        lower = radius if status == Status.ROBUST else lower
    elif upper - lower <= rel_gap * upper:
        status = Status.OPTIMAL
    else:
        status = GAP_OPEN[reason]
    lower = min(lower, upper)
    res = verified_result(net, x, c, inc.point, method="mip", norm=p, status=status, lower=float(lower),
                          upper=float(upper), counts=counts, message=f"scheme={scheme}")
    res.time_s = time.perf_counter() - start
    return res
