"""Every node bound of the branch-and-bound against brute force over the node's activation
patterns on tiny networks: a bound may never exceed the node's true optimum."""

import numpy as np
import pytest
from bruteforce import node_optimum

from minadv.verify import NeuronState, QPStatus
from minadv.verify.exact import BranchAndBound
from minadv.verify.exact.relaxation import node_qp
from minadv.verify.qp.reference import solve_lp

from helpers import random_net

TINY = [(5, 6, 3), (4, 8, 3), (6, 4, 4, 3), (5, 3, 3, 3)]


def _random_nodes(seed, count, radius=np.inf):
    """A tiny instance's search object and random nodes (target, states) below its root."""
    sizes = TINY[seed % len(TINY)]
    net = random_net(sizes, seed=seed, scale=2.0)
    rng = np.random.default_rng(200 + seed)
    x = rng.random(sizes[0])
    c = int(net.predict(x))
    bb = BranchAndBound(net, x, c, radius=radius)
    nodes = []
    for _ in range(count):
        states = [s.copy() for s in bb.root]
        for s in states:
            free = np.flatnonzero(s == NeuronState.FREE)
            fix = free[rng.random(len(free)) < 0.5]
            s[fix] = np.where(rng.integers(0, 2, len(fix)) == 1, NeuronState.ACTIVE, NeuronState.INACTIVE)
        nodes.append((int(rng.choice(bb.targets)), states))
    return net, x, c, bb, nodes


@pytest.mark.parametrize("radius", [np.inf, 0.3])
@pytest.mark.parametrize("seed", range(8))
def test_node_qp_bound_never_exceeds_the_node_optimum(seed, radius):
    """min(bound, radius) <= the node's optimum: the root bounds hold on the ball of the radius,
    so a node whose optimum lies beyond it may be bounded by anything above the radius."""
    net, x, c, bb, nodes = _random_nodes(seed, 6, radius)
    for t, states in nodes:
        root = bb._solve_node(t, [s.copy() for s in bb.root], None)
        truth = node_optimum(net, x, c, t, states)
        for parent in (None, root):  # a parent: its bound inherited, its point the QP's start
            node = bb._solve_node(t, states, parent)
            bound = np.inf if node is None else node.bound
            assert min(bound, radius) <= truth + 1e-9


@pytest.mark.parametrize("radius", [np.inf, 0.3])
@pytest.mark.parametrize("norm", [1.0, np.inf])
@pytest.mark.parametrize("seed", range(8))
def test_node_lp_bound_never_exceeds_the_node_optimum(seed, norm, radius):
    """The L1 / Linf node LPs (`exact.lpnodes`, fixings as bounds, started from the parent's
    basis or from scratch): min(bound, radius) <= the node's optimum by brute force."""
    net, x, c, _, nodes = _random_nodes(seed, 6)
    bb = BranchAndBound(net, x, c, norm, radius=radius)
    for t, states in nodes:
        root = bb._solve_node(t, [s.copy() for s in bb.root], None)
        truth = node_optimum(net, x, c, t, states, p=norm)
        for parent in (None, root):
            node = bb._solve_node(t, states, parent)
            bound = np.inf if node is None else node.bound
            assert min(bound, radius) <= truth + 1e-9


@pytest.mark.parametrize("norm", [1.0, np.inf])
@pytest.mark.parametrize("seed", range(8))
def test_warm_started_node_lp_equals_the_cold_one(seed, norm):
    """A node LP started from another node's basis (the model's bounds changed in between)
    ends where the same LP from scratch ends, and never below `node_qp`'s LP (the same
    relaxation with fixings as removed columns)."""
    net, x, c, _, nodes = _random_nodes(seed, 6)
    bb = BranchAndBound(net, x, c, norm)
    for t, states in nodes:
        states = bb._merge(states)
        root = bb.lps.solve(t, [s.copy() for s in bb.root])
        warm_problem, warm = bb.lps.solve(t, states, root)
        cold_problem, cold = bb.lps.solve(t, states)
        assert warm.status == cold.status
        assert np.array_equal(warm_problem.qp.b, cold_problem.qp.b)
        old = solve_lp(node_qp(net, x, c, t, bb.bounds, states, bb.box).qp, norm)
        if cold.status == QPStatus.OPTIMAL:
            assert warm.norm == pytest.approx(cold.norm, rel=1e-7, abs=1e-9)
            assert warm.lower == pytest.approx(cold.lower, rel=1e-7, abs=1e-9)
            assert cold_problem.qp.violation(warm.v) <= 1e-7
            assert old.status == QPStatus.OPTIMAL and cold.lower >= old.lower - 1e-7
        else:
            assert old.status == QPStatus.INFEASIBLE
