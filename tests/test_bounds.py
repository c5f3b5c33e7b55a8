import cvxpy as cp
import numpy as np
import pytest

from minadv.verify.bounds.preactivation import crown, interval, support
from minadv.verify.domain import Domain
from minadv.verify.exact.mip import tighten

from helpers import random_net


def _ball_samples(x, p, r, n, rng):
    """Points of box cap ball: random directions and radii, plus points on the sphere, clipped."""
    out = []
    for _ in range(n):
        v = rng.normal(size=x.size) if p != np.inf else rng.uniform(-1, 1, x.size)
        v *= r * rng.random() ** 0.3 / np.linalg.norm(v, ord=p)
        z = np.clip(x + v, 0, 1)  # clipping moves towards x in every coordinate: stays in the ball
        out.append(z)
    return np.array(out)


def _width(b) -> float:
    """Total width of the bounds of the layers after the first."""
    return sum(float((u - l).sum()) for l, u in zip(b.lower[1:], b.upper[1:], strict=True))


@pytest.mark.parametrize("p", [1.0, 2.0, np.inf])
def test_support_function_matches_cvxpy(p):
    rng = np.random.default_rng(int(p) if np.isfinite(p) else 7)
    x = rng.random(12)
    dom = Domain(x, p, 0.4)
    W = rng.normal(size=(5, 12))
    got = support(W, dom)
    for w, g in zip(W, got, strict=True):
        d = cp.Variable(12)
        prob = cp.Problem(cp.Maximize(w @ d), [cp.norm(d, p) <= 0.4, x + d >= 0, x + d <= 1])
        prob.solve(solver=cp.CLARABEL)
        assert g >= prob.value - 1e-7
        assert g <= prob.value + 1e-6


@pytest.mark.parametrize("p", [1.0, 2.0, np.inf])
@pytest.mark.parametrize("level", ["interval", "crown", "alpha-crown", "lp", "mip"])
def test_bounds_contain_every_sampled_point(p, level):
    rng = np.random.default_rng(3)
    net = random_net((8, 10, 9, 6, 3), seed=11, scale=1.5)
    x = rng.random(8)
    r = {1.0: 1.0, 2.0: 0.5, np.inf: 0.15}[p]
    dom = Domain(x, p, r)
    b = interval(net, dom)
    if level != "interval":
        b = crown(net, dom, iters=20 if level == "alpha-crown" else 0)
    if level in ("lp", "mip"):
        b = tighten(net, dom, b, level, time_limit=2.0)
    Z = _ball_samples(x, p, r, 3000, rng)
    pre = net.pre_activations(Z)[:-1]
    for k, g in enumerate(pre):
        assert np.all(g >= b.lower[k][None] - 1e-12), (level, k)
        assert np.all(g <= b.upper[k][None] + 1e-12), (level, k)
    # and each level is at least as tight as interval arithmetic
    base = interval(net, dom)
    for k in range(len(pre)):
        assert np.all(b.upper[k] <= base.upper[k] + 1e-12) and np.all(b.lower[k] >= base.lower[k] - 1e-12)


def test_alpha_crown_is_at_least_as_tight_as_crown():
    rng = np.random.default_rng(3)
    net = random_net((8, 10, 9, 6, 3), seed=11, scale=1.5)
    dom = Domain(rng.random(8), np.inf, 0.15)
    cr, al = crown(net, dom), crown(net, dom, iters=20)
    for k in range(1, 3):
        assert np.all(al.upper[k] <= cr.upper[k] + 1e-12) and np.all(al.lower[k] >= cr.lower[k] - 1e-12)
    assert _width(al) < _width(cr)


def test_lp_tightening_improves_on_crown():
    rng = np.random.default_rng(3)
    net = random_net((8, 10, 9, 6, 3), seed=11, scale=1.5)
    dom = Domain(rng.random(8), 2.0, 0.5)
    cr = crown(net, dom)
    lp = tighten(net, dom, cr, "lp")
    assert _width(lp) < _width(cr) - 1e-3
