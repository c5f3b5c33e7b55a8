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
    info = train("N1", out_dir=tmp_path, log=lambda *_: None)
    again = torch.load(tmp_path / "N1.pt", weights_only=True)
    committed = torch.load(MODEL_DIR / "N1.pt", weights_only=True)
    for key in committed:
        assert torch.equal(again[key], committed[key]), key
    assert info["test_accuracy"] == card("N1")["test_accuracy"]
    assert json.loads((tmp_path / "N1.json").read_text())["seed"] == 0
    # the card written beside the state_dict is what lets it load: it names the layers
    assert load_network(tmp_path / "N1.pt").weights[0].tobytes() == load("N1").weights[0].tobytes()
