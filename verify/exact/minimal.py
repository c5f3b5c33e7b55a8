"""The one call for exact minimal adversarial perturbations: `minimal_perturbation`."""

from __future__ import annotations

import time
from enum import StrEnum

import numpy as np

from ..adversarial import TOL, verified_result
from ..domain import check_image, choice, parse_norm
from ..network import InputError, ReluNetwork
from ..qp import QPStatus, regions_at, solve_norm
from ..result import Result, Status, Stop
from .bnb import BranchAndBound, Finish, NodeBounds, NodeSolver
from .incumbent import Incumbent, improve
from .mip_search import MipSearch


class Method(StrEnum):
    """The exact scheme."""

    AUTO = "auto"  # bnb for L2, mip otherwise (the faster by measurement)
    BNB = "bnb"  # branch and bound over ReLU splits with convex node QPs
    MIP = "mip"  # the Tjeng MILP (Pyomo + HiGHS); for L2 a loop of MILPs over tangent cuts


class Tightening(StrEnum):
    """How the MIP scheme bounds layers >= 2 (the first layer is always exact over box cap ball)."""

    CROWN = "crown"  # back-substitution only
    LP = "lp"  # plus one LP per unstable neuron
    MIP = "mip"  # plus a short MILP per unstable neuron


def check_options(p: float, time_limit: float = 300.0, rel_gap: float = 1e-4, method: Method | str = Method.AUTO,
                  tightening: Tightening | str = Tightening.LP, finish: Finish | str = Finish.QP,
                  decide_after: float = 30.0) -> tuple[Method, Tightening, Finish]:
    """The choices as enums; bad options are a clear InputError (called before any work is done)."""
    if not time_limit > 0:
        raise InputError(f"time_limit must be positive, got {time_limit}")
    if not 0 < rel_gap < 1:
        raise InputError(f"rel_gap must lie in (0, 1), got {rel_gap}")
    finish = choice(Finish, finish, "finish")
    if finish == Finish.DECIDE and p != 2:
        raise InputError("finish 'decide' hands L2 nodes to the split search; choose norm 2")
    if not decide_after >= 0:
        raise InputError(f"decide_after must be >= 0 seconds, got {decide_after}")
    return choice(Method, method, "exact method"), choice(Tightening, tightening, "tightening"), finish


def minimal_perturbation(
    net: ReluNetwork,
    x,
    norm=2,
    *,
    upper_bound=None,
    time_limit: float = 300.0,
    rel_gap: float = 1e-4,
    method: Method | str = Method.AUTO,
    tightening: Tightening | str = Tightening.LP,
    node_solver: NodeSolver | str = NodeSolver.REDUCED,
    node_bounds: NodeBounds | str = NodeBounds.AUTO,
    finish: Finish | str = Finish.QP,
    decide_after: float = 30.0,
) -> Result:
    """Proven minimal ||delta||_p (p in {1, 2, inf}) with x + delta in [0,1]^d and
    max_{t != c} f_t(x+delta) - f_c(x+delta) >= 0, c the network's decision on x.

    method: 'bnb' (branch-and-bound over ReLU splits with QP node bounds, LPs for L1 / Linf),
    'mip' (the Tjeng MILP in Pyomo + HiGHS; for L2 a loop of MILPs over an outer approximation),
    'auto' (bnb for every norm: the faster by measurement, see docs/performance-log.md).
    tightening (mip only): bounds of layers >= 2 by 'crown' back-substitution, plus per-neuron
    'lp' or short 'mip' solves. The first layer is always exact over box cap ball.
    node_solver, node_bounds (bnb, L2 only): see `NodeSolver`, `NodeBounds`.
    finish, decide_after (bnb, L2 only): `Finish.DECIDE` hands the open nodes to the split
    search after decide_after seconds (`exact.bnb`).
    upper_bound: an adversarial point (array, e.g. from an attack; verified here and used as
    the first incumbent) or a radius r (float: the domain becomes ||delta||_p <= r, and `robust`
    means no adversarial example within r). Problem (3) on Q(x) also offers an incumbent.
    Status: `optimal` when upper - lower <= rel_gap * upper; `time_limit` with both bounds;
    `robust`; `error` (solver failure, or a final point that fails the float64 check).
    """
    x = check_image(net, x)
    p = parse_norm(norm)
    method, tightening, finish = check_options(p, time_limit, rel_gap, method, tightening, finish, decide_after)
    node_solver = choice(NodeSolver, node_solver, "node solver")
    node_bounds = choice(NodeBounds, node_bounds, "node bounds")
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
    region = regions_at(net, x)
    for t in net.other_classes(c):  # problem (3) on Q(x); an LP stops once above the incumbent
        sol = solve_norm(region.qp(0, x, c, t), p, cutoff=inc.value)
        if sol.status == QPStatus.OPTIMAL:
            inc = improve(net, x, c, p, inc, x + sol.v, radius)
    scheme = Method.MIP if method == Method.MIP else Method.BNB
    if scheme == Method.BNB:
        search = BranchAndBound(net, x, c, p, incumbent=inc, radius=radius, rel_gap=rel_gap, node_solver=node_solver,
                                node_bounds=node_bounds, finish=finish, decide_after=decide_after)
    else:
        search = MipSearch(net, x, c, p, incumbent=inc, radius=radius, rel_gap=rel_gap, tightening=tightening)
    lower, reason = search.run(time_limit - (time.perf_counter() - start))
    message = f"scheme={scheme}"
    if scheme == Method.BNB and search.split_nodes:
        message += f"; split_nodes={search.split_nodes}"
    return _result(net, x, c, p, search.inc, lower, reason, radius, rel_gap, search.counts, message, start)


# the answer of a search that stopped (Stop) without any adversarial point in the domain ...
WITHOUT_POINT = {Stop.DONE: Status.ROBUST, Stop.TIME_LIMIT: Status.TIME_LIMIT, Stop.ERROR: Status.ERROR}
# ... and with one, but the gap still open (DONE should have closed it: something went wrong)
GAP_OPEN = {Stop.DONE: Status.ERROR, Stop.TIME_LIMIT: Status.TIME_LIMIT, Stop.ERROR: Status.ERROR}


def _result(net, x, c, p, inc: Incumbent, lower, reason: Stop, radius, rel_gap, counts, message, start) -> Result:
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
                          upper=float(upper), counts=counts, message=message)
    res.time_s = time.perf_counter() - start
    return res
