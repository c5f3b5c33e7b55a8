"""Many region QPs at once: projected Newton on the small Lagrangian dual, batched in torch.

Each of B problems k is problem (3) of Croce & Hein (2018) written as

    min ||v||_2^2   s.t.   C_k U v <= b_k   (m rows),   lo <= v <= hi   (d pixels),

with U (h x d) shared: every pre-activation and logit of a region is affine in U z for
U = W_1 (h = width of the first layer, 50 << 784 for N1/N2), so C_k is only m x h.
Its dual, with mu = C_k^T lam,

    q(lam) = ||v(lam)||^2 + mu^T U v(lam) - lam^T b,   v(lam) = clip(-U^T mu / 2, lo, hi),

is concave and C^1 with gradient A v - b and generalised Hessian -1/2 C U_F U_F^T C^T (F:
pixels where the clip is inactive); every lam >= 0 gives a rigorous lower bound q(lam) on
the squared optimum. We minimise -q over lam >= 0 by Bertsekas' projected Newton method
(binding set, Armijo search along the projection arc), regularised by rho = mu ||g_J||
(Levenberg-Marquardt) since the m rows span at most h dimensions (m > h for deep nets);
mu shrinks 4x after a full step and grows 4x after a shortened one, so that on an unbounded
(infeasible) dual the steps grow geometrically.

A problem ends `optimal` when v(lam) violates no row by more than tol * ||a_j|| and the
duality gap lam^T (b - A v) <= tol^2 (1 + q), so that ||v - v*|| <= tol sqrt(1 + q) (the
primal is 2-strongly convex); `infeasible` when lam or the last step (which on an unbounded
dual points along its ray) is a Farkas certificate; `pruned` when
q(lam) >= threshold^2. Problems still open after max_iter steps go to DAQP (dense dual
active set): mostly infeasible ones, whose dual grows only slowly (`fallbacks` counts them).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch

from .reference import BoxQP, QPStatus, farkas_lp, once_per_array


class BatchStatus(StrEnum):
    """How one problem of a batch ended."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"  # certified by a Farkas multiplier
    PRUNED = "pruned"  # its dual bound reached the threshold: the optimum is no smaller
    UNCONVERGED = "unconverged"  # open after the Newton steps: DAQP decides it (`_fallback`)


OPTIMAL, INFEASIBLE, PRUNED, UNCONVERGED = (BatchStatus.OPTIMAL, BatchStatus.INFEASIBLE, BatchStatus.PRUNED,
                                          BatchStatus.UNCONVERGED)

# DAQP's verdict on a problem the Newton method left open; an error leaves it unconverged; a cutoff
# (a bound past a threshold, `NormLP` only: DAQP is called without one) is what pruning means here
OF_QP = {QPStatus.OPTIMAL: OPTIMAL, QPStatus.INFEASIBLE: INFEASIBLE, QPStatus.CUTOFF: PRUNED,
         QPStatus.ERROR: UNCONVERGED}


class Basis:
    """The shared row space U (h x d) of a batch, with U U^T and the pair products that give
    K = U diag(f) U^T for many 0/1 masks f (B, d) as one GEMM f @ P, P[:, (i, k)] = U_i * U_k
    over i <= k (faster than a batched U diag(f) U^T: docs/performance-log.md)."""

    def __init__(self, U: torch.Tensor):
        self.U = U
        self.UUt = U @ U.T
        h = U.shape[0]
        i, k = torch.triu_indices(h, h)
        self._upper, self._lower = i * h + k, k * h + i
        self._P = (U[i] * U[k]).T.contiguous()

    def gram(self, f: torch.Tensor) -> torch.Tensor:
        pairs = f @ self._P
        K = torch.zeros(f.shape[0], self.U.shape[0] ** 2, dtype=f.dtype)
        K.index_copy_(1, self._upper, pairs).index_copy_(1, self._lower, pairs)
        return K.view(f.shape[0], *self.UUt.shape)


basis_of = once_per_array(lambda W: Basis(torch.tensor(W, dtype=torch.float64)))  # once per weight array


@dataclass(frozen=True)
class QPBatch:
    """B problems min ||v||^2 s.t. C_k U v <= b_k, lo <= v <= hi (float64 tensors).

    C: (B, m, h), b: (B, m), basis: U (h, d), lo / hi: (d,) shared by all problems.
    """

    C: torch.Tensor
    b: torch.Tensor
    basis: Basis
    lo: torch.Tensor
    hi: torch.Tensor

    @property
    def U(self) -> torch.Tensor:
        return self.basis.U

    def __len__(self) -> int:
        return self.C.shape[0]

    def __getitem__(self, idx) -> QPBatch:
        return QPBatch(self.C[idx], self.b[idx], self.basis, self.lo, self.hi)

    def dense(self, k: int) -> BoxQP:
        """Problem k as a `BoxQP` (A = C_k U) for the reference solvers."""
        return BoxQP((self.C[k] @ self.U).numpy(), self.b[k].numpy().copy(), self.lo.numpy(), self.hi.numpy())

    def row_norms(self) -> torch.Tensor:
        """||a_j|| = ||U^T c_j|| for every row, (B, m)."""
        return ((self.C @ self.basis.UUt) * self.C).sum(-1).clamp_min(0.0).sqrt()

    def cheap_bound(self) -> torch.Tensor:
        """max_j (-b_j)_+ / ||a_j||: the distance from v = 0 to the farthest violated row's
        half-space, a lower bound on the optimum (B,) (box ignored)."""
        return (-self.b / self.row_norms().clamp_min(1e-300)).max(dim=1).values.clamp_min(0.0)

    def rmatvec(self, lam: torch.Tensor) -> torch.Tensor:
        """A_k^T lam_k for every problem, (B, d)."""
        return torch.einsum("bmh,bm->bh", self.C, lam) @ self.U

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """A_k v_k for every problem, (B, m)."""
        return torch.einsum("bmh,bh->bm", self.C, v @ self.U.T)

    def hessian(self, rows: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """A_J diag(f) A_J^T for the rows J = rows (B, w) of each problem and masks f (B, d)."""
        CJ = torch.gather(self.C, 1, rows[..., None].expand(-1, -1, self.C.shape[2]))
        return CJ @ self.basis.gram(f) @ CJ.transpose(1, 2)


@dataclass(frozen=True)
class RowsBatch:
    """B problems min ||v||^2 s.t. A_k v <= b_k, lo <= v <= hi with explicit rows A (B, m, d)
    (each problem its own rows: the working sets of many regions). Problems with fewer rows
    are padded with zero rows and b = 1 (0 <= 1: no constraint; their multipliers stay 0, as the
    Newton method keeps a row with lam = 0 and gradient b - 0 = 1 > 0 binding at 0)."""

    A: torch.Tensor
    b: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor

    def __len__(self) -> int:
        return self.A.shape[0]

    def __getitem__(self, idx) -> RowsBatch:
        return RowsBatch(self.A[idx], self.b[idx], self.lo, self.hi)

    def dense(self, k: int) -> BoxQP:
        return BoxQP(self.A[k].numpy(), self.b[k].numpy().copy(), self.lo.numpy(), self.hi.numpy())

    def row_norms(self) -> torch.Tensor:
        return self.A.norm(dim=2)

    def rmatvec(self, lam: torch.Tensor) -> torch.Tensor:
        return (lam[:, None, :] @ self.A)[:, 0]  # bmm: faster than einsum "bmd,bm->bd"

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return (self.A @ v[..., None])[..., 0]

    def hessian(self, rows: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        AJ = torch.gather(self.A, 1, rows[..., None].expand(-1, -1, self.A.shape[2]))
        return (AJ * f[:, None, :]) @ AJ.transpose(1, 2)


@dataclass
class BatchSolution:
    """Per problem: status, value ||v|| (inf unless optimal), v (B, d) (nan unless optimal),
    lower: a rigorous lower bound sqrt(q(lam)) on the optimum, lam (B, m) (for an infeasible
    problem: its Farkas certificate), Newton steps,
    fell_back: the problems handed to DAQP (bool, B)."""

    status: np.ndarray
    value: np.ndarray
    v: torch.Tensor
    lower: np.ndarray
    lam: torch.Tensor
    iterations: np.ndarray
    fell_back: np.ndarray

    @property
    def fallbacks(self) -> int:
        """How many problems were handed to DAQP."""
        return int(self.fell_back.sum())


class _Dual:
    """The dual at multipliers lam: unclipped s, v(lam), gradient g = b - A v of -q, q(lam)."""

    def __init__(self, P: QPBatch | RowsBatch, lam: torch.Tensor):
        self.lam = lam
        self.s = -0.5 * P.rmatvec(lam)
        self.v = torch.minimum(torch.maximum(self.s, P.lo), P.hi)
        Av = P.matvec(self.v)
        self.g = P.b - Av
        self.q = (self.v * self.v).sum(1) + (lam * Av).sum(1) - (lam * P.b).sum(1)

    def take(self, keep: torch.Tensor) -> _Dual:
        out = _Dual.__new__(_Dual)
        out.__dict__ = {k: t[keep] for k, t in self.__dict__.items()}
        return out


def _direction(P: QPBatch | RowsBatch, D: _Dual, mu: torch.Tensor) -> torch.Tensor:
    """Projected Newton direction: Newton on the non-binding rows J, -g on the binding ones
    (lam_j <= eps and g_j > 0, eps = min(1e-3, ||min(lam, g)||_inf)). The Newton system is
    built on the rows of J only, gathered to the batch's largest |J| (about 20 of 51-66 rows
    on N1/N2 regions)."""
    g = D.g
    eps = torch.minimum(D.lam, g).abs().max(dim=1).values.clamp(max=1e-3)
    keep = ~((D.lam <= eps[:, None]) & (g > 0))
    d = torch.where(keep, 0.0, -g)
    width = int(keep.sum(1).max())
    if width == 0:
        return d
    rows = torch.argsort(keep.to(torch.int8), dim=1, descending=True, stable=True)[:, :width]
    inJ = torch.gather(keep, 1, rows).to(g.dtype)  # padding rows (binding) get an identity row
    gJ = torch.gather(g, 1, rows) * inJ
    free = ((D.s >= P.lo) & (D.s <= P.hi)).to(g.dtype)
    H = 0.5 * P.hessian(rows, free)
    rho = (mu * gJ.norm(dim=1)).clamp_min(1e-14)
    M = H * inJ[:, :, None] * inJ[:, None, :] + torch.diag_embed(1.0 - inJ + rho[:, None])
    L, _ = torch.linalg.cholesky_ex(M)
    return d.scatter_add(1, rows, -torch.cholesky_solve(gJ[..., None], L)[..., 0] * inJ)


def _step(P: QPBatch | RowsBatch, D: _Dual, mu: torch.Tensor, sigma: float = 1e-4,
          trials: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """lam(s) = max(lam + s d, 0) for the largest s in 1, 1/2, ... with Armijo decrease of -q
    (plus a rounding allowance of 1e-13 (1 + |q|): near the optimum the decrease drowns in
    q's last digits, and refusing the full Newton step there stalls the method).
    Returns the new multipliers and which problems took the full step."""
    d = _direction(P, D, mu)
    lam, new = D.lam, D.lam.clone()
    full = torch.zeros(len(lam), dtype=torch.bool)
    rows = torch.arange(len(lam))
    sub = P  # the problems of `rows`, narrowed as they accept (indexing copies the rows)
    step = 1.0
    for _ in range(trials):
        trial = (lam[rows] + step * d[rows]).clamp_min(0.0)
        q = _Dual(sub, trial).q
        change = trial - lam[rows]
        predicted = -(D.g[rows] * change).sum(1)  # first-order decrease of -q along the arc
        ok = q >= D.q[rows] + sigma * predicted - 1e-13 * (1.0 + D.q[rows].abs())
        new[rows[ok]] = trial[ok]
        full[rows[ok]] = step == 1.0
        rows = rows[~ok]
        if len(rows) == 0:
            break
        sub = sub[~ok]
        step *= 0.5
    return new, full


def _farkas(P: QPBatch | RowsBatch, lam: torch.Tensor) -> torch.Tensor:
    """lam >= 0 proves {A v <= b} misses the box when min_{v in box} lam^T (A v - b) > 0."""
    w = P.rmatvec(lam)
    low = torch.where(w > 0, w * P.lo, w * P.hi).sum(1) - (lam * P.b).sum(1)
    return low > 1e-12 * (1.0 + (lam * P.b).abs().sum(1))


def solve_batch(P: QPBatch | RowsBatch, threshold=np.inf, *, tol: float = 1e-9, max_iter: int = 50,
                lam0: torch.Tensor | None = None, certify_after: int | None = None,
                finish: bool = True) -> BatchSolution:
    """Solve every problem of P; threshold: a scalar or one per problem (B,) for pruning.

    finish: hand the problems still open after max_iter steps to DAQP (`_fallback`); False:
    leave them `unconverged`, their multipliers in lam, for a caller that goes on from there.

    certify_after: after that many Newton steps, the problems still open get the phase-1 LP
    (`qp.farkas_lp`) on the rows with lam_j > 0 (on an infeasible problem lam grows along a
    Farkas ray, so its support holds one; a subset's Farkas vector, zero elsewhere, is one of
    the whole problem): those it proves infeasible end there, the others go on; and the
    problems still open after max_iter get the LP on all their rows before DAQP. An infeasible
    problem's dual grows along its ray only slowly, hundreds of steps on deep networks'
    regions, and DAQP hands infeasible problems to Clarabel (seconds on hundreds of dense
    rows), where the LP decides in one solve (the support: a half to a third of the rows)."""
    B, m = P.b.shape
    thr2 = torch.as_tensor(threshold, dtype=torch.float64).expand(B) ** 2
    lam = torch.zeros(B, m, dtype=torch.float64) if lam0 is None else lam0.clone()
    scale = P.row_norms().clamp_min(1e-300)
    out = BatchSolution(np.full(B, UNCONVERGED, dtype=object), np.full(B, np.inf),
                        torch.full((B, len(P.lo)), torch.nan, dtype=torch.float64), np.zeros(B), lam,
                        np.zeros(B, dtype=np.int64), np.zeros(B, dtype=bool))
    last = torch.zeros_like(lam)  # the last step: on an unbounded dual it points along the ray
    mu = torch.ones(B, dtype=torch.float64)
    idx = torch.arange(B)
    sub = P  # the open problems idx, narrowed as they end (indexing copies the rows)
    for it in range(max_iter + 1):
        D = _Dual(sub, lam[idx])
        at = idx.numpy()
        out.lower[at] = np.sqrt(np.maximum(D.q.numpy(), 0.0))
        out.iterations[at] = it
        optimal = ((-D.g / scale[idx]).max(dim=1).values <= tol) & ((D.lam * D.g).sum(1) <= tol**2 * (1.0 + D.q))
        by_lam = _farkas(sub, D.lam)
        by_ray = _farkas(sub, last[idx]) & ~by_lam & ~optimal
        infeasible = (by_lam | by_ray) & ~optimal
        lam[idx[by_ray]] = last[idx[by_ray]]  # lam is the certificate of an infeasible problem
        pruned = (D.q >= thr2[idx]) & ~optimal & ~infeasible
        for mask, name in ((optimal, OPTIMAL), (infeasible, INFEASIBLE), (pruned, PRUNED)):
            out.status[at[mask.numpy()]] = name
        out.v[idx[optimal]] = D.v[optimal]
        out.value[at[optimal.numpy()]] = D.v[optimal].norm(dim=1).numpy()
        out.lower[at[infeasible.numpy()]] = np.inf
        going = ~(optimal | infeasible | pruned)
        if it == certify_after and (it < max_iter or not finish):
            live = torch.nonzero(going)[:, 0]
            going[live[_certify(P, out, idx[live], support=True)]] = False
        if it == max_iter or not going.any():
            break
        idx = idx[going]
        if not going.all():
            sub = sub[going]
        new, full = _step(sub, D.take(going), mu[idx])
        mu[idx] = torch.where(full, mu[idx] / 4, mu[idx] * 4).clamp(1e-8, 1e4)
        last[idx] = (new - lam[idx]).clamp_min(0.0)
        lam[idx] = new
    if finish and certify_after is not None:
        _certify(P, out, torch.as_tensor(np.flatnonzero(out.status == UNCONVERGED)), support=False)
    if finish:
        _fallback(P, out)
    return out


def lagrangian_point(P: QPBatch | RowsBatch, lam: torch.Tensor) -> torch.Tensor:
    """v(lam) = clip(-A^T lam / 2, lo, hi), the minimiser over the box of the Lagrangian at lam
    (the problems' solutions at their optimal multipliers), (B, d)."""
    return _Dual(P, lam).v


def _certify(P: QPBatch | RowsBatch, out: BatchSolution, open_: torch.Tensor, support: bool) -> torch.Tensor:
    """The phase-1 LP on the problems open_ of P, on every row or (support) on the rows where
    their multipliers out.lam are positive: those with a Farkas vector become `infeasible`
    (lam: the vector, zero off the rows given to the LP; lower: inf). Returns which of open_
    did (a mask over open_)."""
    done = torch.zeros(len(open_), dtype=torch.bool)
    for n, k in enumerate(open_.tolist()):
        qp = P.dense(k)
        rows = np.flatnonzero(out.lam[k].numpy() > 0) if support else np.arange(len(qp.b))
        y = farkas_lp(BoxQP(qp.A[rows], qp.b[rows], qp.lo, qp.hi)) if len(rows) else None
        if y is not None:
            out.status[k], out.lower[k] = INFEASIBLE, np.inf
            out.lam[k] = 0.0
            out.lam[k, rows] = torch.as_tensor(y)
            done[n] = True
    return done


def _fallback(P: QPBatch | RowsBatch, out: BatchSolution) -> None:
    """DAQP for the problems the Newton method left open (its verdicts: `qp.solve_daqp`)."""
    from .reference import solve_daqp

    for k in np.flatnonzero(out.status == UNCONVERGED):
        ref = solve_daqp(P.dense(int(k)))
        out.fell_back[k] = True
        out.status[k] = OF_QP[ref.status]
        if out.status[k] != UNCONVERGED:
            out.lower[k] = ref.lower
        if out.status[k] in (OPTIMAL, INFEASIBLE):  # multipliers or Farkas certificate, for callers that check
            out.lam[k] = torch.as_tensor(ref.lam)
        if out.status[k] == OPTIMAL:
            out.value[k], out.v[k] = ref.norm, torch.as_tensor(ref.v)


@dataclass
class RegionBest:
    """Per region r: the smallest problem-(3) optimum over the targets when it is below the
    threshold (value, v (R, d), target), else value inf / target -1; work counts."""

    value: np.ndarray
    v: torch.Tensor
    target: np.ndarray
    solved: int = 0  # QPs solved to optimality or certified infeasible
    pruned: int = 0  # QPs dropped by a lower bound (cheap, dual, or the region's best)


class RegionQPs:
    """Problem (3) of Croce & Hein on many regions of `net` around one image x with class c:

        min ||v||_2  s.t.  f_t(x+v) >= f_c(x+v) and s_j (G_j (x+v) + g_j) >= 0 on the region,
                           0 <= x+v <= 1,

    with the region's affine maps written in h = W_1 z (the regions of `net` with W_1 replaced
    by the identity), so U = W_1 is the shared basis of every row.
    """

    def __init__(self, net, x: np.ndarray, c: int):
        from ..network import ReluNetwork

        W1 = net.weights[0]
        first = (np.eye(W1.shape[0]), net.biases[0])  # the layers after W_1, read in the basis W_1 z
        self.tail = ReluNetwork.from_layers([first, *zip(net.weights[1:], net.biases[1:], strict=True)])
        self.basis = basis_of(W1)
        self.x = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(-1))
        self.hx = self.basis.U @ self.x
        self.c = int(c)

    def batch(self, active: torch.Tensor, targets) -> tuple[QPBatch, np.ndarray, np.ndarray]:
        """The problems of every region active[r] ((R, H) bool) and target (region-major,
        last row the target's), with the region and the target of each."""
        from .regions import regions_of_patterns

        reg = regions_of_patterns(self.tail, active)
        s = reg.signs
        targets = np.asarray(list(targets), dtype=np.int64)
        R, T = len(reg), len(targets)
        w = reg.F[:, targets] - reg.F[:, [self.c]]  # (R, T, h): f_t - f_c in h-coordinates
        w0 = reg.f[:, targets] - reg.f[:, [self.c]]
        Cr = (-s[..., None] * reg.G)[:, None].expand(R, T, -1, -1)
        br = (s * (reg.G @ self.hx + reg.g))[:, None].expand(R, T, -1)
        C = torch.cat([Cr, -w[:, :, None]], dim=2).reshape(R * T, -1, self.hx.shape[0])
        b = torch.cat([br, (w @ self.hx + w0)[..., None]], dim=2).reshape(R * T, -1)
        P = QPBatch(C, b, self.basis, -self.x, 1.0 - self.x)
        return P, np.repeat(np.arange(R), T), np.tile(targets, R)

    def best(self, active: torch.Tensor, targets, threshold: float = np.inf) -> RegionBest:
        """min over targets of problem (3) on each region, where it is < threshold.

        Problems whose cheap bound is >= threshold are pruned at once; then the most
        promising target of every region (smallest cheap bound) is solved, and the others
        only against min(threshold, that region's best) as their pruning threshold.
        """
        P, region, target = self.batch(active, targets)
        R = len(active)
        out = RegionBest(np.full(R, np.inf), torch.full((R, len(self.x)), torch.nan, dtype=torch.float64),
                         np.full(R, -1))
        bound = P.cheap_bound().numpy()
        order = np.lexsort((bound, region))
        first = order[np.r_[True, region[order][1:] != region[order][:-1]]] if len(order) else order
        rest = np.setdiff1d(np.arange(len(P)), first)
        for ks in (first, rest):
            limit = np.minimum(threshold, out.value[region[ks]])
            live = bound[ks] < limit
            out.pruned += int((~live).sum())
            ks, limit = ks[live], limit[live]
            if len(ks) == 0:
                continue
            sol = solve_batch(P[torch.as_tensor(ks)], torch.as_tensor(limit))
            out.pruned += int((sol.status == PRUNED).sum())
            out.solved += int(np.isin(sol.status, (OPTIMAL, INFEASIBLE)).sum())
            for j in np.flatnonzero(sol.value < limit):
                r = region[ks[j]]
                if sol.value[j] < out.value[r]:
                    out.value[r], out.v[r], out.target[r] = sol.value[j], sol.v[j], target[ks[j]]
        return out

    def polish(self, active: torch.Tensor, target: int, v: np.ndarray) -> tuple[float, np.ndarray] | None:
        """Problem (3) on one region and target by DAQP started from v (exact to rounding):
        (||v*||, v*), or None when DAQP does not confirm an optimum."""
        from .reference import solve_daqp

        P, _, _ = self.batch(active[None], [target])
        sol = solve_daqp(P.dense(0), start=v)
        return (sol.norm, sol.v) if sol.status == OPTIMAL else None
