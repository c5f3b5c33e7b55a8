import json

import numpy as np
import pytest
import torch
from torch import nn

from minadv.verify import (
    Domain,
    InputError,
    NetworkError,
    ReluNetwork,
    Status,
    check,
    check_image,
    load_network,
    parse_norm,
    push_across,
    verified_result,
)

from helpers import bad_model_files, random_net


def test_from_sequential_matches_torch_in_float64():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.ReLU(), nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3))
    net = ReluNetwork.from_sequential(model)
    X = torch.rand(20, 3, 4)
    expect = model.double()(X.double()).detach().numpy()
    assert net.hidden_sizes == (7, 5) and net.n_inputs == 12 and net.n_outputs == 3
    np.testing.assert_allclose(net.forward(X.reshape(20, -1).numpy()), expect, rtol=0, atol=1e-12)
    np.testing.assert_allclose(net.forward(X[0].reshape(-1).numpy()), expect[0], atol=1e-12)
    got = net.to_torch(torch.float64)(X.reshape(20, -1).double()).detach().numpy()
    np.testing.assert_allclose(got, expect, atol=1e-12)


@pytest.mark.parametrize(
    "model, words",
    [
        (nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2)), ["module 1", "Sigmoid"]),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Linear(3, 2)), ["module 0", "Conv2d"]),
        (nn.Sequential(nn.Linear(4, 3), nn.ReLU()), ["end with a Linear"]),
        (nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)), ["module 1", "without a ReLU"]),
        (nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.Softmax(dim=-1)), ["Softmax"]),
    ],
)
def test_non_relu_models_are_refused_naming_the_layer(model, words):
    with pytest.raises(NetworkError) as err:
        ReluNetwork.from_sequential(model)
    for w in words:
        assert w in str(err.value)


def test_load_state_dict_with_its_card_and_whole_sequential_round_trip(tmp_path):
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    x = np.random.default_rng(0).random(6)
    expect = model.double()(torch.tensor(x)).detach().numpy()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    card = {"architecture": "6-4-2", "layers": "Sequential(Linear, ReLU, Linear)"}
    (tmp_path / "m.json").write_text(json.dumps(card))
    torch.save(model, tmp_path / "whole.pt")
    for name in ("m.pt", "whole.pt"):
        np.testing.assert_allclose(load_network(tmp_path / name).forward(x), expect, atol=1e-12)
    with pytest.raises(FileNotFoundError):
        load_network(tmp_path / "missing.pt")


def test_files_that_are_no_relu_classifier_are_refused_in_one_line(tmp_path):
    for name, words in bad_model_files(tmp_path).items():
        with pytest.raises(NetworkError) as err:
            load_network(tmp_path / name)
        assert words in str(err.value) and name.removesuffix(".pt") in str(err.value), (name, str(err.value))
        assert "\n" not in str(err.value)


def test_margin_is_best_other_logit_minus_decision():
    net = random_net((5, 6, 4), seed=3)
    X = np.random.default_rng(1).random((10, 5))
    logits = net.forward(X)
    c = logits.argmax(1)
    m = net.margin(X, c)
    for k in range(10):
        others = np.delete(logits[k], c[k])
        assert m[k] == pytest.approx(others.max() - logits[k, c[k]], abs=1e-14)
        assert m[k] <= 0


@pytest.mark.parametrize(
    "x, msg",
    [(np.zeros(783), "783 values"), (np.full(784, 1.5), r"\[0, 1\]"), (np.full(784, -0.1), r"\[0, 1\]"),
     (np.full(784, np.nan), "NaN")],
)
def test_bad_images_are_refused(n1, x, msg):
    with pytest.raises(InputError, match=msg):
        check_image(n1, x)


def test_image_shapes_that_fit_are_flattened(n1):
    assert check_image(n1, np.zeros((1, 28, 28))).shape == (784,)


@pytest.mark.parametrize("p, expect", [(2, 2.0), ("2", 2.0), ("l2", 2.0), ("inf", np.inf), (np.inf, np.inf), (1, 1.0),
                                       ("Linf", np.inf)])
def test_norm_names(p, expect):
    assert parse_norm(p) == expect


@pytest.mark.parametrize("p", [3, "l0", "fro", 0.5])
def test_unknown_norms_are_refused(p):
    with pytest.raises(InputError, match="unknown norm"):
        parse_norm(p)


def test_domain_validates_radius(n1):
    with pytest.raises(InputError, match="radius"):
        Domain.of(n1, np.zeros(784), 2, radius=0.0)


def _boundary_point(net, x, c, t):
    """A point on the segment x -> y where f_t - f_c changes sign, found by bisection (float64)."""
    rng = np.random.default_rng(0)
    for _ in range(1000):
        y = rng.random(net.n_inputs)
        logits = net.forward(y)
        if logits[t] > logits[np.arange(len(logits)) != t].max():
            break
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        z = x + mid * (y - x)
        lo, hi = (lo, mid) if net.margin(z, c) >= 0 else (mid, hi)
    return x + lo * (y - x)


def test_push_across_moves_a_point_just_short_of_the_boundary():
    net = random_net((4, 8, 3), seed=5)
    rng = np.random.default_rng(2)
    x = rng.random(4)
    c = net.predict(x)
    t = (c + 1) % 3
    z = _boundary_point(net, x, c, t)
    short = x + (1 - 1e-6) * (z - x)  # strictly before the boundary: margin < -1e-9
    assert net.margin(short, c) < -1e-9
    assert not check(net, short, c).adversarial()
    pushed = push_across(net, x, short, c)
    assert pushed is not None and check(net, pushed, c).adversarial()
    strict = push_across(net, x, short, c, strict=True)
    assert strict is not None and net.margin(strict, c) > 0 and net.predict(strict) != c
    assert push_across(net, x, x, c) is None  # x itself is no adversarial


def test_verified_result_refuses_a_failed_candidate_and_keeps_a_good_one():
    net = random_net((4, 8, 3), seed=5)
    x = np.random.default_rng(2).random(4)
    c = net.predict(x)
    bad = verified_result(net, x, c, x.copy(), method="m", norm=2.0, status=Status.FOUND)
    assert bad.status == Status.FAILED and bad.x_adv is None and np.isnan(bad.value) and "float64" in bad.message
    err = verified_result(net, x, c, x.copy(), method="mip", norm=2.0, status=Status.OPTIMAL)
    assert err.status == Status.ERROR and err.x_adv is None
    z = _boundary_point(net, x, c, (c + 1) % 3)
    good = verified_result(net, x, c, z, method="m", norm=2.0, status=Status.FOUND)
    assert good.status == Status.FOUND and good.margin >= -1e-9
    assert good.value == pytest.approx(np.linalg.norm(good.x_adv - x))
