"""rLR-QP and the baselines: verified points, failures recorded as such, the brute-forced
optimum as a floor (and reached on tiny networks), reproducibility."""

import warnings

import numpy as np
import pytest
from bruteforce import brute_force

import minadv.attacks.rlrqp as rlrqp
from minadv.attacks import ATTACKS, LBFGS, RLRQP, CarliniWagner, CarliniWagnerTorch, DeepFool
from minadv.attacks.lbfgs import cross_entropy
from minadv.attacks.rlrqp import (
    Found,
    Start,
    _Explorer,
    _linear_steps,
    ball,
    boundary_on_segment,
    crossings,
    target_boundaries,
)
from minadv.verify import ReluNetwork, Status, check, patterns
from minadv.verify.exact import minimal_perturbation
from minadv.verify.qp import solve_daqp

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
    assert sorted(ATTACKS) == ["bb", "cw", "cw-torch", "ddn", "deepfool", "fab", "fab-linf", "fmn", "fmn-linf", "lbfgs",
                              "pgd-linf", "rlrqp"]


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


@pytest.mark.parametrize("starts", list(Start))
@pytest.mark.parametrize("seed", range(16))
def test_rlrqp_is_never_below_the_brute_forced_optimum_and_reaches_it(seed, starts):
    net, x = _tiny(seed)
    truth, _ = brute_force(net, x, solve=solve_daqp)
    res = RLRQP(starts=starts).run(net, x)
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


class _Scripted:
    """A stand-in for _Explorer: answers the k-th solve call with the k-th scripted list (then
    None for every point) and records the points it was asked about."""

    def __init__(self, *answers):
        self.answers, self.asked = list(answers), []

    def solve(self, Y, targets, threshold):
        self.asked.append(np.array(Y))
        return self.answers.pop(0) if self.answers else [None] * len(Y)


def test_local_search_results_replace_the_worst_member_of_s(monkeypatch):
    """Algorithm 1, lines 25-27: a local-search result below alpha u and below the worst member
    S_m of S replaces S_m, whether or not it is a new best. With eps = 0 the exploration points
    are x + S_i themselves, so the stand-in explorer sees S. n1 = 2, n2 = 1, n3 = 1, n4 = 3:
    calls are Q(x), then per a1 one exploration round (2 points) and one local search (1 point)."""
    monkeypatch.setattr(rlrqp, "ball", lambda rng, n, d, radius: np.zeros((n, d)))
    a, b, c, e = np.diag([1.0, 0.8, 0.9, 0.5])  # warm start (u = 1), then norms 0.8, 0.9, 0.5
    x = np.zeros(4)
    explorer = _Scripted(
        [None],  # Q(x)
        [Found(0.8, b, 1), None],  # a1 = 1, exploration: new best; S = [b, a]
        [Found(0.9, c, 1)],  # local search: 0.9 < alpha u = 1.2 and < ||a|| = 1: S = [b, c]
        [None, None],  # a1 = 2, exploration (sees S)
        [Found(0.5, e, 1)],  # local search: new best, and 0.5 < ||c||: S = [b, e]
        [None, None],  # a1 = 3, exploration (sees S)
    )
    best = RLRQP(n1=2, n2=1, n3=1, n4=3)._search(explorer, x, [1], Found(1.0, a, 1), np.random.default_rng(0))
    assert best.norm == 0.5 and best.delta is e
    np.testing.assert_array_equal(explorer.asked[1], [a, a])
    np.testing.assert_array_equal(explorer.asked[3], [b, c])
    np.testing.assert_array_equal(explorer.asked[5], [b, e])


def _two_valleys(d=200):
    """x = 0.5 in R^d, class 0 (f_0 = 0). Class 1: f_1 = 10 (z_1 - 0.5) - 3, linear, its boundary
    0.3 from x, where DeepFool goes. Class 2: f_2 = (z_2 - 0.5) + 40 relu(z_2 - 0.65) - 2.5, whose
    boundary z_2 = 29/41 is 0.2073 from x but lies beyond the kink z_2 = 0.65: on Q(x) class 2
    is out of reach, and from class 1's point random points of radius <= 0.3 in 200 dimensions
    almost never move z_2 by 0.15."""
    W1 = np.zeros((3, d))
    W1[0, 0] = W1[1, 1] = W1[2, 1] = 1.0
    W2 = np.array([[0.0, 0, 0], [10, 0, 0], [0, 1, 40]])
    net = ReluNetwork.from_layers([(W1, np.array([1.0, 1.0, -0.65])), (W2, np.array([0.0, -18.0, -4.0]))])
    return net, np.full(d, 0.5)


def test_per_target_starts_reach_the_optimum_the_paper_s_start_misses():
    net, x = _two_valleys()
    truth, _ = brute_force(net, x, solve=solve_daqp)
    assert truth == pytest.approx(29 / 41 - 0.5, abs=1e-9)  # class 2 beyond the kink
    paper, per_target = RLRQP().run(net, x), RLRQP(starts="per_target").run(net, x)
    for res in (paper, per_target):
        _assert_verified(net, x, res)
        assert res.value >= truth - 1e-8
    assert paper.target == 1 and paper.value == pytest.approx(0.3)
    assert per_target.target == 2 and per_target.value <= truth + 1e-7


def test_target_boundaries_reach_each_class_s_boundary():
    net, x = _two_valleys()
    points = target_boundaries(net, x, 0, [1, 2])
    for z, t, dist in zip(points, (1, 2), (0.3, 29 / 41 - 0.5), strict=True):
        logits = net.forward(z)
        assert logits[t] >= logits[0] and logits[t] - logits[0] < 1e-9  # on the boundary, from the far side
        assert np.linalg.norm(z - x) == pytest.approx(dist, abs=1e-9)
    dead = ReluNetwork.from_layers([(np.eye(2), np.zeros(2)), (np.zeros((2, 2)), np.array([1.0, 0.0]))])
    assert target_boundaries(dead, np.full(2, 0.5), 0, [1]) == [None]  # f_1 - f_0 = -1 everywhere


def test_linear_step_is_the_smallest_in_the_box():
    """_linear_steps against bisection on lam of w . clip(lam w, -x, 1 - x) >= beta."""
    rng = np.random.default_rng(0)
    for _ in range(40):
        x, W, beta = rng.random(12), rng.normal(size=(4, 12)), rng.normal(size=4) * 3
        W[:, :3] *= rng.random((4, 3)) < 0.5  # some zero weights
        D = _linear_steps(x, W, beta)
        for w, b, delta in zip(W, beta, D, strict=True):
            far = np.where(w > 0, 1 - x, np.where(w < 0, -x, 0.0))
            lo, hi = 0.0, 1e6
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                lo, hi = (lo, mid) if w @ np.clip(mid * w, -x, 1 - x) >= b else (mid, hi)
            expected = 0 * w if b <= 0 else far if w @ far < b else np.clip(hi * w, -x, 1 - x)
            np.testing.assert_allclose(delta, expected, atol=1e-9)


def test_crossings_project_z_just_across_the_nearest_hyperplanes():
    """One hidden layer: the point for neuron j is z's projection on j's hyperplane, eta past it,
    so j is switched there; across the nearest hyperplane nothing else is (the adjacent region)."""
    net = random_net((6, 12, 3), seed=4)
    z = np.random.default_rng(1).random(6)
    points, rows = crossings(net, z[None], 4)
    pz = patterns(net, z[None])[0].numpy()
    W, b = net.weights[0], net.biases[0]
    pre = W @ z + b
    dist = np.abs(pre) / np.linalg.norm(W, axis=1)
    assert list(rows) == [0] * 4
    for k, (y, j) in enumerate(zip(points, np.argsort(dist)[:4], strict=True)):
        py = patterns(net, y[None])[0].numpy()
        assert py[j] != pz[j] and abs(W[j] @ y + b[j]) == pytest.approx(1e-6, rel=1e-6)
        assert np.linalg.norm(y - z) == pytest.approx(dist[j], abs=1e-5)
        if k == 0:
            assert (py != pz).sum() == 1


@pytest.mark.slow
def test_per_target_descends_to_the_optimum_of_n1_35(n1, test_split):
    """N1 #35: the paper's search settles on class 1 (+4.5%); class 5's boundary point lands in
    a region whose optimum is 1.199, and the optimum 1.128 is in a region next to it, which only
    the descent through adjacent regions reaches."""
    x = test_split.x(35)
    exact = minimal_perturbation(n1, x, 2, time_limit=120)
    assert exact.status == Status.OPTIMAL
    res = RLRQP(starts="per_target").run(n1, x)
    _assert_verified(n1, x, res)
    assert exact.lower - 1e-8 <= res.value <= exact.upper * (1 + 1e-6)
    assert RLRQP().run(n1, x).value > 1.04 * exact.upper


def test_same_seed_same_result_and_iterations_only_improve(n2, test_split):
    x = test_split.x(2)
    a, b = RLRQP(seed=3).run(n2, x), RLRQP(seed=3).run(n2, x)
    np.testing.assert_array_equal(a.x_adv, b.x_adv)
    assert a.counts == b.counts
    again = RLRQP(seed=3, iterations=2).run(n2, x)
    _assert_verified(n2, x, again)
    assert again.value <= a.value and again.counts.regions >= a.counts.regions


@pytest.mark.parametrize("starts", list(Start))
def test_warm_targets_keep_the_warm_start_class(n1, test_split, starts):
    x = test_split.x(1)
    res = RLRQP(targets="warm", starts=starts).run(n1, x)
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
