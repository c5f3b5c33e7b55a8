"""Brute-force minimal perturbations for tiny networks: every activation pattern, every target."""

import itertools

import numpy as np
from scipy.optimize import linprog

from minadv.verify import NeuronState, QPSolution, regions_of_patterns, solve_clarabel


def _solve_lp(qp, p):
    """min ||v||_p (p = 1 or inf) s.t. A v <= b, box: an LP in (v, s) solved by scipy's HiGHS."""
    m, n = qp.A.shape
    if p == 1:  # s_i >= |v_i|, min sum s
        cost = np.r_[np.zeros(n), np.ones(n)]
        A = np.block([[qp.A, np.zeros((m, n))], [np.eye(n), -np.eye(n)], [-np.eye(n), -np.eye(n)]])
        bounds = [*zip(qp.lo, qp.hi, strict=True), *[(0, None)] * n]
    else:  # s >= |v_i|, min s
        cost = np.r_[np.zeros(n), 1.0]
        A = np.block([[qp.A, np.zeros((m, 1))], [np.eye(n), -np.ones((n, 1))], [-np.eye(n), -np.ones((n, 1))]])
        bounds = [*zip(qp.lo, qp.hi, strict=True), (0, None)]
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


def interval_signs(net, lower, upper):
    """Per hidden neuron: +1 / -1 when interval arithmetic proves it active / inactive on the
    box, 0 when it may switch (a deliberately simple, independent bound)."""
    lo, hi, signs = np.asarray(lower, float), np.asarray(upper, float), []
    for W, b in list(zip(net.weights, net.biases, strict=True))[:-1]:
        Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
        l, u = Wp @ lo + Wn @ hi + b, Wp @ hi + Wn @ lo + b
        signs.append(np.where(l >= 0, 1, np.where(u <= 0, -1, 0)))
        lo, hi = np.maximum(l, 0), np.maximum(u, 0)
    return np.concatenate(signs)


def max_margin_in_box(net, lower, upper, label, targets=None, fixed=None):
    """max over z in [lower, upper] and t != label (or t in targets) of f_t(z) - f_label(z): an LP on every
    activation pattern's polytope (scipy's HiGHS), enumerating only the neurons interval
    arithmetic leaves unstable; -inf if no pattern meets the box. fixed: {hidden neuron (flat
    index): active?} restricts z to where those neurons have that sign."""
    signs = interval_signs(net, lower, upper)
    for j, on in (fixed or {}).items():
        if signs[j] == (-1 if on else 1):
            return -np.inf
        signs[j] = 1 if on else -1
    free = np.flatnonzero(signs == 0)
    x = 0.5 * (np.asarray(lower) + np.asarray(upper))
    best = -np.inf
    for bits in itertools.product([False, True], repeat=len(free)):
        active = signs > 0
        active[free] = bits
        reg = regions_of_patterns(net, active[None])
        for t in range(net.n_outputs) if targets is None else targets:
            if t == label:
                continue
            qp = reg.qp(0, x, label, t, box=(lower, upper))
            A, b, w = qp.A[:-1], qp.b[:-1], -qp.A[-1]  # last row: -w delta <= w x + w0
            res = linprog(-w, A_ub=A, b_ub=b, bounds=list(zip(qp.lo, qp.hi, strict=True)), method="highs")
            if res.status == 0:
                best = max(best, float(w @ res.x + qp.b[-1]))
    return best


def node_optimum(net, x, c, t, states, p=2.0, solve=solve_clarabel):
    """min ||delta||_p of target t over the points whose activation pattern agrees with `states`
    (per hidden layer, `NeuronState`s: free ones either way): problem (3) on every completion."""
    fixed = np.concatenate(states)
    best = np.inf
    free = fixed == NeuronState.FREE
    for bits in itertools.product([False, True], repeat=int(free.sum())):
        pattern = fixed == NeuronState.ACTIVE
        pattern[free] = bits
        qp = regions_of_patterns(net, pattern[None]).qp(0, x, c, t)
        sol = solve(qp) if p == 2 else _solve_lp(qp, p)
        if sol.status == "optimal":
            best = min(best, sol.norm)
    return best
