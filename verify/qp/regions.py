"""Linear regions of a ReLU network (Croce & Hein, Section 2) and the region QP (problem (3)).

On the region Q(y) of a point y, every hidden pre-activation is affine,
g^(l)(z) = V^(l) z + a^(l), and so are the logits, f(z) = V^(L+1) z + a^(L+1), with

    V^(l+1) = W_{l+1} D^(l) V^(l),   a^(l+1) = W_{l+1} D^(l) a^(l) + b_{l+1},
    D^(l) = diag(1[g^(l)(y) >= 0]),  V^(1) = W_1, a^(1) = b_1.

Q(y) = {z : s_j (G_j z + g_j) >= 0 for every hidden neuron j}, with G, g the stacked
V^(l), a^(l) of all hidden layers and s_j = +1 (active) or -1 (inactive).
Everything is batched over B regions in torch (float64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..network import ReluNetwork
from .reference import BoxQP, QPSolution, solve_clarabel


def _t(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=torch.float64)


@dataclass(frozen=True)
class Regions:
    """A batch of B linear regions of one network (d inputs, H hidden neurons, K logits).

    active: (B, H) bool; G: (B, H, d), g: (B, H) stacked hidden pre-activation maps;
    F: (B, K, d), f: (B, K) the affine classifier on the region.
    """

    active: torch.Tensor
    G: torch.Tensor
    g: torch.Tensor
    F: torch.Tensor
    f: torch.Tensor

    def __len__(self) -> int:
        return self.active.shape[0]

    def __getitem__(self, idx) -> Regions:
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return Regions(self.active[idx], self.G[idx], self.g[idx], self.F[idx], self.f[idx])

    def keys(self) -> list[bytes]:
        """Hashable activation patterns (one per region) for "never visit a region twice"."""
        packed = np.packbits(self.active.numpy(), axis=1)
        return [row.tobytes() for row in packed]

    @property
    def signs(self) -> torch.Tensor:
        return self.active.double() * 2.0 - 1.0

    def inequalities(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, b) with Q = {z : A z <= b}: A = -s G, b = s g; shapes (B, H, d), (B, H)."""
        s = self.signs
        return -s[..., None] * self.G, s * self.g

    def slack(self, Z: torch.Tensor | np.ndarray) -> torch.Tensor:
        """s_j (G_j z + g_j) for points Z (B, d), one per region: >= 0 everywhere iff z in Q."""
        Z = _t(Z).reshape(len(self), -1)
        return self.signs * (torch.einsum("bhd,bd->bh", self.G, Z) + self.g)

    def contains(self, Z, tol: float = 0.0) -> torch.Tensor:
        return (self.slack(Z) >= -tol).all(dim=1)

    def logits(self, Z) -> torch.Tensor:
        """The region's affine classifier F z + f at points Z (B, d)."""
        Z = _t(Z).reshape(len(self), -1)
        return torch.einsum("bkd,bd->bk", self.F, Z) + self.f

    def qp(self, i: int, x: np.ndarray, c: int, t: int, box=(0.0, 1.0)) -> BoxQP:
        """Problem (3) on region i as min ||delta||^2 s.t. A delta <= b, lo <= delta <= hi.

        Rows: s_j (G_j (x + delta) + g_j) >= 0 for every hidden neuron and
        f_t(x + delta) >= f_c(x + delta) (last row) with the region's affine map.
        """
        A, b = self.inequalities()
        A, b = A[i].numpy(), b[i].numpy()
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        w = (self.F[i, t] - self.F[i, c]).numpy()
        w0 = float(self.f[i, t] - self.f[i, c])
        A_all = np.vstack([A, -w[None, :]])
        b_all = np.concatenate([b - A @ x, [w @ x + w0]])
        lo, hi = box
        return BoxQP(A_all, b_all, lo - x, hi - x)


def patterns(net: ReluNetwork, Y) -> torch.Tensor:
    """Activation patterns (B, H) bool: neuron active iff its pre-activation is >= 0."""
    pre = net.pre_activations(np.atleast_2d(np.asarray(Y, dtype=np.float64)))[:-1]
    return torch.from_numpy(np.concatenate(pre, axis=1) >= 0.0)


def regions_of_patterns(net: ReluNetwork, active: torch.Tensor) -> Regions:
    """The regions with the given activation patterns (B, H) bool (possibly empty polytopes)."""
    active = torch.as_tensor(active, dtype=torch.bool)
    if active.ndim == 1:
        active = active[None]
    if active.shape[1] != sum(net.hidden_sizes):
        raise ValueError(f"pattern has {active.shape[1]} neurons; the network has {sum(net.hidden_sizes)}")
    B = active.shape[0]
    W1, b1 = _t(net.weights[0]), _t(net.biases[0])
    V = W1.expand(B, *W1.shape)
    a = b1.expand(B, *b1.shape)
    Gs, gs, start = [], [], 0
    for W, b in zip(net.weights[1:], net.biases[1:], strict=True):
        Gs.append(V)
        gs.append(a)
        n = V.shape[1]
        D = active[:, start : start + n].double()
        start += n
        W, b = _t(W), _t(b)
        V = torch.einsum("ij,bjd->bid", W, D[..., None] * V)
        a = torch.einsum("ij,bj->bi", W, D * a) + b
    G = torch.cat(Gs, dim=1) if Gs else torch.zeros(B, 0, net.n_inputs, dtype=torch.float64)
    g = torch.cat(gs, dim=1) if gs else torch.zeros(B, 0, dtype=torch.float64)
    return Regions(active, G, g, V, a)


def regions_at(net: ReluNetwork, Y) -> Regions:
    """The regions Q(y) of points Y (B, d) or (d,)."""
    return regions_of_patterns(net, patterns(net, Y))


def region_qp(
    net: ReluNetwork, x: np.ndarray, c: int, y: np.ndarray | None = None, targets=None, solve=None
) -> dict[int, QPSolution]:
    """Problem (3) on Q(y) (y = x by default) for each target t != c (or the given ones).

    solve: a function BoxQP -> QPSolution (default: Clarabel, `qp.solve_clarabel`).
    """
    solve = solve or solve_clarabel
    reg = regions_at(net, x if y is None else y)
    targets = net.other_classes(c) if targets is None else targets
    return {t: solve(reg.qp(0, x, c, t)) for t in targets}
