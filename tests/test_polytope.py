import numpy as np
import pytest
import torch

from minadv.verify import (
    BoxQP,
    check,
    dual_bound,
    patterns,
    region_qp,
    regions_at,
    regions_of_patterns,
    solve_clarabel,
    solve_reference,
)

from helpers import random_net


def _points_in_region(net, y, n, rng, radius=1e-3):
    reg = regions_at(net, y)
    Z = y + rng.uniform(-radius, radius, (n, y.size))
    same = patterns(net, Z).eq(reg.active).all(dim=1).numpy()
    return reg, Z[same]


@pytest.mark.parametrize("sizes", [(6, 8, 3), (5, 7, 6, 4), (10, 12, 9, 7, 5)])
def test_affine_map_equals_network_inside_the_region(sizes):
    rng = np.random.default_rng(len(sizes))
    net = random_net(sizes, seed=len(sizes))
    for _ in range(5):
        y = rng.random(sizes[0])
        reg, Z = _points_in_region(net, y, 200, rng, radius=0.05)
        assert len(Z) > 5
        n = len(Z)
        batch = reg[[0] * n]
        np.testing.assert_allclose(batch.logits(Z).numpy(), net.forward(Z), atol=1e-12)
        np.testing.assert_allclose(reg.logits(y[None]).numpy()[0], net.forward(y), atol=1e-12)
        # stacked hidden maps equal the network's pre-activations
        pre = np.concatenate(net.pre_activations(Z)[:-1], axis=1)
        got = (torch.einsum("bhd,bd->bh", batch.G, torch.tensor(Z)) + batch.g).numpy()
        np.testing.assert_allclose(got, pre, atol=1e-12)
        assert batch.contains(Z).all()


def test_points_across_a_boundary_leave_the_region(n1, test_split):
    x = test_split.x(0)
    reg = regions_at(n1, x)
    slack = reg.slack(x[None])[0].numpy()
    A, b = reg.inequalities()
    for j in np.argsort(slack)[:10]:  # the closest neuron hyperplanes
        a = A[0, j].numpy()
        # step along the row's normal just past its hyperplane: a z <= b becomes violated
        z = x + (slack[j] + 1e-6) / (a @ a) * a
        assert not reg.contains(z[None]).item()
        assert not bool(patterns(n1, z).eq(reg.active).all())


def test_batched_regions_equal_single_regions(n2, test_split):
    X = test_split.x(slice(0, 6))
    batch = regions_at(n2, X)
    for i in range(6):
        one = regions_at(n2, X[i])
        for name in ("G", "g", "F", "f"):
            torch.testing.assert_close(getattr(batch, name)[i], getattr(one, name)[0], rtol=0, atol=1e-12)
    assert len(set(batch.keys())) == 6
    assert regions_at(n2, X[0]).keys()[0] == batch.keys()[0]


def test_pattern_of_a_region_rebuilds_it(n2, test_split):
    x = test_split.x(3)
    reg = regions_at(n2, x)
    again = regions_of_patterns(n2, reg.active[0])
    torch.testing.assert_close(again.F, reg.F)


@pytest.mark.parametrize("net_name, image", [("n1", 0), ("n1", 7), ("n2", 1), ("n2", 4)])
def test_region_qp_is_feasible_adversarial_and_agrees_with_cvxpy(request, test_split, net_name, image):
    net = request.getfixturevalue(net_name)
    x = test_split.x(image)
    c = net.predict(x)
    reg = regions_at(net, x)
    sols = region_qp(net, x, c)
    assert sorted(sols) == sorted(set(range(10)) - {c})
    for t, sol in sols.items():
        qp = reg.qp(0, x, c, t)
        ref = solve_reference(qp)
        assert sol.status == ref.status
        if sol.status != "optimal":
            continue
        assert qp.violation(sol.v) <= 1e-7
        assert abs(sol.norm - ref.norm) <= 1e-6
        assert sol.lower <= sol.norm + 1e-12 and sol.norm - sol.lower <= 1e-6
        z = x + sol.v
        assert reg.contains(z[None], tol=1e-7).item()
        # adversarial by the float64 forward pass (boundary counts, to the QP's tolerance)
        v = check(net, np.clip(z, 0, 1), c)
        assert v.in_box and v.margin >= -1e-7
        assert net.forward(z)[t] - net.forward(z)[c] >= -1e-7


def test_dual_bound_is_a_lower_bound_for_any_multipliers():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 9))
    b = rng.normal(size=6) - 1.0
    qp = BoxQP(A, b, -np.ones(9), np.ones(9))
    sol = solve_reference(qp)
    assert sol.status == "optimal"
    opt = sol.norm**2
    assert dual_bound(qp, sol.lam) == pytest.approx(opt, abs=1e-7)
    for _ in range(200):
        assert dual_bound(qp, rng.exponential(size=6)) <= opt + 1e-12


def test_dual_bound_with_unsquared_variables():
    """Variables beyond n carry no cost: their dual term is linear in the box (tested against cvxpy)."""
    rng = np.random.default_rng(3)
    A = rng.normal(size=(5, 7))
    v0 = rng.uniform(-1, 1, 7)
    b = A @ v0 + 0.1  # feasible at v0, but not at 0 for every row
    assert (b < 0).any()
    qp = BoxQP(A, b, -np.ones(7), np.ones(7), n=4)
    ref = solve_reference(qp)
    fast = solve_clarabel(qp)
    assert ref.status == fast.status == "optimal"
    assert fast.norm == pytest.approx(ref.norm, abs=1e-6)
    assert fast.lower <= ref.norm + 1e-9
    assert fast.lower == pytest.approx(ref.norm, abs=1e-6)


def test_infeasible_region_problem_is_certified():
    A = np.array([[1.0, 0.0], [-1.0, 0.0]])
    b = np.array([-0.5, -0.5])  # x <= -0.5 and x >= 0.5
    qp = BoxQP(A, b, -np.ones(2), np.ones(2))
    assert solve_clarabel(qp).status == "infeasible"
    assert solve_reference(qp).status == "infeasible"
