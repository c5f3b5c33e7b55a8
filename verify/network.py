"""A feed-forward ReLU network in float64: f(z) = W_L relu(... relu(W_1 z + b_1) ...) + b_L.

One definition serves the numeric forward pass, the polytope module, the bounds
and the MIP. Every verdict in minadv is recomputed with `ReluNetwork.forward`.
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


class NetworkError(ValueError):
    """A model that is not a plain feed-forward ReLU network."""


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

    @classmethod
    def load(cls, path: str | Path) -> ReluNetwork:
        """A ReLU classifier from a model file:

        - .onnx: see `onnx_import`;
        - .pt holding a whole `nn.Sequential` (`torch.save(model)`): its modules say what they are;
        - .pt holding a state_dict (`torch.save(model.state_dict())`): tensors only, which cannot say
          what the activations between them are (a Linear-Sigmoid-Linear has the same keys as a
          Linear-ReLU-Linear), so it needs its architecture card beside it (NAME.json, as `minadv
          train` writes it) whose "layers" name the modules, e.g. "Sequential(Linear, ReLU, Linear)".

        Anything else, and a network without a hidden layer or with fewer than two outputs, is a
        one-line NetworkError."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no model file at {path}")
        if path.is_dir():
            raise NetworkError(f"{path} is a directory, not a model file (.onnx or .pt)")
        if path.suffix.lower() == ".onnx":
            from .onnx_import import load_onnx  # imports onnx only when needed

            net = load_onnx(path)
        else:
            saved = _torch_load(path)
            if isinstance(saved, nn.Module):
                try:
                    net = cls.from_sequential(saved)
                except NetworkError as err:
                    raise NetworkError(f"{path}: {err}") from None
            elif isinstance(saved, dict) and saved and all(isinstance(v, torch.Tensor) for v in saved.values()):
                net = _from_card(path, saved)
            else:
                raise NetworkError(f"{path} holds a {type(saved).__name__}, not a model: save the nn.Sequential "
                                   f"(torch.save(model)), its state_dict with its card beside it, or ONNX")
        if net.n_hidden_layers == 0:
            raise NetworkError(f"{path}: {net!r} has no hidden layer (an affine classifier); minadv handles "
                               f"ReLU networks with at least one hidden layer")
        if net.n_outputs < 2:
            raise NetworkError(f"{path}: {net!r} has {net.n_outputs} output; a classifier needs one logit per "
                               f"class, at least two")
        return net

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


# every torch.nn layer may be unpickled (and then refused by name in `from_sequential` if it is
# not Linear, ReLU or Flatten); torch.load's weights_only mode still refuses any other code
_NN_LAYERS = [c for c in vars(nn).values() if isinstance(c, type) and issubclass(c, nn.Module)]


def _torch_load(path: Path):
    """torch.load in weights_only mode (no code of the file's choosing runs), torch.nn layers allowed;
    a file torch cannot read is a NetworkError. On bytes that are not a torch file, torch.load
    raises whatever its parsers trip on (KeyError, IndexError, EOFError, RuntimeError, ... seen
    on text files, empty files and zip files), hence the catch-all."""
    try:
        with torch.serialization.safe_globals(_NN_LAYERS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        said = re.search(r"WeightsUnpickler error:\s*(.+)", str(err))  # after torch's advice, the reason
        what = (f"it holds {found.group(1)}, not a torch.nn layer" if found else said.group(1).strip() if said
                else str(err).splitlines()[0])
        raise NetworkError(f"{path}: not a model minadv can load ({what})") from None
    except Exception as err:
        raise NetworkError(f"{path}: not a torch file ({type(err).__name__}: {err})") from None


def _from_card(path: Path, state: dict) -> ReluNetwork:
    """A state_dict read as the nn.Sequential its card (path.json) names the modules of."""
    card_path = path.with_suffix(".json")
    if not card_path.is_file():
        raise NetworkError(f"{path} is a state_dict, which cannot say its activations: put its card {card_path.name} "
                           f'beside it (as minadv train writes: "layers": "Sequential(Linear, ReLU, Linear)"), '
                           f"or save the whole nn.Sequential (torch.save(model)) or ONNX")
    try:
        card = json.loads(card_path.read_text())
        names = re.fullmatch(r"Sequential\((.*)\)", card["layers"]).group(1).split(", ")
    except (ValueError, TypeError, KeyError, AttributeError):
        raise NetworkError(f'{card_path}: not a model card: expected JSON with "layers": '
                           f'"Sequential(Linear, ReLU, ..., Linear)"') from None
    modules: list[nn.Module] = []
    for i, name in enumerate(names):
        weight = state.get(f"{i}.weight")
        if name == "Linear" and weight is not None and weight.ndim == 2:
            modules.append(nn.Linear(weight.shape[1], weight.shape[0], bias=f"{i}.bias" in state, dtype=weight.dtype))
        elif name in ("ReLU", "Flatten"):
            modules.append(getattr(nn, name)())
        elif name == "Linear":
            raise NetworkError(f"{path}: the card's module {i} is Linear, but the state_dict has no 2-d {i}.weight")
        else:
            raise NetworkError(f"{card_path}: module {i} is {name}; minadv handles Linear, ReLU and Flatten only")
    model = nn.Sequential(*modules)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise NetworkError(f"{path} does not fit its card {card_path.name}: {' '.join(str(err).split())}") from None
    net = ReluNetwork.from_sequential(model)
    if card.get("architecture", net.architecture) != net.architecture:
        raise NetworkError(f"{path} is {net.architecture}, its card {card_path.name} says {card['architecture']}")
    return net
