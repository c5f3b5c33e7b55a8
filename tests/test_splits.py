"""Branch and bound over ReLU splits (verify/splits.py) against brute force on tiny networks."""

import functools
import time

import numpy as np
import pytest
from bruteforce import interval_signs, max_margin_in_box, node_optimum

from minadv.verify import Property, check_counterexample
from minadv.verify.bounds.preactivation import crown
from minadv.verify.decide.box import verify_box
from minadv.verify.domain import Domain
from minadv.verify.network import NeuronState
from minadv.verify.qp import solve_daqp
from minadv.verify.splits import SplitSearch

from helpers import random_net

SIZES = [4, 8, 6, 3]


def search(net, prop, t, **kw) -> SplitSearch:
    dom = Domain(0.5 * (prop.lower + prop.upper), np.inf, np.inf, prop.lower, prop.upper)
    return SplitSearch(net, dom, crown(net, dom), prop.label, t, **kw)


def open_box():
    """The first (net, prop) of the case search whose root bounds leave a target open (no brute force)."""
    for seed in range(200):
        net = random_net(SIZES, seed=seed, scale=2.5)
        x0 = np.random.default_rng(seed).uniform(0.2, 0.8, SIZES[0])
        prop = Property.ball(x0, 0.25, net.predict(x0), net.n_outputs)
        for t in prop.targets:
            s = search(net, prop, t)
            if s.optimise(s.root())[0][0] >= 0:
                return net, prop
    raise AssertionError("no open box")


@functools.cache
def cases(n=12):
    """Computed once, when a test first asks (about 15-30 s: the brute force), not at collection.
    (net, prop, target, brute-force max of f_t - f_label over the box) where the root's bound
    leaves the target open (so the search must branch), the margin is away from 0, and at most
    9 neurons are unstable by interval arithmetic (for the brute force's time); n of each sign."""
    out, count = [], {True: 0, False: 0}
    for seed in range(200):
        net = random_net(SIZES, seed=seed, scale=2.5)
        x0 = np.random.default_rng(seed).uniform(0.2, 0.8, SIZES[0])
        for eps in (0.1, 0.25):
            prop = Property.ball(x0, eps, net.predict(x0), net.n_outputs)
            if (interval_signs(net, prop.lower, prop.upper) == 0).sum() > 9:
                continue
            for t in prop.targets:
                s = search(net, prop, t)
                if s.optimise(s.root())[0][0] < 0:
                    continue
                m = max_margin_in_box(net, prop.lower, prop.upper, prop.label, [t])
                if abs(m) > 1e-4 and count[m > 0] < n:
                    count[m > 0] += 1
                    out.append((net, prop, t, m))
                if min(count.values()) == n:
                    return out
    return out



@pytest.mark.slow
@pytest.mark.parametrize("iters", [10, 0])
def test_split_search_agrees_with_brute_force(iters):
    """iters = 0 keeps CROWN's slopes and beta = 0: many leaves are then decided by the region LP."""
    branched = lps = 0
    for net, prop, t, m in cases():
        o = search(net, prop, t, iters=iters, batch=8).run(time.time() + 60)
        assert o.verdict == ("sat" if m > 0 else "safe"), (m, o)
        if o.verdict == "sat":
            assert np.all(o.point >= prop.lower) and np.all(o.point <= prop.upper)
            assert net.forward(o.point)[t] >= net.forward(o.point)[prop.label]
        branched += o.nodes > 1
        lps += o.lps
    assert sum(m < 0 for *_, m in cases()) >= 10 and sum(m > 0 for *_, m in cases()) >= 10
    assert branched >= 10
    if iters == 0:
        assert lps > 0


@pytest.mark.slow
def test_bounds_of_children_are_valid():
    """The bound of each child of the root is above the brute-force maximum over the child's part
    of the box (where the split neuron is active / inactive)."""
    checked = 0
    for net, prop, t, m in cases()[:40]:
        s = search(net, prop, t)
        ub, nodes, scores, _ = s.optimise(s.root())
        assert ub[0] >= m - 1e-9
        kids, _ = s.branch(nodes, scores)
        if not len(kids):  # no unstable neuron left: the root's bound is exact
            continue
        kub, *_ = s.optimise(kids)
        for k in range(len(kids)):
            sigma = np.concatenate([x[k].numpy() for x in kids.sigma])
            (j,) = np.flatnonzero(sigma)
            exact = max_margin_in_box(net, prop.lower, prop.upper, prop.label, [t], fixed={j: sigma[j] < 0})
            assert kub[k] >= exact - 1e-9
            checked += 1
    assert checked >= 20


@pytest.mark.slow
def test_verify_box_methods_agree():
    for net, prop, _t, _m in cases()[:12]:
        whole = max_margin_in_box(net, prop.lower, prop.upper, prop.label)
        for method in ("splits", "milp"):
            v = verify_box(net, prop.lower, prop.upper, prop.label, prop.targets, 30.0, jobs=1, method=method)
            assert v.verdict == ("sat" if whole > 0 else "unsat")
            if v.verdict == "sat":
                assert check_counterexample(net, prop, v.point).valid


@pytest.mark.slow
def test_a_timeout_names_the_targets_not_reached():
    """With no time left for the searches, the targets the bounds leave open are reported not
    reached (and none searched); with time, the same boxes are decided, each of those targets
    searched (a sat search stops the others), none left open."""
    reported = 0
    for net, prop, _t, _m in cases()[:12]:
        v = verify_box(net, prop.lower, prop.upper, prop.label, prop.targets, 1e-9, jobs=1)
        assert v.searches == 0 and v.open_targets == []
        assert v.verdict == ("unknown" if v.unreached_targets else "unsat")
        assert v.unreached_targets == sorted(v.unreached_targets) and set(v.unreached_targets) <= set(prop.targets)
        reported += len(v.unreached_targets) > 0
        done = verify_box(net, prop.lower, prop.upper, prop.label, prop.targets, 30.0, jobs=1)
        assert done.verdict in ("sat", "unsat") and done.open_targets == done.unreached_targets == []
        n = len(v.unreached_targets)
        assert done.searches == n if done.verdict == "unsat" else 1 <= done.searches <= n
    assert reported >= 6


def test_verify_box_sorts_its_targets_into_open_and_not_reached(monkeypatch):
    """The bookkeeping of a timeout: a search that ran out of time leaves its target open, one
    that never started counts as not reached and not as a search."""
    from minadv.verify.decide import box as decide_module

    def searches(args, targets, jobs, quick):
        yield from [(2, "safe", None, 4), (1, "unknown", None, 5), (0, "unreached", None, 0), (3, "unreached", None, 0)]

    monkeypatch.setattr(decide_module, "_searches", searches)
    net, prop = open_box()
    v = verify_box(net, prop.lower, prop.upper, prop.label, prop.targets, 30.0, jobs=1)
    assert (v.verdict, v.open_targets, v.unreached_targets, v.searches, v.nodes) == ("unknown", [1], [0, 3], 2, 9)


@functools.cache
def ball_cases():
    """(net, x, label, target, the brute-force minimal ||delta||_2 of that target) on tiny networks."""
    out = []
    for seed in range(12):
        net = random_net([5, 6, 4, 3], seed=300 + seed, scale=2.0)
        x = np.random.default_rng(400 + seed).random(5)
        c = net.predict(x)
        free = [np.full(n, NeuronState.FREE, dtype=np.int8) for n in net.hidden_sizes]
        for t in net.other_classes(c):
            d = node_optimum(net, x, c, t, free, solve=solve_daqp)
            if np.isfinite(d):
                out.append((net, x, c, t, d))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("iters", [10, 0])
def test_split_search_over_an_l2_ball_matches_brute_force(iters):
    """Over box cap the L2 ball of radius r around x: 'safe' for r just below the target's
    brute-force minimal ||delta||_2, 'sat' just above it with a point of the domain (float64
    margin >= 0, ||z - x|| <= r); both the batched bounds and (with iters = 0, CROWN's slopes
    and beta = 0) the leaves' region QPs decide."""
    branched = leaves = 0
    cases = ball_cases()
    for net, x, c, t, d in cases:
        for r, want in ((0.97 * d, "safe"), (1.03 * d, "sat")):
            dom = Domain(x, 2.0, r)
            o = SplitSearch(net, dom, crown(net, dom), c, t, iters=iters, batch=4).run(time.time() + 60)
            assert o.verdict == want, (d, r, o)
            if want == "sat":
                assert np.linalg.norm(o.point - x) <= r and np.all((o.point >= 0) & (o.point <= 1))
                assert net.forward(o.point)[t] >= net.forward(o.point)[c]
            branched += o.nodes > 1
            leaves += o.lps
    assert len(cases) >= 10 and branched >= 6, (len(cases), branched)
    if iters == 0:
        assert leaves >= 1


def test_an_l1_ball_is_refused():
    net = random_net(SIZES, seed=0)
    dom = Domain(np.full(4, 0.5), 1.0, 0.3)
    with pytest.raises(ValueError, match="L1"):
        SplitSearch(net, dom, crown(net, dom), 0, 1)
