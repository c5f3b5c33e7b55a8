"""Node QPs of the branch-and-bound, solved on a small reduced problem.

A node QP (`exact.relaxation.node_qp`) is

    min ||d||^2  s.t.  A_d d + A_h h <= b,  lo <= d <= hi (the pixels),  0 <= h <= u

with d the 784 pixels and h the relaxed ReLU outputs (10-60, no cost). Every row's pixel part
lies in the row space of the first layer: A_d = C U with U = W_1 (r x n, r = 50 << n), so
once we guess which pixels sit at a bound (B, fixed there) and let the others (F) be free of
their box, d_F only matters through z = U_F d_F, and the smallest ||d_F|| giving z is
z^T K^-1 z with K = U_F U_F^T = L L^T. Writing z = L y the node problem becomes

    min ||y||^2  s.t.  C L y + A_h h <= b - C U_B d_B,  0 <= h <= u      (r + k variables)

a dense QP of ~75 variables that DAQP solves in well under a millisecond (on the full problem
its dual active set spends ~450 iterations adding pixel bounds one at a time). Its row
multipliers lam give the pixels' unclipped values s = -A_d^T lam / 2; the pixels whose s
leaves the box form the next B (a primal-dual active-set step on the pixel box, Hintermueller,
Ito & Kunisch 2003). When B repeats, (d = clip(s), h, lam) satisfy the node problem's KKT
conditions; we then solve those conditions exactly on DAQP's active rows and free h (a small
saddle-point system) to polish lam and the point to rounding.

Nothing here is trusted: the result is `optimal` only when the point is feasible to 1e-9 and
`qp.norm_dual_bound` at the multipliers (a rigorous bound for any lam >= 0) closes the gap;
otherwise (no fixed point in `max_rounds`, a reduced problem DAQP calls infeasible, ...) the
node goes to `qp.solve_daqp`, which also certifies infeasibility.
"""

from __future__ import annotations

from ctypes import c_int

import daqp
import numpy as np
import scipy.sparse as sp

from .reference import (
    CLARABEL_INFEASIBLE,
    BoxQP,
    QPSolution,
    QPStatus,
    certifies_infeasible,
    clarabel_solve,
    norm_dual_bound,
    once_per_array,
    solve_daqp,
)

_INF = 1e30  # DAQP's infinity
_PRIMAL_TOL = 1e-10  # DAQP's default 1e-6 leaves points 1e-7 off, wrong working sets on tiny optima
_TAU = 1e-12  # how far past its bound a pixel's s must go to change side
_DAQP_CYCLE = -2  # DAQP's exit flag for a cycle in its active-set steps
# DAQP's pivot tolerance (its LDL' row exchanges): its default, then a larger one. Which problems
# cycle depends on the CPU's rounding (one N2 node did on an Intel Xeon with AVX-512, not on an AMD
# EPYC); the larger tolerance solved it in 697 iterations where the default cycled after 1014.
_PIVOT_TOLS = (1e-8, 1e-6)


_full_gram = once_per_array(lambda U: U @ U.T)  # U U^T of a basis (the first round frees every pixel)


def row_basis(qp: BoxQP) -> tuple[np.ndarray, np.ndarray]:
    """(C, U) with A[:, :n] = C U and U's rows orthonormal (SVD; the slow path for QPs whose
    rows do not come with a basis, e.g. in tests)."""
    Ad = qp.A[:, : qp.n_obj]
    _, sv, Vt = np.linalg.svd(Ad, full_matrices=False)
    keep = sv > 1e-12 * max(sv.max(initial=0.0), 1e-300)
    U = np.ascontiguousarray(Vt[keep])
    return Ad @ U.T, U


def _factor(K: np.ndarray) -> np.ndarray:
    """L with K = L L^T (Cholesky; eigen-decomposition when K is singular: fewer free pixels
    than basis rows)."""
    try:
        return np.linalg.cholesky(K)
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(K)
        keep = w > 1e-12 * max(w.max(initial=0.0), 1e-300)
        return V[:, keep] * np.sqrt(w[keep])


def _gram(U: np.ndarray, K: np.ndarray, free: np.ndarray, new_free: np.ndarray) -> np.ndarray:
    """U_F U_F^T for the free set F = new_free, from K = U_F U_F^T of F = free: a low-rank
    update when fewer pixels change side than stay free, else recomputed."""
    added, removed = new_free & ~free, free & ~new_free
    if added.sum() + removed.sum() < new_free.sum():
        Ua, Ur = U[:, added], U[:, removed]
        return K + Ua @ Ua.T - Ur @ Ur.T
    UF = U[:, new_free]
    return UF @ UF.T


def solve_node(qp: BoxQP, basis: tuple[np.ndarray, np.ndarray] | None = None, *, max_rounds: int = 12,
               info: dict | None = None, start: np.ndarray | None = None) -> QPSolution:
    """min ||v[:n]||_2 s.t. A v <= b, lo <= v <= hi (the record of `qp.solve_daqp`).

    basis: (C, U) with A[:, :n] = C @ U (e.g. U = W_1); computed by SVD when missing.
    info: if a dict, receives rounds, DAQP iterations and how the node ended.
    start: a point whose pixels at a bound of the box (<= lo or >= hi) form the first guess of
    B (e.g. the parent node's minimiser; default: every pixel free). Only the first round
    changes: the result is certified the same way.
    """
    info = {} if info is None else info
    sol = _solve(qp, basis, max_rounds, info, start)
    info["fallback"] = sol is None
    if sol is None:
        return solve_daqp(qp)
    return sol


def _solve(qp: BoxQP, basis, max_rounds: int, info: dict, start: np.ndarray | None) -> QPSolution | None:
    A, b = qp.A, qp.b
    m, N = A.shape
    n = qp.n_obj
    k = N - n
    lo, hi = qp.lo, qp.hi
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        info["how"] = "unbounded box"
        return None
    C, U = basis if basis is not None else row_basis(qp)
    r = U.shape[0]
    Ah = A[:, n:]
    dlo, dhi, hlo, hhi = lo[:n], hi[:n], lo[n:], hi[n:]
    free = np.ones(n, dtype=bool)
    dB = np.zeros(n)
    K = _full_gram(U).copy()
    if start is not None:
        at_lo, at_hi = start[:n] <= dlo, start[:n] >= dhi
        free = ~(at_lo | at_hi)
        K = U[:, free] @ U[:, free].T
        dB = np.where(at_lo, dlo, np.where(at_hi, dhi, 0.0))
    lam_ws = None
    seen = {free.tobytes()}
    info["rounds"] = 0
    info["daqp_iterations"] = 0
    for rnd in range(max_rounds):
        info["rounds"] = rnd + 1
        L = _factor(K)
        rr = L.shape[1]
        rhs = b - C @ (U[:, ~free] @ dB[~free]) if not free.all() else b
        H = np.zeros(rr + k)
        H[:rr] = 2.0
        Ared = np.hstack([C @ L, Ah])
        upper = np.r_[np.full(rr, _INF), hhi, rhs]
        lower = np.r_[np.full(rr, -_INF), hlo, np.full(m, -_INF)]
        ws = lam_ws if lam_ws is not None and len(lam_ws) == rr + k + m else None
        for pivot_tol in _PIVOT_TOLS:  # DAQP's default first; a cycle (-2) is retried with the larger one
            x, _, flag, dinfo = daqp.solve(np.diag(H), np.zeros(rr + k), Ared, upper, lower,
                                           np.zeros(rr + k + m, dtype=c_int), dual_start=ws, primal_tol=_PRIMAL_TOL,
                                           pivot_tol=pivot_tol)
            info["daqp_iterations"] += dinfo["iterations"]
            if flag != _DAQP_CYCLE:
                break
        if flag == -1:  # the reduced problem has no point: look for a Farkas vector of the node
            info["how"] = "reduced infeasible"
            return _farkas(qp, Ared, rhs, rr)
        if flag != 1:
            info["how"] = f"reduced daqp {flag}"
            return None
        lam_all = lam_ws = dinfo["lam"]
        lam = lam_all[rr + k:]
        if certifies_infeasible(qp, lam):  # the box alone keeps every point off the rows
            info["how"] = "infeasible"
            return QPSolution(QPStatus.INFEASIBLE, lower=np.inf, lam=lam)
        s = -0.5 * (U.T @ (C.T @ lam))
        d = np.clip(s, dlo, dhi)
        # a pixel changes side only when s passes its bound by more than rounding (no cycling
        # on pixels whose multiplier is ~0)
        slack = np.where(free, _TAU, -_TAU)
        new_free = (s >= dlo - slack) & (s <= dhi + slack)
        if np.array_equal(new_free, free) and np.array_equal(d[~free], dB[~free]):
            info["how"] = "fixed point"
            break
        key = new_free.tobytes()
        if key in seen:  # a cycle (seen on nodes whose optimum is ~1e-8): let the gap decide
            info["how"] = "cycle"
            break
        seen.add(key)
        K = _gram(U, K, free, new_free)
        free, dB = new_free, d
    else:
        info["how"] = "no fixed point"
    y, h = x[:rr], x[rr:]
    d = dB.copy()
    d[free] = U[:, free].T @ np.linalg.solve(L.T, y) if rr == r else s[free]
    v = np.clip(np.r_[d, h], lo, hi)
    lower = norm_dual_bound(qp, lam, 2.0)
    # polish: the KKT conditions on DAQP's active rows W and free h Z, solved exactly
    W = np.flatnonzero(lam > 0)
    hb = lam_all[rr:rr + k]
    Z = np.flatnonzero(hb == 0)
    px = _polish(qp, C, U, K, free, dB, W, Z, hb)
    if px is not None:
        vx, lamx = px
        lower_x = norm_dual_bound(qp, lamx, 2.0)
        if lower_x >= lower:
            lower, lam = lower_x, lamx
        if qp.violation(vx) <= 1e-10:
            v = vx
    norm = float(np.linalg.norm(v[:n]))
    info["gap"] = norm - lower
    if qp.violation(v) > 1e-9 or norm**2 - lower**2 > 1e-10 * max(norm**2, 1.0):
        info["how"] += ", gap"
        return None
    return QPSolution(QPStatus.OPTIMAL, v, norm, lower, lam)


def _polish(qp, C, U, K, free, dB, W, Z, hb):
    """Solve  -(1/2) G_WW lam_W + A_WZ h_Z = b_W - A_d[W, B] d_B - A_h[W, ~Z] h_~Z,
    A_WZ^T lam_W = 0  (G = A_dF A_dF^T = C K C^T): the node problem's KKT conditions with
    rows W active, pixels B at their bounds and h_Z strictly inside its box."""
    A, b = qp.A, qp.b
    m, N = A.shape
    n = qp.n_obj
    k = N - n
    hlo, hhi = qp.lo[n:], qp.hi[n:]
    hfix = np.where(hb < 0, hlo, hhi)  # DAQP: negative multiplier = lower bound active
    notZ = np.ones(k, dtype=bool)
    notZ[Z] = False
    CW = C[W]
    G = CW @ K @ CW.T
    Ah = A[:, n:]
    beta = b[W] - CW @ (U[:, ~free] @ dB[~free]) - Ah[np.ix_(W, np.flatnonzero(notZ))] @ hfix[notZ]
    AWZ = Ah[np.ix_(W, Z)]
    nw, nz = len(W), len(Z)
    KKT = np.block([[-0.5 * G, AWZ], [AWZ.T, np.zeros((nz, nz))]])
    rhs = np.r_[beta, np.zeros(nz)]
    try:
        sol = np.linalg.solve(KKT, rhs)
    except np.linalg.LinAlgError:  # degenerate: rows with ~0 multipliers in DAQP's working set
        sol = np.linalg.lstsq(KKT, rhs, rcond=None)[0]
    lam = np.zeros(m)
    lam[W] = np.maximum(sol[:nw], 0.0)
    h = hfix.copy()
    h[Z] = sol[nw:]
    s = -0.5 * (U.T @ (C.T @ lam))
    d = np.where(free, s, dB)
    return np.clip(np.r_[d, h], qp.lo, qp.hi), lam


def _farkas(qp: BoxQP, Ared: np.ndarray, rhs: np.ndarray, rr: int) -> QPSolution | None:
    """Clarabel on the reduced problem (y free, h boxed; few dense columns, where the node
    problem's dense rows would fill Clarabel's factor). A Farkas vector of
    the reduced rows proves the node infeasible only if it passes `certifies_infeasible` on the
    node problem itself (the reduced problem of a later round fixes pixels, it is no
    relaxation); None otherwise (the caller then asks DAQP)."""
    m, nv = Ared.shape
    n = qp.n_obj
    k = nv - rr
    P = sp.diags(np.r_[np.full(rr, 2.0), np.zeros(k)]).tocsc()
    Ih = sp.eye(nv, format="csr")[rr:]
    A = sp.vstack([sp.csr_matrix(Ared), Ih, -Ih]).tocsc()
    b = np.r_[rhs, qp.hi[n:], -qp.lo[n:]]
    sol = clarabel_solve(P, A, b)
    if str(sol.status) in CLARABEL_INFEASIBLE:
        y = np.array(sol.z)[:m]
        if certifies_infeasible(qp, y):
            return QPSolution(QPStatus.INFEASIBLE, lower=np.inf, lam=y)
    return None
