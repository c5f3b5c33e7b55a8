"""The paper's large networks: deterministic quick training, a card, a file `models.load` reads."""

import hashlib
import json

import pytest
import torch

from minadv.attacks import pgd_l2
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


TINY = (784, 8, 10)  # the paper's training loop on a tiny network: seconds, not minutes


def _tiny_at(out, **kw):
    return train_scale("1x1024-at", out, epochs=1, pgd_steps=2, sizes=TINY, log=lambda _: None, **kw)


@pytest.mark.slow
def test_adversarial_training_is_deterministic_and_its_card_says_how(tmp_path):
    card = _tiny_at(tmp_path / "a")
    again = _tiny_at(tmp_path / "b")
    first = torch.load(tmp_path / "a" / "1x1024-at.pt", weights_only=True)
    second = torch.load(tmp_path / "b" / "1x1024-at.pt", weights_only=True)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert card["weights_sha256"] == again["weights_sha256"]
    at = card["adversarial_training"]
    assert (at["eps"], at["pgd_steps"], at["adversarial_fraction"]) == (2.0, 2, 0.5)
    assert at["pgd_step_size"] == pytest.approx(2.5)
    assert card["architecture"] == "784-8-10" and card["seed"] == 0 and card["epochs"] == 1
    assert 0 <= card["robust_accuracy"] < card["test_accuracy"] and card["robust_images"] == 1000
    assert card["train_seconds"] > 0 and card["seconds_per_epoch"] == pytest.approx(card["train_seconds"], abs=0.01)
    assert "2 PGD steps" in card["note"]
    assert json.loads((tmp_path / "a" / "1x1024-at.json").read_text()) == card
    # the adversarial half is used: plain training from the same seed gives other weights
    train_scale("1x1024", tmp_path / "c", epochs=1, sizes=TINY, log=lambda _: None)
    plain = torch.load(tmp_path / "c" / "1x1024.pt", weights_only=True)
    assert not torch.equal(plain["0.weight"], first["0.weight"])
    # another seed, other weights
    _tiny_at(tmp_path / "d", seed=1)
    other = torch.load(tmp_path / "d" / "1x1024-at.pt", weights_only=True)
    assert not torch.equal(other["0.weight"], first["0.weight"])


def test_pgd_l2_stays_in_the_ball_and_the_box_and_raises_the_loss():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    x, y = torch.rand(32, 20), torch.randint(0, 4, (32,))
    z = pgd_l2(model, x, y, eps=0.5, steps=10)
    assert ((z - x).norm(dim=1) <= 0.5 + 1e-6).all() and z.min() >= 0 and z.max() <= 1
    ce = torch.nn.functional.cross_entropy
    with torch.no_grad():
        assert (ce(model(z), y, reduction="none") >= ce(model(x), y, reduction="none") - 1e-6).all()
        assert ce(model(z), y) > ce(model(x), y) + 0.01
        assert ((z - x).norm(dim=1) > 0.45).float().mean() > 0.5  # most points go to the ball's edge


def test_unknown_adversarial_name():
    with pytest.raises(ValueError, match="unknown network"):
        train_scale("3x1024-at", "unused")


def test_train_command_refuses_a_bad_attack_setting(tmp_path, capsys):
    from minadv.experiments.cli import main

    assert main(["train", "1x1024-at", "--pgd-steps", "0", "--out", str(tmp_path)]) == 2
    assert main(["train", "1x1024-at", "--eps", "-1", "--out", str(tmp_path)]) == 2
    assert "--pgd-steps must be at least 1" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before any training
