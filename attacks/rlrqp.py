"""rLR-QP: Algorithm 1 of Croce & Hein, "A randomized gradient-free attack on ReLU networks"
(GCPR 2018), for the L2 norm.

Problem (2) on a linear region Q(y): min ||delta||_2 over x + delta in Q(y) cap [0,1]^d with
max_{t != c} f_t(x + delta) >= f_c(x + delta), i.e. the best over the targets t of the
convex QP (3) (`minadv.verify.qp.batched.RegionQPs`, batched over regions and targets).

    delta <- the better of (2) on Q(x) and the warm start; u <- ||delta||; S <- n1 copies
    for a1 = 1..n4:
        exploration, n3 rounds: for i = 1..n1, j = 1..n2: y = x + S_i + eps, eps in B(0, u/a1);
            delta_temp <- (2) on Q(y); S_m = argmax_m ||S_m||:
            if ||delta_temp|| < alpha u and ||delta_temp|| < ||S_m||: S_m <- delta_temp
            if ||delta_temp|| < u: delta <- delta_temp, u <- ||delta_temp||
              (the paper prints "delta <- delta_0" here, a typo: the new best is delta_temp)
        local search: n2 points y = x + delta + eps, eps in B(0, u/a1); keep the best.

eps has a direction uniform on the sphere and a radius uniform in [0, u/a1]. Batching: the
n1 * n2 points of a round are drawn from S and u at the start of the round and their QPs
solved together; the results are then applied one by one in the paper's order. A region is
never solved twice (its activation pattern is hashed), and a QP is pruned once a lower
bound reaches the smallest norm that could still change S or delta (min(alpha u, max ||S||)
in exploration, u in local search), so pruning never changes the outcome.

Warm start: DeepFool (Foolbox, the paper's settings), then bisection on the segment
x -> x + delta_DF for the boundary; if DeepFool fails, the segment from x to the all-zero
image (when that image is adversarial). `iterations` > 1 applies the attack again from its
own result with the targets restricted to the class it found (the paper's Table 3).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

import numpy as np
import torch

from minadv.verify import Counts, ReluNetwork, check, choice, patterns, push_across
from minadv.verify.qp import RegionQPs, WorkingSetQPs

from .base import Attack, Candidate
from .deepfool import DeepFool


class Targets(StrEnum):
    """The target classes of the search."""

    ALL = "all"  # every class but c (the paper's setting for one hidden layer, N1/N2)
    WARM = "warm"  # the warm start's class only (the paper's deeper networks); all if there is no warm start


class Solver(StrEnum):
    """The region-QP solver: `dense` (fastqp.RegionQPs: every region row, basis W_1; fastest on
    small networks such as N1/N2), `workingset` (verify.qp.workingset: constraint generation with
    matrix-free rows; for wide or deep networks), `auto`: dense up to DENSE_MAX_HIDDEN hidden
    neurons, else workingset."""

    AUTO = "auto"
    DENSE = "dense"
    WORKINGSET = "workingset"


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


def boundary_on_segment(net: ReluNetwork, x: np.ndarray, end: np.ndarray, c: int, steps: int = 60) -> np.ndarray | None:
    """The adversarial point of the segment x -> end closest to x, by bisection on s in [0, 1]
    (end must be adversarial by the float64 check, else None)."""
    if not check(net, end, c).adversarial():
        return None
    lo, hi = 0.0, 1.0
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if check(net, x + mid * (end - x), c).adversarial():
            hi = mid
        else:
            lo = mid
    return x + hi * (end - x)


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
    its network passes (cpu, cuda).
    """

    name = "rlrqp"

    def __init__(self, *, n1: int = 10, n2: int = 10, n3: int = 5, n4: int = 3, alpha: float = 1.5,
                 targets: Targets | str = Targets.ALL, iterations: int = 1, seed: int = 0,
                 solver: Solver | str = Solver.AUTO, device: str = "cpu"):
        targets, solver = choice(Targets, targets, "targets"), choice(Solver, solver, "solver")
        check_device(device)
        if min(n1, n2, n3, n4, iterations) < 1 or alpha < 1:
            raise ValueError("n1, n2, n3, n4 and iterations must be >= 1 and alpha >= 1")
        self.n1, self.n2, self.n3, self.n4, self.alpha = n1, n2, n3, n4, alpha
        self.targets, self.iterations, self.seed = targets, iterations, seed
        self.solver, self.device = solver, device

    def find(self, net: ReluNetwork, x: np.ndarray, c: int) -> Candidate:
        rng = np.random.default_rng(self.seed)
        explorer = _Explorer(net, x, c, self.solver, self.device)
        start = warm_start(net, x, c)
        targets = net.other_classes(c)
        if self.targets == Targets.WARM and start is not None:
            targets = [check(net, start, c).target]
        best = None if start is None else Found(float(np.linalg.norm(start - x)), start - x,
                                                 check(net, start, c).target)
        for _ in range(self.iterations):
            best = self._search(explorer, x, targets, best, rng)
            if best is None:
                break
            targets = [best.target]
        if best is None:
            return Candidate(None, counts=explorer.counts, message="no adversarial region found")
        best = explorer.polish(best)
        return Candidate(x + best.delta, target=best.target, counts=explorer.counts)

    def _search(self, explorer: _Explorer, x: np.ndarray, targets, best: Found | None, rng) -> Found | None:
        """One application of Algorithm 1 from `best` (or from (2) on Q(x) alone)."""
        at_x = explorer.solve(x[None], targets, np.inf if best is None else best.norm)[0]  # only a better one is kept
        if at_x is not None and (best is None or at_x.norm < best.norm):
            best = at_x
        if best is None:
            return None
        u = best.norm
        S = [best.delta] * self.n1
        norms = np.full(self.n1, u)
        d = x.size
        for a1 in range(1, self.n4 + 1):
            for _ in range(self.n3):
                Y = x + np.repeat(np.stack(S), self.n2, axis=0) + ball(rng, self.n1 * self.n2, d, u / a1)
                for res in explorer.solve(Y, targets, min(self.alpha * u, norms.max())):
                    if res is None:
                        continue
                    m = int(np.argmax(norms))
                    if res.norm < self.alpha * u and res.norm < norms[m]:
                        S[m], norms[m] = res.delta, res.norm
                    if res.norm < u:
                        best, u = res, res.norm
            Y = x + best.delta + ball(rng, self.n2, d, u / a1)
            for res in explorer.solve(Y, targets, u):
                if res is not None and res.norm < u:
                    best, u = res, res.norm
        return best


def warm_start(net: ReluNetwork, x: np.ndarray, c: int) -> np.ndarray | None:
    """DeepFool's point pulled back to the boundary along x -> x + delta_DF, else the
    boundary on the segment x -> 0 (when the zero image is adversarial), else None."""
    point = DeepFool().find(net, x, c).point
    point = None if point is None else push_across(net, x, point, c)  # float32 points a hair short
    if point is not None:
        return boundary_on_segment(net, x, point, c)
    return boundary_on_segment(net, x, np.zeros_like(x), c)
