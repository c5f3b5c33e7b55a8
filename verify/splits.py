"""Branch and bound over ReLU splits for one margin over a domain, node bounds by beta-CROWN.

For a label, a target t and the domain D (`Domain`: the box [lo, hi], or the box cap an L2 ball
||z - x||_2 <= r), decide

    max { f_t(z) - f_label(z) : z in D } < 0      ('safe')
    or find z in D with f_t(z) >= f_label(z) in float64 ('sat').

A node fixes some unstable neurons: neuron i of hidden layer j active (g_i >= 0, sigma_i = -1) or
inactive (g_i <= 0, sigma_i = +1), i.e. sigma_i g_i(z) <= 0. Its bound (beta-CROWN, Wang et al.
2021): for any beta >= 0,

    max_node c.f(z) <= max_{z in D} c.f(z) - sum_i beta_i sigma_i g_i(z),

and the right side is bounded from above by back-substitution through the triangle relaxation of
every unstable neuron, with the root's pre-activation bounds (`bounds.crown`, valid on D) and
l_i = 0 (active) or u_i = 0 (inactive) for the split ones, and lower slopes alpha in [0, 1], down
to a linear function a.z + a0, whose maximum over D is a0 + a.x + sigma(a): over the box
sigma(a) = sum_i max(a_i dlo_i, a_i dhi_i); over box cap ball the Lagrangian dual of
`bounds.ball_box_support` at its multiplier mu (an upper bound for any mu >= 0, gradient a's maximiser
by the envelope theorem). Every alpha, beta gives a valid bound; Adam searches for good ones
(alpha-CROWN's step sizes), warm started from the parent. D's maximiser of the last linear
function is a candidate point (float64 check).
Branching: the unsplit unstable neuron with the largest intercept term of the upper relaxation,
relu(A_i) * (-u_i l_i / (u_i - l_i)) (BaBSR's score, Bunel et al. 2020). A node without unstable
neurons is one linear region, decided exactly: over a box by an LP (HiGHS, max of the margin),
over box cap ball by problem (3) on the region (min ||z - x||_2 with the margin >= 0; DAQP,
certified) against r. Nodes run in batches of `batch` in torch, depth first, so memory stays
bounded. A search may start from given nodes (`nodes`) instead of the root: the exact L2
search hands over the open nodes of its QP tree (`exact.bnb`).

Written by hand: the field's implementations (auto_LiRPA / alpha-beta-CROWN) are GPU frameworks
for general graphs; this is the same bound for the feed-forward case, in ~300 lines of torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch
from scipy.optimize import linprog

from .bounds import WIDEN, Bounds, ball_box_support, relu_relaxation, through_relaxations
from .domain import Domain
from .network import NeuronState, ReluNetwork
from .qp import QPStatus, regions_of_patterns, solve_daqp


class TargetVerdict(StrEnum):
    """One target's search (`SplitSearch`, or the MILP in `decide`)."""

    SAFE = "safe"  # proven: f_t < f_label on the whole domain
    SAT = "sat"  # a float64-checked point of the domain with f_t >= f_label
    UNKNOWN = "unknown"  # the search stopped (time) or a near miss the float64 check refused
    UNREACHED = "unreached"  # `decide`: the time ran out before this target's search started


@dataclass
class Nodes:
    """A batch of nodes: per hidden layer, sigma (B, n) of `NeuronState` values (active / free / inactive)
    and the warm start alpha (B, n), beta (B, n) >= 0."""

    sigma: list[torch.Tensor]
    alpha: list[torch.Tensor]
    beta: list[torch.Tensor]

    def __len__(self) -> int:
        return self.sigma[0].shape[0]

    def take(self, idx) -> Nodes:
        return Nodes(*([t[idx] for t in ts] for ts in (self.sigma, self.alpha, self.beta)))

    @staticmethod
    def cat(parts: list[Nodes]) -> Nodes:
        return Nodes(*([torch.cat([getattr(p, f)[j] for p in parts]) for j in range(len(parts[0].sigma))]
                       for f in ("sigma", "alpha", "beta")))


@dataclass
class SplitOutcome:
    verdict: TargetVerdict  # SAFE, SAT or UNKNOWN
    point: np.ndarray | None = None
    nodes: int = 0  # nodes bounded
    lps: int = 0  # leaves decided by the region LP


class _Tensors:
    """The network, the domain and the root bounds as torch tensors of one dtype."""

    def __init__(self, net: ReluNetwork, dom: Domain, bounds: Bounds, c: np.ndarray, dtype):
        t = lambda a: torch.tensor(np.asarray(a), dtype=dtype)  # noqa: E731
        self.W, self.b = [t(w) for w in net.weights], [t(b) for b in net.biases]
        self.l, self.u = [t(l) for l in bounds.lower], [t(u) for u in bounds.upper]
        self.x, self.dlo, self.dhi = t(dom.x), t(dom.delta_lo), t(dom.delta_hi)
        self.lo, self.hi = self.x + self.dlo, self.x + self.dhi
        self.mid, self.rad = 0.5 * (self.hi + self.lo), 0.5 * (self.hi - self.lo)
        self.radius = dom.radius if dom.norm == 2.0 and np.isfinite(dom.radius) else None  # None: the box alone
        self.cW, self.cb = t(c @ net.weights[-1]), float(c @ net.biases[-1])

    def relax(self, sigma):
        """Per hidden layer, the triangle relaxation (`bounds.relu_relaxation`) of each node's
        neurons, the split ones stable (l = 0 if active, u = 0 if inactive): (upper slope, upper
        intercept, unstable, active)."""
        out = []
        for s, l, u in zip(sigma, self.l, self.u, strict=True):
            l = torch.where(s == NeuronState.ACTIVE, l.clamp(min=0), l)
            u = torch.where(s == NeuronState.INACTIVE, u.clamp(max=0), u)
            _, s_up, i_up = (torch.from_numpy(np.asarray(a)).to(l.dtype) for a in relu_relaxation(l.numpy(), u.numpy()))
            out.append((s_up, i_up, (l < 0) & (u > 0), l >= 0))
        return out

    def bound(self, sigma, relax, alpha, beta, maximisers: bool = False):
        """(upper bounds (B,), per layer the coefficients on h^(j+1) before its relaxation,
        the domain's maximisers (B, d) if asked, else None): back-substitution of
        c.f - sum beta sigma g to A z + const, then its maximum over the domain: over the box
        A mid + |A| rad (two products; z itself is formed only when asked), over box cap ball
        A x + `ball_box_support`(A)."""
        B = sigma[0].shape[0]
        slopes = [(torch.where(unstable, a.to(self.lo.dtype), active.to(self.lo.dtype)), s_up, i_up)
                  for (s_up, i_up, unstable, active), a in zip(relax, alpha, strict=True)]
        extra = [-b.to(self.lo.dtype) * s for b, s in zip(beta, sigma, strict=True)]
        A, const, coeffs = through_relaxations(self.cW.expand(B, -1), torch.full((B,), self.cb, dtype=self.lo.dtype),
                                               self.W[:-1], self.b[:-1], slopes, extra)
        if self.radius is None:
            z = torch.where(A > 0, self.hi, self.lo) if maximisers else None
            return const + A @ self.mid + A.abs() @ self.rad, coeffs, z
        value, t = ball_box_support(A, self.dlo, self.dhi, self.radius)
        return const + A @ self.x + value, coeffs, self.x + t if maximisers else None


class SplitSearch:
    """Branch and bound for max f_target(z) - f_label(z) over the domain (see the module docstring).

    Adam runs in float32 (about twice as fast); the bound that counts is evaluated once more
    in float64 with the best slopes and multipliers found (any of them gives a valid bound),
    then widened by `bounds.WIDEN`."""

    def __init__(self, net: ReluNetwork, dom: Domain, bounds: Bounds, label: int, target: int,
                 *, iters: int = 10, batch: int = 256, lr_alpha: float = 0.1, lr_beta: float = 0.05):
        """dom: the box [dom.lo, dom.hi] (norm inf, or an infinite radius), or that box cap the
        L2 ball of dom.radius around dom.x; bounds: the root's pre-activation bounds over dom."""
        if dom.norm == 1.0 and np.isfinite(dom.radius):
            raise ValueError("the split search takes a box or a box cap an L2 ball, not an L1 ball")
        self.net, self.dom, self.label, self.target = net, dom, label, target
        self.c = np.zeros(net.n_outputs)
        self.c[target], self.c[label] = 1.0, -1.0
        self.lo_np, self.hi_np = dom.x + dom.delta_lo, dom.x + dom.delta_hi
        self.f64 = _Tensors(net, dom, bounds, self.c, torch.float64)
        self.f32 = _Tensors(net, dom, bounds, self.c, torch.float32)
        self.free = [(l < 0) & (u > 0) for l, u in zip(self.f64.l, self.f64.u, strict=True)]
        self.iters, self.batch, self.lr_alpha, self.lr_beta = iters, batch, lr_alpha, lr_beta

    def root(self) -> Nodes:
        return self.nodes([np.full((1, len(l)), NeuronState.FREE, dtype=np.int8) for l in self.f64.l])

    def nodes(self, sigma: list[np.ndarray]) -> Nodes:
        """A batch of nodes with the given states (per hidden layer (B, n) of `NeuronState`;
        a state on a neuron stable at the root is ignored), started from CROWN's slopes and beta = 0."""
        B = len(sigma[0])
        alpha = [torch.from_numpy(relu_relaxation(l.numpy(), u.numpy())[0]).float()[None].repeat(B, 1)
                 for l, u in zip(self.f64.l, self.f64.u, strict=True)]
        beta = [torch.zeros(B, len(l)) for l in self.f64.l]
        return Nodes([torch.as_tensor(np.asarray(s, dtype=np.int8)) for s in sigma], alpha, beta)

    def optimise(self, nodes: Nodes):
        """(float64 upper bound of each node, the nodes with the last alpha / beta, the branching
        scores, a float64-checked point if a box maximiser reached c.f >= 0).

        The bound is the float64 one at the best iterate; the children start from the last
        iterate and branch on its scores (starting them from the best iterate needed many times
        more nodes: docs/performance-log.md)."""
        relax = self.f32.relax(nodes.sigma)
        alpha = [a.clone().requires_grad_(True) for a in nodes.alpha]
        beta = [b.clone().requires_grad_(True) for b in nodes.beta]
        keep_a, keep_b = [a.detach().clone() for a in alpha], [b.detach().clone() for b in beta]
        # fused: one kernel per step instead of a dozen elementwise passes (1067 -> 1180 nodes/s)
        opt = torch.optim.Adam([{"params": alpha, "lr": self.lr_alpha}, {"params": beta, "lr": self.lr_beta}],
                               fused=True)
        best = torch.full((len(nodes),), np.inf)
        for it in range(self.iters + 1):
            ub, coeffs, _ = self.f32.bound(nodes.sigma, relax, alpha, beta)
            with torch.no_grad():
                better = ub < best
                best = torch.where(better, ub, best)
                for ka, kb, a, b in zip(keep_a, keep_b, alpha, beta, strict=True):
                    ka[better], kb[better] = a[better], b[better]
            if it == self.iters or bool((best < 0).all()):
                break
            opt.zero_grad()
            (ub * (best >= 0)).sum().backward()
            opt.step()
            with torch.no_grad():
                for a in alpha:
                    a.clamp_(0.0, 1.0)
                for b in beta:
                    b.clamp_(min=0.0)
        with torch.no_grad():
            scores = [torch.where((s == NeuronState.FREE) & f, A.clamp(min=0) * r[1] + 1e-6 * A.abs(), -1.0)
                      for s, f, A, r in zip(nodes.sigma, self.free, coeffs, relax, strict=True)]
            ub, _, z = self.f64.bound(nodes.sigma, self.f64.relax(nodes.sigma), keep_a, keep_b, maximisers=True)
            ub = ub + WIDEN * (1 + ub.abs())
        last = Nodes(nodes.sigma, [a.detach() for a in alpha], [b.detach() for b in beta])
        return ub, last, scores, self._check(z.numpy())

    def _check(self, Z: np.ndarray) -> np.ndarray | None:
        """The point of Z (B, d) with the largest margin f_target - f_label in float64, if that is
        >= 0. Over a ball, points first scaled towards x to norm < r where rounding left them
        outside (a maximiser 6e-17 beyond r was seen), then clipped to the box (convex: both
        keep them in the domain)."""
        if not len(Z):
            return None
        if self.f64.radius is not None:
            r, x = self.f64.radius, self.dom.x
            n = np.linalg.norm(Z - x, axis=1)
            scale = np.where(n > r, r / np.maximum(n, 1e-300) * (1 - 1e-12), 1.0)
            Z = np.clip(x + (Z - x) * scale[:, None], self.lo_np, self.hi_np)
        vals = self.net.forward(Z) @ self.c
        k = int(np.argmax(vals))
        return Z[k].copy() if vals[k] >= 0 else None

    def branch(self, nodes: Nodes, scores) -> tuple[Nodes, np.ndarray]:
        """Two children per node on its best-scoring free neuron; also the nodes with no free neuron."""
        flat = torch.cat(scores, dim=1)
        best, idx = flat.max(dim=1)
        splittable = best >= 0
        parents = nodes.take(splittable)
        idx = idx[splittable]
        offsets = np.cumsum([0] + [s.shape[1] for s in scores])
        kids = []
        for sign in (NeuronState.ACTIVE, NeuronState.INACTIVE):
            sigma = [s.clone() for s in parents.sigma]
            beta = [b.clone() for b in parents.beta]
            for j in range(len(sigma)):
                mine = (idx >= offsets[j]) & (idx < offsets[j + 1])
                rows = torch.nonzero(mine).flatten()
                sigma[j][rows, idx[mine] - offsets[j]] = int(sign)
                beta[j][rows, idx[mine] - offsets[j]] = 0.0
            kids.append(Nodes(sigma, list(parents.alpha), beta))
        return Nodes.cat(kids), torch.nonzero(~splittable).flatten().numpy()

    def leaf(self, sigma) -> tuple[TargetVerdict, np.ndarray | None]:
        """A node whose every neuron is fixed (root-stable or split) is one linear region, decided
        exactly: over a box by `_region_lp`, over box cap ball by `_region_qp`."""
        active = torch.cat([torch.where(s == NeuronState.FREE, l >= 0, s == NeuronState.ACTIVE)
                            for s, l in zip(sigma, self.f64.l, strict=True)])
        reg = regions_of_patterns(self.net, active[None])
        return self._region_lp(reg) if self.f64.radius is None else self._region_qp(reg)

    def _region_qp(self, reg) -> tuple[TargetVerdict, np.ndarray | None]:
        """Problem (3) on the region: min ||z - x||_2 over it, the box and f_target - f_label >= eps
        (DAQP; `lower` certified by the dual, infeasibility by a Farkas certificate). 'safe' if that
        minimum is above r at eps = 0; else 'sat' with the first minimiser, for eps = 0, 1e-9,
        1e-6, that `_check` brings into the domain and passes (eps > 0: the minimiser for eps = 0
        lies on the boundary, where rounding decides the sign, and pushing it along delta can
        lower the margin when pixels sit at the box); else 'unknown'."""
        r, x = self.f64.radius, self.dom.x
        qp = reg.qp(0, x, self.label, self.target, box=(self.lo_np, self.hi_np))
        b = qp.b[-1]
        for eps in (0.0, 1e-9, 1e-6):
            qp.b[-1] = b - eps  # the last row: f_label - f_target <= -eps
            sol = solve_daqp(qp)
            if eps == 0.0 and (sol.status == QPStatus.INFEASIBLE or (sol.status == QPStatus.OPTIMAL and sol.lower > r)):
                return TargetVerdict.SAFE, None
            if sol.status != QPStatus.OPTIMAL:
                break
            z = self._check(x + sol.v[None, : len(x)])  # into the domain (`_check`), float64-checked
            if z is not None:
                return TargetVerdict.SAT, z
        return TargetVerdict.UNKNOWN, None

    def _region_lp(self, reg) -> tuple[TargetVerdict, np.ndarray | None]:
        """max c.f(z) over the region and the box by HiGHS's LP. 'safe' if the maximum is < 0 (to
        within HiGHS's tolerances: the root's WIDEN margin is far larger), 'sat' with a
        float64-checked point, 'unknown' for a maximum >= 0 the float64 check refuses (a tie at 0)."""
        A, b = (t[0].numpy() for t in reg.inequalities())
        w = self.c @ reg.F[0].numpy()
        w0 = float(self.c @ reg.f[0].numpy())
        res = linprog(-w, A_ub=A, b_ub=b, bounds=list(zip(self.lo_np, self.hi_np, strict=True)), method="highs")
        if res.status == 2:  # empty region
            return TargetVerdict.SAFE, None
        if res.status != 0:
            return TargetVerdict.UNKNOWN, None
        if w0 - res.fun < -1e-7:
            return TargetVerdict.SAFE, None
        z = np.clip(res.x, self.lo_np, self.hi_np)
        return (TargetVerdict.SAT, z) if self._check(z[None]) is not None else (TargetVerdict.UNKNOWN, None)

    def run(self, deadline: float, start: Nodes | None = None) -> SplitOutcome:
        """The verdict by `time.time()` = deadline; start: the nodes to cover (default: the root).
        'safe' means every start node is safe (the domain is, when they cover it)."""
        out = SplitOutcome(TargetVerdict.SAFE)
        stack = [self.root() if start is None else start]
        while stack:
            if time.time() > deadline:
                out.verdict = TargetVerdict.UNKNOWN
                return out
            nodes = stack.pop()
            if len(nodes) > self.batch:
                stack.append(nodes.take(slice(self.batch, None)))
                nodes = nodes.take(slice(0, self.batch))
            ub, nodes, scores, point = self.optimise(nodes)
            out.nodes += len(nodes)
            if point is not None:
                out.verdict, out.point = TargetVerdict.SAT, point
                return out
            open_ = torch.nonzero(ub >= 0).flatten()
            if not len(open_):
                continue
            nodes = nodes.take(open_)
            kids, leaves = self.branch(nodes, [s[open_] for s in scores])
            for i in leaves:
                out.lps += 1
                verdict, z = self.leaf([s[i] for s in nodes.sigma])
                if verdict == TargetVerdict.SAT:
                    out.verdict, out.point = verdict, z
                    return out
                if verdict == TargetVerdict.UNKNOWN:  # this node stays open; the others may still hold a point
                    out.verdict = TargetVerdict.UNKNOWN
            if len(kids):
                stack.append(kids)
        return out
