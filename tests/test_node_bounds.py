"""Every node bound of the branch-and-bound against brute force over the node's activation
patterns on tiny networks: a bound may never exceed the node's true optimum."""

import cvxpy as cp
import numpy as np
import pytest
from bruteforce import brute_force, node_optimum

from minadv.verify import Domain, NeuronState, QPStatus
from minadv.verify.bounds import Multipliers, support_ball_box, under_fixings
from minadv.verify.exact import BranchAndBound, NodeBounds
from minadv.verify.exact.incumbent import Incumbent
from minadv.verify.exact.relaxation import node_qp
from minadv.verify.qp.reference import solve_lp

from helpers import random_net

TINY = [(5, 6, 3), (4, 8, 3), (6, 4, 4, 3), (5, 3, 3, 3)]


def _random_nodes(seed, count, radius=np.inf, node_bounds=NodeBounds.FIXINGS):
    """A tiny instance's search object and random nodes (target, states) below its root."""
    sizes = TINY[seed % len(TINY)]
    net = random_net(sizes, seed=seed, scale=2.0)
    rng = np.random.default_rng(200 + seed)
    x = rng.random(sizes[0])
    c = int(net.predict(x))
    bb = BranchAndBound(net, x, c, radius=radius, node_bounds=node_bounds)
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


def _socp(q, q0, lo, hi, r, P=None, p0=None):
    """max q.delta + q0 over lo <= delta <= hi, ||delta||_2 <= r, P delta + p0 <= 0 (Clarabel)."""
    d = cp.Variable(len(q))
    cons = [d >= lo, d <= hi, cp.norm(d) <= r]
    if P is not None and len(P):
        cons.append(P @ d + p0 <= 0)
    prob = cp.Problem(cp.Maximize(q @ d + q0), cons)
    prob.solve(solver=cp.CLARABEL)
    return prob.value if prob.status == cp.OPTIMAL else -np.inf  # infeasible: the max is -inf


@pytest.mark.parametrize("seed", range(4))
def test_support_over_box_cap_ball_is_the_exact_maximum(seed):
    """Never below the SOCP's maximum (a valid bound), and equal to it to 1e-6; the maximiser
    lies in box cap ball. Rows with zeros, a radius past the box's corner, and tiny radii."""
    rng = np.random.default_rng(seed)
    n = 12
    x = rng.random(n)
    x[:3] = 0.0  # pixels at the box's edge: lo = 0
    Q = rng.normal(size=(8, n))
    Q[1, :6] = 0.0
    Q[2] = 0.0
    for r in (1e-3, 0.3, 1.0, 10.0):
        value, t = support_ball_box(Q, -x, 1 - x, r)
        assert np.all(np.linalg.norm(t, axis=1) <= r * (1 + 1e-9)) and np.all(t >= -x) and np.all(t <= 1 - x)
        for q, v in zip(Q, value, strict=True):
            exact = _socp(q, 0.0, -x, 1 - x, r)
            assert exact - 1e-7 <= v <= exact + 1e-6


def _fixing_instance(seed):
    """A first layer (8 neurons on 6 inputs), an image, a radius and random fixings that keep a
    point of the ball: the node's half-spaces s_i g_i <= 0 hold at a point of box cap ball."""
    rng = np.random.default_rng(300 + seed)
    W, b = rng.normal(size=(8, 6)), rng.normal(0, 0.3, 8)
    x = rng.random(6)
    r = float(rng.uniform(0.2, 1.0))
    z = np.clip(x + rng.normal(size=6) * r / 3, 0, 1)
    z = x + (z - x) * min(1.0, r / max(np.linalg.norm(z - x), 1e-12))
    g = W @ z + b
    order = rng.permutation(8)
    fixed, free = np.sort(order[:3]), np.sort(order[3:])
    signs = np.where(g[fixed] <= 0, 1.0, -1.0)  # each fixing true at z: the node is not empty
    return W, W @ x + b, x, r, free, fixed, signs


@pytest.mark.parametrize("seed", range(6))
def test_first_layer_bounds_under_fixings_hold_for_any_multipliers(seed):
    """The free neurons' bounds contain every sampled point of box cap ball cap the fixings and
    are never tighter than the exact SOCP bounds, from beta = 0, after Adam steps, and from
    random multipliers (weak duality: every beta >= 0 gives a valid bound); Adam steps come
    within 2% of the exact width."""
    W, c, x, r, free, fixed, signs = _fixing_instance(seed)
    dom = Domain(x, 2.0, r)
    P, p0 = signs[:, None] * W[fixed], signs * c[fixed]
    exact_hi = np.array([_socp(W[j], c[j], -x, 1 - x, r, P, p0) for j in free])
    exact_lo = -np.array([_socp(-W[j], -c[j], -x, 1 - x, r, P, p0) for j in free])
    rng = np.random.default_rng(seed)
    delta = rng.normal(size=(20000, 6)) * rng.uniform(0, 1, (20000, 1)) * r
    delta = np.clip(x + delta, 0, 1) - x
    delta = delta[(np.linalg.norm(delta, axis=1) <= r) & np.all(delta @ P.T + p0 <= 0, axis=1)]
    assert len(delta) > 10
    g = delta @ W[free].T + c[free]
    random_start = Multipliers(free, fixed, rng.exponential(1.0, (2 * len(free), len(fixed))))
    for start, iters in ((None, 0), (None, 30), (random_start, 0), (random_start, 5)):
        lo, hi, _ = under_fixings(W, c, dom, free, fixed, signs, start, iters)
        assert np.all(lo <= g.min(axis=0) + 1e-9) and np.all(hi >= g.max(axis=0) - 1e-9)
        assert np.all(lo <= exact_lo + 1e-7) and np.all(hi >= exact_hi - 1e-7)
    lo, hi, _ = under_fixings(W, c, dom, free, fixed, signs, None, 30)
    assert np.all(hi - lo <= 1.02 * (exact_hi - exact_lo) + 1e-6)


def test_multipliers_carry_over_to_a_descendant_by_neuron():
    """A child's start takes the parent's beta of the neurons free / fixed in both, 0 for the rest."""
    beta = np.arange(12.0).reshape(6, 2)  # parent: free 1, 4, 7 (upper rows, then lower), fixed 0, 5
    start = Multipliers(np.array([1, 4, 7]), np.array([0, 5]), beta).start(np.array([4, 7, 8]), np.array([0, 1, 5]))
    expect = np.zeros((6, 3))
    expect[0, [0, 2]], expect[1, [0, 2]] = beta[1], beta[2]  # upper rows of 4, 7
    expect[3, [0, 2]], expect[4, [0, 2]] = beta[4], beta[5]  # lower rows of 4, 7
    assert np.array_equal(start, expect)


def _nested_nodes(seed, scale, node_bounds=NodeBounds.FIXINGS):
    """A tiny instance with an incumbent value U = scale x its optimum, and pairs (parent, child)
    of random nodes, the child's fixings a superset of the parent's; None when not adversarial."""
    net, x, c, bb, nodes = _random_nodes(seed, 6, node_bounds=node_bounds)
    truth, point = brute_force(net, x)
    if point is None:
        return None
    bb.inc = Incumbent(scale * truth, point, 0)  # only the value matters to the bounds
    rng = np.random.default_rng(seed)
    pairs = []
    for t, states in nodes:
        parent_states = [np.where(rng.random(len(s)) < 0.5, s, r) for s, r in zip(states, bb.root, strict=True)]
        pairs.append((t, parent_states, states))
    return net, x, c, bb, pairs


@pytest.mark.parametrize("node_bounds", [NodeBounds.FIXINGS, NodeBounds.CHORDS])
@pytest.mark.parametrize("scale", [0.9, 1.3])
@pytest.mark.parametrize("seed", range(8))
def test_tightened_node_bounds_never_exceed_the_node_optimum_below_an_incumbent(seed, scale, node_bounds):
    """With an incumbent U the node's first-layer bounds hold on box cap ball(U) cap its fixings:
    min(bound, U) <= the node's optimum (any U: a node optimum below U lies in the ball), for a
    node and for its child, which starts from the parent's bounds and multipliers (CHORDS: the
    child tightens only the neurons binding at the parent's solution)."""
    instance = _nested_nodes(seed, scale, node_bounds)
    if instance is None:
        pytest.skip("no adversarial point")
    net, x, c, bb, pairs = instance
    for t, parent_states, states in pairs:
        parent = bb._solve_node(t, parent_states, None)
        checks = [(parent, parent_states)]
        if parent is not None:
            checks.append((bb._solve_node(t, states, parent), states))
        for node, s in checks:
            assert min(np.inf if node is None else node.bound, bb.inc.value) <= node_optimum(net, x, c, t, s) + 1e-9


def test_fixings_tighten_node_bounds():
    """The tightening acts: on the tiny instances some node's first-layer bounds are strictly
    inside the root's (so the tests above exercise it)."""
    tighter = 0
    for seed in range(8):
        instance = _nested_nodes(seed, 1.3)
        if instance is None:
            continue
        _, _, _, bb, pairs = instance
        for t, _, states in pairs:
            node = bb._solve_node(t, states, None)
            if node is not None:
                tighter += int(np.sum(node.bounds.upper[0] < bb.bounds.upper[0] - 1e-9)
                               + np.sum(node.bounds.lower[0] > bb.bounds.lower[0] + 1e-9))
    assert tighter > 0


def test_root_node_bounds_keep_the_root_bounds():
    """NodeBounds.ROOT (the old path): every node's bounds are the root's."""
    net, x, c, _, nodes = _random_nodes(1, 4)
    bb = BranchAndBound(net, x, c, radius=0.5, node_bounds=NodeBounds.ROOT)
    for t, states in nodes:
        node = bb._solve_node(t, states, None)
        assert node is None or node.bounds is bb.bounds


def test_auto_tightens_node_bounds_only_for_many_unstable_first_layer_relus():
    """NodeBounds.AUTO: CHORDS at AUTO_UNSTABLE or more unstable first-layer ReLUs, ROOT below."""
    from minadv.verify.exact.bnb import AUTO_UNSTABLE

    for hidden in (6, 2 * AUTO_UNSTABLE):
        net = random_net((5, hidden, 3), seed=hidden, scale=2.0)
        x = np.random.default_rng(hidden).random(5)
        bb = BranchAndBound(net, x, int(net.predict(x)))
        many = bb.bounds.unstable[0].sum() >= AUTO_UNSTABLE
        assert many == (hidden > AUTO_UNSTABLE)  # the whole box: most neurons unstable
        assert bb.node_bounds == (NodeBounds.CHORDS if many else NodeBounds.ROOT)


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
        warm_problem, warm = bb.lps.solve(t, states, root[1])
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


@pytest.mark.parametrize("norm", [2.0, np.inf])
def test_queued_nodes_do_not_keep_their_problems(norm):
    """A node problem (dense rows: MBs at 100-200 unstable ReLUs) lives only while its node is
    solved and split: a search whose queue grows holds at most a split's few problems at once,
    and still ends at the other exact scheme's optimum."""
    import weakref

    from minadv.verify import Status
    from minadv.verify.exact import minimal_perturbation

    net = random_net((8, 24, 24, 3), seed=5, scale=2.0)
    x = np.random.default_rng(5).random(8)
    c = int(net.predict(x))
    problems, alive = [], []

    def record(node):
        alive.append(sum(ref() is not None for ref in problems))
        problems.append(weakref.ref(node.problem))

    bb = BranchAndBound(net, x, c, norm, on_node=record)
    lower, _ = bb.run()
    assert len(problems) > 30 and max(alive) <= 3, (len(problems), max(alive))
    mip = minimal_perturbation(net, x, norm, method="mip", time_limit=120)  # the other exact scheme
    assert mip.status == Status.OPTIMAL and bb.inc.value == pytest.approx(mip.value, rel=1e-4)
    assert lower == pytest.approx(mip.value, rel=1e-4)
