"""The working-set region-QP solver (verify/qp/workingset.py) against the cvxpy reference on random
regions of small random networks and of one 784-1024-10 random network."""

import numpy as np
import pytest
import torch

from minadv.verify import check, patterns, regions_of_patterns, solve_reference
from minadv.verify.qp import batched as batched_module
from minadv.verify.qp import workingset as ws_module
from minadv.verify.qp.batched import INFEASIBLE, OPTIMAL, PRUNED, lagrangian_point
from minadv.verify.qp.reference import certifies_infeasible, farkas_lp
from minadv.verify.qp.workingset import WorkingSetQPs, dense_qp

from helpers import random_net

TIGHT = dict(tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)  # cvxpy's point to ~1e-6


def _regions(net, x, rng, n_near=3, n_flipped=2, n_random=2):
    """Patterns near x (non-empty regions), x's with a few neurons flipped, uniformly random ones
    (mostly empty polytopes)."""
    near = patterns(net, x + rng.normal(0, 0.1, (n_near, x.size)))
    base = patterns(net, x)[0]
    flipped = base.repeat(n_flipped, 1)
    for row in flipped:
        idx = rng.choice(len(base), size=rng.integers(1, 6), replace=False)
        row[idx] = ~row[idx]
    return torch.cat([near, flipped, torch.from_numpy(rng.random((n_random, len(base))) < 0.5)])


def _full_multipliers(res, k, n_hidden):
    """Problem k's multipliers on the rows of `dense_qp` (hidden neurons, then the target row)."""
    lam = np.zeros(n_hidden + 1)
    lam[res.working_set] = res.solution.lam[k, :-1].numpy()
    lam[-1] = float(res.solution.lam[k, -1])
    return lam


def _assert_equals_reference(net, x, c, active, targets, **options):
    """Every target on the region of `active`: status, value (1e-6 relative), point, lower bound and
    certificates against cvxpy; optimal points float64-verified. Returns the statuses seen.
    options: of WorkingSetQPs."""
    res = WorkingSetQPs(net, x, c, **options).solve(active, targets)
    sol, seen = res.solution, set()
    for k, t in enumerate(targets):
        qp = dense_qp(net, x, c, active, t)
        ref = solve_reference(qp, **TIGHT)
        seen.add(ref.status)
        assert sol.status[k] == ref.status, (k, sol.status[k], ref.status)
        if ref.status == OPTIMAL:
            v = sol.v[k].numpy()
            assert abs(sol.value[k] - ref.norm) <= 1e-6 * max(1.0, ref.norm)
            np.testing.assert_allclose(v, ref.v, atol=1e-6)
            assert qp.violation(v) <= 1e-8
            assert ref.norm - 1e-6 <= sol.lower[k] <= ref.norm + 1e-9
            if regions_of_patterns(net, active).contains(x + v, tol=1e-8).item():
                verdict = check(net, x + v, c)
                assert verdict.in_box and verdict.margin >= -1e-7
        else:
            assert np.isinf(sol.value[k]) and np.isinf(sol.lower[k])
            assert certifies_infeasible(qp, _full_multipliers(res, k, qp.A.shape[0] - 1))
    return seen


def _instance(seed: int):
    """A random 40-16-16-5 network (weights at scale 2: many unstable ReLUs), the generator that
    drew it, a point x in [0,1]^40 and its class."""
    net = random_net((40, 16, 16, 5), seed=seed, scale=2.0)
    rng = np.random.default_rng(seed)
    x = rng.random(40)
    return net, rng, x, net.predict(x)


LP_FIRST = dict(certify_after=0, max_iter=0, round_steps=None)  # no Newton step: every relaxation to the LP, then DAQP


@pytest.mark.parametrize("options", [{}, dict(certify_after=1), LP_FIRST, dict(round_steps=2)],
                         ids=["default", "lp-on-support", "lp-first", "two-steps-a-round"])
@pytest.mark.parametrize("sizes, seed", [((40, 16, 16, 5), 0), ((30, 24, 4), 1), ((20, 8, 8, 8, 3), 2)])

def test_equals_cvxpy_on_random_regions(sizes, seed, options, monkeypatch):
    """With the default, with the phase-1 LP on the multipliers' support after one Newton step,
    with the LP on every row before any (then infeasible relaxations are decided by the
    LP's Farkas vector, checked on the full problem here), and with rows added at v(lam) after
    every two Newton steps (most relaxations left open at the end of a round)."""
    net = random_net(sizes, seed=seed, scale=2.0)
    rng = np.random.default_rng(seed)
    x = rng.random(sizes[0])
    c = net.predict(x)
    certified, left_open = [], []
    monkeypatch.setattr(batched_module, "farkas_lp", lambda qp: certified.append(farkas_lp(qp)) or certified[-1])
    monkeypatch.setattr(ws_module, "lagrangian_point",
                        lambda P, lam: left_open.append(len(P)) or lagrangian_point(P, lam))
    seen = set()
    for active in _regions(net, x, rng):
        seen |= _assert_equals_reference(net, x, c, active, [t for t in range(sizes[-1]) if t != c],
                                         **options)
    assert seen == {OPTIMAL, INFEASIBLE}
    if options.get("certify_after") is not None:
        assert any(y is not None for y in certified)
    if options.get("round_steps"):
        assert sum(left_open) > 0


def test_a_wrong_certificate_from_the_lp_is_caught(monkeypatch):
    """The LP's Farkas vector is only believed after the float64 check: an LP that claims every
    relaxation infeasible (optimum t* = 1, duals all ones) changes no verdict, on regions with
    optimal and infeasible targets alike."""
    from types import SimpleNamespace

    import scipy.optimize

    def lying_linprog(c, A_ub, b_ub, **_):
        return SimpleNamespace(status=0, fun=1.0, ineqlin=SimpleNamespace(marginals=-np.ones(len(b_ub))))

    net, rng, x, c = _instance(0)
    monkeypatch.setattr(scipy.optimize, "linprog", lying_linprog)
    seen = set()
    for active in _regions(net, x, rng):
        seen |= _assert_equals_reference(net, x, c, active, [t for t in range(5) if t != c], **LP_FIRST)
    assert seen == {OPTIMAL, INFEASIBLE}


@pytest.mark.slow
def test_equals_cvxpy_on_a_784_1024_10_network(test_split):
    """The paper's 1x1024 size (random weights): two targets on a region near an MNIST image."""
    net = random_net((784, 1024, 10), seed=3, scale=1.0)
    x = test_split.x(0)
    c = net.predict(x)
    rng = np.random.default_rng(3)
    active = patterns(net, x + rng.normal(0, 0.05, x.size))[0]
    targets = [t for t in range(10) if t != c][:2]
    assert OPTIMAL in _assert_equals_reference(net, x, c, active, targets)


@pytest.mark.slow
@pytest.mark.parametrize("options", [{}, LP_FIRST], ids=["default", "lp-first"])
def test_equals_cvxpy_on_a_deep_wide_network(test_split, options):
    """784-128x5-10 (random weights), the region of MNIST image 0: one target optimal, one
    infeasible (the deep networks' case: Q(x) holds no adversarial point for most targets)."""
    net = random_net((784, 128, 128, 128, 128, 128, 10), seed=12, scale=1.0)
    x = test_split.x(0)
    c = net.predict(x)
    assert _assert_equals_reference(net, x, c, patterns(net, x)[0], [2, 3], **options) == {OPTIMAL, INFEASIBLE}


def test_rows_formed_matrix_free_equal_the_explicit_region():
    """FixedPattern.rows / logit_rows / forward (backward and forward passes with the patterns
    fixed, rows and points of three regions mixed in one pass) equal the explicit G, F of
    polytope.regions_of_patterns."""
    net = random_net((12, 7, 6, 5, 4), seed=4)
    rng = np.random.default_rng(4)
    x = rng.random(12)
    active = torch.from_numpy(rng.random((3, 18)) < 0.5)
    reg = regions_of_patterns(net, active)
    fixed = WorkingSetQPs(net, x, 0).region(active)
    idx, which = rng.permutation(18)[:11], rng.integers(0, 3, 11)
    np.testing.assert_allclose(fixed.rows(idx, which).numpy(), reg.G[which, idx].numpy(), atol=1e-12)
    np.testing.assert_allclose(fixed.formed(idx, which).numpy(),
                               (-reg.signs[which, idx, None] * reg.G[which, idx]).numpy(), atol=1e-12)
    np.testing.assert_allclose(fixed.logit_rows(np.array([1, 3]), 0, np.array([2, 0])).numpy(),
                               (reg.F[[2, 0]][:, [1, 3]] - reg.F[[2, 0]][:, [0]]).numpy(), atol=1e-12)
    X = torch.as_tensor(rng.random((4, 12)))
    pre, logits = fixed.forward(X, np.array([1, 0, 2, 1]))
    for n, r in enumerate([1, 0, 2, 1]):
        np.testing.assert_allclose(pre[n].numpy(), (reg.G[r] @ X[n] + reg.g[r]).numpy(), atol=1e-12)
        np.testing.assert_allclose(logits[n].numpy(), (reg.F[r] @ X[n] + reg.f[r]).numpy(), atol=1e-12)


def test_pruning_only_drops_problems_at_or_above_the_threshold():
    net, rng, x, c = _instance(5)
    targets = net.other_classes(c)
    qps = WorkingSetQPs(net, x, c)
    pruned = 0
    for active in patterns(net, x + rng.normal(0, 0.1, (4, 40))):
        full = qps.solve(active, targets).solution
        values = full.value[full.status == OPTIMAL]
        if len(values) == 0:
            continue
        threshold = float(np.median(values))
        cut = qps.solve(active, targets, threshold).solution
        for k in range(len(targets)):
            if cut.status[k] == PRUNED:
                pruned += 1
                assert full.value[k] >= threshold - 1e-12 and cut.lower[k] >= threshold
            else:
                assert cut.status[k] == full.status[k]
                assert cut.value[k] == pytest.approx(full.value[k], abs=1e-9)
    assert pruned > 0


def test_best_is_the_smallest_target_optimum_below_the_threshold():
    net, rng, x, c = _instance(6)
    targets = net.other_classes(c)
    active = _regions(net, x, rng, n_near=3, n_flipped=1, n_random=1)
    truth = np.array([min(solve_reference(dense_qp(net, x, c, a, t), **TIGHT).norm for t in targets) for a in active])
    qps = WorkingSetQPs(net, x, c)
    finite = np.sort(truth[np.isfinite(truth)])
    assert len(finite) >= 2
    for threshold in (np.inf, float(finite[len(finite) // 2 - 1 : len(finite) // 2 + 1].mean())):  # between two optima
        best = qps.best(active, targets, threshold)
        np.testing.assert_allclose(best.value, np.where(truth < threshold, truth, np.inf), rtol=1e-6)
        for r in np.flatnonzero(np.isfinite(best.value)):
            logits = net.forward(x + best.v[r].numpy())
            assert logits[best.target[r]] - logits[c] >= -1e-7


def test_many_regions_at_once_equal_each_region_alone():
    """solve_many (one solve_batch per round over every region's problems, padded rows) gives
    each region what cvxpy gives and what solving it alone gives: statuses, values, points,
    working sets, rounds."""
    net, rng, x, c = _instance(8)
    targets = net.other_classes(c)
    active = _regions(net, x, rng, n_near=4, n_flipped=3, n_random=2)
    qps = WorkingSetQPs(net, x, c)
    together = qps.solve_many(active, targets)
    seen = set()
    for a, many in zip(active, together, strict=True):
        alone = qps.solve(a, targets)
        seen |= set(alone.solution.status)
        for k, t in enumerate(targets):
            ref = solve_reference(dense_qp(net, x, c, a, t), **TIGHT)
            assert many.solution.status[k] == ref.status
            if ref.status == OPTIMAL:
                assert many.solution.value[k] == pytest.approx(ref.norm, rel=1e-6)
        assert many.solution.status.tolist() == alone.solution.status.tolist()
        np.testing.assert_allclose(many.solution.value, alone.solution.value, rtol=1e-9)
        ok = alone.solution.status == OPTIMAL
        np.testing.assert_allclose(many.solution.v[ok], alone.solution.v[ok], atol=1e-9)
        assert np.array_equal(many.working_set, alone.working_set) and many.rounds == alone.rounds
    assert {OPTIMAL, INFEASIBLE} <= seen
    assert len({len(r.working_set) for r in together}) > 1  # regions of different sizes padded together


def test_same_input_same_result():
    net, rng, x, c = _instance(7)
    active = patterns(net, x + rng.normal(0, 0.1, 40))[0]
    a, b = (WorkingSetQPs(net, x, c).solve(active, range(5)) for _ in range(2))
    assert a.solution.status.tolist() == b.solution.status.tolist()
    assert np.array_equal(a.solution.value, b.solution.value)
    assert torch.equal(a.solution.v.nan_to_num(), b.solution.v.nan_to_num())
    assert np.array_equal(a.working_set, b.working_set)


def test_rlrqp_with_the_working_set_finds_what_the_dense_solver_finds(n1, test_split):
    """Both region solvers are exact (to 1e-9), so rLR-QP takes the same path on N1."""
    from minadv.attacks import RLRQP

    for image in (0, 3):
        x = test_split.x(image)
        dense, ws = (RLRQP(solver=s).run(n1, x) for s in ("dense", "workingset"))
        assert dense.status == ws.status == "found"
        assert ws.value == pytest.approx(dense.value, rel=1e-6)
        assert ws.counts.regions == dense.counts.regions


def test_auto_picks_the_dense_solver_for_n1_and_the_working_set_for_a_wide_network(n1, test_split):
    from minadv.attacks.rlrqp import region_solver
    from minadv.verify.qp.batched import RegionQPs

    x = test_split.x(0)
    assert isinstance(region_solver(n1, x, n1.predict(x)), RegionQPs)
    wide = random_net((784, 300, 10), seed=8)
    assert isinstance(region_solver(wide, x, wide.predict(x)), WorkingSetQPs)
    with pytest.raises(ValueError, match="CPU only"):
        region_solver(n1, x, 0, "dense", "meta")


def test_device_option_and_a_bad_device_is_a_one_line_error(tmp_path, capsys):
    from minadv.experiments.cli import main

    out = ["--out", str(tmp_path / "r.csv")]
    assert main(["attack", "--method", "rlrqp", "--images", "0", "--device", "cpu", *out]) == 0
    assert main(["attack", "--method", "rlrqp", "--images", "0", "--device", "nonsense::", *out]) == 2
    assert "rlrqp: bad device 'nonsense::'" in capsys.readouterr().err
    assert main(["bench", "qp", "--nets", "N1", "--device", "nonsense::"]) == 2
    assert "bad device 'nonsense::'" in capsys.readouterr().err


def test_bench_qp_takes_any_network_file(tmp_path, capsys):
    from minadv.experiments.cli import main

    net = random_net((784, 20, 10), seed=9)
    torch.save(net.to_torch(torch.float64), tmp_path / "mine.pt")  # whole module: it says its activations
    assert main(["bench", "qp", "--net", str(tmp_path / "mine.pt"), "--images", "0", "--points", "0",
                 "--reference", "1"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert lines[1][:4] == ["mine", "0", "1", "9"]  # the region of x, nine targets
    assert float(lines[1][8]) < 1e-6 and float(lines[1][-1]) < 1e-6  # dense vs working set, vs DAQP


def test_bench_attacks_takes_any_network_file(tmp_path, capsys):
    from minadv.experiments.cli import main

    net = random_net((784, 20, 10), seed=10)
    torch.save(net.to_torch(torch.float64), tmp_path / "mine.pt")  # whole module: it says its activations
    out = tmp_path / "b.csv"
    assert main(["bench", "attacks", "--net", str(tmp_path / "mine.pt"), "--methods", "rlrqp", "--images", "0",
                 "--option", "solver=workingset", "--option", "n3=1", "--option", "n4=1", "--out", str(out)]) == 0
    table = (tmp_path / "b.md").read_text()
    assert "| mine | rlrqp | 1 |" in table
