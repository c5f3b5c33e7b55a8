"""Brute-force minimal perturbations for tiny networks: every activation pattern, every target."""

import itertools

import numpy as np
from scipy.optimize import linprog

from minadv.verify import QPSolution, regions_of_patterns, solve_clarabel


def _solve_lp(qp, p):
    """min ||v||_p (p = 1 or inf) s.t. A v <= b, box: an LP in (v, s) solved by scipy's HiGHS."""
    m, n = qp.A.shape
    if p == 1:  # s_i >= |v_i|, min sum s
        cost = np.r_[np.zeros(n), np.ones(n)]
        A = np.block([[qp.A, np.zeros((m, n))], [np.eye(n), -np.eye(n)], [-np.eye(n), -np.eye(n)]])
        bounds = [*zip(qp.lo, qp.hi), *[(0, None)] * n]
    else:  # s >= |v_i|, min s
        cost = np.r_[np.zeros(n), 1.0]
        A = np.block([[qp.A, np.zeros((m, 1))], [np.eye(n), -np.ones((n, 1))], [-np.eye(n), -np.ones((n, 1))]])
        bounds = [*zip(qp.lo, qp.hi), (0, None)]
    b = np.r_[qp.b, np.zeros(2 * n)]
    res = linprog(cost, A_ub=A, b_ub=b, bounds=bounds, method="highs")
    if res.status == 2:
        return QPSolution("infeasible", lower=np.inf)
    v = res.x[:n]
    return QPSolution("optimal", v, float(np.linalg.norm(v, ord=p)), float(res.fun))


def brute_force(net, x, p=2.0, solve=solve_clarabel):
    """min over all patterns and targets t != c of problem (3) (or its L1/Linf LP) on the
    pattern's polytope; returns (value, point) or (inf, None) when no target is reachable.
    solve: the L2 QP solver (e.g. qp.solve_daqp, exact to rounding, for 1e-9 comparisons)."""
    c = net.predict(x)
    H = sum(net.hidden_sizes)
    best, point = np.inf, None
    for bits in itertools.product([False, True], repeat=H):
        reg = regions_of_patterns(net, np.array(bits)[None])
        for t in range(net.n_outputs):
            if t == c:
                continue
            qp = reg.qp(0, x, c, t)
            sol = solve(qp) if p == 2 else _solve_lp(qp, p)
            if sol.status == "optimal" and sol.norm < best:
                best, point = sol.norm, x + sol.v
    return best, point
