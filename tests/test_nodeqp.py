"""The reduced node-QP solver of the branch-and-bound against cvxpy and DAQP."""

import numpy as np
import pytest

from minadv.verify import NeuronState
from minadv.verify.exact.bnb import BranchAndBound
from minadv.verify.exact.relaxation import node_qp
from minadv.verify.qp.reduced import solve_node
from minadv.verify.qp.reference import BoxQP, certifies_infeasible, solve_daqp, solve_reference

from helpers import random_net

TIGHT = dict(tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)  # cvxpy's point to ~1e-6 (default: ~1e-4)
TINY = [(5, 6, 3), (4, 8, 3), (6, 4, 4, 3), (5, 3, 3, 3), (8, 10, 6, 3)]


def _random_nodes(net, x, rng, count):
    """Node problems of random targets and random fixings of the unstable ReLUs (root included)."""
    c = int(net.predict(x))
    bb = BranchAndBound(net, x, c)
    targets = [t for t in range(net.n_outputs) if t != c]
    out = []
    for i in range(count):
        states = [s.copy() for s in bb.root]
        if i:
            for s in states:
                free = np.flatnonzero(s == NeuronState.FREE)
                fix = free[rng.random(len(free)) < 0.4]
                s[fix] = np.where(rng.integers(0, 2, len(fix)) == 1, NeuronState.ACTIVE, NeuronState.INACTIVE)
        out.append(node_qp(net, x, c, int(rng.choice(targets)), bb.bounds, states, bb.box))
    return out


def _check_against(ref, sol, qp, tol):
    assert sol.status == ref.status
    if ref.status == "optimal":
        assert abs(sol.norm - ref.norm) <= tol * max(1.0, ref.norm)
        assert qp.violation(sol.v) <= 1e-9
        assert sol.lower <= sol.norm + 1e-12
        assert sol.lower >= ref.norm - tol * max(1.0, ref.norm)
        assert len(sol.lam) == len(qp.b) and sol.lam.min() >= 0
    else:
        assert np.isinf(sol.lower) and certifies_infeasible(qp, sol.lam)


@pytest.mark.parametrize("seed", range(10))
def test_equals_cvxpy_on_tiny_network_nodes(seed):
    sizes = TINY[seed % len(TINY)]
    net = random_net(sizes, seed=seed, scale=2.0)
    rng = np.random.default_rng(seed)
    x = rng.random(sizes[0])
    for problem in _random_nodes(net, x, rng, 8):
        ref = solve_reference(problem.qp, **TIGHT)
        _check_against(ref, solve_node(problem.qp, problem.basis), problem.qp, 1e-7)
        _check_against(ref, solve_node(problem.qp), problem.qp, 1e-7)  # basis by SVD


@pytest.mark.parametrize("net_name, image", [("n1", 2), ("n1", 31), pytest.param("n2", 5, marks=pytest.mark.slow),
                                             pytest.param("n2", 19, marks=pytest.mark.slow)])
def test_equals_daqp_on_mnist_nodes_without_fallback(request, test_split, net_name, image):
    net = request.getfixturevalue(net_name)
    rng = np.random.default_rng(image)
    for i, problem in enumerate(_random_nodes(net, test_split.x(image), rng, 10)):
        qp = problem.qp
        info = {}
        sol = solve_node(qp, problem.basis, info=info)
        ref = solve_daqp(qp)
        assert not info["fallback"], info
        assert sol.status == ref.status == "optimal"
        assert qp.violation(sol.v) <= 1e-9
        # DAQP stops at a primal tolerance of 1e-6 (its norms are good to ~1e-9, its bounds ~1e-7)
        assert abs(sol.norm - ref.norm) <= 1e-7 * ref.norm + 1e-8
        assert sol.lower >= ref.lower - 1e-9 * max(ref.norm, 1.0)
        assert sol.norm**2 - sol.lower**2 <= 1e-10 * max(sol.norm**2, 1.0)
        if i in (1, 2):  # a couple against cvxpy (0.2 s each; not the root, whose optimum ~1e-8
            # is beyond an interior-point method's reach: sqrt(gap))
            _check_against(solve_reference(qp, tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11), sol, qp, 1e-7)


@pytest.mark.parametrize("image", [2, 31])
def test_a_start_point_changes_only_the_rounds(n1, test_split, image):
    """Started from the root's minimiser (what a child gets from its parent) or from a random
    point, every node ends at the cold start's optimum; from the parent in fewer rounds."""
    problems = _random_nodes(n1, test_split.x(image), np.random.default_rng(image), 10)
    root = solve_node(problems[0].qp, problems[0].basis)
    rng = np.random.default_rng(0)
    rounds = {"cold": 0, "parent": 0}
    for problem in problems[1:]:
        qp = problem.qp
        cold = {}
        ref = solve_node(qp, problem.basis, info=cold)
        rounds["cold"] += cold["rounds"]
        for name, start in (("parent", root.v), ("random", rng.uniform(qp.lo, qp.hi))):
            info = {}
            sol = solve_node(qp, problem.basis, info=info, start=start)
            _check_against(ref, sol, qp, 1e-7)
            if name == "parent":
                assert not info["fallback"], info
                rounds["parent"] += info["rounds"]
    assert rounds["parent"] < rounds["cold"], rounds


@pytest.mark.parametrize("shift", [200.0, 1e4])
def test_infeasible_mnist_nodes_are_certified(n2, test_split, shift):
    """f_t - f_c >= shift: beyond the relaxation of some nodes (200: found by the first reduced
    problem, or by the multipliers of a later one) or of all (1e4)."""
    rng = np.random.default_rng(0)
    seen = set()
    for problem in _random_nodes(n2, test_split.x(5), rng, 3):
        qp = problem.qp
        b = qp.b.copy()
        b[-1] -= shift
        bad = BoxQP(qp.A, b, qp.lo, qp.hi, qp.n)
        info = {}
        sol = solve_node(bad, problem.basis, info=info)
        assert not info["fallback"], info
        assert sol.status == solve_daqp(bad).status  # DAQP, then Clarabel's certificate
        if sol.status == "infeasible":
            assert np.isinf(sol.lower) and certifies_infeasible(bad, sol.lam)
            seen.add(info["how"])
    assert seen == ({"reduced infeasible", "infeasible"} if shift == 200 else {"reduced infeasible"})


def test_region_qp_without_relaxed_relus(n1, test_split):
    """No h variables (every ReLU fixed): the reduced problem is DAQP on y alone."""
    x = test_split.x(0)
    c = int(n1.predict(x))
    bb = BranchAndBound(n1, x, c)
    pattern = [np.where(s == NeuronState.FREE, np.where(n1.pre_activations(x)[k] > 0, NeuronState.ACTIVE,
                                                          NeuronState.INACTIVE), s).astype(np.int8)
               for k, s in enumerate(bb.root)]
    problem = node_qp(n1, x, c, (c + 1) % 10, bb.bounds, pattern, bb.box)
    assert problem.qp.A.shape[1] == x.size
    _check_against(solve_reference(problem.qp, **TIGHT), solve_node(problem.qp, problem.basis), problem.qp, 1e-7)
