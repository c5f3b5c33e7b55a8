"""Projected gradient ascent inside an input box (Madry et al., ICLR 2018), for decision problems:
find z in [lower, upper] with max_{j in targets} f_j(z) - f_label(z) >= 0.

Loss (the margin itself, CW-style): max_j f_j(z) - f_label(z), ascended by signed gradient
steps whose size decays from (upper - lower) / 4 to 1% of it, from the box centre and from
uniform random starts (all restarts as one batch, float64). Every candidate goes through
the float64 check; None when no restart crosses the boundary.

`pgd_l2`: the L2 PGD attack of adversarial training (`experiments.models.AdversarialTraining`).
`PGDLinf`: a minimal-Linf attack, pgd_box on the Linf ball cap the box with bisection on its radius.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from minadv.verify import ReluNetwork

from .base import Attack, Candidate


def pgd_box(net: ReluNetwork, lower: np.ndarray, upper: np.ndarray, label: int, targets=None, *,
            restarts: int = 32, steps: int = 200, seed: int = 0, start: np.ndarray | None = None) -> np.ndarray | None:
    """The best point found (margin >= 0 by the float64 forward pass), or None. start: a point
    of the box to begin from (e.g. a solver's near miss) in place of the box centre."""
    targets = [j for j in range(net.n_outputs) if j != label] if targets is None else list(targets)
    lo = torch.tensor(np.asarray(lower, dtype=np.float64)).reshape(1, -1)
    hi = torch.tensor(np.asarray(upper, dtype=np.float64)).reshape(1, -1)
    gen = torch.Generator().manual_seed(seed)
    z = lo + (hi - lo) * torch.rand(restarts, lo.shape[1], generator=gen, dtype=torch.float64)
    z[0] = 0.5 * (lo + hi) if start is None else torch.tensor(np.asarray(start, dtype=np.float64)).reshape(1, -1)
    model = net.to_torch(torch.float64)
    for p in model.parameters():
        p.requires_grad_(False)
    width = hi - lo
    tj = torch.tensor(targets)
    best, best_margin = None, -np.inf
    for k in range(steps):
        z.requires_grad_(True)
        logits = model(z)
        margin = logits[:, tj].max(dim=1).values - logits[:, label]
        i = int(margin.argmax())
        if float(margin[i].detach()) > best_margin:
            best_margin, best = float(margin[i].detach()), z[i].detach().clone()
        if best_margin >= 0:
            break
        (grad,) = torch.autograd.grad(margin.sum(), z)
        size = 0.25 * (0.04 ** (k / max(steps - 1, 1)))  # 1/4 of the box down to 1% of that
        z = torch.minimum(torch.maximum(z.detach() + size * width * grad.sign(), lo), hi)
    if best is None:
        return None
    point = best.numpy()
    logits = net.forward(point)
    return point if logits[targets].max() - logits[label] >= 0 else None


def pgd_l2(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int,
           step_size: float | None = None) -> torch.Tensor:
    """L2 PGD on the cross-entropy (Madry et al., ICLR 2018, in L2), the attack of adversarial
    training: maximise CE(model(z), y) over {z : ||z - x||_2 <= eps} cap [0, 1]^d, from z = x,
    by z <- P(z + a g / ||g||_2) with g the plain gradient (Croce & Hein 2018, Section 5: the
    gradient, not its sign, which belongs to Linf). a = 2.5 eps / steps by default (Madry et
    al.'s rule: the steps could cross the ball 2.5 times). P scales z - x back onto the ball,
    then clips to the box; clipping only moves coordinates towards x's, so the point stays in
    both sets. No random start: the same inputs give the same points. Rows of x are images."""
    a = 2.5 * eps / steps if step_size is None else step_size
    z = x.detach().clone()
    for _ in range(steps):
        with torch.enable_grad():  # also inside a caller's no_grad
            z.requires_grad_(True)
            (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(z), y, reduction="sum"), z)
        with torch.no_grad():
            z = z + a * g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
            d = z - x
            z = (x + d * (eps / d.norm(dim=1, keepdim=True).clamp_min(eps))).clamp(0.0, 1.0)
    return z.detach()


class PGDLinf(Attack):
    """Minimal Linf perturbation by bisection on eps over Linf PGD (Madry et al., ICLR 2018): PGD at
    radius eps is `pgd_box` on [x - eps, x + eps] cap [0, 1]^d (the margin loss max_{j != c} f_j - f_c,
    sign steps, projection onto the ball cap box by clipping), its first start at x, the others
    uniform in the ball cap box. First on the whole box (eps = 1); then, while
    hi - lo > tolerance hi: eps = (lo + hi) / 2, and a point found there sets hi to its own
    ||z - x||_inf (<= eps) and becomes the answer, none sets lo = eps. Returns the point of the
    smallest hi, every one float64-checked (pgd_box's check, then the attack contract's); `lo` is
    no bound, PGD may miss points.

    There is no paper default for this search; chosen here: steps = 100 and restarts = 10 (Madry et
    al.'s MNIST evaluation attack runs 100 steps with random restarts), pgd_box's step schedule
    (sign steps of a quarter of the box width, 2 eps, decaying geometrically to 1% of that, spanning
    Madry et al.'s fixed eps / 30 at eps = 0.3); tolerance = 1e-4, relative: the bisection's own
    error stays within Table 1's matched tolerance (ratio <= 1 + 1e-4), so it alone never keeps the
    attack from matching the optimum; at most 40 bisection steps; seed 0."""

    name = "pgd-linf"
    norm = math.inf

    def __init__(self, *, steps: int = 100, restarts: int = 10, tolerance: float = 1e-4, max_bisections: int = 40,
                 seed: int = 0):
        self.steps, self.restarts, self.tolerance = steps, restarts, tolerance
        self.max_bisections, self.seed = max_bisections, seed

    def _pgd(self, net: ReluNetwork, x: np.ndarray, c: int, eps: float) -> np.ndarray | None:
        return pgd_box(net, np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1), c, restarts=self.restarts,
                       steps=self.steps, seed=self.seed, start=x)

    def find(self, net: ReluNetwork, x: np.ndarray, c: int) -> Candidate:
        best = self._pgd(net, x, c, 1.0)
        if best is None:
            return Candidate(None, message="pgd-linf: no adversarial point in the whole box")
        lo, hi = 0.0, float(np.abs(best - x).max())
        for _ in range(self.max_bisections):
            if hi - lo <= self.tolerance * hi:
                break
            eps = (lo + hi) / 2
            z = self._pgd(net, x, c, eps)
            if z is None:
                lo = eps
            else:
                best, hi = z, min(eps, float(np.abs(z - x).max()))
        return Candidate(best)
