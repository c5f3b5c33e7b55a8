"""rLR-QP and the baselines: verified points, failures recorded as such, the brute-forced
optimum as a floor (and reached on tiny networks), reproducibility."""

import warnings

import numpy as np
import pytest
from bruteforce import brute_force

from minadv.attacks import ATTACKS, LBFGS, RLRQP, CarliniWagner, CarliniWagnerTorch, DeepFool
from minadv.attacks.lbfgs import cross_entropy
from minadv.attacks.rlrqp import _Explorer, ball, boundary_on_segment
from minadv.verify import ReluNetwork, Status, check
from minadv.verify.exact.minimal import minimal_perturbation
from minadv.verify.qp.reference import solve_daqp

from helpers import random_net

FAST = {  # small settings where the paper's would only cost time (the checks are the same)
    "rlrqp": RLRQP(),
    "deepfool": DeepFool(),
    "cw": CarliniWagner(binary_search_steps=5, steps=300),
    "cw-torch": CarliniWagnerTorch(binary_search_steps=5, steps=300),
    "lbfgs": LBFGS(targets="runner-up"),
}


def _assert_verified(net, x, res):
    assert res.status == Status.FOUND, res.message
    v = check(net, res.x_adv, res.pred)
    assert v.in_box and v.margin >= -1e-9 and res.margin == v.margin
    assert res.value == pytest.approx(np.linalg.norm(res.x_adv - x), abs=1e-12)
    assert res.pred == net.predict(x) and res.target != res.pred


def test_registry_names():
    assert sorted(ATTACKS) == ["cw", "cw-torch", "deepfool", "lbfgs", "rlrqp"]


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(FAST))
def test_every_point_is_adversarial_in_float64_and_in_the_box(method, n1, n2, test_split):
    X = test_split.x(slice(0, 3))
    for net in (n1, n2):
        results = FAST[method].run_batch(net, X)
        assert len(results) == 3
        for x, res in zip(X, results, strict=True):
            _assert_verified(net, x, res)


def test_failure_is_recorded_without_a_point(n1, test_split):
    """A network whose decision never changes: every attack reports `failed`, no norm."""
    W, b = np.zeros((3, 4)), np.array([5.0, 0.0, 0.0])
    robust = ReluNetwork.from_layers([(np.eye(4), np.zeros(4)), (W, b)])
    x = np.full(4, 0.5)
    for attack in (RLRQP(n3=1, n4=1), DeepFool(), CarliniWagner(binary_search_steps=2, steps=20),
                   CarliniWagnerTorch(binary_search_steps=2, steps=20), LBFGS()):
        res = attack.run(robust, x)
        assert res.status == Status.FAILED and res.x_adv is None and np.isnan(res.value), attack.name
    res = DeepFool(steps=0).run(n1, test_split.x(0))  # Foolbox returns the image itself
    assert res.status == Status.FAILED and res.x_adv is None


# tiny networks with 6-8 hidden ReLUs: the optimum by enumerating every activation pattern
TINY = [(5, 6, 3), (4, 8, 3), (6, 4, 4, 3), (4, 7, 4), (5, 4, 3, 3), (6, 3, 4, 3)]
# seeds where rLR-QP can start (seeds 5, 9, 11: DeepFool, CW and L-BFGS all fail, the zero image
# is not adversarial and no target is reachable in Q(x); 4, 8, 13: no adversarial exists)
REACHED = [0, 1, 2, 3, 6, 7, 10, 12, 14, 15]


def _tiny(seed):
    sizes = TINY[seed % len(TINY)]
    return random_net(sizes, seed=seed, scale=2.0), np.random.default_rng(100 + seed).random(sizes[0])


@pytest.mark.parametrize("seed", range(16))
def test_rlrqp_is_never_below_the_brute_forced_optimum_and_reaches_it(seed):
    net, x = _tiny(seed)
    truth, _ = brute_force(net, x, solve=solve_daqp)
    res = RLRQP().run(net, x)
    if res.status == Status.FOUND:
        _assert_verified(net, x, res)
        # a verified point may stop short of the boundary by margin 1e-9 (the check's TOL)
        assert res.value >= truth - 1e-8
        assert res.value <= truth + 1e-7  # few regions: the search finds the optimal one
    assert (res.status == Status.FOUND) == (seed in REACHED)


@pytest.mark.slow
def test_rlrqp_on_n1_is_above_the_exact_optimum_and_reaches_it(n1, test_split):
    for i in (0, 4):  # images where the paper's hyperparameters reach the proven optimum
        x = test_split.x(i)
        exact = minimal_perturbation(n1, x, 2, time_limit=120)
        assert exact.status == Status.OPTIMAL
        res = RLRQP().run(n1, x)
        _assert_verified(n1, x, res)
        assert exact.lower - 1e-9 <= res.value <= exact.upper * (1 + 1e-6)
        assert res.counts.regions >= 1 and res.counts.qp_solves >= 1


def test_same_seed_same_result_and_iterations_only_improve(n2, test_split):
    x = test_split.x(2)
    a, b = RLRQP(seed=3).run(n2, x), RLRQP(seed=3).run(n2, x)
    np.testing.assert_array_equal(a.x_adv, b.x_adv)
    assert a.counts == b.counts
    again = RLRQP(seed=3, iterations=2).run(n2, x)
    _assert_verified(n2, x, again)
    assert again.value <= a.value and again.counts.regions >= a.counts.regions


def test_warm_targets_keep_the_warm_start_class(n1, test_split):
    x = test_split.x(1)
    res = RLRQP(targets="warm").run(n1, x)
    df = DeepFool().run(n1, x)
    _assert_verified(n1, x, res)
    assert res.target == df.target and res.value <= df.value


def test_explorer_never_solves_a_region_twice(n1, test_split):
    x = test_split.x(0)
    c = n1.predict(x)
    explorer = _Explorer(n1, x, c)
    Y = x + ball(np.random.default_rng(0), 40, x.size, 2.0)
    first = explorer.solve(Y, [t for t in range(10) if t != c], np.inf)
    regions = explorer.counts.regions
    assert 1 < regions < 40 and sum(r is not None for r in first) <= regions
    assert explorer.solve(Y, [3], np.inf) == [None] * 40
    assert explorer.counts.regions == regions


def test_ball_and_bisection():
    rng = np.random.default_rng(0)
    pts = ball(rng, 4000, 50, 2.0)
    r = np.linalg.norm(pts, axis=1)
    assert r.max() <= 2.0 and abs(np.median(r) - 1.0) < 0.05  # radius uniform in [0, 2]
    assert np.abs((pts / r[:, None]).mean(axis=0)).max() < 0.05  # no preferred direction
    net, x = _tiny(0)
    c = net.predict(x)
    end = boundary_on_segment(net, x, np.zeros_like(x), c)
    if check(net, np.zeros_like(x), c).adversarial():
        assert check(net, end, c).adversarial() and not check(net, x + 0.999 * (end - x), c).adversarial()
    else:
        assert end is None


@pytest.mark.slow
def test_lbfgs_gradient_and_targets(n1, test_split):
    x = test_split.x(0)
    rng = np.random.default_rng(0)
    _, g = cross_entropy(n1, x, 5)
    e = rng.normal(size=x.size) * 1e-6
    numeric = (cross_entropy(n1, x + e, 5)[0] - cross_entropy(n1, x - e, 5)[0]) / 2
    assert numeric == pytest.approx(g @ e, rel=1e-5)
    full = LBFGS().run(n1, x)
    _assert_verified(n1, x, full)
    assert full.value <= FAST["lbfgs"].run(n1, x).value + 1e-12
    with pytest.raises(ValueError):
        LBFGS(targets="best")


def test_foolbox_imports_with_the_pinned_scipy():
    """Foolbox 3.3.4 imports scipy.ndimage.filters (deprecated): the scipy pin must keep it."""
    import scipy.ndimage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import foolbox
        from scipy.ndimage import filters  # noqa: F401

    assert foolbox.__version__ == "3.3.4" and hasattr(scipy.ndimage, "gaussian_filter")


def test_the_documented_attack_runs_under_the_contract():
    """The example attack of docs/methods.md ("Writing an attack"), executed as written: its
    point comes back float64-checked with the Result fields `run` fills in; a candidate that is
    not adversarial is `failed` with no point, never `found`."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "methods.md").read_text()
    section = text[text.index("## Writing an attack"):]
    scope: dict = {}
    exec(re.search(r"```python\n(.*?)```", section, re.S).group(1), scope)
    net = random_net([6, 8, 3], seed=4, scale=3.0)
    found = 0
    for x in np.random.default_rng(0).uniform(0.0, 1.0, (20, 6)):
        res = scope["Shrink"](factor=0.3).run(net, x)
        assert res.method == "shrink" and res.time_s >= 0
        if net.predict(0.3 * x) != net.predict(x):
            _assert_verified(net, x, res)
            found += 1
        else:
            assert res.status == Status.FAILED and res.x_adv is None
    assert 0 < found < 20  # both branches seen
