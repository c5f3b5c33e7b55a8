"""The batched dual Newton solver of problem (3) against the cvxpy reference, on random regions."""

import numpy as np
import pytest
import torch

from minadv.verify import QPStatus, patterns, solve_reference
from minadv.verify.qp.batched import INFEASIBLE, OF_QP, OPTIMAL, PRUNED, BatchStatus, RegionQPs, RowsBatch, solve_batch

from helpers import random_net

TIGHT = dict(tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)  # cvxpy's point to ~1e-6 (default: ~1e-4)


def _random_regions(net, x, rng, n_near=4, n_flipped=4, n_random=2):
    """Patterns of points near x (mostly non-empty regions), of x's pattern with a few neurons
    flipped (often far or empty) and uniformly random patterns (mostly empty polytopes)."""
    near = patterns(net, x + rng.normal(0, 0.05, (n_near, x.size)))
    base = patterns(net, x)[0]
    flipped = base.repeat(n_flipped, 1)
    for row in flipped:
        idx = rng.choice(len(base), size=rng.integers(1, 6), replace=False)
        row[idx] = ~row[idx]
    random = torch.from_numpy(rng.random((n_random, len(base))) < 0.5)
    return torch.cat([near, flipped, random])


def _assert_equals_reference(P):
    """Every problem of P by the batched solver and by cvxpy; returns the statuses seen."""
    sol = solve_batch(P)
    statuses = set()
    for k in range(len(P)):
        ref = solve_reference(P.dense(k), **TIGHT)
        statuses.add(OF_QP[ref.status])
        assert sol.status[k] == OF_QP[ref.status], k
        if ref.status == QPStatus.OPTIMAL:
            assert abs(sol.value[k] - ref.norm) <= 1e-6
            np.testing.assert_allclose(sol.v[k].numpy(), ref.v, atol=1e-6)
            assert P.dense(k).violation(sol.v[k].numpy()) <= 1e-8
            assert sol.lower[k] <= ref.norm + 1e-9 and sol.lower[k] >= ref.norm - 1e-6
        else:
            assert np.isinf(sol.lower[k]) and np.isinf(sol.value[k])
    return statuses


@pytest.mark.slow
@pytest.mark.parametrize("net_name, image", [("n1", 0), ("n1", 3), ("n2", 1), ("n2", 7)])
def test_batched_solver_equals_cvxpy_on_random_regions(request, test_split, net_name, image):
    net = request.getfixturevalue(net_name)
    rng = np.random.default_rng(image)
    x = test_split.x(image)
    c = net.predict(x)
    targets = rng.choice([t for t in range(10) if t != c], size=3, replace=False)
    P, _, _ = RegionQPs(net, x, c).batch(_random_regions(net, x, rng), targets)
    assert OPTIMAL in _assert_equals_reference(P)


@pytest.mark.parametrize("sizes", [(4, 8, 3), (5, 4, 4, 3)])
def test_batched_solver_equals_cvxpy_on_empty_and_nonempty_regions(sizes):
    """Tiny networks: random patterns often give empty polytopes (certified infeasible)."""
    net = random_net(sizes, seed=sum(sizes), scale=2.0)
    rng = np.random.default_rng(1)
    x = rng.random(sizes[0])
    c = net.predict(x)
    active = torch.from_numpy(rng.random((30, sum(sizes[1:-1]))) < 0.5)
    P, _, _ = RegionQPs(net, x, c).batch(active, [t for t in range(sizes[-1]) if t != c])
    assert _assert_equals_reference(P) == {OPTIMAL, INFEASIBLE}


def test_pruning_only_drops_problems_at_or_above_the_threshold(n1, test_split):
    rng = np.random.default_rng(5)
    x = test_split.x(5)
    c = n1.predict(x)
    P, _, _ = RegionQPs(n1, x, c).batch(_random_regions(n1, x, rng), [t for t in range(10) if t != c])
    full = solve_batch(P)
    threshold = float(np.median(full.value[full.status == OPTIMAL]))
    cut = solve_batch(P, threshold)
    assert (cut.status == PRUNED).sum() > 0
    for k in range(len(P)):
        if cut.status[k] == PRUNED:
            assert full.value[k] >= threshold - 1e-12 and cut.lower[k] >= threshold
        else:
            assert cut.status[k] == full.status[k]
    bound = P.cheap_bound().numpy()
    assert np.all(bound <= full.value + 1e-9)  # inf for the infeasible ones


@pytest.mark.slow
def test_best_over_targets_and_regions(n2, test_split):
    """RegionQPs.best: per region the smallest target optimum below the threshold (cvxpy)."""
    rng = np.random.default_rng(2)
    x = test_split.x(2)
    c = n2.predict(x)
    qps = RegionQPs(n2, x, c)
    active = _random_regions(n2, x, rng, n_near=3, n_flipped=2, n_random=1)
    targets = rng.choice([t for t in range(10) if t != c], size=4, replace=False)
    P, region, _ = qps.batch(active, targets)
    ref = np.array([solve_reference(P.dense(k)).norm for k in range(len(P))])
    truth = np.array([ref[region == r].min() for r in range(len(active))])
    for threshold in (np.inf, float(np.median(truth[np.isfinite(truth)]))):
        best = qps.best(active, targets, threshold)
        expect = np.where(truth < threshold, truth, np.inf)
        np.testing.assert_allclose(best.value, expect, atol=1e-6)
        for r in np.flatnonzero(np.isfinite(expect)):
            logits = n2.forward(x + best.v[r].numpy())
            assert logits[best.target[r]] - logits[c] >= -1e-7
        assert best.solved + best.pruned <= len(P)


def test_every_qp_status_has_a_batch_status():
    """The fallback's map from DAQP's verdict is total: a QPStatus it lacked would be a KeyError."""
    assert set(OF_QP) == set(QPStatus)
    assert set(OF_QP.values()) <= set(BatchStatus)


def test_explicit_rows_padded_with_zero_rows_solve_like_the_basis_batch(n2, test_split):
    """RowsBatch (A = C U explicit, 7 zero rows with b = 1 appended) is the same problem as
    the QPBatch: same statuses, values and points to 1e-9, no multiplier
    on a padding row."""
    x = test_split.x(2)
    c = n2.predict(x)
    active = _random_regions(n2, x, np.random.default_rng(4))
    P, _, _ = RegionQPs(n2, x, c).batch(active, [t for t in range(10) if t != c])
    B, m, _ = P.C.shape
    A = torch.cat([P.C @ P.U, torch.zeros(B, 7, P.U.shape[1], dtype=torch.float64)], dim=1)
    R = RowsBatch(A, torch.cat([P.b, torch.ones(B, 7, dtype=torch.float64)], dim=1), P.lo, P.hi)
    a, b = solve_batch(P), solve_batch(R)
    assert {OPTIMAL, INFEASIBLE} <= set(a.status)
    assert a.status.tolist() == b.status.tolist()
    np.testing.assert_allclose(b.value, a.value, rtol=1e-9)
    ok = a.status == OPTIMAL
    np.testing.assert_allclose(b.v[ok], a.v[ok], atol=1e-8)
    assert torch.all(b.lam[:, m:] == 0)
