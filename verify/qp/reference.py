"""Minimum-norm problems over a polyhedron intersected with a box.

    minimise ||v[:n]||_p  s.t.  A v <= b,  lo <= v <= hi          (p = 2: a convex QP)

v = delta, or (delta, relaxed ReLU outputs) in the branch-and-bound's nodes, where only
the first n variables (delta) enter the norm. For p = 2 the Lagrangian dual of the
squared problem,

    q(lam) = sum_i min_{lo_i <= v_i <= hi_i} (w_i v_i^2 + (A^T lam)_i v_i) - lam^T b,
    w_i = 1 (i < n) or 0,

is explicit for every lam >= 0, so `dual_bound` turns any multipliers (from any solver,
at any accuracy) into a rigorous lower bound: solver tolerances never leak into a bound.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from ctypes import c_int
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import clarabel
import daqp
import numpy as np
import scipy.sparse as sp

from ..domain import box_min

T = TypeVar("T")


@dataclass(frozen=True)
class BoxQP:
    """min ||v[:n]||_p s.t. A v <= b, lo <= v <= hi; n defaults to every variable."""

    A: np.ndarray
    b: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n: int | None = None

    @property
    def n_obj(self) -> int:
        return self.A.shape[1] if self.n is None else self.n

    def violation(self, v: np.ndarray) -> float:
        """Largest violation of A v <= b and of the box at v."""
        rows = np.max(self.A @ v - self.b, initial=0.0)
        return float(max(rows, np.max(self.lo - v, initial=0.0), np.max(v - self.hi, initial=0.0)))


class QPStatus(StrEnum):
    """How a QP (or the LP for p = 1, inf) ended."""

    OPTIMAL = "optimal"  # v solves it; lower from the dual at the solver's multipliers
    INFEASIBLE = "infeasible"  # certified (Farkas, or the solver's own verdict for the LPs)
    ERROR = "error"  # the solver failed: no point, lower = 0 (nothing known)


@dataclass(frozen=True)
class QPSolution:
    """status (QPStatus); v the minimiser; norm = ||v[:n]||_p;
    lower: a rigorous lower bound on the optimal norm (inf when infeasibility is certified)."""

    status: QPStatus
    v: np.ndarray | None = None
    norm: float = np.inf
    lower: float = 0.0
    lam: np.ndarray | None = None


def dual_bound(qp: BoxQP, lam: np.ndarray) -> float:
    """q(lam) for lam >= 0 (negative entries are clipped): a lower bound on min ||v[:n]||_2^2."""
    lam = np.maximum(np.asarray(lam, dtype=np.float64), 0.0)
    q = qp.A.T @ lam
    n = qp.n_obj
    v = np.clip(-0.5 * q[:n], qp.lo[:n], qp.hi[:n])
    val = float(v @ v + q[:n] @ v)
    return val + float(box_min(q[n:], qp.lo[n:], qp.hi[n:])) - float(lam @ qp.b)


def norm_dual_bound(qp: BoxQP, lam: np.ndarray, p: float) -> float:
    """A rigorous lower bound on min ||v[:n]||_p from multipliers lam >= 0 of the rows A v <= b:

        min_{v in box} ||v[:n]||_p + lam^T (A v - b)   (weak duality; separable in closed form)

    p = 2: sqrt of `dual_bound`. p = 1: per coordinate min of |t| + q_i t over t in {lo_i, 0, hi_i}.
    p = inf: min over tau >= 0 of tau - sum_i |q_i| min(room_i, tau) (room_i: how far delta_i can go
    against the sign of q_i), a convex piecewise-linear function minimised at tau = 0 or a room_i.
    Needs lo <= 0 <= hi on the first n variables (true for delta: x lies in its own box).
    """
    if p == 2:
        return float(np.sqrt(max(dual_bound(qp, lam), 0.0)))
    lam = np.maximum(np.asarray(lam, dtype=np.float64), 0.0)
    q = qp.A.T @ lam
    n = qp.n_obj
    qd, lo, hi = q[:n], qp.lo[:n], qp.hi[:n]
    rest = float(box_min(q[n:], qp.lo[n:], qp.hi[n:])) - float(lam @ qp.b)
    if p == 1:
        return float(np.minimum(0.0, np.minimum(lo * (qd - 1.0), hi * (1.0 + qd))).sum()) + rest
    w = np.abs(qd)
    room = np.where(qd > 0, -lo, hi)
    order = np.argsort(room)
    r, w = room[order], w[order]
    # phi(r_j) = r_j - sum_{i <= j} w_i r_i - r_j * sum_{i > j} w_i, and phi(0) = 0
    below = np.cumsum(w * r)
    above = w.sum() - np.cumsum(w)
    phi = r - below - r * above
    return float(min(0.0, phi.min(initial=0.0))) + rest


def certifies_infeasible(qp: BoxQP, y: np.ndarray) -> bool:
    """Farkas: y >= 0 with min_{v in box} y^T (A v - b) > 0 proves {A v <= b} has no point in the box.

    The minimum is computed in float64, so it must also exceed the rounding error of that
    computation, at most gamma ((|A|^T y)^T max(|lo|, |hi|) + y^T |b|) with gamma = (m + N + 2) u
    (u = 2^-53; the standard bound for dot products of that length), as well as 1e-12 |y^T b|:
    a vector from a solver that stops at its tolerance is accepted only with a margin the
    arithmetic cannot fake."""
    y = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    q = qp.A.T @ y
    low = box_min(q, qp.lo, qp.hi) - y @ qp.b
    if not np.isfinite(low):
        return False
    m, N = qp.A.shape
    reach = np.maximum(np.abs(qp.lo), np.abs(qp.hi))
    reach = np.where(np.isfinite(reach), reach, 0.0)  # an unbounded pixel counts only where q = 0 exactly
    gamma = (m + N + 2) * np.finfo(np.float64).eps / 2
    rounding = gamma * (float(np.abs(qp.A).T @ y @ reach) + float(y @ np.abs(qp.b)))
    return bool(low > max(rounding, 1e-12 * max(1.0, float(np.abs(y @ qp.b)))))


def farkas_lp(qp: BoxQP) -> np.ndarray | None:
    """A Farkas vector for {A v <= b} in the box from the phase-1 LP (HiGHS, through scipy), or None.

        min t  s.t.  A v - t n <= b,  lo <= v <= hi,  t >= 0      (n_j = ||a_j||, the rows' scale)

    is always feasible; its optimum t* is the least, over the box, of the largest violation of a
    row in distance ((a_j v - b_j) / n_j), 0 when the rows meet the box. Its dual, max over y >= 0 with y^T n <= 1 of
    min_{v in box} y^T (A v - b), equals t*, so at t* > 0 the LP's row duals y are a Farkas
    vector. HiGHS works to its tolerances, so y is returned only when `certifies_infeasible`
    confirms it in float64; None means "no certificate", not "feasible". The objective of qp
    plays no part, so any BoxQP (also with zero-cost variables) can be tested. Without HiGHS's
    presolve (dense rows: it finds nothing to remove and costs time).
    """
    from scipy.optimize import linprog

    m, N = qp.A.shape
    if m == 0:
        return None
    cost = np.r_[np.zeros(N), 1.0]
    rows = np.c_[qp.A, -np.linalg.norm(qp.A, axis=1)]
    bounds = np.c_[np.r_[qp.lo, 0.0], np.r_[qp.hi, np.inf]]
    res = linprog(cost, A_ub=rows, b_ub=qp.b, bounds=bounds, method="highs", options={"presolve": False})
    if res.status != 0 or res.fun <= 0.0:
        return None
    y = np.maximum(-res.ineqlin.marginals, 0.0)  # scipy: d(objective)/d(b_ub) <= 0
    return y if certifies_infeasible(qp, y) else None


def once_per_array(build: Callable[[np.ndarray], T]) -> Callable[[np.ndarray], T]:
    """build(a), computed once per array object a and kept while a lives (a weak reference drops
    the entry with the array): for products of weight matrices that every QP of a network reuses."""
    cache: dict[int, tuple[weakref.ref, T]] = {}

    def get(a: np.ndarray) -> T:
        hit = cache.get(id(a))
        if hit is None or hit[0]() is not a:
            key = id(a)
            hit = cache[key] = (weakref.ref(a, lambda _: cache.pop(key, None)), build(a))
        return hit[1]

    return get


CLARABEL_INFEASIBLE = ("PrimalInfeasible", "AlmostPrimalInfeasible")


def clarabel_solve(P: sp.spmatrix, A: sp.spmatrix, b: np.ndarray):
    """Clarabel's raw solution of min 1/2 v^T P v s.t. A v <= b (one nonnegative cone), quiet,
    default settings (its tolerances: 1e-8 relative gap and feasibility)."""
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    cone = [clarabel.NonnegativeConeT(A.shape[0])]
    return clarabel.DefaultSolver(sp.csc_matrix(P), np.zeros(P.shape[0]), sp.csc_matrix(A), b, cone, settings).solve()


def solve_clarabel(qp: BoxQP) -> QPSolution:
    """p = 2 with Clarabel's native API (interior point; no modelling layer, ~ms per QP).

    The bound reported is `dual_bound` at Clarabel's multipliers, not Clarabel's own
    objective, so it is valid whatever the solver's tolerance.
    """
    m, N = qp.A.shape
    n = qp.n_obj
    P = sp.diags(np.r_[np.full(n, 2.0), np.zeros(N - n)]).tocsc()
    finite_lo, finite_hi = np.isfinite(qp.lo), np.isfinite(qp.hi)
    I = sp.eye(N, format="csr")
    A = sp.vstack([sp.csr_matrix(qp.A), I[finite_hi], -I[finite_lo]]).tocsc()
    b = np.r_[qp.b, qp.hi[finite_hi], -qp.lo[finite_lo]]
    sol = clarabel_solve(P, A, b)
    status = str(sol.status)
    z = np.array(sol.z)
    if status in CLARABEL_INFEASIBLE:
        if certifies_infeasible(qp, z[:m]):
            return QPSolution(QPStatus.INFEASIBLE, lower=np.inf, lam=z[:m])
        return QPSolution(QPStatus.ERROR)
    if status not in ("Solved", "AlmostSolved"):
        return QPSolution(QPStatus.ERROR)
    v = np.clip(np.array(sol.x), qp.lo, qp.hi)
    lam = z[:m]
    return QPSolution(QPStatus.OPTIMAL, v, float(np.linalg.norm(v[:n])), norm_dual_bound(qp, lam, 2.0), lam)


def solve_daqp(qp: BoxQP, start: np.ndarray | None = None) -> QPSolution:
    """p = 2 with DAQP (dual active set, Arnstrom et al. 2022), optionally warm-started from a point.

    DAQP rather than Clarabel for the node QPs: Clarabel's sparse LDL fills in on their dense
    rows (docs/performance-log.md has the times). Variables beyond n have no cost, so
    DAQP runs its proximal-point iterations; the bound reported is `dual_bound` at DAQP's
    multipliers. Falls back to Clarabel when DAQP does not end with optimal/infeasible, and
    an infeasible verdict is only taken with a Farkas certificate.
    """
    m, N = qp.A.shape
    n = qp.n_obj
    H = np.diag(np.r_[np.full(n, 2.0), np.zeros(N - n)])
    upper = np.r_[qp.hi, qp.b]
    lower = np.r_[qp.lo, np.full(m, -1e30)]
    x, _, flag, info = daqp.solve(H, np.zeros(N), qp.A, upper, lower, np.zeros(N + m, dtype=c_int),
                                  primal_start=start)
    if flag == 1:
        v = np.clip(x, qp.lo, qp.hi)
        lam = info["lam"][N:]
        return QPSolution(QPStatus.OPTIMAL, v, float(np.linalg.norm(v[:n])), norm_dual_bound(qp, lam, 2.0), lam)
    return solve_clarabel(qp)


def solve_lp(qp: BoxQP, p: float) -> QPSolution:
    """p = 1 or inf: min ||v[:n]||_p as an LP in (v, s) with scipy's HiGHS.

    p = 1: s_i >= |v_i|, minimise sum s; p = inf: s >= |v_i|, minimise s. The lower bound is
    HiGHS's optimum (LP tolerances, ~1e-9 here), the point is clipped to the box.
    """
    from scipy.optimize import linprog

    m, N = qp.A.shape
    n = qp.n_obj
    k = n if p == 1 else 1
    pick = sp.eye(n, N, format="csr")
    S = -sp.eye(n, format="csr") if p == 1 else sp.csr_matrix(-np.ones((n, 1)))
    # sparse: the 2n rows |v_i| <= s have two entries each (dense, they made HiGHS's input ~1600 x 850)
    A = sp.vstack([sp.hstack([sp.csr_matrix(qp.A), sp.csr_matrix((m, k))]), sp.hstack([pick, S]),
                   sp.hstack([-pick, S])], format="csr")
    b = np.r_[qp.b, np.zeros(2 * n)]
    cost = np.r_[np.zeros(N), np.ones(k)]
    res = linprog(cost, A_ub=A, b_ub=b, bounds=[*zip(qp.lo, qp.hi, strict=True), *[(0, None)] * k], method="highs")
    if res.status == 2:
        return QPSolution(QPStatus.INFEASIBLE, lower=np.inf)
    if res.status != 0:
        return QPSolution(QPStatus.ERROR)
    v = np.clip(res.x[:N], qp.lo, qp.hi)
    lam = -res.ineqlin.marginals[:m]  # scipy: d(objective)/d(b_ub) <= 0
    return QPSolution(QPStatus.OPTIMAL, v, float(np.linalg.norm(v[:n], ord=p)), norm_dual_bound(qp, lam, p), lam)


def solve_norm(qp: BoxQP, p: float, start: np.ndarray | None = None) -> QPSolution:
    """The region problem for any supported norm: DAQP for p = 2, an LP otherwise."""
    return solve_daqp(qp, start) if p == 2 else solve_lp(qp, p)


def solve_reference(qp: BoxQP, p: float = 2.0, **clarabel_options) -> QPSolution:
    """Reference solve with cvxpy (Clarabel) for p in {1, 2, inf}: the ground truth for tests.

    At Clarabel's default tolerances (gap 1e-8) the point is only ~1e-4 accurate (||v - v*||^2
    <= gap); pass e.g. tol_gap_abs=tol_gap_rel=tol_feas=1e-12 to compare points to 1e-6."""
    import cvxpy as cp

    N = qp.A.shape[1]
    v = cp.Variable(N)
    head = v[: qp.n_obj]
    obj = cp.sum_squares(head) if p == 2 else cp.norm(head, 1 if p == 1 else "inf")
    cons = [qp.A @ v <= qp.b]
    for bound, sign in ((qp.lo, 1), (qp.hi, -1)):
        fin = np.isfinite(bound)
        if fin.any():
            cons.append(sign * (v[np.flatnonzero(fin)] - bound[fin]) >= 0)
    prob = cp.Problem(cp.Minimize(obj), cons)
    prob.solve(solver=cp.CLARABEL, **clarabel_options)
    if prob.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        return QPSolution(QPStatus.INFEASIBLE, lower=np.inf)
    if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        return QPSolution(QPStatus.ERROR)
    x = np.clip(v.value, qp.lo, qp.hi)
    lam = cons[0].dual_value
    value = float(np.linalg.norm(x[: qp.n_obj], ord=p))
    return QPSolution(QPStatus.OPTIMAL, x, value, norm_dual_bound(qp, lam, p), lam)
