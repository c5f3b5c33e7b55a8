"""Exact minimal perturbation by best-first branch-and-bound over ReLU splits.

Problem (1): min ||delta||_p s.t. x + delta in [0,1]^d and f_t(x+delta) >= f_c(x+delta)
for some t != c. One queue holds nodes (t, partial activation pattern) of every target and
shares one incumbent U (a verified adversarial point). A node's bound is the node problem of
`exact.relaxation.node_qp` (triangle relaxation of its free ReLUs; a QP for p = 2 solved by
`qp.reduced.solve_node` on a reduced problem of ~75 variables; for p = 1, inf the same relaxation
as an LP in `exact.lpnodes`: one HiGHS model per target, each node started from its parent's basis),
certified by the explicit Lagrangian dual at the solver's multipliers (`qp.norm_dual_bound`). The
search stops when the smallest open bound L satisfies U - L <= rel_gap * U.

Incumbents: every node point x + delta* has a real activation pattern; problem (3) on that
region (the node problem with every ReLU fixed to the point's pattern, solved like a node)
gives a verified adversarial point (each region and target once).
Domain: ||delta||_p <= radius (default: the whole box); nodes are pruned against min(U, radius).
Bounds: first layer exact over box cap ball of radius U, later layers by back-substitution;
recomputed when U has shrunk by `retighten` (smaller ball, more stable ReLUs). Per node
(`NodeBounds`, p = 2): the free first-layer neurons' bounds over box cap ball(min(U, radius))
cap the node's fixed first-layer half-spaces, by the Lagrangian dual of `bounds.under_fixings`
(valid for any multipliers; a child starts from its parent's bounds and multipliers), the
neurons they make stable fixed. Nodes only need points inside that ball, so a bound that fails
beyond it costs nothing: the final lower bound is capped at U.
Branching: the free ReLU whose chord row carries the largest multiplier times the triangle's
height u(-l)/(u-l); if no chord row is active, the largest relaxation violation h - relu(g).

Hand-over (`Finish.DECIDE`, p = 2): after `decide_after` seconds (and once there is an incumbent
or a finite radius) the open nodes go to the split search (`splits.SplitSearch`: batched
beta-CROWN bounds over box cap ball, 25-35x the QP's node rate on S2), which decides per target
whether any point of its nodes with ||delta||_2 <= r = U (1 - 0.99 rel_gap) is adversarial.
Every target safe: no adversarial point within r, so r is the lower bound and U is optimal to
rel_gap. A point found (float64-checked, norm <= r < U) becomes the incumbent (with problem (3)
on its region), and the targets not yet safe are decided again at the smaller r; targets proven
safe stay safe (their nodes hold no point within the larger r). When the time runs out, the
lower bound is the smallest QP bound of the nodes of the targets not proven safe.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from ..bounds import Bounds, Multipliers, crown, under_fixings
from ..domain import Domain
from ..network import NeuronState, ReluNetwork
from ..qp import QPSolution, QPStatus, patterns, solve_node, solve_norm
from ..result import Counts, Stop
from ..splits import SplitSearch, TargetVerdict
from .incumbent import Incumbent, improve
from .lpnodes import NodeLPs
from .relaxation import NodeQP, node_qp, root_states

ACTIVE, INACTIVE, FREE = NeuronState.ACTIVE, NeuronState.INACTIVE, NeuronState.FREE
# NodeBounds.AUTO's switch: the per-node tightening paid on S1 (784-100-10, 44-100 unstable
# first-layer ReLUs at the first incumbent) and cost time on N1 (3-34): docs/performance-log.md
AUTO_UNSTABLE = 40


def merged(root: list[np.ndarray], states: list[np.ndarray]) -> list[np.ndarray] | None:
    """A node's fixings on top of the root states (stable neurons may have grown as the radius
    shrank); None when a fixing contradicts a root state: no point of the node lies in the ball."""
    if any(((r != FREE) & (s != FREE) & (r != s)).any() for r, s in zip(root, states, strict=True)):
        return None
    return [np.where(r != FREE, r, s) for r, s in zip(root, states, strict=True)]


@dataclass(order=True)
class Node:
    bound: float  # lower bound on ||delta||_2 over the node
    seq: int
    target: int = field(compare=False)
    states: list[np.ndarray] = field(compare=False)
    # the node problem, dropped once the node is queued: its dense rows take 1-7 MB at 60-200
    # unstable ReLUs, and S1 / S3 searches of a few thousand queued nodes ran out of 24 GB with them
    problem: NodeQP | None = field(compare=False)
    sol: QPSolution = field(compare=False)
    bounds: Bounds = field(compare=False)  # the bounds of its relaxation (see `NodeBounds`)
    duals: Multipliers | None = field(compare=False, default=None)  # their multipliers (`NodeBounds.FIXINGS`)
    # set when queued, from the problem: its free ReLUs (layer, neuron), best branching score
    # first, and the first-layer ones whose chord row binds its bound (`NodeBounds.CHORDS`)
    split: list[tuple[int, int]] = field(compare=False, default_factory=list)
    binding: np.ndarray | None = field(compare=False, default=None)


class NodeSolver(StrEnum):
    """How the node QPs are solved for p = 2 (other norms always use `solve_norm`)."""

    REDUCED = "reduced"  # `qp.solve_node` on the small reduced problem (the default)
    DAQP = "daqp"  # `qp.solve_norm`: DAQP on the full problem, the reference it was measured against


class NodeBounds(StrEnum):
    """The first-layer bounds of a node's relaxation (p = 2; other norms always take the root's)."""

    AUTO = "auto"  # CHORDS when the root leaves at least AUTO_UNSTABLE first-layer ReLUs unstable, else ROOT
    ROOT = "root"  # the root's: exact over box cap ball(min(U, radius))
    FIXINGS = "fixings"  # per node, the free neurons' bounds over box cap ball cap the node's fixed
    #                      half-spaces by their Lagrangian dual (`bounds.under_fixings`)
    CHORDS = "chords"  # the same for the free neurons whose chord row carries a positive multiplier
    #                    at the parent's QP solution (those that bind the parent's bound)


class Finish(StrEnum):
    """How the search ends (p = 2; other norms always take QP)."""

    QP = "qp"  # best-first QP nodes to the end
    DECIDE = "decide"  # after `decide_after` seconds, the open nodes decided at the incumbent's radius by
    #                    the split search (module docstring)


class Branching(StrEnum):
    """Which unstable neuron a node is split on."""

    DUAL = "dual"  # largest dual-weighted effect on the node's bound (the default)
    VIOLATION = "violation"  # largest violation of the relaxed ReLU at the node's point


class BranchAndBound:
    """One exact L2 search for image x of class c; `run` returns (lower bound, why it stopped),
    the incumbent is in `inc`. `on_node`, when given, sees every node solved (benchmarks record
    the node QPs through it)."""

    def __init__(self, net: ReluNetwork, x: np.ndarray, c: int, p: float = 2.0, *, targets=None,
                 incumbent: Incumbent | None = None, radius: float = np.inf, rel_gap: float = 1e-4,
                 retighten: float = 0.02, branching: Branching = Branching.DUAL, strong: int = 1,
                 node_solver: NodeSolver = NodeSolver.REDUCED, node_bounds: NodeBounds = NodeBounds.AUTO,
                 dual_iters: int = 1, finish: Finish = Finish.QP, decide_after: float = 30.0,
                 on_node: Callable[[Node], None] | None = None):
        self.net, self.x, self.c = net, x, c
        self.node_solver, self.on_node = NodeSolver(node_solver), on_node
        self.dual_iters = dual_iters  # projected Adam steps on the multipliers per node
        self.finish = Finish(finish) if p == 2 else Finish.QP
        self.decide_after = decide_after  # seconds of QP nodes before `Finish.DECIDE` hands over
        self.split_nodes = 0  # nodes bounded by the split search
        self.targets = net.other_classes(c) if targets is None else list(targets)
        self.inc = incumbent or Incumbent()
        self.radius = radius  # the domain: ||delta|| <= radius (inf: the whole box)
        self.p, self.rel_gap, self.retighten = p, rel_gap, retighten
        self.branching, self.strong = Branching(branching), strong  # score rule; candidates tried per split
        self.counts = Counts()
        self.seen: set[tuple[int, bytes]] = set()
        self.seq = itertools.count()
        self.pruned_min = np.inf  # smallest bound of a node pruned against the incumbent
        self._tighten()
        self.node_bounds = NodeBounds(node_bounds) if p == 2 else NodeBounds.ROOT
        if self.node_bounds == NodeBounds.AUTO:
            many = self.bounds.unstable[0].sum() >= AUTO_UNSTABLE
            self.node_bounds = NodeBounds.CHORDS if many else NodeBounds.ROOT

    # --- bounds ----------------------------------------------------------------------
    def _tighten(self) -> None:
        self.bound_radius = min(self.inc.value, self.radius)
        dom = Domain(self.x, self.p, self.bound_radius)
        self.bounds = crown(self.net, dom)
        self.box = (dom.delta_lo, dom.delta_hi)
        self.root = root_states(self.bounds)
        self.counts.unstable = self.bounds.n_unstable
        self.lps = None if self.p == 2 else NodeLPs(self.net, self.x, self.c, self.bounds, self.root, self.box, self.p)

    def _merge(self, states: list[np.ndarray]) -> list[np.ndarray] | None:
        return merged(self.root, states)

    def _node_bounds(self, states: list[np.ndarray], parent: Node | None):
        """(bounds, states, multipliers) of a node: the root bounds, with `NodeBounds.FIXINGS` the
        first layer's tightened under the node's fixed first-layer neurons over box cap
        ball(min(U, radius)) (a parent's bounds, valid on a superset, intersected in), the free
        neurons they make stable fixed; None when a lower bound passes an upper one: no point of
        the node beats the incumbent or lies in the domain. Nodes only need points in that ball,
        so the bounds need not hold beyond it (as the root's)."""
        bounds = self.bounds if parent is None else self.bounds.intersect(parent.bounds)
        r = min(self.inc.value, self.radius)
        s = states[0]
        fixed = np.flatnonzero((self.root[0] == FREE) & (s != FREE))
        if self.node_bounds == NodeBounds.ROOT or not np.isfinite(r) or not fixed.size:
            return bounds, states, None
        free = np.flatnonzero(s == FREE)
        if self.node_bounds == NodeBounds.CHORDS and parent is not None and parent.binding is not None:
            free = free[np.isin(free, parent.binding)]
            if not free.size:
                return bounds, states, parent.duals
        W = self.net.weights[0]
        lo, hi, duals = under_fixings(W, W @ self.x + self.net.biases[0], Domain(self.x, 2.0, r), free, fixed,
                                      np.where(s[fixed] == INACTIVE, 1.0, -1.0),
                                      parent.duals if parent is not None else None, self.dual_iters)
        lower, upper = bounds.lower[0].copy(), bounds.upper[0].copy()
        lower[free], upper[free] = np.maximum(lower[free], lo), np.minimum(upper[free], hi)
        if (lower[free] > upper[free]).any():
            return None
        s = s.copy()
        s[free] = np.where(lower[free] >= 0, ACTIVE, np.where(upper[free] <= 0, INACTIVE, FREE))
        return Bounds((lower, *bounds.lower[1:]), (upper, *bounds.upper[1:])), [s, *states[1:]], duals

    # --- incumbents ------------------------------------------------------------------
    def offer(self, point: np.ndarray, t_hint: int) -> None:
        """Take a candidate point if it passes the float64 check and beats the incumbent."""
        self.inc = improve(self.net, self.x, self.c, self.p, self.inc, point, self.radius)
        if self.inc.value < (1 - self.retighten) * self.bound_radius:
            self._tighten()

    def _region_qp(self, point: np.ndarray, t: int, start: Node) -> None:
        """Problem (3) for target t on the region of `point` (each region and target once);
        start: the node whose point it is (see `_solve_qp`). p = 1, inf: the node LP with every
        ReLU fixed, skipped where the region contradicts a root-stable ReLU (then it does not
        meet the ball the root bounds hold on, whose radius is at least the incumbent's), and
        stopped by the simplex once its bound passes the incumbent's value (HiGHS's objective
        bound: such a region cannot give a better incumbent)."""
        active = patterns(self.net, point)
        key = (t, np.packbits(active.numpy()).tobytes())
        if key in self.seen:
            return
        self.seen.add(key)
        self.counts.regions += 1
        self.counts.qp_solves += 1
        states = np.split(np.where(active.numpy()[0], ACTIVE, INACTIVE).astype(np.int8),
                          np.cumsum(self.net.hidden_sizes)[:-1])
        if self.lps is not None:
            states = self._merge(states)
            if states is None:
                return
            # cut off at the incumbent: a region whose minimum cannot beat it is of no use here
            _, sol = self.lps.solve(t, states, start.sol, cutoff=self.inc.value)
        else:
            sol = self._solve_qp(node_qp(self.net, self.x, self.c, t, self.bounds, states, self.box), start.sol)
        if sol.status == QPStatus.OPTIMAL:
            self.offer(self.x + sol.v[: self.net.n_inputs], t)

    # --- nodes -----------------------------------------------------------------------
    def _threshold(self) -> float:
        return min(self.inc.value * (1 - self.rel_gap), self.radius)

    def _prune(self, bound: float) -> bool:
        """True when a node with this bound cannot improve the incumbent by more than the gap;
        the smallest such bound is kept: it is part of the final lower bound."""
        if bound < self._threshold():
            return False
        self.pruned_min = min(self.pruned_min, bound)
        self.counts.pruned += 1
        return True

    def _solve_qp(self, problem: NodeQP, start: QPSolution | None = None) -> QPSolution:
        """The node problem's solution; p = 2 "reduced": the pixels at a bound of `start`'s
        point (a parent's, a node's) are the solver's first guess of those at a bound."""
        if self.p == 2 and self.node_solver == NodeSolver.REDUCED:
            warm = start.v if start is not None and start.status == QPStatus.OPTIMAL else None
            return solve_node(problem.qp, problem.basis, start=warm)
        return solve_norm(problem.qp, self.p)

    def _solve_node(self, t: int, states: list[np.ndarray], parent: Node | None) -> Node | None:
        """The node's QP bound (None: infeasible, or contradicted by the root bounds)."""
        states = self._merge(states)
        if states is None:
            return None
        tightened = self._node_bounds(states, parent)
        if tightened is None:
            return None
        bounds, states, duals = tightened
        if self.lps is not None:  # p != 2: NodeBounds.ROOT, the models' root bounds
            problem, sol = self.lps.solve(t, states, parent.sol if parent else None, cutoff=self._threshold())
        else:
            problem = node_qp(self.net, self.x, self.c, t, bounds, states, self.box)
            sol = self._solve_qp(problem, parent.sol if parent else None)
        self.counts.qp_solves += 1
        self.counts.nodes += 1
        if sol.status == QPStatus.INFEASIBLE:
            return None
        inherited = parent.bound if parent else 0.0
        bound = max(sol.lower, inherited) if sol.status in (QPStatus.OPTIMAL, QPStatus.CUTOFF) else inherited
        node = Node(bound, next(self.seq), t, states, problem, sol, bounds, duals)
        if self.on_node is not None:
            self.on_node(node)
        return node

    def _accept(self, node: Node) -> bool:
        """Search the node's point for incumbents; False when the node can be pruned. A node
        accepted keeps what its split and children need (`Node.split`, `Node.binding`), not
        its problem."""
        if self._prune(node.bound):
            return False
        if node.sol.status == QPStatus.OPTIMAL:
            point = self.x + node.sol.v[: self.net.n_inputs]
            self.offer(point, node.target)
            self._region_qp(point, node.target, node)
        if self._prune(node.bound):
            return False
        problem = node.problem
        node.split = [problem.free[i] for i in np.argsort(-self._scores(node), kind="stable")]
        if node.sol.status == QPStatus.OPTIMAL:
            lam = node.sol.lam[problem.upper_rows]
            node.binding = np.array([j for (k, j), m in zip(problem.free, lam, strict=True) if k == 0 and m > 0],
                                    dtype=int)
        node.problem = None
        return True

    def _scores(self, node: Node) -> np.ndarray:
        """Branching scores of the node's free ReLUs (see module docstring)."""
        free = node.problem.free
        if node.sol.status != QPStatus.OPTIMAL:
            return np.arange(len(free), 0, -1, dtype=float)
        v = node.sol.v
        g = np.array([node.problem.pre[k][0][j] @ v + node.problem.pre[k][1][j] for k, j in free])
        violation = node.problem.outputs(v) - np.maximum(g, 0.0)
        if self.branching == Branching.VIOLATION:
            return violation
        l = np.array([node.bounds.lower[k][j] for k, j in free])
        u = np.array([node.bounds.upper[k][j] for k, j in free])
        lam = np.maximum(node.sol.lam[node.problem.upper_rows], 0.0)
        score = lam * u * np.maximum(-l, 0) / np.maximum(u - l, 1e-12)
        return score if score.max() > 0 else violation

    def _split(self, node: Node, neuron: tuple[int, int]) -> list[Node | None]:
        k, j = neuron
        kids = []
        for state in (INACTIVE, ACTIVE):
            states = [s.copy() for s in node.states]
            states[k][j] = state
            kids.append(self._solve_node(node.target, states, node))
        return kids

    def _children(self, node: Node) -> list[Node] | None:
        """The accepted children of the best split, or None when no free ReLU is left."""
        if not node.split:
            return None
        tries = self.strong if node.sol.status == QPStatus.OPTIMAL else 1
        best, best_key = None, None
        for neuron in node.split[:tries]:
            kids = self._split(node, neuron)
            bounds = sorted(kid.bound if kid else np.inf for kid in kids)
            key = (bounds[0], bounds[1])
            if best is None or key > best_key:
                best, best_key = kids, key
        return [kid for kid in best if kid is not None and self._accept(kid)]

    # --- search ----------------------------------------------------------------------
    def run(self, time_limit: float = np.inf) -> tuple[float, Stop]:
        """(lower bound, why it stopped): DONE when the queue is empty (every node pruned against
        the incumbent or the radius, or infeasible) or every target decided safe at the hand-over,
        TIME_LIMIT with the smallest open bound."""
        start = time.perf_counter()
        queue: list[Node] = []
        for t in self.targets:
            node = self._solve_node(t, [s.copy() for s in self.root], None)
            if node is not None and self._accept(node):
                heapq.heappush(queue, node)
        stuck = np.inf  # smallest bound of a node that could not be split further
        timed_out = False
        handover = self.decide_after if self.finish == Finish.DECIDE else np.inf
        while queue:
            elapsed = time.perf_counter() - start
            if elapsed > time_limit:
                timed_out = True
                break
            if elapsed > handover and np.isfinite(min(self.inc.value, self.radius)):  # something to decide at
                queue = self._decide(queue, start + time_limit)
                timed_out = bool(queue)
                break
            node = heapq.heappop(queue)
            if self._prune(node.bound):
                continue
            children = self._children(node)
            if children is None:  # a fully fixed node whose QP failed: its bound cannot improve
                stuck = min(stuck, node.bound)
                continue
            for child in children:
                heapq.heappush(queue, child)
        open_bound = min((n.bound for n in queue), default=np.inf)
        lower = min(open_bound, stuck, self.pruned_min, self.inc.value, self.radius)
        return lower, Stop.TIME_LIMIT if timed_out else Stop.DONE

    def _decide(self, queue: list[Node], deadline: float) -> list[Node]:
        """`Finish.DECIDE` (module docstring) until the perf_counter deadline: the nodes of the
        targets not proven safe, [] when all are. A target proven safe at r adds r to the lower
        bound (`pruned_min`): its nodes hold no adversarial point within r."""
        left = {t: [n for n in queue if n.target == t] for t in sorted({n.target for n in queue})}
        while left:
            r = min(self.inc.value * (1 - 0.99 * self.rel_gap), self.radius)
            dom = Domain(self.x, 2.0, r)
            bounds = crown(self.net, dom)
            root = root_states(bounds)
            improved = False
            for t in sorted(left, key=lambda t: min(n.bound for n in left[t])):
                sigma = self._handed_over(left[t], root)
                verdict, point = TargetVerdict.SAFE, None
                if sigma:
                    search = SplitSearch(self.net, dom, bounds, self.c, t)
                    out = search.run(time.time() + deadline - time.perf_counter(), search.nodes(sigma))
                    self.split_nodes += out.nodes
                    verdict, point = out.verdict, out.point
                if verdict == TargetVerdict.SAFE:
                    self.pruned_min = min(self.pruned_min, r)
                    del left[t]
                    continue
                if verdict == TargetVerdict.SAT:  # a point within r < U: a better incumbent
                    before = self.inc.value
                    self.offer(point, t)
                    self._region_qp(point, t, min(left[t]))
                    improved = self.inc.value < before
                break  # SAT: decide again at the new radius; UNKNOWN: the time ran out
            if not improved:
                break
        return [n for nodes in left.values() for n in nodes]

    @staticmethod
    def _handed_over(nodes: list[Node], root: list[np.ndarray]) -> list[np.ndarray]:
        """The nodes' states merged with the root's at the hand-over radius (`merged`), per
        hidden layer (B, n); [] when no node is left."""
        kept = [st for st in (merged(root, node.states) for node in nodes) if st is not None]
        return [np.stack([st[k] for st in kept]) for k in range(len(root))] if kept else []
