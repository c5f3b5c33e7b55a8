"""Exact minimal L2 perturbation by best-first branch-and-bound over ReLU splits.

Problem (1) for p = 2: min ||delta||_2 s.t. x + delta in [0,1]^d and f_t(x+delta) >= f_c(x+delta)
for some t != c. One queue holds nodes (t, partial activation pattern) of every target and
shares one incumbent U (a verified adversarial point). A node's bound is the node QP of
`relaxation.node_qp` (triangle relaxation of its free ReLUs), certified by the explicit
Lagrangian dual at the solver's multipliers. The search stops when the smallest open bound
L satisfies U - L <= rel_gap * U.

Incumbents: every node point x + delta* has a real activation pattern; problem (3) on that
region (polytope module) gives a verified adversarial point (each region and target once).
Bounds: first layer exact over box cap ball of radius U, later layers by back-substitution;
recomputed when U has shrunk by `retighten` (smaller ball, more stable ReLUs).
Branching: the free ReLU whose chord row carries the largest multiplier times the triangle's
height u(-l)/(u-l); if no chord row is active, the largest relaxation violation h - relu(g).
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from .bounds import crown
from .domain import Domain
from .incumbent import Incumbent, improve
from .network import ReluNetwork
from .polytope import patterns, regions_of_patterns
from .qp import QPSolution, solve_daqp
from .relaxation import NodeQP, node_qp, root_states
from .result import Counts


@dataclass(order=True)
class Node:
    bound: float  # lower bound on ||delta||_2 over the node
    seq: int
    target: int = field(compare=False)
    states: list[np.ndarray] = field(compare=False)
    problem: NodeQP = field(compare=False)
    sol: QPSolution = field(compare=False)


class BranchAndBound:
    """One exact L2 search for image x of class c; `run` returns (lower bound, why it stopped),
    the incumbent is in `inc`."""

    def __init__(self, net: ReluNetwork, x: np.ndarray, c: int, *, targets=None, incumbent: Incumbent | None = None,
                 radius: float = np.inf, rel_gap: float = 1e-4, retighten: float = 0.02, solve=solve_daqp):
        self.net, self.x, self.c = net, x, c
        self.targets = [t for t in range(net.n_outputs) if t != c] if targets is None else list(targets)
        self.inc = incumbent or Incumbent()
        self.radius = radius  # the domain: ||delta|| <= radius (inf: the whole box)
        self.rel_gap, self.retighten, self.solve = rel_gap, retighten, solve
        self.counts = Counts()
        self.seen: set[tuple[int, bytes]] = set()
        self.seq = itertools.count()
        self.pruned_min = np.inf  # smallest bound of a node pruned against the incumbent
        self._tighten()

    # --- bounds ----------------------------------------------------------------------
    def _tighten(self) -> None:
        self.bound_radius = min(self.inc.value, self.radius)
        self.bounds = crown(self.net, Domain(self.x, 2.0, self.bound_radius))
        self.root = root_states(self.bounds)
        self.counts.unstable = self.bounds.n_unstable

    def _merge(self, states: list[np.ndarray]) -> list[np.ndarray] | None:
        """A node's fixings on top of the current root states (stable neurons may have grown);
        None when a fixing contradicts a root state: no point of the node lies in the ball."""
        if any(((r >= 0) & (s >= 0) & (r != s)).any() for r, s in zip(self.root, states)):
            return None
        return [np.where(r >= 0, r, s) for r, s in zip(self.root, states)]

    # --- incumbents ------------------------------------------------------------------
    def offer(self, point: np.ndarray, t_hint: int) -> None:
        """Take a candidate point if it passes the float64 check and beats the incumbent."""
        self.inc = improve(self.net, self.x, self.c, 2.0, self.inc, point)
        if self.inc.value < (1 - self.retighten) * self.bound_radius:
            self._tighten()

    def _region_qp(self, point: np.ndarray, t: int) -> None:
        """Problem (3) for target t on the region of `point` (each region and target once)."""
        active = patterns(self.net, point)
        key = (t, np.packbits(active.numpy()).tobytes())
        if key in self.seen:
            return
        self.seen.add(key)
        self.counts.regions += 1
        self.counts.qp_solves += 1
        sol = self.solve(regions_of_patterns(self.net, active).qp(0, self.x, self.c, t))
        if sol.status == "optimal":
            self.offer(self.x + sol.v, t)

    # --- nodes -----------------------------------------------------------------------
    def _threshold(self) -> float:
        return self.inc.value * (1 - self.rel_gap)

    def _prune(self, bound: float) -> bool:
        """True when a node with this bound cannot improve the incumbent by more than the gap;
        the smallest such bound is kept: it is part of the final lower bound."""
        if bound < self._threshold():
            return False
        self.pruned_min = min(self.pruned_min, bound)
        self.counts.pruned += 1
        return True

    def _evaluate(self, t: int, states: list[np.ndarray], parent: Node | None) -> Node | None:
        states = self._merge(states)
        if states is None:
            return None
        problem = node_qp(self.net, self.x, self.c, t, self.bounds, states)
        sol = self.solve(problem.qp)
        self.counts.qp_solves += 1
        self.counts.nodes += 1
        if sol.status == "infeasible":
            return None
        if sol.status != "optimal":  # keep the node alive on the parent's bound
            bound = parent.bound if parent else 0.0
            return Node(bound, next(self.seq), t, states, problem, sol)
        bound = max(sol.lower, parent.bound if parent else 0.0)
        if self._prune(bound):
            return None
        d = self.net.n_inputs
        self.offer(self.x + sol.v[:d], t)
        self._region_qp(self.x + sol.v[:d], t)
        if self._prune(bound):
            return None
        return Node(bound, next(self.seq), t, states, problem, sol)

    def _branch_neuron(self, node: Node) -> tuple[int, int] | None:
        """The free ReLU to split, or None when no free ReLU is left."""
        free = node.problem.free
        if not free or node.sol.status != "optimal":
            return (free[0] if free else None)
        d = self.net.n_inputs
        v = node.sol.v
        l = np.array([self.bounds.lower[k][j] for k, j in free])
        u = np.array([self.bounds.upper[k][j] for k, j in free])
        lam = np.maximum(node.sol.lam[node.problem.upper_rows], 0.0)
        score = lam * u * np.maximum(-l, 0) / np.maximum(u - l, 1e-12)
        if score.max() <= 0:
            g = np.array([node.problem.pre[k][0][j] @ v + node.problem.pre[k][1][j] for k, j in free])
            score = v[d:] - np.maximum(g, 0.0)
        return free[int(np.argmax(score))]

    # --- search ----------------------------------------------------------------------
    def run(self, time_limit: float = np.inf) -> tuple[float, str]:
        start = time.perf_counter()
        queue: list[Node] = []
        for t in self.targets:
            node = self._evaluate(t, [s.copy() for s in self.root], None)
            if node is not None:
                heapq.heappush(queue, node)
        stuck = np.inf  # smallest bound of a node that could not be split further
        timed_out = False
        while queue:
            if time.perf_counter() - start > time_limit:
                timed_out = True
                break
            node = heapq.heappop(queue)
            if self._prune(node.bound):
                continue
            split = self._branch_neuron(node)
            if split is None:  # a fully fixed node whose QP failed: its bound cannot improve
                stuck = min(stuck, node.bound)
                continue
            k, j = split
            for state in (0, 1):
                states = [s.copy() for s in node.states]
                states[k][j] = state
                child = self._evaluate(node.target, states, node)
                if child is not None:
                    heapq.heappush(queue, child)
        open_bound = min((n.bound for n in queue), default=np.inf)
        lower = min(open_bound, stuck, self.pruned_min, self.inc.value, self.radius)
        return lower, "time_limit" if timed_out else "done"
