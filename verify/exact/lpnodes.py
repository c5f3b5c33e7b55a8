"""The branch and bound's node LPs for p = 1 and inf: one HiGHS model per target, a node's
fixings as bounds, each node started from its parent's basis.

The same relaxation as `relaxation.node_qp`, in a form whose matrix does not depend on the
node. Variables v = (delta, h_j for every unstable ReLU j of the root bounds); stable ReLUs
are substituted as in `node_qp`. Rows, per unstable j (g_j(v) its pre-activation):

    g_j - h_j <= 0,  h_j - slope_j (g_j - l_j) <= 0  (always; slope_j = u_j / (u_j - l_j)),
    h_j - g_j <= 0                                   (only when j is fixed active),

with 0 <= h_j <= u_j, and h_j <= 0 when j is fixed inactive; plus l <= g <= u for layers
>= 2 and f_t - f_c >= 0. Free: the triangle. Inactive: h_j = 0 and g_j <= 0 (and g_j >= l_j).
Active: h_j = g_j with 0 <= g_j (and g_j <= u_j). The rows in brackets hold for every point of
the ball the root bounds were computed on, so the bound stays valid (see `node_qp` on the
first-layer rows) and is never below `node_qp`'s. Why a second form: in `node_qp` a fixing
removes a column and changes the later layers' rows, so a parent's simplex basis does not
fit its child; here a child differs from its parent by one bound (and one row switched on),
the parent's optimal basis stays dual feasible, and dual simplex needs a few pivots.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np

from ..bounds import Bounds
from ..network import NeuronState, ReluNetwork
from ..qp import BoxQP, NormLP, QPSolution
from .relaxation import NodeQP

ACTIVE, INACTIVE, FREE = NeuronState.ACTIVE, NeuronState.INACTIVE, NeuronState.FREE


class TargetLP:
    """The model of one target t (see the module docstring)."""

    tokens = itertools.count()  # each model's number (`token`), never reused

    def __init__(self, net: ReluNetwork, x: np.ndarray, c: int, t: int, bounds: Bounds, root: list[np.ndarray],
                 box: tuple[np.ndarray, np.ndarray], p: float):
        d = net.n_inputs
        self.unstable = [(k, int(j)) for k, s in enumerate(root) for j in np.flatnonzero(s == FREE)]
        self.col = {kj: d + i for i, kj in enumerate(self.unstable)}
        N = d + len(self.unstable)
        rows, rhs, self.pre = [], [], []
        self.lower_row, self.chord_row, self.eq_row = {}, {}, {}
        M = np.zeros((net.weights[0].shape[0], N))
        M[:, :d] = net.weights[0]
        m = net.weights[0] @ x + net.biases[0]
        n_rows = 0
        for k, (s, l, u) in enumerate(zip(root, bounds.lower, bounds.upper, strict=True)):
            self.pre.append((M, m))
            if k > 0:  # l <= g <= u for layers >= 2
                rows += [M, -M]
                rhs += [u - m, m - l]
                n_rows += 2 * len(m)
            H = np.zeros_like(M)
            h0 = np.zeros_like(m)
            on = s == ACTIVE
            H[on], h0[on] = M[on], m[on]
            for j in np.flatnonzero(s == FREE):
                col = self.col[(k, int(j))]
                slope = u[j] / (u[j] - l[j])
                e = np.zeros(N)
                e[col] = 1.0
                rows += [(M[j] - e)[None], (e - slope * M[j])[None], (e - M[j])[None]]
                rhs += [[-m[j]], [slope * (m[j] - l[j])], [m[j]]]
                self.lower_row[(k, int(j))], self.chord_row[(k, int(j))], self.eq_row[(k, int(j))] = (
                    n_rows, n_rows + 1, n_rows + 2)
                n_rows += 3
                H[j] = e
            W, b = net.weights[k + 1], net.biases[k + 1]
            M, m = W @ H, W @ h0 + b
        rows.append((M[c] - M[t])[None])
        rhs.append([m[t] - m[c]])
        self.A = np.vstack(rows)
        self.b = np.concatenate([np.asarray(r, dtype=float) for r in rhs])
        self.lo = np.r_[box[0], np.zeros(len(self.unstable))]
        self.hi = np.r_[box[1], [bounds.upper[k][j] for k, j in self.unstable]]
        self.eq = np.array([self.eq_row[kj] for kj in self.unstable], dtype=int)
        self.token = next(TargetLP.tokens)
        self.d, self.p = d, p
        self.lp = NormLP(self.A, p, box, d)

    def solve(self, states: list[np.ndarray], start=None, cutoff: float = np.inf) -> tuple[NodeQP, QPSolution]:
        """The node of `states` (root-stable neurons as in the root: see `BranchAndBound._merge`);
        start: a HiGHS basis of this model (the second item of a `QPSolution.basis` it returned)
        to start the simplex from; cutoff: see `NormLP.solve`."""
        st = np.array([states[k][j] for k, j in self.unstable], dtype=np.int8)
        b = self.b.copy()
        b[self.eq[st != ACTIVE]] = np.inf
        hi = self.hi.copy()
        hi[self.d + np.flatnonzero(st == INACTIVE)] = 0.0
        sol = self.lp.solve(b, self.lo, hi, start, cutoff)
        # the basis names its model (by a number, so that queued nodes do not keep old models
        # alive): a search keeps only the solutions of queued nodes, and a basis only starts
        # a solve of the model that made it
        sol = replace(sol, basis=(self.token, sol.basis)) if sol.basis is not None else sol
        kept = np.isfinite(b)
        index = np.cumsum(kept) - 1  # a kept row's index in the node's problem
        free = [kj for kj, s in zip(self.unstable, st, strict=True) if s == FREE]
        problem = NodeQP(BoxQP(self.A[kept], b[kept], self.lo, hi, n=self.d), free,
                         index[[self.chord_row[kj] for kj in free]].astype(int), self.pre,
                         cols=np.array([self.col[kj] for kj in free], dtype=int))
        if sol.lam is not None:
            sol = replace(sol, lam=sol.lam[kept])
        return problem, sol


class NodeLPs:
    """The node LPs of one search: a `TargetLP` per target, built when first asked for, for
    the current root bounds (a new `NodeLPs` when they are tightened)."""

    def __init__(self, net: ReluNetwork, x: np.ndarray, c: int, bounds: Bounds, root: list[np.ndarray],
                 box: tuple[np.ndarray, np.ndarray], p: float):
        self.args = (net, x, c, bounds, root, box, p)
        self.models: dict[int, TargetLP] = {}

    def solve(self, t: int, states: list[np.ndarray], start: QPSolution | None = None,
              cutoff: float = np.inf) -> tuple[NodeQP, QPSolution]:
        """Target t's node of `states`; start: the solution of a node (the parent) whose basis
        starts the simplex when it comes from the same model (the root bounds tightened since
        make a new one)."""
        if t not in self.models:
            net, x, c, bounds, root, box, p = self.args
            self.models[t] = TargetLP(net, x, c, t, bounds, root, box, p)
        model = self.models[t]
        token, basis = start.basis if start is not None and start.basis is not None else (None, None)
        return model.solve(states, basis if token == model.token else None, cutoff)
