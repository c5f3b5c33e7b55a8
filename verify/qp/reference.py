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
# HiGHS's threads setting is process-wide: the first model run fixes it, and a later solve that
# asks for another count fails; every HiGHS solve of the package (`NormLP`, `exact.mip`) uses this
HIGHS_THREADS = 1
# `NormLP`: a solve started from a basis that has not ended after this many pivots starts again
# from scratch (a child the parent's bound made infeasible can take 500 pivots from the parent's
# basis where the slack basis needs ~50)
WARM_PIVOTS = 200
NO_LIMIT = 2**31 - 1


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
    CUTOFF = "cutoff"  # `NormLP` stopped once lower passed the caller's cutoff: no point
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
    basis: object = None  # `NormLP`: HiGHS's final basis, a start for the model's next solve


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


class NormLP:
    """min ||v[:n]||_p (p = 1 or inf) s.t. A v <= b, lo <= v <= hi as one HiGHS LP model (highspy)
    kept between solves: A is fixed, each `solve` sets b, lo, hi (a row with b = inf is left out)
    and may start from the basis of an earlier solve of the same model.

    p = 1: v[:n] = P - Q with 0 <= P <= max(hi, 0), 0 <= Q <= max(-lo, 0), minimise sum(P + Q):
    no rows beyond A (the form s_i >= |v_i| adds 2n rows, and the simplex pays for every row).
    p = inf: minimise s with the rows v_i - s <= 0 where hi_i > 0 and -v_i - s <= 0 where lo_i < 0
    (i < n; the others hold with s >= 0: on MNIST most pixels are 0, so this drops ~40% of the
    rows), for the box `box` of v[:n] given when the model is built and kept by every solve.
    Dual simplex without presolve: a node of the branch and bound differs from its parent by a
    few bounds, so the parent's optimal basis stays dual feasible and the child needs a few
    pivots instead of hundreds (scipy's `linprog` builds a new model per call and cannot take a
    basis); presolve would rebuild the problem and lose the basis. The lower bound reported is
    `norm_dual_bound` at HiGHS's row duals, so it holds whatever the solver's tolerances."""

    def __init__(self, A: np.ndarray, p: float, box: tuple[np.ndarray, np.ndarray], n: int | None = None):
        import highspy

        m, N = A.shape
        self.A, self.m, self.N, self.p = A, m, N, p
        self.n = N if n is None else n
        n = self.n
        self.box = box
        if p == 1:
            cols = sp.csc_matrix(np.hstack([A[:, :n], -A[:, :n], A[:, n:]]))
            cost = np.r_[np.ones(2 * n), np.zeros(N - n)]
            row_hi = np.zeros(m)
        else:
            pick = sp.eye(n, N, format="csr")
            up, down = pick[np.flatnonzero(box[1] > 0)], pick[np.flatnonzero(box[0] < 0)]
            cols = sp.vstack([sp.hstack([sp.csr_matrix(A), sp.csr_matrix((m, 1))]),
                              sp.hstack([up, sp.csr_matrix(-np.ones((up.shape[0], 1)))]),
                              sp.hstack([-down, sp.csr_matrix(-np.ones((down.shape[0], 1)))])], format="csc")
            cost = np.r_[np.zeros(N), 1.0]
            row_hi = np.zeros(cols.shape[0])
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = cols.shape[1], cols.shape[0]
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, np.zeros(cols.shape[1]), np.full(cols.shape[1], np.inf)
        lp.row_lower_, lp.row_upper_ = np.full(cols.shape[0], -np.inf), row_hi
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = cols.indptr, cols.indices, cols.data
        # the core class: the subclass highspy.Highs only adds callbacks (unused here) and prints
        # HiGHS's banner on stdout when built, into the commands' output
        self.h = highspy._core._Highs()
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("presolve", "off")
        self.h.setOptionValue("simplex_strategy", 1)  # dual simplex
        self.h.setOptionValue("threads", HIGHS_THREADS)
        self.h.passModel(lp)
        self.rows = np.arange(m, dtype=np.int32)
        self.cols = np.arange(cols.shape[1] - (1 if p != 1 else 0), dtype=np.int32)
        self.status, self.ok = highspy.HighsModelStatus, highspy.HighsStatus.kOk

    def solve(self, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, start=None, cutoff: float = np.inf) -> QPSolution:
        """The LP with these row bounds (b = inf: no row) and box; start: `QPSolution.basis` of an
        earlier solve of this model (None: from scratch). lam: the multipliers of A's rows (0 on
        the rows left out); lower: `norm_dual_bound` over the rows kept.

        cutoff: the dual simplex's objective only grows, so it may stop once that objective
        passes the cutoff (HiGHS's objective_bound: a branch-and-bound node that will be
        pruned, often an infeasible one that would take hundreds of pivots to prove so). Then
        status CUTOFF, with `norm_dual_bound` at the current duals >= cutoff checked in float64;
        where that check fails, the solve goes on to the end."""
        n = self.n
        if not (np.array_equal(lo[:n], self.box[0]) and np.array_equal(hi[:n], self.box[1])):
            raise ValueError("NormLP.solve: the box of v[:n] is the model's")
        if self.p == 1:
            col_lo = np.r_[np.zeros(2 * n), lo[n:]]
            col_hi = np.r_[np.maximum(hi[:n], 0.0), np.maximum(-lo[:n], 0.0), hi[n:]]
        else:
            col_lo, col_hi = lo, hi
        self.h.changeColsBounds(len(self.cols), self.cols, col_lo, col_hi)
        self.h.changeRowsBounds(self.m, self.rows, np.full(self.m, -np.inf), b)
        warm = start is not None and self.h.setBasis(start) == self.ok
        if not warm:
            self.h.clearSolver()
        status = self._run(cutoff, WARM_PIVOTS if warm else NO_LIMIT)
        if status == self.status.kObjectiveBound:
            lam, kept = self._multipliers(b)
            lower = norm_dual_bound(BoxQP(self.A[kept], b[kept], lo, hi, n), lam[kept], self.p)
            if lower >= cutoff:
                return QPSolution(QPStatus.CUTOFF, lower=lower, lam=lam, basis=self.h.getBasis())
            status = self._run(np.inf, NO_LIMIT)  # on from where it stopped
        if status not in (self.status.kOptimal, self.status.kInfeasible) and warm:
            self.h.clearSolver()  # a start that led nowhere (WARM_PIVOTS): once more from scratch
            status = self._run(np.inf, NO_LIMIT)
        if status == self.status.kInfeasible:
            return QPSolution(QPStatus.INFEASIBLE, lower=np.inf)
        if status != self.status.kOptimal:
            return QPSolution(QPStatus.ERROR)
        sol = self.h.getSolution()
        x = np.asarray(sol.col_value)
        v = np.r_[x[:n] - x[n:2 * n], x[2 * n:]] if self.p == 1 else x[: self.N]
        v = np.clip(v, lo, hi)
        lam, kept = self._multipliers(b)
        qp = BoxQP(self.A[kept], b[kept], lo, hi, n)
        return QPSolution(QPStatus.OPTIMAL, v, float(np.linalg.norm(v[:n], ord=self.p)),
                          norm_dual_bound(qp, lam[kept], self.p), lam, self.h.getBasis())

    def _run(self, cutoff: float, pivots: int):
        """HiGHS's run under an objective cutoff and a pivot limit; its model status."""
        self.h.setOptionValue("objective_bound", float(cutoff))
        self.h.setOptionValue("simplex_iteration_limit", pivots)
        self.h.run()
        return self.h.getModelStatus()

    def _multipliers(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lam, kept): the multipliers of A's rows (0 on rows left out), the rows kept (b < inf)."""
        lam = np.maximum(-np.asarray(self.h.getSolution().row_dual)[: self.m], 0.0)  # HiGHS: <= 0 at an upper bound
        kept = np.isfinite(b)
        lam[~kept] = 0.0
        return lam, kept


def solve_lp(qp: BoxQP, p: float, cutoff: float = np.inf) -> QPSolution:
    """p = 1 or inf: min ||v[:n]||_p as an LP (`NormLP`, solved from scratch; cutoff: see
    `NormLP.solve`)."""
    n = qp.n_obj
    return NormLP(qp.A, p, (qp.lo[:n], qp.hi[:n]), n).solve(qp.b, qp.lo, qp.hi, cutoff=cutoff)


def solve_norm(qp: BoxQP, p: float, start: np.ndarray | None = None, cutoff: float = np.inf) -> QPSolution:
    """The region problem for any supported norm: DAQP for p = 2, an LP otherwise (which may
    stop with status CUTOFF once its bound passes `cutoff`; DAQP ignores it)."""
    return solve_daqp(qp, start) if p == 2 else solve_lp(qp, p, cutoff)


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
