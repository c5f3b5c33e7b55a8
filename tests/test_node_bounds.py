"""Every node bound of the branch-and-bound against brute force over the node's activation
patterns on tiny networks: a bound may never exceed the node's true optimum."""

import numpy as np
import pytest
from bruteforce import node_optimum

from minadv.verify import NeuronState
from minadv.verify.exact import BranchAndBound

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
