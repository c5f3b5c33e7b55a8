"""Bounds l <= g_j(z) <= u on every hidden pre-activation over the domain
D = {x + delta : delta in the box, ||delta||_p <= r}.

Levels, each a named choice (MIPVerify's progression), every one a valid outer bound:
- "interval": the first layer exactly over box cap ball (support function below), then
  interval arithmetic through the later layers;
- "crown": back-substitution through the triangle relaxation of every earlier layer,
  the resulting linear function bounded exactly over box cap ball (CROWN, Zhang et al. 2018,
  with the ball's support function instead of a box);
- "lp" / "mip": per neuron, an LP (or a short MIP) over the Tjeng model of the earlier
  layers, solved with HiGHS (see `mip.tighten`), on top of "crown".

Support function of box cap ball, sigma(w) = max {w.delta : lo <= delta <= hi, ||delta||_p <= r},
bounded from above through Lagrangian duality, so a bound stays valid whatever the search:
- p = 2:  sigma(w) <= min_{mu >= 0} sum_i max_{lo_i<=t<=hi_i} (w_i t - mu t^2) + mu r^2;
- p = 1:  sigma(w) <= min_{mu >= 0} sum_i m_i max(0, |w_i| - mu) + mu r  (m_i: box room along sign w_i);
- p = inf: the ball is a box, sigma is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..domain import Domain, box_min
from ..network import ReluNetwork

WIDEN = 1e-9  # every bound is widened by WIDEN * (1 + |bound|) against rounding


@dataclass(frozen=True)
class Bounds:
    """Pre-activation bounds of every hidden layer: lower[k] <= g^(k+1)(z) <= upper[k] on D."""

    lower: tuple[np.ndarray, ...]
    upper: tuple[np.ndarray, ...]

    @property
    def unstable(self) -> list[np.ndarray]:
        return [(l < 0) & (u > 0) for l, u in zip(self.lower, self.upper, strict=True)]

    @property
    def n_unstable(self) -> int:
        return int(sum(m.sum() for m in self.unstable))

    def intersect(self, other: Bounds) -> Bounds:
        return Bounds(
            tuple(np.maximum(a, b) for a, b in zip(self.lower, other.lower, strict=True)),
            tuple(np.minimum(a, b) for a, b in zip(self.upper, other.upper, strict=True)),
        )


def _widen(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return lo - WIDEN * (1 + np.abs(lo)), hi + WIDEN * (1 + np.abs(hi))


def support(Wd: np.ndarray, dom: Domain) -> np.ndarray:
    """Upper bounds of max w.delta over box cap ball for every row w of Wd (rigorous)."""
    lo, hi = dom.delta_lo, dom.delta_hi
    Wd = np.atleast_2d(Wd)
    box = -box_min(-Wd, lo, hi)
    r = dom.radius
    if not np.isfinite(r) or dom.norm == np.inf:
        return box
    if dom.norm == 2.0:
        return np.minimum(box, _support_l2(Wd, lo, hi, r)[0])
    return np.minimum(box, _support_l1(Wd, lo, hi, r)[0])


def _support_l2(Wd, lo, hi, r):
    """(bound, mu): the dual at the better end of a geometric bisection on mu."""
    def dual(mu):  # sum_i max_t (w t - mu t^2) + mu r^2, t = clip(w / 2mu, lo, hi)
        t = np.clip(Wd / (2 * mu[:, None]), lo, hi)
        return (Wd * t - mu[:, None] * t * t).sum(axis=1) + mu * r * r, (t * t).sum(axis=1)

    norms = np.linalg.norm(Wd, axis=1)
    mu_hi = np.where(norms > 0, norms / (2 * r), 1.0)  # there ||t|| <= r: the dual's slope is >= 0
    mu_lo = mu_hi * 1e-12
    for _ in range(60):  # geometric bisection on the slope r^2 - ||t(mu)||^2
        mid = np.exp(0.5 * (np.log(mu_lo) + np.log(mu_hi)))
        _, sq = dual(mid)
        big = sq > r * r
        mu_lo = np.where(big, mid, mu_lo)
        mu_hi = np.where(big, mu_hi, mid)
    at_hi, at_lo = dual(mu_hi)[0], dual(mu_lo)[0]
    return np.minimum(at_hi, at_lo), np.where(at_hi <= at_lo, mu_hi, mu_lo)


def _support_l1(Wd, lo, hi, r):
    """(bound, mu): the dual at the breakpoint where the ball is filled (exact)."""
    a = np.abs(Wd)
    room = np.where(Wd > 0, hi, np.where(Wd < 0, -lo, 0.0))  # how far delta_i may go along sign(w_i)
    order = np.argsort(-a, axis=1)
    a_sorted = np.take_along_axis(a, order, axis=1)
    filled = np.cumsum(np.take_along_axis(room, order, axis=1), axis=1)
    k = np.minimum((filled < r).sum(axis=1), a.shape[1] - 1)  # the coordinate that fills the ball
    mu = a_sorted[np.arange(len(a)), k]
    return (room * np.maximum(a - mu[:, None], 0.0)).sum(axis=1) + mu * r, mu


def support_torch(A: torch.Tensor, dom: Domain) -> torch.Tensor:
    """`support` for rows of a torch tensor, differentiable in A (for alpha-CROWN). The ball's
    multiplier mu is searched without gradient; the dual at that mu is a valid bound for any mu,
    and its gradient is the bound's (envelope theorem)."""
    lo, hi = torch.tensor(dom.delta_lo), torch.tensor(dom.delta_hi)
    box = (torch.relu(A) * hi - torch.relu(-A) * lo).sum(dim=1)
    r = dom.radius
    if not np.isfinite(r) or dom.norm == np.inf:
        return box
    Wd = A.detach().numpy()
    if dom.norm == 2.0:
        mu = torch.tensor(_support_l2(Wd, dom.delta_lo, dom.delta_hi, r)[1])[:, None]
        t = torch.minimum(torch.maximum(A / (2 * mu), lo), hi)
        ball = (A * t - mu * t * t).sum(dim=1) + mu[:, 0] * r * r
    else:
        mu = torch.tensor(_support_l1(Wd, dom.delta_lo, dom.delta_hi, r)[1])[:, None]
        room = torch.where(A > 0, hi, torch.where(A < 0, -lo, torch.zeros_like(A)))
        ball = (room * torch.relu(A.abs() - mu)).sum(dim=1) + mu[:, 0] * r
    return torch.minimum(box, ball)


def affine_bounds(Wd: np.ndarray, const: np.ndarray, dom: Domain) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of Wd delta + const over the domain."""
    return const - support(-Wd, dom), const + support(Wd, dom)


def interval(net: ReluNetwork, dom: Domain) -> Bounds:
    """First layer exact over box cap ball, later layers by interval arithmetic."""
    W, b = net.weights[0], net.biases[0]
    l, u = _widen(*affine_bounds(W, W @ dom.x + b, dom))
    lower, upper = [l], [u]
    for W, b in zip(net.weights[1:-1], net.biases[1:-1], strict=True):
        hl, hu = np.maximum(lower[-1], 0), np.maximum(upper[-1], 0)
        Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
        l, u = _widen(Wp @ hl + Wn @ hu + b, Wp @ hu + Wn @ hl + b)
        lower.append(l)
        upper.append(u)
    return Bounds(tuple(lower), tuple(upper))


def relu_relaxation(l: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear bounds slope_lo * g <= relu(g) <= slope_up * g + icpt_up for g in [l, u].

    Stable neurons are exact; unstable ones take the upper chord u (g - l) / (u - l) and the
    lower line g (if u >= -l) or 0 (CROWN's adaptive choice; alpha-CROWN optimises any slope
    in [0, 1], each a valid lower bound).
    """
    active, unstable = l >= 0, (l < 0) & (u > 0)
    span = np.where(unstable, u - l, 1.0)
    slope_up = np.where(active, 1.0, np.where(unstable, u / span, 0.0))
    icpt_up = np.where(unstable, -u * l / span, 0.0)
    slope_lo = np.where(active, 1.0, np.where(unstable, (u >= -l).astype(float), 0.0))
    return slope_lo, slope_up, icpt_up


def backsubstitute(net: ReluNetwork, dom: Domain, lower, upper, C: np.ndarray, k: int):
    """Bounds of C g^(k+1)(z) (rows of C: linear functions of layer k's pre-activations, k >= 1),
    given bounds lower/upper of layers 1..k, through the ReLU relaxations down to the input."""
    C = torch.tensor(np.asarray(C, dtype=np.float64))
    with torch.no_grad():
        hi = _upper_bound(net, dom, lower, upper, C, k)
        lo = -_upper_bound(net, dom, lower, upper, -C, k)
    return _widen(lo.numpy(), hi.numpy())


def through_relaxations(A: torch.Tensor, const: torch.Tensor, weights, biases, relax, extra=None):
    """Upper bound of A h^(k) + const (A: (..., n_k), h^(k) = relu(g^(k)), k = len(relax)) as a
    linear function of the input: for j = k-1, ..., 0, through the relu of layer j+1 by
    relax[j] = (lower slope, upper slope, upper intercept) (a positive coefficient takes the upper
    line, a negative one the lower), plus extra[j] if given (added to the coefficients on
    g^(j+1)), then through g^(j+1) = W_j h^(j) + b_j. Returns (coefficients on the input, constant,
    per layer j the coefficients on h^(j+1) before its relaxation)."""
    coeffs = []
    for j in range(len(relax) - 1, -1, -1):
        s_lo, s_up, i_up = relax[j]
        coeffs.append(A)
        Ap, An = A.clamp(min=0), A.clamp(max=0)
        const = const + (Ap * i_up).sum(dim=-1)
        A = Ap * s_up + An * s_lo  # coefficients on g^(j+1)
        if extra is not None:
            A.add_(extra[j])  # in place: A is a fresh sum here
        const = const + A @ biases[j]
        A = A @ weights[j]  # on h^(j), or on the input when j == 0
    return A, const, coeffs[::-1]


def _upper_bound(net: ReluNetwork, dom: Domain, lower, upper, C: torch.Tensor, k: int, alphas=None) -> torch.Tensor:
    """Upper bounds of the rows of C g^(k+1)(z) by back-substitution (torch, float64).

    alphas: per layer j < k, lower slopes (rows x n_j) in [0, 1] for the unstable neurons
    (alpha-CROWN); None takes CROWN's adaptive slopes."""
    relax = []
    for j in range(k):
        s_lo, s_up, i_up = (torch.tensor(a) for a in relu_relaxation(lower[j], upper[j]))
        if alphas is not None:
            s_lo = torch.where(torch.tensor((lower[j] < 0) & (upper[j] > 0)), alphas[j], s_lo)
        relax.append((s_lo, s_up, i_up))
    weights, biases = [torch.tensor(w) for w in net.weights[:k]], [torch.tensor(b) for b in net.biases[:k]]
    A, const, _ = through_relaxations(C @ torch.tensor(net.weights[k]), C @ torch.tensor(net.biases[k]),
                                      weights, biases, relax)
    return const + A @ torch.tensor(dom.x) + support_torch(A, dom)


def _alpha_upper(net, dom, lower, upper, C: torch.Tensor, k: int, iters: int, lr: float) -> torch.Tensor:
    """Upper bounds of C g^(k+1), alpha-CROWN: the lower slopes of every unstable ReLU of the
    earlier layers optimised per row of C by Adam (projected to [0, 1]), from CROWN's choice."""
    alphas = [torch.tensor(relu_relaxation(lower[j], upper[j])[0]).expand(len(C), -1).clone().requires_grad_(True)
              for j in range(k)]
    opt = torch.optim.Adam(alphas, lr=lr)
    best = _upper_bound(net, dom, lower, upper, C, k).detach()
    for _ in range(iters):
        opt.zero_grad()
        bound = _upper_bound(net, dom, lower, upper, C, k, alphas)
        best = torch.minimum(best, bound.detach())
        bound.sum().backward()
        opt.step()
        with torch.no_grad():
            for a in alphas:
                a.clamp_(0.0, 1.0)
    with torch.no_grad():
        return torch.minimum(best, _upper_bound(net, dom, lower, upper, C, k, alphas))


def optimized_bounds(net: ReluNetwork, dom: Domain, lower, upper, C: np.ndarray, k: int, iters: int = 20,
                     lr: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Like `backsubstitute`, with alpha-CROWN's optimised lower slopes (valid for any slopes)."""
    C = torch.tensor(np.asarray(C, dtype=np.float64))
    hi = _alpha_upper(net, dom, lower, upper, C, k, iters, lr)
    lo = -_alpha_upper(net, dom, lower, upper, -C, k, iters, lr)
    return _widen(lo.numpy(), hi.numpy())


def crown(net: ReluNetwork, dom: Domain, start: Bounds | None = None, iters: int = 0) -> Bounds:
    """Layer by layer back-substitution (iters > 0: alpha-CROWN with that many Adam steps, on the
    neurons CROWN leaves unstable); each layer intersected with `start` (default: interval)."""
    start = start or interval(net, dom)
    lower, upper = [start.lower[0]], [start.upper[0]]
    for k in range(1, net.n_hidden_layers):
        l, u = backsubstitute(net, dom, lower, upper, np.eye(net.weights[k].shape[0]), k)
        l, u = np.maximum(l, start.lower[k]), np.minimum(u, start.upper[k])
        rows = np.flatnonzero((l < 0) & (u > 0))
        if iters and rows.size:
            lo, hi = optimized_bounds(net, dom, lower, upper, np.eye(len(l))[rows], k, iters)
            l[rows], u[rows] = np.maximum(l[rows], lo), np.minimum(u[rows], hi)
        lower.append(l)
        upper.append(u)
    return Bounds(tuple(lower), tuple(upper))
