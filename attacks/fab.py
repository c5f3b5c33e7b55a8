"""FAB, the fast adaptive boundary attack, L2 and Linf (Croce & Hein, "Minimally distorted adversarial examples
with a fast adaptive boundary attack", ICML 2020), on the network's float64 torch copy, batched over images.

Written here rather than taken from AutoAttack (fab_pt.py) or torchattacks (FAB, a port of it): their
inner iteration follows the paper, but their restarts serve robust accuracy at a fixed eps, not the
minimal norm: a restart runs only on the images not yet fooled within eps, and its point replaces
the earlier one without comparing norms, so the best point over restarts is not kept as the paper's
algorithm (and its authors' reference code, fra31/fab-attack) keeps it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from minadv.verify import ReluNetwork

from .base import Attack, Candidate


def project(p: torch.Tensor, w: torch.Tensor, t: torch.Tensor, norm: float) -> torch.Tensor:
    """Per row: argmin ||d||_norm s.t. w.d = t and 0 <= p + d <= 1 (norm 2 or inf), the paper's
    projection onto a hyperplane and the box (its eq. (4)); where no d in the box reaches w.d = t,
    the d in the box of largest sign(t) w.d with the least norm.

    For t >= 0 (t < 0: the same with -w and -t) the minimiser moves along d(lam) = clip(lam v, -p, 1 - p),
    lam >= 0: v = w for L2 (the KKT conditions), v = sign(w) for Linf (at Linf radius lam the
    largest w.d is reached by d_i = sign(w_i) min(lam, |limit_i|), the paper's Linf projection, and
    of the minimisers it is the one AutoAttack's and the authors' projection_linf return).
    g(lam) = w.d(lam) is non-decreasing and piecewise linear; coordinate i stops at
    lam_i = limit_i / v_i. With the lam_i sorted, g at the k-th is S_k + lam_k Q_k (S_k: the stopped
    coordinates' w.limit, Q_k: the sum of w_i v_i still moving), so the interval holding t and then
    lam come in closed form (a sort, no iteration)."""
    sign = torch.where(t < 0, -1.0, 1.0).to(w.dtype)
    w, t = w * sign[:, None], t.abs()
    v = w if norm == 2 else torch.sign(w)
    limit = torch.where(w > 0, 1 - p, -p)  # where coordinate i stops as lam grows
    moving = w != 0
    stop = torch.where(moving, limit / torch.where(moving, v, 1.0), torch.inf)
    stop, order = stop.sort(dim=1)
    reached = (w * limit).gather(1, order)
    S = reached.cumsum(1) - reached
    Q = (w * v).gather(1, order).flip(1).cumsum(1).flip(1)
    total = reached.sum(1, keepdim=True)
    g = torch.where(torch.isfinite(stop), S + torch.where(torch.isfinite(stop), stop, 0.0) * Q, total)
    k = torch.searchsorted(g, t[:, None]).clamp(max=g.shape[1] - 1)
    lam = (t[:, None] - S.gather(1, k)) / Q.gather(1, k).clamp(min=1e-300)
    lam = torch.where(t[:, None] > total, torch.full_like(lam, 1e300), lam)
    lv = lam * v
    return torch.where(w > 0, torch.minimum(lv, limit), torch.maximum(lv, limit))


def logits_and_jacobian(layers: list[tuple[torch.Tensor, torch.Tensor]], z: torch.Tensor, jacobian: bool = True):
    """f(z) (rows of z) and its Jacobian d f / d z, (B, K, d): W_L D_{L-1} W_{L-1} ... D_1 W_1 with D_k the
    0/1 activations of hidden layer k at z (the gradient torch's ReLU gives, 0 at 0); None without `jacobian`."""
    h, J = z, None
    for k, (W, b) in enumerate(layers):
        h = h @ W.T + b
        if jacobian:
            J = W.expand(len(z), *W.shape) if J is None else torch.einsum("oh,bhd->bod", W, J)
        if k < len(layers) - 1:
            on = h > 0
            h = h * on
            J = J * on[:, :, None] if jacobian else None
    return h, J


class FAB(Attack):
    """FAB-L2, untargeted (Croce & Hein, ICML 2020, Algorithm 1). At the current point z: the
    linearised decision boundary to each class l != c, f_l - f_c + (grad f_l - grad f_c).(u - z) = 0;
    the closest one in L2 (|f_l - f_c| / ||grad f_l - grad f_c||_2); its projections d_z of z and d_x of
    the image x (with the box, `project`); then the biased step
    z <- clip((1 - a)(z + eta d_z) + a (x + eta d_x)), a = min(||d_z|| / (||d_z|| + ||d_x||), alpha_max),
    and, once z is adversarial, the best point kept and the backward step z <- x + beta (z - x).
    Restarts after the first start at x + u min(eps, best norm so far) / 2, u a random unit vector,
    and keep the best point over all runs.

    Defaults: alpha_max = 0.1, eta = 1.05, beta = 0.9, the values the paper fixes for all its
    experiments; 100 iterations; 100 restarts (the paper's FAB-100); eps = 1, the restart radius of
    the authors' reference script; seed 0 for the restarts."""

    name = "fab"
    batched = True

    def __init__(self, *, steps: int = 100, restarts: int = 100, alpha_max: float = 0.1, eta: float = 1.05,
                 beta: float = 0.9, eps: float = 1.0, seed: int = 0):
        self.steps, self.restarts, self.alpha_max, self.eta = steps, restarts, alpha_max, eta
        self.beta, self.eps, self.seed = beta, eps, seed

    def find(self, net: ReluNetwork, x: np.ndarray, c: int) -> Candidate:
        return self.find_batch(net, [x], [c])[0]

    def find_batch(self, net: ReluNetwork, X: list[np.ndarray], C: list[int]) -> list[Candidate]:
        layers = [(torch.tensor(W), torch.tensor(b)) for W, b in zip(net.weights, net.biases, strict=True)]
        x = torch.tensor(np.stack(X), dtype=torch.float64)
        c = torch.tensor(C)
        rows = torch.arange(len(X))
        best = torch.full((len(X),), torch.inf, dtype=torch.float64)
        best_point = x.clone()
        gen = torch.Generator().manual_seed(self.seed)
        dual = 2.0 if self.norm == 2 else 1.0  # the dual norm of L2 and Linf
        with torch.no_grad():
            for restart in range(self.restarts):
                z = x.clone()
                if restart:
                    u = self._direction(x.shape, gen)
                    radius = torch.clamp(best, max=self.eps) / 2
                    z = (x + u / u.norm(p=self.norm, dim=1, keepdim=True) * radius[:, None]).clamp(0, 1)
                for _ in range(self.steps):
                    f, J = logits_and_jacobian(layers, z)
                    df, dg = f - f[rows, c][:, None], J - J[rows, c][:, None]
                    dist = df.abs() / (dg.norm(p=dual, dim=2) + 1e-12)  # distance in the norm
                    dist[rows, c] = torch.inf
                    l = dist.argmin(dim=1)
                    w, b = dg[rows, l], df[rows, l]
                    d = project(torch.cat([z, x]), torch.cat([w, w]), torch.cat([-b, -b - (w * (x - z)).sum(1)]),
                                self.norm)
                    dz, dx = d[: len(X)], d[len(X):]
                    nz, nx = dz.norm(p=self.norm, dim=1), dx.norm(p=self.norm, dim=1)
                    a = torch.clamp(nz / (nz + nx).clamp(min=1e-300), max=self.alpha_max)[:, None]
                    z = ((1 - a) * (z + self.eta * dz) + a * (x + self.eta * dx)).clamp(0, 1)
                    adv = logits_and_jacobian(layers, z, jacobian=False)[0].argmax(dim=1) != c
                    norm = (z - x).norm(p=self.norm, dim=1)
                    better = adv & (norm < best)
                    best = torch.where(better, norm, best)
                    best_point[better] = z[better]
                    z[adv] = x[adv] + self.beta * (z[adv] - x[adv])
        failed = f"{self.name}: no adversarial found"
        return [Candidate(p.numpy()) if np.isfinite(n) else Candidate(None, message=failed)
                for p, n in zip(best_point, best.tolist(), strict=True)]

    def _direction(self, shape: tuple, gen: torch.Generator) -> torch.Tensor:
        """A restart's random direction (scaled to the restart radius by the caller): Gaussian, so
        that u / ||u||_2 is uniform on the L2 sphere, as the authors' L2 code draws it."""
        return torch.randn(shape, generator=gen, dtype=torch.float64)


class FABLinf(FAB):
    """FAB-Linf, untargeted (Croce & Hein, ICML 2020, Algorithm 1 in Linf): FAB's iteration with
    the Linf distance to each linearised boundary, |f_l - f_c| / ||grad f_l - grad f_c||_1 (the dual
    norm), the Linf projection onto the hyperplane and the box (`project`: the smallest Linf
    radius r whose clipped sign step sign(w_i) min(r, limit_i) reaches the hyperplane, found by a
    sort, as AutoAttack's fab_projections.projection_linf finds it by sort and bisection), the step
    weight a from ||d_z||_inf and ||d_x||_inf, and restarts at x + u min(eps, best norm so far) / 2
    with u uniform in [-1, 1]^d scaled to ||u||_inf = 1 (the authors' FAB_linf_pt.py).

    Defaults: alpha_max = 0.1, eta = 1.05, beta = 0.9, fixed by the paper for every norm and
    dataset; 100 iterations; 100 restarts (the paper's FAB-100, as our FAB-L2); eps = 0.3, the
    restart radius the authors' reference script (fra31/fab-attack, FAB_linf_pt.py) sets for MNIST
    in Linf; seed 0. AutoAttack's FAB (fab_pt.py) is not used, for the reason given at the top."""

    name = "fab-linf"
    norm = math.inf

    def __init__(self, *, steps: int = 100, restarts: int = 100, alpha_max: float = 0.1, eta: float = 1.05,
                 beta: float = 0.9, eps: float = 0.3, seed: int = 0):
        super().__init__(steps=steps, restarts=restarts, alpha_max=alpha_max, eta=eta, beta=beta, eps=eps, seed=seed)

    def _direction(self, shape: tuple, gen: torch.Generator) -> torch.Tensor:
        return 2 * torch.rand(shape, generator=gen, dtype=torch.float64) - 1
