import numpy as np
import pytest
from bruteforce import brute_force

from minadv.verify import InputError, Status, check
from minadv.verify.exact.minimal import minimal_perturbation
from minadv.verify.splits import SplitSearch

from helpers import random_net

TINY = [(5, 6, 3), (4, 8, 3), (6, 4, 4, 3), (5, 3, 3, 3)]


def _instance(seed):
    sizes = TINY[seed % len(TINY)]
    net = random_net(sizes, seed=seed, scale=2.0)
    x = np.random.default_rng(100 + seed).random(sizes[0])
    return net, x


@pytest.mark.parametrize("seed", range(16))
def test_l2_matches_brute_force_on_tiny_networks(seed):
    net, x = _instance(seed)
    truth, _ = brute_force(net, x, 2.0)
    res = minimal_perturbation(net, x, 2, time_limit=60)
    c = net.predict(x)
    if not np.isfinite(truth):
        assert res.status == Status.ROBUST and res.x_adv is None
        return
    assert res.status == Status.OPTIMAL
    assert abs(res.value - truth) <= 1e-5
    assert res.lower <= truth + 1e-9 and res.lower >= truth * (1 - 1e-4) - 1e-9
    v = check(net, res.x_adv, c)
    assert v.in_box and v.margin >= -1e-9
    assert res.value == pytest.approx(np.linalg.norm(res.x_adv - x), abs=1e-12)


def test_l2_hand_over_to_the_split_search_matches_brute_force(monkeypatch):
    """finish='decide' with decide_after=0 (the open nodes go to the split search right after
    the roots): the brute-force optimum, proven, and in certification mode `robust` just below
    it; over the cases the split search both proves targets safe and finds better incumbents."""
    verdicts = []
    run = SplitSearch.run

    def recorded(self, *args, **kwargs):
        out = run(self, *args, **kwargs)
        verdicts.append(out.verdict)
        return out

    monkeypatch.setattr(SplitSearch, "run", recorded)
    for seed in range(24):
        net, x = _instance(seed)
        truth, _ = brute_force(net, x, 2.0)
        res = minimal_perturbation(net, x, 2, time_limit=60, finish="decide", decide_after=0)
        if not np.isfinite(truth):
            assert res.status == Status.ROBUST
            continue
        assert res.status == Status.OPTIMAL and abs(res.value - truth) <= 1e-5, (seed, res.status, res.value, truth)
        assert truth * (1 - 1e-4) - 1e-9 <= res.lower <= truth + 1e-9
        v = check(net, res.x_adv, net.predict(x))
        assert v.in_box and v.margin >= -1e-9
        below = minimal_perturbation(net, x, 2, upper_bound=0.98 * truth, time_limit=60, finish="decide",
                                     decide_after=0)
        assert below.status == Status.ROBUST and below.lower >= 0.98 * truth
    assert verdicts.count("safe") >= 10 and verdicts.count("sat") >= 1, verdicts


@pytest.mark.parametrize("node_bounds", ["root", "chords", "fixings"])
@pytest.mark.parametrize("seed", range(16, 24))
def test_l2_node_bounds_choices_match_brute_force(seed, node_bounds):
    """Every `NodeBounds` choice proves the brute-force optimum (the default runs above), and in
    certification mode (the ball of radius r caps the node bounds' domain) `robust` just below
    it, the optimum just above it."""
    net, x = _instance(seed)
    truth, _ = brute_force(net, x, 2.0)
    res = minimal_perturbation(net, x, 2, time_limit=60, node_bounds=node_bounds)
    if not np.isfinite(truth):
        assert res.status == Status.ROBUST
        return
    assert res.status == Status.OPTIMAL and abs(res.value - truth) <= 1e-5
    assert res.lower <= truth + 1e-9
    below = minimal_perturbation(net, x, 2, upper_bound=0.98 * truth, time_limit=60, node_bounds=node_bounds)
    assert below.status == Status.ROBUST and below.lower >= 0.98 * truth
    above = minimal_perturbation(net, x, 2, upper_bound=1.02 * truth, time_limit=60, node_bounds=node_bounds)
    assert above.status == Status.OPTIMAL and abs(above.value - truth) <= 1e-5


@pytest.mark.slow
def test_exact_on_n1_is_below_every_other_adversarial(n1, test_split):
    from minadv.verify import region_qp

    for i in (0, 4):
        x = test_split.x(i)
        c = n1.predict(x)
        res = minimal_perturbation(n1, x, 2, time_limit=120)
        assert res.status == Status.OPTIMAL
        v = check(n1, res.x_adv, c)
        assert v.in_box and v.margin >= -1e-9
        others = [s.norm for s in region_qp(n1, x, c).values() if s.status == "optimal"]
        rng = np.random.default_rng(i)
        for _ in range(300):  # random restarts: region QPs around random nearby points
            y = np.clip(x + rng.normal(0, 0.05, x.size), 0, 1)
            others += [s.norm for s in region_qp(n1, x, c, y=y, targets=[res.target]).values() if s.status == "optimal"]
            if len(others) > 40:
                break
        assert min(others) >= res.value * (1 - 1e-6)
        assert res.lower <= min(others)


@pytest.mark.parametrize(
    "kwargs, msg",
    [({"norm": 3}, "unknown norm"), ({"time_limit": 0}, "time_limit"), ({"time_limit": -1}, "time_limit"),
     ({"method": "gurobi"}, "unknown exact method"), ({"rel_gap": 0}, "rel_gap")],
)
def test_bad_options_are_refused(n1, test_split, kwargs, msg):
    with pytest.raises(InputError, match=msg):
        minimal_perturbation(n1, test_split.x(0), **kwargs)


def test_bad_images_are_refused(n1):
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        minimal_perturbation(n1, np.full(784, 2.0))
    with pytest.raises(InputError, match="values"):
        minimal_perturbation(n1, np.zeros(10))


@pytest.mark.slow
def test_lower_bound_stays_below_known_adversarials_under_a_tiny_time_limit(n2, test_split):
    x = test_split.x(2)  # a hard image: the search cannot finish in 0.3 s
    c = n2.predict(x)
    res = minimal_perturbation(n2, x, 2, time_limit=0.3)
    assert res.status in (Status.TIME_LIMIT, Status.OPTIMAL)
    if res.status == Status.TIME_LIMIT:
        assert res.lower < res.upper
    full = minimal_perturbation(n2, x, 2, time_limit=300)
    assert full.status == Status.OPTIMAL
    assert res.lower <= full.value + 1e-12 <= res.upper + 1e-12
    if res.x_adv is not None:
        assert check(n2, res.x_adv, c).margin >= -1e-9


def test_a_point_on_the_boundary_has_distance_zero():
    net = random_net((3, 4, 2), seed=1)
    x = np.random.default_rng(0).random(3)
    # move the bias so that x sits exactly on the decision boundary
    W, b = list(net.weights), list(net.biases)
    logits = net.forward(x)
    c = int(np.argmax(logits))
    b[-1] = b[-1].copy()
    b[-1][1 - c] += logits[c] - logits[1 - c]
    from minadv.verify import ReluNetwork

    net = ReluNetwork.from_layers(zip(W, b, strict=True))
    res = minimal_perturbation(net, x, 2)
    assert res.status == Status.OPTIMAL and res.value == 0.0 and res.lower == 0.0


@pytest.mark.parametrize("method", ["mip", "bnb"])
@pytest.mark.parametrize("norm", [1, "inf", 2])
@pytest.mark.parametrize("seed", range(6))
def test_both_methods_match_brute_force_on_tiny_networks(seed, norm, method):
    net, x = _instance(seed)
    p = {1: 1.0, "inf": np.inf, 2: 2.0}[norm]
    truth, _ = brute_force(net, x, p)
    res = minimal_perturbation(net, x, norm, method=method, time_limit=60)
    if not np.isfinite(truth):
        assert res.status == Status.ROBUST
        return
    assert res.status == Status.OPTIMAL, res.message
    assert abs(res.value - truth) <= 1e-5 * max(1.0, truth)
    assert res.lower <= truth * (1 + 1e-9) + 1e-9
    v = check(net, res.x_adv, net.predict(x))
    assert v.in_box and v.margin >= -1e-9
    assert res.value == pytest.approx(np.linalg.norm(res.x_adv - x, ord=p), abs=1e-12)


@pytest.mark.parametrize("norm", [1, "inf", 2])
def test_auto_runs_the_branch_and_bound_for_every_norm(norm):
    net, x = _instance(1)
    assert minimal_perturbation(net, x, norm, time_limit=60).message == "scheme=bnb"


@pytest.mark.parametrize("tightening", ["crown", "lp", "mip"])
def test_tightening_levels_agree(tightening):
    net, x = _instance(2)  # two hidden layers: the levels act on layer 2
    base = minimal_perturbation(net, x, "inf", method="mip", tightening="crown")
    res = minimal_perturbation(net, x, "inf", method="mip", tightening=tightening)
    assert res.status == base.status == Status.OPTIMAL
    assert res.value == pytest.approx(base.value, abs=1e-7)


def test_a_time_limit_without_any_adversarial_is_not_called_robust(monkeypatch):
    """HiGHS stopping at its time limit with a dual bound but no point must end as
    'time_limit' (a bug once read inf - lower <= gap * inf as a closed gap: 'robust')."""
    import minadv.verify.exact.mip_search as mip_exact
    from minadv.verify.exact.incumbent import Incumbent
    from minadv.verify.exact.mip import MilpOutcome

    monkeypatch.setattr(mip_exact, "solve_milp",
                        lambda model, left, **kw: MilpOutcome("time_limit", 0.01, np.inf, None, -1))
    net, x = _instance(0)
    search = mip_exact.MipSearch(net, x, net.predict(x), np.inf, incumbent=Incumbent())
    lower, reason = search.run(5.0)
    assert reason == "time_limit" and search.inc.point is None and lower == pytest.approx(0.01)


@pytest.mark.slow  # 36 cases, about 50 s in all
@pytest.mark.parametrize("method", ["mip", "bnb"])
@pytest.mark.parametrize("norm", [1, "inf", 2])
@pytest.mark.parametrize("seed", range(6))
def test_certification_mode_matches_brute_force_on_tiny_networks(seed, norm, method):
    """upper_bound=r (the domain ||delta||_p <= r): `robust` with lower >= r and no point iff
    r < d*, else the optimum d* (a point outside the ball, e.g. problem (3) on x's own region,
    once came back as the answer with status `error`)."""
    net, x = _instance(seed)
    p = {1: 1.0, "inf": np.inf, 2: 2.0}[norm]
    truth, _ = brute_force(net, x, p)
    radii = [0.6 * truth, 0.98 * truth, 1.02 * truth, 2.0 * truth] if np.isfinite(truth) else [0.5, 5.0]
    for r in radii:
        res = minimal_perturbation(net, x, norm, upper_bound=r, method=method, time_limit=60)
        if r < truth:
            assert res.status == Status.ROBUST, (r, res.status, res.message)
            assert res.x_adv is None and res.lower >= r
        else:
            assert res.status == Status.OPTIMAL, (r, res.status, res.message)
            assert abs(res.value - truth) <= 1e-5 * max(1.0, truth) and res.value <= r
            assert res.lower <= truth * (1 + 1e-9) + 1e-9
            v = check(net, res.x_adv, net.predict(x))
            assert v.in_box and v.margin >= -1e-9


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mip", "bnb"])
@pytest.mark.parametrize("norm, radii", [(2, (0.1, 0.34)), ("inf", (0.01, 0.024)), (1, (0.5, 1.5))])
def test_certification_mode_on_n1_below_the_optimum_is_robust(n1, test_split, norm, radii, method):
    """N1, test image 4 (optima: L2 0.3489, Linf 0.02444, L1 1.583): radii below them are robust."""
    x = test_split.x(4)
    for r in radii:
        res = minimal_perturbation(n1, x, norm, upper_bound=r, method=method, time_limit=120)
        assert res.status == Status.ROBUST and res.x_adv is None and res.lower >= r, (r, res.status)
