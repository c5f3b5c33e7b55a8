"""FMN-Linf, FAB-Linf and PGD-Linf with bisection: the attack contract in Linf (float64-verified
points, never below the brute-forced or proven Linf optimum), the defaults each docstring cites,
FAB's Linf projection, Foolbox's Linf FMN projection and the bisection's answer."""

import inspect

import numpy as np
import pytest
import torch
from bruteforce import brute_force
from scipy.optimize import linprog
from test_attacks import REACHED, _tiny

from minadv.attacks import ATTACKS, FABLinf, FMNLinf, PGDLinf
from minadv.attacks.fab import project
from minadv.attacks.pgd import pgd_box
from minadv.verify import ReluNetwork, Status, check, minimal_perturbation

from helpers import projection_instance

# FMN (Pintor et al., NeurIPS 2021; Foolbox and the authors' code): one setting for every norm,
# alpha_0 = 1 annealed to alpha_0 / 100, gamma_0 = 0.05, K = 1000. FAB (Croce & Hein, ICML 2020):
# alpha_max 0.1, eta 1.05, beta 0.9, 100 iterations, FAB-100, eps 0.3 (the authors' Linf MNIST
# script). PGD with bisection (no paper): 100 steps and 10 restarts (Madry et al.'s MNIST
# evaluation), relative tolerance 1e-4 (Table 1's matched tolerance), at most 40 bisections.
PAPER = {
    FMNLinf: {"steps": 1000, "max_stepsize": 1.0, "min_stepsize": 0.01, "gamma": 0.05, "binary_search_steps": 10},
    FABLinf: {"steps": 100, "restarts": 100, "alpha_max": 0.1, "eta": 1.05, "beta": 0.9, "eps": 0.3, "seed": 0},
    PGDLinf: {"steps": 100, "restarts": 10, "tolerance": 1e-4, "max_bisections": 40, "seed": 0},
}
# few steps where the defaults would only cost time (the checks are the same)
FAST = {"fmn-linf": FMNLinf(steps=100), "fab-linf": FABLinf(steps=30, restarts=3),
        "pgd-linf": PGDLinf(steps=50, restarts=4)}


# FMN's gradient steps from x reach no adversarial point on tiny net 6 (nor in its default 1000 steps)
FMN_MISSES = {("fmn-linf", 6)}


def _assert_verified_linf(net, x, res):
    assert res.status == Status.FOUND, res.message
    v = check(net, res.x_adv, res.pred)
    assert v.in_box and v.margin >= -1e-9 and res.margin == v.margin
    assert res.value == pytest.approx(np.abs(res.x_adv - x).max(), abs=1e-12)
    assert res.pred == net.predict(x) and res.target != res.pred


def test_registered_as_linf_attacks():
    for name, cls in (("fmn-linf", FMNLinf), ("fab-linf", FABLinf), ("pgd-linf", PGDLinf)):
        assert ATTACKS[name] is cls and cls.name == name and cls.norm == np.inf


@pytest.mark.parametrize("cls", list(PAPER), ids=lambda c: c.__name__)
def test_defaults_are_the_papers(cls):
    defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
    assert defaults == PAPER[cls]
    attack = cls()
    assert {k: getattr(attack, k) for k in PAPER[cls]} == PAPER[cls]
    if cls is FMNLinf:  # and they reach Foolbox's Linf attack
        fb = attack.foolbox_attack()
        assert type(fb).__name__ == "LInfFMNAttack"
        for k, v in PAPER[cls].items():
            assert getattr(fb, k) == v, k


@pytest.mark.parametrize("method", sorted(FAST))
@pytest.mark.parametrize("seed", REACHED[:5])
def test_never_below_the_brute_forced_linf_optimum(method, seed):
    net, x = _tiny(seed)
    truth, _ = brute_force(net, x, p=np.inf)
    assert minimal_perturbation(net, x, norm=np.inf).value == pytest.approx(truth, abs=1e-7)
    res = FAST[method].run(net, x)
    if (method, seed) in FMN_MISSES:
        assert res.status == Status.FAILED and res.x_adv is None
        return
    _assert_verified_linf(net, x, res)  # found, adversarial in float64, in the box
    assert res.value >= truth - 1e-8


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(FAST))
def test_on_n1_points_are_verified_and_above_the_exact_linf_optimum(method, n1, test_split):
    """Images 0, 1 and 4 of N1 (their Linf optimum is proven in seconds) against that optimum's lower bound."""
    images = [0, 1, 4]
    X = test_split.x(images)
    for x, res in zip(X, FAST[method].run_batch(n1, X), strict=True):
        exact = minimal_perturbation(n1, x, norm=np.inf, time_limit=60)
        assert exact.status == Status.OPTIMAL
        _assert_verified_linf(n1, x, res)
        assert res.value >= exact.lower - 1e-9


@pytest.mark.parametrize("method", sorted(FAST))
def test_failure_is_recorded_without_a_point(method):
    W, b = np.zeros((3, 4)), np.array([5.0, 0.0, 0.0])
    robust = ReluNetwork.from_layers([(np.eye(4), np.zeros(4)), (W, b)])
    res = FAST[method].run(robust, np.full(4, 0.5))
    assert res.status == Status.FAILED and res.x_adv is None and np.isnan(res.value)


def _linf_projection_by_lp(p, w, t):
    """min s s.t. w.d = t, -s <= d_i <= s, -p <= d <= 1 - p (scipy's HiGHS); None when infeasible."""
    n = len(p)
    A = np.block([[np.eye(n), -np.ones((n, 1))], [-np.eye(n), -np.ones((n, 1))]])
    res = linprog(np.r_[np.zeros(n), 1.0], A_ub=A, b_ub=np.zeros(2 * n), A_eq=np.r_[w, 0.0][None], b_eq=[t],
                  bounds=[*zip(-p, 1 - p, strict=True), (0, None)], method="highs")
    return res.fun if res.status == 0 else None


def test_fab_linf_projection_is_the_least_linf_step_onto_hyperplane_and_box():
    p, w, t = projection_instance(1)
    n, d = p.shape
    got = project(torch.tensor(p), torch.tensor(w), torch.tensor(t), np.inf).numpy()
    assert np.all(p + got >= -1e-15) and np.all(p + got <= 1 + 1e-15)
    reached = 0
    for i in range(n):
        least = _linf_projection_by_lp(p[i], w[i], t[i])
        if least is None:  # out of reach: every coordinate at its limit in the direction of sign(t) w
            want = np.clip(np.sign(t[i]) * 1e9 * w[i], -p[i], 1 - p[i])
            np.testing.assert_allclose(got[i], want, atol=1e-12)
        else:
            reached += 1
            assert w[i] @ got[i] == pytest.approx(t[i], abs=1e-10)
            assert np.abs(got[i]).max() == pytest.approx(least, abs=1e-9)
    assert 10 <= reached < n  # both cases were tried


def test_fmn_linf_projection_clips_each_coordinate_to_eps():
    import eagerpy as ep

    x0 = ep.astensor(torch.zeros(2, 4))
    x = ep.astensor(torch.tensor([[0.5, -0.2, 0.05, 0.0], [0.3, 0.3, -0.3, 0.1]]))
    eps = ep.astensor(torch.tensor([0.1, 0.2]))
    out = FMNLinf().foolbox_attack().project(x, x0, eps).raw.numpy()
    np.testing.assert_allclose(out, [[0.1, -0.1, 0.05, 0.0], [0.2, 0.2, -0.2, 0.1]], rtol=1e-6)


def test_pgd_linf_returns_the_point_of_its_smallest_radius(n1, test_split):
    """The bisection's answer: no larger than the whole box's PGD point, and PGD at a radius 2% below
    its norm (the tolerance is 1e-4) finds nothing with the same settings."""
    attack = PGDLinf(steps=50, restarts=4)
    x = test_split.x(1)
    c = n1.predict(x)
    res = attack.run(n1, x)
    _assert_verified_linf(n1, x, res)
    whole = pgd_box(n1, np.zeros_like(x), np.ones_like(x), c, restarts=4, steps=50, start=x)
    assert res.value <= np.abs(whole - x).max()
    eps = 0.98 * res.value
    assert pgd_box(n1, np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1), c, restarts=4, steps=50, start=x) is None
