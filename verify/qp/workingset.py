"""Problem (3) of Croce & Hein on one linear region by constraint generation (a working set),
matrix-free in the region's rows: fast for wide and deep networks (1024-unit layers).

On the region Q(y) of a pattern p (neuron j active iff p_j), every hidden pre-activation is
affine, pre_j(z) = G_j z + g_j, and so is every logit. For an image x of class c and a target t,
with v = z - x:

    min ||v||_2^2  s.t.  a_j v <= b_j for every hidden neuron j   (a_j = -s_j G_j, b_j = s_j pre_j(x)),
                         w_t v >= -(f_t - f_c)(x)                 (w_t the row of f_t - f_c),
                         -x <= v <= 1 - x,

s_j = +1 (active) or -1. Only a few of the H region rows (H = 1024 ... 10240) are active at the
optimum, so we solve relaxations: the problem with the target row, the box and a working set W
of region rows (`qp.batched.solve_batch`, projected Newton on the dual, with the rows of W and the
targets as its basis), then compute all H slacks s_j pre_j(x + v) at its solution (or, for a
relaxation still open after `round_steps` Newton steps, at its Lagrangian point v(lam)) with ONE
forward pass through the network with the pattern fixed, add the most violated rows to W (warm
start: the old multipliers, zero for the new rows) and solve again. The rows themselves are
never formed for the whole region: a row G_j is one backward pass of the unit vector e_j
through the fixed pattern (G_j = e_j^T W_l D_{l-1} W_{l-1} ... D_1 W_1), done only for rows that
enter W or whose norm is needed for the stopping test. The targets of a region share one
working set (every added row is a true constraint, so each relaxation stays a relaxation).

Why this is exact:
- a relaxation has fewer constraints, so its optimum is a lower bound; its dual multipliers,
  with zeros on the rows outside W, are dual-feasible for the full problem, so the solver's
  rigorous bound sqrt(q(lam)) is a lower bound of the full problem's optimum too;
- the relaxation's solution v is accepted when no region row is violated by more than
  tol * ||a_j|| (the same test `solve_batch` applies to the rows of W): then v is feasible for
  the full problem to that tolerance and optimal to it (duality gap <= tol^2 (1 + q));
- a Farkas certificate of the relaxation (lam >= 0 on W and the target row with
  min over the box of lam^T (A v - b) > 0; from the Newton method, or from the phase-1 LP
  `qp.farkas_lp` for relaxations still open after `certify_after` steps, checked in float64)
  is one of the full problem (zeros elsewhere), so `infeasible` is certified;
- pruning (lower bound >= threshold) uses the same valid bound.
The first working set: the `add` rows violated at v = 0 (the image x) farthest away; the
largest distance -b_j / ||a_j|| of a row violated at 0 is a cheap lower bound (as
`qp.batched.QPBatch.cheap_bound`), and a problem whose cheap bound reaches the threshold is pruned
without a QP. Rows enter W at most `add` per problem and round; W only grows, and a round that
adds no row to an open problem is followed by one that solves it out, so the loop ends after at
most 2 H rounds (capped by `max_rounds`, after which a problem is reported `unconverged`).

Many regions at once (`WorkingSetQPs.solve_many`, used by `best` for all regions of an
rLR-QP round): each region keeps its own working set, and each round solves the relaxations of
every open problem (region x target) in one `solve_batch` call over explicit rows
(`qp.batched.RowsBatch`), a problem with fewer rows padded by zero rows with right side 1 (0 <= 1
holds everywhere, so a padded problem is the same problem, and those rows' multipliers stay
0: a Farkas certificate or a dual bound is unchanged by them); the network passes of all
regions (right sides, first rows, slacks) run as one batched pass per layer, every point or
covector carrying its region's pattern. Every problem's relaxations, bounds and verdicts are
those of the problem solved alone, so the argument above holds for each.

The network passes run on `device` (cpu or cuda); the small QPs over W run on the CPU in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch

from ..network import margin_rows
from .batched import (
    INFEASIBLE,
    OPTIMAL,
    PRUNED,
    UNCONVERGED,
    BatchSolution,
    RegionBest,
    RowsBatch,
    lagrangian_point,
    solve_batch,
)
from .reference import BoxQP, solve_daqp


def _per_row(which, n: int) -> np.ndarray:
    """Region indices, one per row: `which` itself, or one region index repeated n times."""
    return np.full(n, which, dtype=np.int64) if np.ndim(which) == 0 else np.asarray(which, dtype=np.int64)


class FixedPattern:
    """The network with the activation patterns active (R, H) of R regions fixed: the affine
    maps of the regions Q_r, evaluated by forward passes and their rows by backward (pull-back)
    passes. Every point or covector names its region (`which`, one index per row), so the
    passes of many regions run as one matrix product per layer.

    weights / biases: float64 tensors on the device, one pair per layer."""

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor], active: torch.Tensor):
        self.weights, self.biases = weights, biases
        sizes = [W.shape[0] for W in weights[:-1]]
        self.offsets = np.cumsum([0, *sizes])
        active = torch.atleast_2d(active.to(weights[0].device))
        self.masks = [active[:, a:b].to(torch.float64) for a, b in pairwise(self.offsets)]
        self.signs = active.to(torch.float64) * 2.0 - 1.0  # (R, H)

    def forward(self, Z: torch.Tensor, which) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden pre-activations (n, H) and logits (n, K) of the affine maps of the regions
        `which` (n,) at the points Z (n, d)."""
        pre, h = [], Z
        for k, (W, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            g = h @ W.T + b
            if k < len(self.masks):
                pre.append(g)
                h = g * self.masks[k][which]
        return torch.cat(pre, dim=1), g

    def pullback(self, covectors: dict[int, tuple[torch.Tensor, np.ndarray]]) -> torch.Tensor:
        """Rows y^T d(pre_l)/dz for covectors y (k_l, n_l) on the pre-activations of layer l
        (l = len(masks) for the logits) of the regions which_l (k_l,), given as {l: (y, which_l)},
        stacked from the highest layer down: one backward pass y W_l D_{l-1} ... D_1 W_1 for
        all of them together."""
        R, which = None, np.zeros(0, dtype=np.int64)
        for k in range(max(covectors), -1, -1):
            if k in covectors:
                y, w = covectors[k]
                R = y if R is None else torch.cat([R, y])
                which = np.r_[which, np.broadcast_to(w, (len(y),))]
            if R is not None:
                R = R @ self.weights[k]
                if k > 0:
                    R = R * self.masks[k - 1][which]
        return R

    def rows(self, idx: np.ndarray, which) -> torch.Tensor:
        """G_j for the hidden neurons idx (k,) of the regions which (k,), in the order of idx: a
        neuron of layer k >= 1 is the covector W_k[j] D_{k-1} on layer k-1, pulled back from
        there; layer 0's rows are W_1's."""
        idx = np.asarray(idx, dtype=np.int64)
        which = _per_row(which, len(idx))
        layer = np.searchsorted(self.offsets, idx, side="right") - 1
        out = torch.empty(len(idx), self.weights[0].shape[1], dtype=torch.float64, device=self.weights[0].device)
        first = np.flatnonzero(layer == 0)
        out[first] = self.weights[0][idx[first]]
        cov, order = {}, []
        for k in sorted(set(layer.tolist()) - {0}, reverse=True):
            sel = np.flatnonzero(layer == k)
            cov[k - 1] = (self.weights[k][idx[sel] - self.offsets[k]] * self.masks[k - 1][which[sel]], which[sel])
            order.extend(sel.tolist())
        if order:
            out[order] = self.pullback(cov)
        return out

    def formed(self, idx: np.ndarray, which) -> torch.Tensor:
        """The constraint rows a_j = -s_j G_j for the neurons idx of the regions which (CPU)."""
        which = _per_row(which, len(idx))
        return (-self.signs[which, idx][:, None] * self.rows(idx, which)).cpu()

    def logit_rows(self, targets: np.ndarray, c: int, which: np.ndarray) -> torch.Tensor:
        """Rows of f_t - f_c for every region r of `which` and target t, (len(which), T, d)."""
        K, T = self.weights[-1].shape[0], len(targets)
        y = torch.as_tensor(margin_rows(K, c, targets), device=self.weights[0].device)
        which = np.asarray(which, dtype=np.int64)
        return self.pullback({len(self.masks): (y.repeat(len(which), 1), np.repeat(which, T))}).view(len(which), T, -1)


@dataclass
class RegionSolution:
    """Per target of one region: a `qp.batched.BatchSolution` (status, value, v, lower bound, ...),
    plus the working set W (hidden-neuron indices) it ended with and the rounds taken."""

    solution: BatchSolution
    working_set: np.ndarray
    rounds: int


class _Region:
    """One region's state in `WorkingSetQPs.solve_many`: its pattern, right sides, working set
    W with the rows formed so far, and per target the solution so far and the last multipliers
    (on W's rows, then the target row).

    Problems whose cheap bound (the `_seed` bound or the distance to the target's half-space)
    reaches the threshold are `pruned` at once, without a QP."""

    def __init__(self, qps: WorkingSetQPs, r: int, b_region: torch.Tensor, w_target: torch.Tensor,
                 b_target: torch.Tensor, W: list[int], cache: dict[int, torch.Tensor], bound: float, threshold):
        T = len(b_target)
        self.r, self.b_region, self.w_target, self.b_target = r, b_region, w_target, b_target
        self.cache = cache  # a_j = -s_j G_j (CPU) of the rows formed
        self.W = W
        self.A_W = torch.stack([self.cache[j] for j in W]) if W else torch.zeros(0, len(qps.x), dtype=torch.float64)
        self.sol = BatchSolution(np.full(T, UNCONVERGED, dtype=object), np.full(T, np.inf),
                                 torch.full((T, len(qps.x)), torch.nan, dtype=torch.float64), np.zeros(T),
                                 torch.zeros(T, len(self.W) + 1, dtype=torch.float64), np.zeros(T, dtype=np.int64),
                                 np.zeros(T, dtype=bool))
        self.lam = list(self.sol.lam)
        self.thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (T,)).copy()
        cheap = np.maximum(bound, (-self.b_target / self.w_target.norm(dim=1).clamp_min(1e-300)).clamp_min(0.0).numpy())
        self.sol.lower[:] = cheap
        self.sol.status[cheap >= self.thr] = PRUNED  # a lower bound already at the threshold: no QP at all
        self.rounds = 0
        self.stalled = np.zeros(T, dtype=bool)  # open after round_steps with no row to add: solve it out next

    def grow(self, added: list[int]) -> None:
        """Rows `added` (formed, in the cache) join W; the multipliers get zeros for them."""
        if not added:
            return
        self.W.extend(added)
        self.A_W = torch.cat([self.A_W, torch.stack([self.cache[j] for j in added])])
        zeros = torch.zeros(len(added), dtype=torch.float64)
        self.lam = [torch.cat([lam[:-1], zeros, lam[-1:]]) for lam in self.lam]

    def result(self) -> RegionSolution:
        self.sol.lam = torch.stack(self.lam)
        return RegionSolution(self.sol, np.asarray(self.W, dtype=np.int64), self.rounds)


class WorkingSetQPs:
    """Problem (3) on the regions of `net` around one image x of class c, by constraint
    generation (module docstring). Same interface as `qp.batched.RegionQPs` (`best`, `polish`).

    add: rows added per problem and round; max_iter: Newton steps per relaxation before
    `solve_batch` hands a problem to the phase-1 LP and then DAQP (300, not `RegionQPs`' 50: slow
    feasible relaxations of deep networks' regions take 100-200 steps, and DAQP is slow on
    hundreds of dense rows); certify_after: Newton steps before the relaxations still open
    get the phase-1 LP on their multipliers' support (`solve_batch`): an infeasible relaxation
    is certified by the Newton method only after its dual has grown along the ray, 150-500
    steps, and most feasible ones end within 40 (once per relaxation: on 1x1024 regions an LP
    costs as much as a hundred Newton steps). None: no LP at all.

    round_steps: Newton steps per round. A relaxation still open after them is not solved
    out: the region rows violated at its Lagrangian point v(lam) join W (as for a solved
    relaxation) and the next round goes on from lam; only when no row is violated there is it
    solved out (max_iter steps, then the LP and DAQP) in the next round. Relaxations of deep
    networks' regions whose optimum is far from x take 100-200 shortened Newton steps (pixels
    reach the box one by one), and their rows at v(lam) are mostly the rows the solution
    violates too. None: every relaxation solved out."""

    def __init__(self, net, x: np.ndarray, c: int, *, device: str | torch.device = "cpu", tol: float = 1e-9,
                 add: int = 16, max_rounds: int = 200, max_iter: int = 300, certify_after: int | None = 40,
                 round_steps: int | None = 40):
        self.device = torch.device(device)
        self.weights = [torch.tensor(W, dtype=torch.float64, device=self.device) for W in net.weights]
        self.biases = [torch.tensor(b, dtype=torch.float64, device=self.device) for b in net.biases]
        self.x = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(-1))
        self.c, self.tol, self.add, self.max_rounds, self.max_iter = int(c), tol, add, max_rounds, max_iter
        self.certify_after, self.round_steps = certify_after, round_steps
        self.lo, self.hi = -self.x, 1.0 - self.x
        self.norms0 = self.weights[0].norm(dim=1).cpu()  # ||G_j|| of the first layer's rows (pattern-free)

    def region(self, active: torch.Tensor) -> FixedPattern:
        return FixedPattern(self.weights, self.biases, torch.as_tensor(active, dtype=torch.bool))

    def solve(self, active: torch.Tensor, targets, threshold=np.inf, *, prune_by_best: bool = False) -> RegionSolution:
        """Problem (3) on the region of pattern `active` (H,) for every target (T,).

        threshold: a problem whose lower bound reaches it is `pruned`; prune_by_best: also
        prune against the smallest optimum already found among the region's targets (for
        `best`, which only wants the minimum)."""
        return self.solve_many(torch.as_tensor(active)[None], targets, threshold, prune_by_best=prune_by_best)[0]

    def solve_many(self, active: torch.Tensor, targets, threshold=np.inf, *,
                   prune_by_best: bool = False) -> list[RegionSolution]:
        """`solve` on every region active[r] ((R, H) bool) at once: each round solves the
        relaxations of all open problems (region x target) in ONE `solve_batch` call over
        explicit rows (`qp.batched.RowsBatch`, each problem its region's working set and its target
        row, padded with zero rows), then adds each region's violated rows to its working set.
        A problem's rounds are the same as alone: the batch's problems are independent."""
        targets = np.asarray(list(targets), dtype=np.int64)
        pat = self.region(active)
        sides = self._right_sides(pat, targets)
        regions = [_Region(self, r, *(side[r] for side in sides), *seed, threshold)
                   for r, seed in enumerate(self._seed(pat, sides[0]))]
        rounds = 0
        while rounds < self.max_rounds:
            open_ = [(r, k) for r, R in enumerate(regions) for k in np.flatnonzero(R.sol.status == UNCONVERGED)]
            if not open_:
                break
            rounds += 1
            for R in regions:
                R.rounds += bool((R.sol.status == UNCONVERGED).any())
            limit = np.array([min(regions[r].thr[k], regions[r].sol.value.min()) if prune_by_best else regions[r].thr[k]
                              for r, k in open_])
            P, lam0 = self._batch(regions, open_)
            patient = np.array([regions[r].stalled[k] for r, k in open_], dtype=bool)
            sub = self._relaxations(P, limit, lam0, patient)
            for i, (r, k) in enumerate(open_):
                R = regions[r]
                R.sol.fell_back[k] |= sub.fell_back[i]
                R.sol.iterations[k] += sub.iterations[i]
                R.sol.lower[k] = sub.lower[i]
                R.lam[k] = torch.cat([sub.lam[i, : len(R.W)], sub.lam[i, len(R.W) : len(R.W) + 1]])
                if sub.status[i] != OPTIMAL and (patient[i] or sub.status[i] != UNCONVERGED):
                    R.sol.status[k] = sub.status[i]  # infeasible, pruned or unconverged: final (module docstring)
            ok = np.flatnonzero(sub.status == OPTIMAL)
            slow = np.flatnonzero((sub.status == UNCONVERGED) & ~patient)
            pts = np.r_[ok, slow]
            which = np.array([open_[i][0] for i in pts], dtype=np.int64)
            V = torch.cat([sub.v[ok], lagrangian_point(P[torch.as_tensor(slow)], sub.lam[slow])])
            new_rows = self._violated(pat, which, self._slacks(pat, V, which),
                                      [regions[r].W for r in which], [regions[r].cache for r in which])
            for r, R in enumerate(regions):
                mine = np.flatnonzero(which == r)
                if not len(mine):
                    continue
                new = [new_rows[n] for n in mine]
                for n, rows in zip(mine, new, strict=True):
                    i, k = pts[n], open_[pts[n]][1]
                    if n >= len(ok):  # the relaxation open after round_steps: go on from lam, with rows or without
                        R.stalled[k] = not rows
                    elif not rows:  # no region row violated beyond the tolerance: optimal
                        R.sol.status[k], R.sol.value[k], R.sol.v[k] = OPTIMAL, sub.value[i], sub.v[i]
                    else:
                        R.stalled[k] = False
                R.grow(sorted(set().union(*map(set, new))))
        return [R.result() for R in regions]

    def _relaxations(self, P: RowsBatch, limit: np.ndarray, lam0: torch.Tensor, patient: np.ndarray) -> BatchSolution:
        """One round's `solve_batch`: round_steps Newton steps (then the LP on the multipliers'
        support) for the relaxations, left `unconverged` where open; max_iter steps and the
        fallbacks (LP, DAQP) for the `patient` ones (open after round_steps with no region row
        violated at v(lam): their working set cannot grow, so only solving them helps)."""
        kw = dict(tol=self.tol, certify_after=self.certify_after)
        if self.round_steps is None:
            return solve_batch(P, torch.as_tensor(limit), max_iter=self.max_iter, lam0=lam0, **kw)
        out = None
        for mask, steps, finish in ((~patient, self.round_steps, False), (patient, self.max_iter, True)):
            idx = np.flatnonzero(mask)
            if not len(idx):
                continue
            part = solve_batch(P[torch.as_tensor(idx)], torch.as_tensor(limit[idx]), max_iter=steps,
                               lam0=lam0[idx], finish=finish, **kw)
            if out is None:
                B = len(P)
                out = BatchSolution(np.full(B, UNCONVERGED, dtype=object), np.full(B, np.inf),
                                    torch.full((B, P.A.shape[2]), torch.nan, dtype=torch.float64), np.zeros(B),
                                    torch.zeros_like(lam0), np.zeros(B, dtype=np.int64), np.zeros(B, dtype=bool))
            for name in ("status", "value", "v", "lower", "lam", "iterations", "fell_back"):
                getattr(out, name)[idx] = getattr(part, name)
        return out

    def _seed(self, pat: FixedPattern,
              b_region: torch.Tensor) -> list[tuple[list[int], dict[int, torch.Tensor], float]]:
        """Per region of `pat` (right sides b_region (R, H)): the first working set, the rows
        formed for it and a cheap lower bound on every target's optimum.

        At v = 0 (the image x) the rows with b_j < 0 are violated, and each one's half-space
        is at distance -b_j / ||a_j|| from 0: the largest such distance bounds ||v|| below (the
        box and the other rows ignored), as `qp.batched.QPBatch.cheap_bound` does. Norms are known
        for first-layer rows (pattern-free); of the deeper rows, the `add` most violated (in value)
        are formed (one backward pass for all regions). The `add` rows farthest away start the
        working set."""
        want, bound0 = [], []
        for viol in -b_region:
            cand = torch.argsort(viol, descending=True)[: int((viol > 0).sum())].numpy()
            layer0 = cand[cand < len(self.norms0)]
            dist0 = (viol[layer0] / self.norms0[layer0]).numpy()
            deep = cand[cand >= len(self.norms0)]
            want.append(np.r_[layer0[np.argsort(-dist0, kind="stable")][: self.add], deep[: self.add]])
            bound0.append(float(dist0.max(initial=0.0)))
        which = np.repeat(np.arange(len(want)), [len(w) for w in want])
        rows = pat.formed(np.concatenate(want).astype(np.int64), which) if len(which) else None
        out, at = [], 0
        for r, idx in enumerate(want):
            if len(idx) == 0:
                out.append(([], {}, 0.0))
                continue
            A = rows[at : at + len(idx)]
            at += len(idx)
            dist = (-b_region[r, idx] / A.norm(dim=1).clamp_min(1e-300)).numpy()
            W = idx[np.argsort(-dist, kind="stable")][: self.add]
            out.append((sorted(W.tolist()), dict(zip(idx.tolist(), A, strict=True)), max(float(dist.max()), bound0[r])))
        return out

    def _right_sides(self, pat: FixedPattern, targets: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per region of `pat`: b_j = s_j pre_j(x) of the region rows (R, H), and the target
        rows -(F_t - F_c) (R, T, d) with their right sides (f_t - f_c)(x) (R, T), all with the
        pattern fixed (CPU tensors; one forward and one backward pass for all regions)."""
        which = np.arange(len(pat.signs))
        pre_x, logits_x = pat.forward(self.x.to(self.device).expand(len(which), -1), which)
        return ((pat.signs * pre_x).cpu(), -pat.logit_rows(targets, self.c, which).cpu(),
                (logits_x[:, targets] - logits_x[:, [self.c]]).cpu())

    def _batch(self, regions: list[_Region], open_: list[tuple[int, int]]) -> tuple[RowsBatch, torch.Tensor]:
        """The relaxations of the open problems (region r, target k): the rows of r's working
        set, then the target's row, then zero rows (b = 1) up to the longest; and the warm
        start (the problems' last multipliers, zero on the rows added since)."""
        m = max(len(regions[r].W) for r, _ in open_) + 1
        A = torch.zeros(len(open_), m, len(self.x), dtype=torch.float64)
        b = torch.ones(len(open_), m, dtype=torch.float64)
        lam = torch.zeros(len(open_), m, dtype=torch.float64)
        for i, (r, k) in enumerate(open_):
            R = regions[r]
            n = len(R.W)
            if n:
                A[i, :n] = R.A_W
                b[i, :n] = R.b_region[R.W]
            A[i, n], b[i, n] = R.w_target[k], R.b_target[k]
            lam[i, : n + 1] = R.lam[k]
        return RowsBatch(A, b, self.lo, self.hi), lam

    def _slacks(self, pat: FixedPattern, V: torch.Tensor, which) -> torch.Tensor:
        """a_j v - b_j = -s_j pre_j(x + v) of every row of the regions `which` at the points
        x + v (rows of V), from one forward pass (CPU, (n, H))."""
        xd = self.x.to(self.device)
        pre, _ = pat.forward(xd + V.to(xd.device), which)
        return (-pat.signs[which] * pre).cpu()

    def _violated(self, pat: FixedPattern, which: np.ndarray, viol: torch.Tensor, W: list[list[int]],
                  caches: list[dict[int, torch.Tensor]]) -> list[list[int]]:
        """Per point n, of region which[n] with slacks viol[n] (`_slacks`), working set W[n] and
        formed rows caches[n] (a region's points share theirs): up to `add` region rows outside
        W[n] violated by more than tol * ||a_j||, the most violated (in distance,
        violation / ||a_j||) first.

        Rows are formed (backward passes) only for candidates with a positive violation, most
        violated (in value) first, in chunks of `add`, until `add` rows are found or the
        candidates are exhausted; the chunks of all points are formed in one backward pass."""
        viol = viol.clone()
        cands = []
        for n, row in enumerate(viol):
            if W[n]:
                row[W[n]] = -np.inf
            cands.append(torch.argsort(row, descending=True)[: int((row > 0).sum())].numpy())
        chosen: list[list[tuple[float, int]]] = [[] for _ in cands]
        going = [n for n, cand in enumerate(cands) if len(cand)]
        start = 0
        while going:
            need: dict[tuple[int, int], int] = {}  # (region, neuron) -> point whose cache takes it
            for n in going:
                for j in cands[n][start : start + self.add].tolist():
                    if j not in caches[n]:
                        need.setdefault((int(which[n]), j), n)
            if need:
                keys = list(need)
                rows = pat.formed(np.array([j for _, j in keys]), np.array([r for r, _ in keys]))
                for key, a in zip(keys, rows, strict=True):
                    caches[need[key]][key[1]] = a
            for n in going:
                for j in cands[n][start : start + self.add].tolist():
                    dist = float(viol[n, j]) / float(caches[n][j].norm().clamp_min(1e-300))
                    if dist > self.tol:
                        chosen[n].append((dist, j))
            start += self.add
            going = [n for n in going if len(chosen[n]) < self.add and start < len(cands[n])]
        return [[j for _, j in sorted(c, reverse=True)[: self.add]] for c in chosen]

    def best(self, active: torch.Tensor, targets, threshold: float = np.inf) -> RegionBest:
        """Per region active[r] ((R, H) bool): min over the targets of problem (3) where it is
        below the threshold (each region's targets pruned against its best so far); all regions
        in one `solve_many`."""
        R = len(active)
        out = RegionBest(np.full(R, np.inf), torch.full((R, len(self.x)), torch.nan, dtype=torch.float64),
                         np.full(R, -1))
        targets = np.asarray(list(targets), dtype=np.int64)
        for r, res in enumerate(self.solve_many(active, targets, threshold, prune_by_best=True)):
            s = res.solution
            out.solved += int(np.isin(s.status, (OPTIMAL, INFEASIBLE)).sum())
            out.pruned += int((~np.isin(s.status, (OPTIMAL, INFEASIBLE, UNCONVERGED))).sum())
            k = int(np.argmin(s.value))
            if s.value[k] < threshold:
                out.value[r], out.v[r], out.target[r] = s.value[k], s.v[k], targets[k]
        return out

    def polish(self, active: torch.Tensor, target: int, v: np.ndarray) -> tuple[float, np.ndarray] | None:
        """The solution for one target re-solved exactly by DAQP's active set, started from v,
        on the final working set; kept only if the point then violates no region row by more
        than tol * ||a_j|| (else None)."""
        res = self.solve(active, [target])
        if res.solution.status[0] != OPTIMAL:
            return None
        pat = self.region(active)
        W = res.working_set
        b_region, w_target, b_target = (side[0] for side in self._right_sides(pat, np.array([target])))
        A = torch.cat([pat.formed(W, 0), w_target])
        sol = solve_daqp(BoxQP(A.numpy(), torch.cat([b_region[W], b_target]).numpy(), self.lo.numpy(), self.hi.numpy()),
                         start=np.asarray(v))
        if sol.status != OPTIMAL:
            return None
        at = np.zeros(1, dtype=np.int64)
        if self._violated(pat, at, self._slacks(pat, torch.as_tensor(sol.v)[None], at), [[]], [{}])[0]:
            return None
        return sol.norm, sol.v


def dense_qp(net, x: np.ndarray, c: int, active: torch.Tensor, target: int) -> BoxQP:
    """Problem (3) on the region of `active` for one target with every row formed (for tests
    and the reference solvers; rows in the order of the hidden neurons, the target's last)."""
    qps = WorkingSetQPs(net, x, c)
    pat = qps.region(active)
    b_region, w_target, b_target = (side[0] for side in qps._right_sides(pat, np.array([target])))
    A = pat.formed(np.arange(pat.signs.shape[1]), 0)
    return BoxQP(torch.cat([A, w_target]).numpy(), torch.cat([b_region, b_target]).numpy(),
                 qps.lo.numpy(), qps.hi.numpy())
