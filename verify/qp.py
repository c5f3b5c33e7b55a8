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

from ctypes import c_int
from dataclasses import dataclass
from enum import StrEnum

import clarabel
import daqp
import numpy as np
import scipy.sparse as sp


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
    ql, lo, hi = q[n:], qp.lo[n:], qp.hi[n:]
    with np.errstate(invalid="ignore"):
        lin = np.where(ql > 0, ql * lo, np.where(ql < 0, ql * hi, 0.0))
    return val + float(lin.sum()) - float(lam @ qp.b)


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
    ql, llo, lhi = q[n:], qp.lo[n:], qp.hi[n:]
    with np.errstate(invalid="ignore"):
        rest = float(np.where(ql > 0, ql * llo, np.where(ql < 0, ql * lhi, 0.0)).sum()) - float(lam @ qp.b)
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
    """Farkas: y >= 0 with min_{v in box} y^T (A v - b) > 0 proves {A v <= b} has no point in the box."""
    y = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    q = qp.A.T @ y
    with np.errstate(invalid="ignore"):
        low = np.where(q > 0, q * qp.lo, np.where(q < 0, q * qp.hi, 0.0)).sum() - y @ qp.b
    return bool(np.isfinite(low) and low > 1e-12 * max(1.0, float(np.abs(y @ qp.b))))


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
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    solver = clarabel.DefaultSolver(P, np.zeros(N), A, b, [clarabel.NonnegativeConeT(A.shape[0])], settings)
    sol = solver.solve()
    status = str(sol.status)
    z = np.array(sol.z)
    if status in ("PrimalInfeasible", "AlmostPrimalInfeasible"):
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

    Measured on N2 node QPs (105 dense rows, 821 variables): 20-40 ms cold, against 0.5 s for
    Clarabel (its sparse LDL fills in on the dense rows). Variables beyond n have no cost, so
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
