"""rLR-QP: Algorithm 1 of Croce & Hein, "A randomized gradient-free attack on ReLU networks"
(GCPR 2018), for the L2 norm.

Problem (2) on a linear region Q(y): min ||delta||_2 over x + delta in Q(y) cap [0,1]^d with
max_{t != c} f_t(x + delta) >= f_c(x + delta), i.e. the best over the targets t of the
convex QP (3) (`minadv.verify.qp.batched.RegionQPs`, batched over regions and targets).

    delta <- the better of (2) on Q(x) and the warm start; u <- ||delta||; S <- n1 copies
    for a1 = 1..n4:
        exploration, n3 rounds: for i = 1..n1, j = 1..n2: y = x + S_i + eps, eps in B(0, u/a1);
            delta_temp <- (2) on Q(y); offer(delta_temp)
        local search: n2 points y = x + delta + eps, eps in B(0, u/a1); offer each result

    offer(delta_temp) (lines 15-17 and 25-27):
        if ||delta_temp|| < u: delta <- delta_temp, u <- ||delta_temp||
          (the paper prints "delta <- delta_0" here, a typo: the new best is delta_temp)
        S_m = argmax_m ||S_m||: if ||delta_temp|| < alpha u and ||delta_temp|| < ||S_m||: S_m <- delta_temp

eps has a direction uniform on the sphere and a radius uniform in [0, u/a1]. Batching: the
n1 * n2 points of a round (the n2 of a local search) are drawn from S, delta and u at its start
and their QPs solved together; the results are then offered one by one in the paper's order.
A region is never solved twice (its activation pattern is hashed), and a QP is pruned once a
lower bound reaches min(alpha u, max ||S||), the smallest norm that could still change S or
delta (every member of S is >= u, since a member enters S only when it is >= the u it sets),
so pruning never changes the outcome.

Starts (`Start`): `paper` is Algorithm 1 as printed. `per_target` (beyond the paper) keeps the
algorithm and changes only its start: for every target class t, a boundary point of f_t = f_c
reached from x (`target_boundaries`), problem (2) on its region, then moved down through
adjacent regions (`_Explorer.descend`: the regions across the NEAREST hyperplanes nearest to
the point, while one of them is lower), with Q(x)'s solution among them. delta is the lowest
of these and S starts as n1 copies of it. The DeepFool warm start is not run (its point is a
boundary point of one of these classes), except with targets="warm", which needs its class.
Why: the paper's search stays in the valley of the class it starts in; random points around
it (radius up to u, in hundreds of dimensions) almost never reach a smaller optimum of another
class 0.5 or more away. Seeding S with every class's start instead of copies of delta reached
the same optima at more cost (the members in other valleys are the first to be replaced, after
being explored).

Warm start: DeepFool (Foolbox, the paper's settings), then bisection on the segment
x -> x + delta_DF for the boundary; if DeepFool fails, the segment from x to the all-zero
image (when that image is adversarial). `iterations` > 1 applies the attack again from its
own result with the targets restricted to the class it found (the paper's Table 3).
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from typing import NamedTuple

import numpy as np
import torch

from minadv.verify import Counts, ReluNetwork, check, choice, patterns, push_across, regions_at
from minadv.verify.qp import RegionQPs, WorkingSetQPs

from .base import Attack, Candidate
from .deepfool import DeepFool


class Targets(StrEnum):
    """The target classes of the search."""

    ALL = "all"  # every class but c (the paper's setting for one hidden layer, N1/N2)
    WARM = "warm"  # the warm start's class only (the paper's deeper networks); all if there is no warm start


class Start(StrEnum):
    """How the search starts: `paper` (S = n1 copies of the best of the warm start and Q(x), as in
    Algorithm 1) or `per_target` (also one start per target class, each descended through
    adjacent regions; S = n1 copies of the best; see the module docstring)."""

    PAPER = "paper"
    PER_TARGET = "per_target"


class Solver(StrEnum):
    """The region-QP solver: `dense` (fastqp.RegionQPs: every region row, basis W_1; fastest on
    small networks such as N1/N2), `workingset` (verify.qp.workingset: constraint generation with
    matrix-free rows; for wide or deep networks), `auto`: dense up to DENSE_MAX_HIDDEN hidden
    neurons, else workingset."""

    AUTO = "auto"
    DENSE = "dense"
    WORKINGSET = "workingset"


NEAREST = 3  # per_target's descent: adjacent regions tried per step (across the nearest hyperplanes)
DENSE_MAX_HIDDEN = 256  # fastqp's pair table is h^2/2 x d (h = first layer width): 3.3 GB at h = 1024


def check_device(device: str) -> torch.device:
    """The torch device named `device`; ValueError for a bad name or one torch does not see."""
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"bad device {device!r}: {err}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: torch sees no CUDA device")
    return dev


def region_solver(net: ReluNetwork, x: np.ndarray, c: int, solver: Solver | str = Solver.AUTO, device: str = "cpu"):
    """The region-QP solver object for image x of class c (see `Solver`); the dense one runs on the CPU."""
    solver = Solver(solver)
    if solver is Solver.AUTO:
        solver = Solver.DENSE if sum(net.hidden_sizes) <= DENSE_MAX_HIDDEN else Solver.WORKINGSET
    if solver is Solver.DENSE:
        if torch.device(device).type != "cpu":
            raise ValueError("the dense region solver runs on the CPU only; use solver=workingset with a device")
        return RegionQPs(net, x, c)
    return WorkingSetQPs(net, x, c, device=device)


def bisect_segment(inside, x: np.ndarray, ends: np.ndarray, steps: int = 60) -> np.ndarray:
    """Per row e of ends (B, d): the point x + s (e - x) with the smallest s in [0, 1] found by
    bisection where inside holds (inside: points (B, d) -> (B,) bool; it must hold at e and not
    at x). The rows step together."""
    ends = np.atleast_2d(ends)
    lo, hi = np.zeros(len(ends)), np.ones(len(ends))
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        ok = inside(x + mid[:, None] * (ends - x))
        lo, hi = np.where(ok, lo, mid), np.where(ok, mid, hi)
    return x + hi[:, None] * (ends - x)


def boundary_on_segment(net: ReluNetwork, x: np.ndarray, end: np.ndarray, c: int, steps: int = 60) -> np.ndarray | None:
    """The adversarial point of the segment x -> end closest to x, by bisection on s in [0, 1]
    (end must be adversarial by the float64 check, else None)."""
    if not check(net, end, c).adversarial():
        return None
    return bisect_segment(lambda Z: np.array([check(net, z, c).adversarial() for z in Z]), x, end, steps)[0]


def pair_margins(net: ReluNetwork, Z: np.ndarray, T: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row z of Z (B, d) and its target t of T (B,): g(z) = f_t(z) - f_c(z) and its gradient
    on the region Q(z) (a backward pass with the activation pattern of z fixed; a neuron is
    active iff its pre-activation is >= 0)."""
    pre = net.pre_activations(Z)
    rows = np.arange(len(Z))
    w = net.weights[-1][T] - net.weights[-1][c]
    for W, p in zip(reversed(net.weights[:-1]), reversed(pre[:-1]), strict=True):
        w = (w * (p >= 0.0)) @ W
    return pre[-1][rows, T] - pre[-1][rows, c], w


def _linear_steps(x: np.ndarray, W: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Per row w of W (B, d): argmin ||delta|| s.t. w . delta >= beta, 0 <= x + delta <= 1, i.e.
    delta = clip(lam w) with the smallest lam >= 0 that meets the constraint; the box's farthest
    point along w when none does. r(lam) = w . clip(lam w) is piecewise linear and increasing:
    coordinate i stops at its bound b_i (hi_i for w_i > 0, lo_i for w_i < 0) once lam >= b_i / w_i,
    so with the coordinates in order of those breakpoints, r(lam) = (sum of w_i b_i over the
    stopped ones) + lam (sum of w_i^2 over the others), solved for lam on the right piece."""
    lo, hi = -x, 1.0 - x
    bound = np.where(W > 0, hi, np.where(W < 0, lo, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        stop = np.where(W != 0, bound / W, np.inf)  # >= 0: x is in the box
    order = np.argsort(stop, axis=1)
    stop, wb, w2 = (np.take_along_axis(a, order, axis=1) for a in (stop, W * bound, W * W))
    done = np.cumsum(wb, axis=1) - wb  # sum w_i b_i over the coordinates stopped before each breakpoint
    rest = w2[:, ::-1].cumsum(axis=1)[:, ::-1]  # sum w_i^2 over the coordinates not yet stopped
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = (beta[:, None] - done) / rest  # lam if the answer lies before breakpoint k
    prev = np.concatenate([np.zeros((len(W), 1)), stop[:, :-1]], axis=1)
    fits = (lam >= prev) & (lam <= stop) & (rest > 0)
    found = fits.any(axis=1)
    lam = np.where(found, lam[np.arange(len(W)), np.argmax(fits, axis=1)], 0.0)
    out = np.where(found[:, None], np.clip(lam[:, None] * W, lo, hi), bound)
    return np.where((beta <= 0.0)[:, None], 0.0, out)


def target_boundaries(net: ReluNetwork, x: np.ndarray, c: int, targets, steps: int = 50,
                      overshoot: float = 0.02) -> list[np.ndarray | None]:
    """Per target t: a point with f_t >= f_c near x, on the boundary f_t = f_c. DeepFool's
    linearisation for the one pair (c, t): each step the smallest perturbation in the box that
    meets the boundary linearised at the current point z, g(z) + w . (delta - (z - x)) >= 0
    (g, w from `pair_margins`), scaled by 1 + overshoot; then bisection on the segment from x.
    None for a target that `steps` steps do not bring to f_t >= f_c (or whose margin is flat).
    All targets step together."""
    T = np.asarray(list(targets), dtype=np.int64)
    Z = np.repeat(x[None], len(T), axis=0)
    live, hit = np.ones(len(T), bool), np.zeros(len(T), bool)
    for _ in range(steps):
        idx = np.flatnonzero(live)
        if len(idx) == 0:
            break
        g, W = pair_margins(net, Z[idx], T[idx], c)
        hit[idx[g >= 0.0]] = True
        go = (g < 0.0) & W.any(axis=1)
        live[idx[~go]] = False
        j = idx[go]
        beta = np.einsum("bd,bd->b", W[go], Z[j] - x) - g[go]
        Z[j] = np.clip(x + (1.0 + overshoot) * _linear_steps(x, W[go], beta), 0.0, 1.0)
    out: list = [None] * len(T)
    idx = np.flatnonzero(hit)
    if len(idx):
        points = bisect_segment(lambda P: pair_margins(net, P, T[idx], c)[0] >= 0.0, x, Z[idx])
        for k, i in enumerate(idx):
            out[i] = points[k]
    return out


def crossings(net: ReluNetwork, Z: np.ndarray, k: int, eta: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Per row z of Z (B, d): points just across the k hyperplanes G_j y + g_j = 0 of Q(z)
    nearest to z (distance |G_j z + g_j| / ||G_j||, G_j, g_j the affine map of hidden neuron j
    on Q(z)): z moved along G_j until the pre-activation is -eta (active neuron) or +eta
    (inactive one), i.e. the projection of z on that hyperplane, eta past it. Neuron j is
    switched there (and later layers as they follow); the point's region is the one adjacent to
    Q(z) across the hyperplane when the projection lies on Q(z)'s facet, always so for the
    nearest (a ball of that radius around z crosses no other). Returns the points and the row
    each comes from."""
    reg = regions_at(net, Z)
    G, g = reg.G.numpy(), reg.g.numpy()
    pre, sq = np.einsum("bhd,bd->bh", G, Z) + g, np.einsum("bhd,bhd->bh", G, G)
    dist = np.full(pre.shape, np.inf)
    np.divide(np.abs(pre), np.sqrt(sq), out=dist, where=sq > 0)  # a neuron constant on Q(z) never switches
    rows = np.repeat(np.arange(len(Z)), min(k, pre.shape[1]))
    cols = np.argsort(dist, axis=1, kind="stable")[:, :k].ravel()
    keep = np.isfinite(dist[rows, cols])
    rows, cols = rows[keep], cols[keep]
    p = pre[rows, cols]
    step = (np.where(p >= 0.0, -eta, eta) - p) / sq[rows, cols]
    return Z[rows] + step[:, None] * G[rows, cols], rows


def ball(rng: np.random.Generator, n: int, d: int, radius: float) -> np.ndarray:
    """n points of B(0, radius) in R^d: direction uniform on the sphere, radius uniform."""
    g = rng.standard_normal((n, d))
    return g / np.linalg.norm(g, axis=1, keepdims=True) * rng.uniform(0.0, radius, (n, 1))


class Found(NamedTuple):
    """A perturbation: its norm, delta, target class and the region it was solved on (None
    for the warm start)."""

    norm: float
    delta: np.ndarray
    target: int
    region: torch.Tensor | None = None


class _Explorer:
    """Problem (2) on the regions of many points, each region solved at most once."""

    def __init__(self, net: ReluNetwork, x: np.ndarray, c: int, solver: Solver | str = Solver.AUTO,
                 device: str = "cpu"):
        self.net, self.qps = net, region_solver(net, x, c, solver, device)
        self.seen: set[bytes] = set()
        self.counts = Counts()

    def solve(self, Y: np.ndarray, targets, threshold: float) -> list[Found | None]:
        """Per point: the solution of (2) on Q(y) if Q(y) is new and its norm is < threshold,
        else None."""
        active = patterns(self.net, Y)
        keys = [row.tobytes() for row in np.packbits(active.numpy(), axis=1)]
        first: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in self.seen and key not in first:
                first[key] = i
        self.seen.update(first)
        out: list = [None] * len(Y)
        if not first:
            return out
        rows = list(first.values())
        best = self.qps.best(active[rows], targets, threshold)
        self.counts.regions += len(rows)
        self.counts.qp_solves += best.solved
        self.counts.pruned += best.pruned
        for r, i in enumerate(rows):
            if best.value[r] < threshold:
                out[i] = Found(float(best.value[r]), best.v[r].numpy(), int(best.target[r]), active[rows[r]])
        return out

    def descend(self, x: np.ndarray, found: list[Found], targets, alpha: float) -> list[Found]:
        """Each of `found` moved, step by step, to the lowest of the regions just across the
        NEAREST hyperplanes nearest to its point (`crossings`) while that is lower; all points
        step together. QPs are pruned at alpha times the best norm so far, as in
        exploration."""
        done, live = [], list(found)
        while live:
            u = min(f.norm for f in [*live, *done])
            Y, owner = crossings(self.net, np.stack([x + f.delta for f in live]), NEAREST)
            res = self.solve(Y, targets, alpha * u) if len(Y) else []
            moved = []
            for k, f in enumerate(live):
                lower = [r for r, o in zip(res, owner, strict=True) if o == k and r is not None and r.norm < f.norm]
                if lower:
                    moved.append(min(lower, key=lambda r: r.norm))
                else:
                    done.append(f)
            live = moved
        return done

    def polish(self, found: Found) -> Found:
        """The winner re-solved exactly (DAQP's active set, started from delta): the batched
        solver stops at a 1e-9 tolerance."""
        if found.region is None:
            return found
        exact = self.qps.polish(found.region, found.target, found.delta)
        if exact is None or exact[0] > found.norm + 1e-6:  # DAQP disagrees: keep the batched point
            return found
        return found._replace(norm=exact[0], delta=exact[1])


class RLRQP(Attack):
    """rLR-QP with the paper's hyperparameters n1 = n2 = 10, n3 = 5, n4 = 3, alpha = 1.5.

    targets: see `Targets`.
    seed: the random generator's seed (same seed, same result). iterations: applications of the
    attack, each from the last result with the targets restricted to its class (paper's Table 3). solver: the region-QP
    solver (`Solver`; auto picks by network size); device: where the working-set solver runs
    its network passes (cpu, cuda). starts: how the search starts (`Start`: paper, or per_target, beyond
    the paper: one start per target class; only the first application uses it).
    """

    name = "rlrqp"

    def __init__(self, *, n1: int = 10, n2: int = 10, n3: int = 5, n4: int = 3, alpha: float = 1.5,
                 targets: Targets | str = Targets.ALL, iterations: int = 1, seed: int = 0,
                 solver: Solver | str = Solver.AUTO, device: str = "cpu", starts: Start | str = Start.PAPER):
        targets, solver = choice(Targets, targets, "targets"), choice(Solver, solver, "solver")
        starts = choice(Start, starts, "starts")
        check_device(device)
        if min(n1, n2, n3, n4, iterations) < 1 or alpha < 1:
            raise ValueError("n1, n2, n3, n4 and iterations must be >= 1 and alpha >= 1")
        self.n1, self.n2, self.n3, self.n4, self.alpha = n1, n2, n3, n4, alpha
        self.targets, self.iterations, self.seed = targets, iterations, seed
        self.solver, self.device, self.starts = solver, device, starts

    def find(self, net: ReluNetwork, x: np.ndarray, c: int) -> Candidate:
        *_, last = self.applications(net, x, c)
        return last

    def applications(self, net: ReluNetwork, x: np.ndarray, c: int):
        """Yield the candidate after each application 1..`iterations` (stopping after one that
        finds nothing): the k-th is what `find` returns with iterations=k (the same random draws;
        each yielded point is polished, the search goes on from the unpolished one), so the
        paper's Table 3 costs one run of 7 applications instead of 1 + 2 + ... + 7."""
        rng = np.random.default_rng(self.seed)
        explorer = _Explorer(net, x, c, self.solver, self.device)
        # per_target's boundary points stand in for the warm start (its class is one of theirs),
        # unless the targets are the warm start's class
        start = warm_start(net, x, c) if self.starts is Start.PAPER or self.targets == Targets.WARM else None
        targets = net.other_classes(c)
        if self.targets == Targets.WARM and start is not None:
            targets = [check(net, start, c).target]
        best = None if start is None else Found(float(np.linalg.norm(start - x)), start - x,
                                                 check(net, start, c).target)
        seeds = []
        if self.starts is Start.PER_TARGET:
            seeds = [z for z in target_boundaries(net, x, c, targets) if z is not None]
        for _ in range(self.iterations):
            best = self._search(explorer, x, targets, best, rng, seeds)
            seeds = []
            if best is None:
                yield Candidate(None, counts=replace(explorer.counts), message="no adversarial region found")
                return
            targets = [best.target]
            polished = explorer.polish(best)
            yield Candidate(x + polished.delta, target=polished.target, counts=replace(explorer.counts))

    def _search(self, explorer: _Explorer, x: np.ndarray, targets, best: Found | None, rng,
                seeds=()) -> Found | None:
        """One application of Algorithm 1 from `best` (or from (2) on Q(x) alone); seeds: points
        whose regions compete for the start, each descended with it (`Start.PER_TARGET`)."""
        at_x = explorer.solve(x[None], targets, np.inf if best is None else best.norm)[0]  # only a better one is kept
        if at_x is not None and (best is None or at_x.norm < best.norm):
            best = at_x
        pool = [] if best is None else [best]
        if len(seeds):
            threshold = np.inf if best is None else self.alpha * best.norm  # as exploration prunes
            pool += [f for f in explorer.solve(np.stack(seeds), targets, threshold) if f is not None]
            pool = explorer.descend(x, pool, targets, self.alpha)
        if not pool:
            return None
        best = min(pool, key=lambda f: f.norm)
        u = best.norm
        S = [best.delta] * self.n1
        norms = np.full(self.n1, u)
        d = x.size

        def offer(res: Found) -> None:
            """Algorithm 1, lines 15-17 (exploration) and 25-27 (local search)."""
            nonlocal best, u
            if res.norm < u:
                best, u = res, res.norm
            m = int(np.argmax(norms))
            if res.norm < self.alpha * u and res.norm < norms[m]:
                S[m], norms[m] = res.delta, res.norm

        for a1 in range(1, self.n4 + 1):
            for _ in range(self.n3):
                Y = x + np.repeat(np.stack(S), self.n2, axis=0) + ball(rng, self.n1 * self.n2, d, u / a1)
                for res in explorer.solve(Y, targets, min(self.alpha * u, norms.max())):
                    if res is not None:
                        offer(res)
            Y = x + best.delta + ball(rng, self.n2, d, u / a1)
            for res in explorer.solve(Y, targets, min(self.alpha * u, norms.max())):
                if res is not None:
                    offer(res)
        return best


def warm_start(net: ReluNetwork, x: np.ndarray, c: int) -> np.ndarray | None:
    """DeepFool's point pulled back to the boundary along x -> x + delta_DF, else the
    boundary on the segment x -> 0 (when the zero image is adversarial), else None."""
    point = DeepFool().find(net, x, c).point
    point = None if point is None else push_across(net, x, point, c)  # float32 points a hair short
    if point is not None:
        return boundary_on_segment(net, x, point, c)
    return boundary_on_segment(net, x, np.zeros_like(x), c)
