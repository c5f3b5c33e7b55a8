"""Model files in: `load_network` reads a ReLU classifier from .pt (torch) or .onnx."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import torch
from torch import nn

from ..network import NetworkError, ReluNetwork
from .onnx import load_onnx


def load_network(path: str | Path) -> ReluNetwork:
    """A ReLU classifier from a model file:

    - .onnx: see `load_onnx`;
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
        net = load_onnx(path)
    else:
        saved = _torch_load(path)
        if isinstance(saved, nn.Module):
            try:
                net = ReluNetwork.from_sequential(saved)
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
