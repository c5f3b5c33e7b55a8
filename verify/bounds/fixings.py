"""The support function of box cap L2 ball (`ball_box_support`), and the first-layer bounds of a
branch-and-bound node: the free neurons' pre-activations g_j = w_j.delta + c_j (c = W_1 x + b_1) bounded over

    B cap F,  B = {delta : lo <= delta <= hi, ||delta||_2 <= r},  F = {delta : s_i g_i(delta) <= 0}

for the node's fixed first-layer ReLUs i (s_i = +1 when fixed inactive, -1 when fixed active).
The root bounds hold on B alone; F cuts B down, so a free neuron may become stable.

Weak duality: for every beta >= 0 (one multiplier per fixed neuron),

    max_{B cap F} q.delta + q0  <=  q0 - beta.p0 + sigma_B(q - P^T beta),

P = (s_i w_i)_i, p0 = (s_i c_i)_i, sigma_B the support function of B (rows q = w_j for the
upper bound, -w_j for the lower). So every beta gives a valid bound; beta is improved by a few
projected Adam steps (beta-CROWN's optimiser), the gradient being -(P t + p0) at B's maximiser t.
Every iterate's bound is valid, the best one is kept.

sigma_B (`ball_box_support`): the maximiser is t(tau) = clip(tau q, lo, hi) with tau = 1 / (2 mu)
for the ball's multiplier mu, at the tau where ||t(tau)||^2 = r^2 (or tau = inf when the box's
corner lies in the ball). ||t(tau)||^2 = tau^2 S(tau) + C(tau) (S: sum of q_i^2 over the
coordinates still moving, C: sum of the clamped ones' bounds squared) grows with tau; solving
tau^2 S + C = r^2 with S, C frozen at the current tau never overshoots (more coordinates clamp
on the way), so iterating it from tau = 0 climbs to the solution, exactly once the clamped set
stops growing (a few steps). The value returned is the Lagrangian dual at the last mu,
sum_i max_{lo_i <= t_i <= hi_i} (q_i t_i - mu t_i^2) + mu r^2: an upper bound for any mu > 0,
equal to sigma_B at the exact mu; at the corner, the box's value is the maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..domain import Domain
from .preactivation import _widen


def ball_box_support(A: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, r: float,
                     steps: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """(upper bounds of max a.t over lo <= t <= hi, ||t||_2 <= r, the maximisers t) for every
    row a of A (lo <= 0 <= hi, r > 0 finite); see the module docstring for tau. Differentiable in
    A: tau (the multiplier mu = 1 / (2 tau)) is searched without gradient, and the dual at that
    mu is a bound for any mu > 0 whose gradient is its maximiser (envelope theorem). Torch, so
    that the split search's batches (`splits`) and the node bounds here share one code."""
    with torch.no_grad():
        Aa = A.abs()
        L = torch.where(A > 0, hi, torch.where(A < 0, -lo, torch.zeros_like(A)))  # room along sign(a_i)
        q2, l2 = Aa * Aa, L * L
        total = q2.sum(dim=1)
        tau = torch.zeros(A.shape[0], dtype=A.dtype)
        inf = torch.full_like(tau, float("inf"))
        for _ in range(steps):
            clamped = tau[:, None] * Aa >= L  # inf * 0 past the corner: nan, not clamped, adds 0 either way
            moving = total - (q2 * clamped).sum(dim=1)
            room = (r * r - (l2 * clamped).sum(dim=1)).clamp(min=0.0)
            new = torch.where(moving > 0, torch.sqrt(room / torch.where(moving > 0, moving, 1.0)), inf)
            if torch.equal(new, tau):
                break
            tau = new
        mu = torch.where(torch.isinf(tau) | (tau <= 0), 0.0, 0.5 / tau)
        corner = torch.copysign(L, A)  # the box's maximiser, a_i = 0 at t_i = 0
    box = (torch.relu(A) * hi - torch.relu(-A) * lo).sum(dim=1)
    m = mu.clamp(min=torch.finfo(A.dtype).tiny)[:, None]
    t = torch.minimum(torch.maximum(A / (2 * m), lo), hi)
    dual = (A * t - m * t * t).sum(dim=1) + mu * r * r
    ball = mu > 0
    return torch.where(ball, torch.minimum(dual, box), box), torch.where(ball[:, None], t.detach(), corner)


def support_ball_box(Q: np.ndarray, lo: np.ndarray, hi: np.ndarray, r: float,
                     steps: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """`ball_box_support` for numpy rows Q (float64)."""
    with torch.no_grad():
        value, t = ball_box_support(torch.from_numpy(np.ascontiguousarray(Q)), torch.from_numpy(np.asarray(lo)),
                                    torch.from_numpy(np.asarray(hi)), r, steps)
    return value.numpy(), t.numpy()


@dataclass(frozen=True)
class Multipliers:
    """beta of one `under_fixings` call: rows the free neurons' upper bounds, then their lower
    bounds; columns the fixed neurons."""

    free: np.ndarray
    fixed: np.ndarray
    beta: np.ndarray

    def start(self, free: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        """A start for a node with these free and fixed neurons (a descendant): the entries of
        neurons in both, 0 elsewhere."""
        beta = np.zeros((2 * len(free), len(fixed)))
        rows = np.searchsorted(self.free, free).clip(max=len(self.free) - 1)
        cols = np.searchsorted(self.fixed, fixed).clip(max=max(len(self.fixed) - 1, 0))
        has_row = self.free[rows] == free if len(self.free) else np.zeros(len(free), bool)
        has_col = self.fixed[cols] == fixed if len(self.fixed) else np.zeros(len(fixed), bool)
        n = len(self.free)
        for half in (0, 1):
            sub = self.beta[half * n + rows[has_row]][:, cols[has_col]]
            beta[np.ix_(half * len(free) + np.flatnonzero(has_row), np.flatnonzero(has_col))] = sub
        return beta


def under_fixings(W: np.ndarray, c: np.ndarray, dom: Domain, free: np.ndarray, fixed: np.ndarray,
                  signs: np.ndarray, start: Multipliers | None = None, iters: int = 10,
                  lr: float = 0.1) -> tuple[np.ndarray, np.ndarray, Multipliers]:
    """(lower, upper, multipliers): bounds of W[free] delta + c[free] over B cap F (module
    docstring), widened against rounding, and multipliers to start a child node from: one
    projected step (Adam's first, lr sign(gradient)) beyond the best beta, so that with iters = 0
    (one evaluation per node) the search for beta goes on down the tree.
    free, fixed: sorted neuron indices; start: an ancestor's multipliers (default beta = 0).
    dom: the domain B (p = 2, finite radius)."""
    lo, hi, r = dom.delta_lo, dom.delta_hi, dom.radius
    Q = np.vstack([W[free], -W[free]])
    q0 = np.r_[c[free], -c[free]]
    P = signs[:, None] * W[fixed]
    p0 = signs * c[fixed]
    beta = np.zeros((len(Q), len(fixed))) if start is None else start.start(free, fixed)
    best = np.full(len(Q), np.inf)
    best_beta = beta.copy()
    best_grad = np.zeros_like(beta)
    m = np.zeros_like(beta)
    v = np.zeros_like(beta)
    for step in range(iters + 1):
        value, t = support_ball_box(Q - beta @ P, lo, hi, r)
        value += q0 - beta @ p0
        grad = -(t @ P.T + p0)  # d value / d beta
        better = value < best
        best = np.where(better, value, best)
        best_beta[better], best_grad[better] = beta[better], grad[better]
        if step == iters:
            break
        m = 0.9 * m + 0.1 * grad  # Adam (beta-CROWN's optimiser), projected onto beta >= 0
        v = 0.999 * v + 0.001 * grad * grad
        m_hat, v_hat = m / (1 - 0.9 ** (step + 1)), v / (1 - 0.999 ** (step + 1))
        beta = np.maximum(beta - lr * m_hat / (np.sqrt(v_hat) + 1e-12), 0.0)
    n = len(free)
    lower, upper = _widen(-best[n:], best[:n])
    return lower, upper, Multipliers(free, fixed, np.maximum(best_beta - lr * np.sign(best_grad), 0.0))
