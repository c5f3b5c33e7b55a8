"""A feed-forward ReLU network in float64: f(z) = W_L relu(... relu(W_1 z + b_1) ...) + b_L.

One definition serves the numeric forward pass, the polytope module, the bounds
and the MIP. Every verdict in minadv is recomputed with `ReluNetwork.forward`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import torch
from torch import nn


class NetworkError(ValueError):
    """A model that is not a plain feed-forward ReLU network."""


class NeuronState(IntEnum):
    """A hidden ReLU's state in a search node, the one encoding of the branch and bound (exact)
    and the split search (decide): the sign sigma of its split constraint sigma * g <= 0 on its
    pre-activation g."""

    ACTIVE = -1  # g >= 0: relu(g) = g
    FREE = 0  # not fixed: relaxed
    INACTIVE = 1  # g <= 0: relu(g) = 0


class InputError(ValueError):
    """An image, norm or option that does not fit the network or the threat model."""


@dataclass(frozen=True)
class ReluNetwork:
    """Layers (W_k, b_k), k = 1..L, float64; ReLU after every layer but the last."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    def __post_init__(self):
        if len(self.weights) != len(self.biases) or not self.weights:
            raise NetworkError("a network needs one bias per weight matrix and at least one layer")
        for k, (W, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if W.ndim != 2 or b.shape != (W.shape[0],):
                raise NetworkError(f"layer {k}: weight {W.shape} and bias {b.shape} do not fit")
            if k and W.shape[1] != self.weights[k - 1].shape[0]:
                raise NetworkError(
                    f"layer {k} takes {W.shape[1]} inputs but layer {k - 1} gives {self.weights[k - 1].shape[0]}"
                )
            if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
                raise NetworkError(f"layer {k} has non-finite parameters")

    @classmethod
    def from_layers(cls, layers) -> ReluNetwork:
        """From an iterable of (W, b) array pairs."""
        def arr(a) -> np.ndarray:
            a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a
            return np.array(a, dtype=np.float64)

        Ws, bs = zip(*[(arr(W), arr(b)) for W, b in layers], strict=True)
        for a in Ws + bs:
            a.setflags(write=False)
        return cls(tuple(Ws), tuple(bs))

    @classmethod
    def from_sequential(cls, model: nn.Module) -> ReluNetwork:
        """From an `nn.Sequential` of Linear and ReLU (Flatten allowed before the first Linear).

        Linear layers must alternate with ReLU and the last module must be Linear.
        """
        modules = list(model.children()) if isinstance(model, nn.Sequential) else [model]
        layers, expect_linear = [], True
        for i, m in enumerate(modules):
            name = f"module {i} ({type(m).__name__})"
            if isinstance(m, nn.Flatten):
                if layers:
                    raise NetworkError(f"{name}: Flatten is only supported before the first Linear layer")
            elif isinstance(m, nn.Linear):
                if not expect_linear:
                    raise NetworkError(f"{name}: two Linear layers without a ReLU between them")
                b = m.bias if m.bias is not None else torch.zeros(m.out_features)
                layers.append((m.weight.detach().double().numpy(), b.detach().double().numpy()))
                expect_linear = False
            elif isinstance(m, nn.ReLU):
                if expect_linear:
                    raise NetworkError(f"{name}: ReLU must follow a Linear layer")
                expect_linear = True
            else:
                raise NetworkError(f"{name}: unsupported layer; minadv handles Linear, ReLU and Flatten only")
        if not layers or expect_linear:
            raise NetworkError("the model must end with a Linear layer (logits, no final ReLU/softmax)")
        return cls.from_layers(layers)

    # --- shape -------------------------------------------------------------------
    @property
    def n_inputs(self) -> int:
        return self.weights[0].shape[1]

    @property
    def n_outputs(self) -> int:
        return self.weights[-1].shape[0]

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return tuple(W.shape[0] for W in self.weights[:-1])

    @property
    def n_hidden_layers(self) -> int:
        return len(self.weights) - 1

    @property
    def architecture(self) -> str:
        """Layer sizes, inputs first: '784-50-10' (as the model cards write them)."""
        return "-".join(str(n) for n in (self.n_inputs, *self.hidden_sizes, self.n_outputs))

    def __repr__(self) -> str:
        return f"ReluNetwork({self.architecture})"

    # --- numerics ------------------------------------------------------------------
    def pre_activations(self, z: np.ndarray) -> list[np.ndarray]:
        """Pre-activations of every hidden layer and the logits, float64; z is (d,) or (B, d)."""
        h = np.asarray(z, dtype=np.float64)
        out = []
        for W, b in zip(self.weights, self.biases, strict=True):
            g = h @ W.T + b
            out.append(g)
            h = np.maximum(g, 0.0)
        return out

    def forward(self, z: np.ndarray) -> np.ndarray:
        """Logits f(z) in float64; z is (d,) or (B, d)."""
        return self.pre_activations(z)[-1]

    def predict(self, z: np.ndarray) -> np.ndarray | int:
        logits = self.forward(z)
        return int(np.argmax(logits)) if logits.ndim == 1 else np.argmax(logits, axis=1)

    def other_classes(self, c: int) -> list[int]:
        """Every class but c: the targets of an untargeted attack or search away from class c."""
        return [t for t in range(self.n_outputs) if t != c]

    def margin(self, z: np.ndarray, c: int | np.ndarray) -> np.ndarray | float:
        """max_{l != c} f_l(z) - f_c(z): >= 0 on or past the decision boundary of class c."""
        logits = np.atleast_2d(self.forward(z))
        c = np.broadcast_to(np.asarray(c), (logits.shape[0],))
        rows = np.arange(logits.shape[0])
        fc = logits[rows, c].copy()
        logits[rows, c] = -np.inf
        m = logits.max(axis=1) - fc
        return float(m[0]) if np.ndim(z) == 1 else m

    def to_torch(self, dtype: torch.dtype = torch.float32) -> nn.Sequential:
        """The same network as an `nn.Sequential` (for gradient-based attacks)."""
        mods: list[nn.Module] = []
        for k, (W, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            lin = nn.Linear(W.shape[1], W.shape[0]).to(dtype)
            with torch.no_grad():
                lin.weight.copy_(torch.tensor(W))
                lin.bias.copy_(torch.tensor(b))
            mods.append(lin)
            if k < self.n_hidden_layers:
                mods.append(nn.ReLU())
        return nn.Sequential(*mods).eval()


def margin_rows(n_classes: int, c: int, targets) -> np.ndarray:
    """C (len(targets) x n_classes) with C @ logits = (f_t - f_c for t in targets): row i is
    e_t - e_c for t = targets[i]. A target's margin is >= 0 exactly when the point is adversarial
    for it."""
    C = np.zeros((len(targets), n_classes))
    C[np.arange(len(targets)), list(targets)] = 1.0
    C[:, c] -= 1.0
    return C
