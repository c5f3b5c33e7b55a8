import json

import pytest
import torch

from minadv.experiments.data import data_sha256
from minadv.experiments.models import ARCHITECTURES, MODEL_DIR, accuracy, card, load, train
from minadv.verify import load_network


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_committed_models_match_their_cards(name, test_split):
    net = load(name)
    info = card(name)
    assert info["architecture"] == "-".join(map(str, ARCHITECTURES[name]))
    acc = accuracy(net, test_split)
    assert acc >= 0.96
    assert acc == pytest.approx(info["test_accuracy"], abs=1e-12)
    assert info["test_data_sha256"] == data_sha256(test_split)
    state = torch.load(MODEL_DIR / f"{name}.pt", weights_only=True)
    n_linear = len(ARCHITECTURES[name]) - 1
    assert sorted(state) == sorted(f"{2 * k}.{p}" for k in range(n_linear) for p in ("weight", "bias"))


@pytest.mark.slow
def test_training_is_deterministic(tmp_path):
    """Twice on this machine: the same bits. The committed N1 came from another CPU, whose kernels
    sum in another order (docs/data-and-models.md), so against it: the same recipe and accuracy."""
    info = train("N1", out_dir=tmp_path / "a", log=lambda *_: None)
    again = train("N1", out_dir=tmp_path / "b", log=lambda *_: None)
    first, second = (torch.load(tmp_path / d / "N1.pt", weights_only=True) for d in "ab")
    for key in first:
        assert torch.equal(first[key], second[key]), key
    assert info["test_accuracy"] == again["test_accuracy"]
    committed = card("N1")
    same = ("architecture", "seed", "epochs", "optimizer", "batch_size", "train_data_sha256", "test_data_sha256")
    assert {k: info[k] for k in same} == {k: committed[k] for k in same}
    assert abs(info["test_accuracy"] - committed["test_accuracy"]) <= 0.005
    assert info["cpu"] and json.loads((tmp_path / "a" / "N1.json").read_text())["cpu"] == info["cpu"]
    # the card written beside the state_dict is what lets it load: it names the layers
    assert load_network(tmp_path / "a" / "N1.pt").weights[0].tobytes() == first["0.weight"].double().numpy().tobytes()
