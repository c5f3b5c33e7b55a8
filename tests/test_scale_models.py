"""The paper's large networks: deterministic quick training, a card, a file `models.load` reads."""

import hashlib
import json

import pytest

from minadv.experiments.models import load
from minadv.experiments.scale_models import SCALE_ARCHITECTURES, train_scale


@pytest.mark.slow
def test_train_scale_writes_a_loadable_network_and_its_card(tmp_path):
    card = train_scale("1x1024", tmp_path, epochs=1, log=lambda _: None)
    net = load(tmp_path / "1x1024.pt")
    assert (net.n_inputs, *net.hidden_sizes, net.n_outputs) == SCALE_ARCHITECTURES["1x1024"]
    assert json.loads((tmp_path / "1x1024.json").read_text()) == card
    assert card["weights_sha256"] == hashlib.sha256((tmp_path / "1x1024.pt").read_bytes()).hexdigest()
    assert card["architecture"] == "784-1024-10" and card["epochs"] == 1 and card["seed"] == 0
    assert card["test_accuracy"] > 0.9


def test_unknown_scale_network():
    with pytest.raises(ValueError, match="unknown network"):
        train_scale("3x1024", "unused")
