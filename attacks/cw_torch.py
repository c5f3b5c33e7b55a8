"""Carlini-Wagner L2 (Carlini & Wagner, IEEE S&P 2017) in plain torch, batched over images, on the
CPU or a CUDA device: the same algorithm as Foolbox 3.3.4's L2CarliniWagnerAttack (`cw`), step by step.

For an image x of class c, with w the attack variable and x' = (tanh(w) + 1) / 2 in (0, 1)^d,
each binary-search step minimises by Adam (from w = arctanh(0.999999 (2x - 1)), i.e. delta = 0)

    L(w) = ||x' - x0||_2^2 + const * max(0, f_c(x') - max_{t != c} f_t(x') + confidence)

(x0 = the image after the round trip through tanh, as Foolbox; the loss f6 of the paper). Every
step's point counts when its float32 argmax differs from c, and the closest one (in L2 from x) is
kept. The constant: from `initial_const`, x10 while no step of the search found an adversarial
point, then bisection between the largest failing and the smallest succeeding value; when there
are 10 or more search steps, the last one runs again with the smallest succeeding constant.

Early abort (Carlini & Wagner's code, Foolbox): every tenth of `steps`, the search on the
constant stops when the loss has not fallen by 0.01% since the last check. Both reference codes
test the loss summed over the whole batch, so an image's answer there depends on the images
beside it; `abort=Abort.IMAGE` (the default) tests each image's own loss, which is what both
do for a batch of one image: the answer is a function of the image alone, and stopped images
leave the batch (less work on the CPU). `abort=Abort.BATCH` is the reference rule, to repeat a
run made with Foolbox on the same batches.

Where no step point of any search step was adversarial, Foolbox returns its initial best, the
all-zero image, which then counts as found when that image is classified otherwise; here the
image is `failed`.
"""

from __future__ import annotations

import math
from enum import StrEnum

import numpy as np
import torch

from minadv.verify import ReluNetwork, choice

from .base import Attack, Candidate
from .rlrqp import check_device

SHRINK = 0.999999  # Foolbox maps [0, 1] into (-1, 1) times this before arctanh


class Abort(StrEnum):
    """What the early abort tests: each image's own loss, or the batch's summed loss."""

    IMAGE = "image"
    BATCH = "batch"


class CarliniWagnerTorch(Attack):
    """Carlini-Wagner L2 in torch with the settings of Croce & Hein (GCPR 2018), as `cw`: 20
    binary-search steps on the constant (from 1e-3), 10000 Adam steps (lr 0.01, betas 0.9 /
    0.999, eps 1e-8) per search step, confidence 0, early abort; float32 like Foolbox.
    device: where torch runs ("cpu", "cuda", "cuda:1"); abort: see `Abort`."""

    name = "cw-torch"
    batched = True

    def __init__(self, *, binary_search_steps: int = 20, steps: int = 10000, stepsize: float = 0.01,
                 initial_const: float = 1e-3, confidence: float = 0.0, abort_early: bool = True,
                 abort: Abort | str = Abort.IMAGE, device: str = "cpu"):
        check_device(device)
        if binary_search_steps < 1 or steps < 1:
            raise ValueError("binary_search_steps and steps must be at least 1")
        self.binary_search_steps, self.steps, self.stepsize = binary_search_steps, steps, stepsize
        self.initial_const, self.confidence, self.abort_early = initial_const, confidence, abort_early
        self.abort, self.device = choice(Abort, abort, "abort"), device

    def find(self, net: ReluNetwork, x: np.ndarray, c: int) -> Candidate:
        return self.find_batch(net, [x], [c])[0]

    def find_batch(self, net: ReluNetwork, X: list[np.ndarray], C: list[int]) -> list[Candidate]:
        dev = torch.device(self.device)
        model = net.to_torch(torch.float32).to(dev)
        for p in model.parameters():
            p.requires_grad_(False)
        x = torch.tensor(np.stack(X), dtype=torch.float32, device=dev)
        labels = torch.tensor(C, device=dev)
        n = len(x)
        w0 = torch.atanh((x - 0.5) / 0.5 * SHRINK)
        x0 = torch.tanh(w0) * 0.5 + 0.5
        best = torch.zeros_like(x)
        best_norm = torch.full((n,), math.inf, device=dev)
        consts = np.full(n, self.initial_const)
        lower, upper = np.zeros(n), np.full(n, np.inf)
        for step in range(self.binary_search_steps):
            if step == self.binary_search_steps - 1 and self.binary_search_steps >= 10:
                consts = np.minimum(upper, 1e10)  # the last step again with the best constant
            found = self._search(model, x, x0, w0, labels, torch.tensor(consts, dtype=torch.float32, device=dev),
                                 best, best_norm).cpu().numpy()
            upper = np.where(found, consts, upper)
            lower = np.where(found, lower, consts)
            consts = np.where(np.isinf(upper), consts * 10, (lower + upper) / 2)
        ok = torch.isfinite(best_norm).cpu().numpy()
        points = best.double().cpu().numpy()
        return [Candidate(p) if k else Candidate(None, message="cw-torch: no adversarial found")
                for p, k in zip(points, ok, strict=True)]

    def _search(self, model, x, x0, w0, labels, consts, best, best_norm) -> torch.Tensor:
        """One search step at constants `consts`: Adam on delta = w - w0 from 0 for every image,
        the closest adversarial step point of each image written into best / best_norm (in place);
        returns which images had an adversarial step point."""
        n, dev = len(x), x.device
        rows = torch.arange(n, device=dev)  # the images still running
        delta, m, v = torch.zeros_like(x), torch.zeros_like(x), torch.zeros_like(x)
        found = torch.zeros(n, dtype=torch.bool, device=dev)
        previous, previous_sum = torch.full((n,), math.inf, device=dev), math.inf
        check = math.ceil(self.steps / 10)
        b1, b2 = 0.9, 0.999
        for t in range(self.steps):
            delta.requires_grad_(True)
            point = torch.tanh(w0[rows] + delta) * 0.5 + 0.5
            logits = model(point)
            own = logits.gather(1, labels[rows, None])[:, 0]
            runner_up = logits.detach().scatter(1, labels[rows, None], -math.inf).argmax(1, keepdim=True)
            other = logits.gather(1, runner_up)[:, 0]
            loss = torch.clamp(own - other + self.confidence, min=0) * consts[rows] \
                + (point - x0[rows]).square().sum(1)
            (grad,) = torch.autograd.grad(loss.sum(), delta)
            with torch.no_grad():
                delta = delta.detach()
                m.mul_(b1).add_(grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                m_hat, v_hat = m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))
                delta -= self.stepsize * m_hat / (v_hat.sqrt() + 1e-8)
                point, logits, loss = point.detach(), logits.detach(), loss.detach()
                if self.abort_early and t % check == 0:
                    if self.abort == Abort.BATCH:
                        total = loss.sum().item()
                        if not total <= 0.9999 * previous_sum:
                            break
                        previous_sum = total
                    else:
                        going = loss <= 0.9999 * previous[rows]
                        previous[rows] = loss
                        if not going.all():
                            if not going.any():
                                break
                            rows, delta, m, v = rows[going], delta[going], m[going], v[going]
                            point, logits = point[going], logits[going]
                adversarial = logits.argmax(1) != labels[rows]
                found[rows] |= adversarial
                norms = (point - x[rows]).norm(dim=1)
                better = adversarial & (norms < best_norm[rows])
                best[rows] = torch.where(better[:, None], point, best[rows])
                best_norm[rows] = torch.where(better, norms, best_norm[rows])
        return found
