"""The node problem of the ReLU branch-and-bound over a partial activation pattern.

For class c, target t, root bounds l <= g_j <= u and a state per hidden neuron
(`NeuronState`: active, inactive or free), with v = (delta, h_free):

    minimise ||delta||_p   (p = 2: a convex QP; p = 1, inf: an LP)
    s.t.  x + delta in [0,1]^d,
          active neurons:   h_j = g_j(v)  (and g_j >= 0 where the bounds do not imply it),
          inactive neurons: h_j = 0       (and g_j <= 0 where not implied),
          free neurons:     h_j >= 0, h_j >= g_j, h_j <= u_j (g_j - l_j) / (u_j - l_j), h_j <= u_j
                            (the triangle relaxation: Ehlers 2017),
          layers >= 2:      l_j <= g_j(v) <= u_j (valid for every real point, tightens the relaxation),
          f_t(v) - f_c(v) >= 0.

With every neuron fixed this is problem (3) on one region; a free neuron's triangle is the
convex hull of its ReLU on [l, u], so the optimum is a lower bound for every completion.
Rows implied by the first-layer bounds are left out: those bounds hold on the whole
ball of radius r, and a node whose optimum leaves that ball is pruned anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bounds import Bounds
from ..network import NeuronState, ReluNetwork
from ..qp import BoxQP

ACTIVE, INACTIVE, FREE = NeuronState.ACTIVE, NeuronState.INACTIVE, NeuronState.FREE


@dataclass(frozen=True)
class NodeQP:
    qp: BoxQP
    free: list[tuple[int, int]]  # (layer, neuron) of each relaxed ReLU, in variable order after delta
    upper_rows: np.ndarray  # row index of each free neuron's upper (chord) constraint
    pre: list[tuple[np.ndarray, np.ndarray]]  # per layer: g(v) = M v + m
    basis: tuple[np.ndarray, np.ndarray] | None = None  # (C, W_1) with qp.A[:, :d] = C @ W_1 (`nodeqp`)
    cols: np.ndarray | None = None  # the variable of each free ReLU's output (None: d, d + 1, ... in `free` order)

    def outputs(self, v: np.ndarray) -> np.ndarray:
        """The free ReLUs' relaxed outputs h at the point v of the node problem."""
        d = self.qp.n_obj
        return v[d:d + len(self.free)] if self.cols is None else v[self.cols]


def root_states(bounds: Bounds) -> list[np.ndarray]:
    """Per hidden layer: active where stable active (l >= 0), inactive where stable inactive
    (u <= 0), free where unstable."""
    return [np.where(l >= 0, ACTIVE, np.where(u <= 0, INACTIVE, FREE)).astype(np.int8)
            for l, u in zip(bounds.lower, bounds.upper, strict=True)]


def node_qp(net: ReluNetwork, x: np.ndarray, c: int, t: int, bounds: Bounds, states: list[np.ndarray],
            box: tuple[np.ndarray, np.ndarray] | None = None) -> NodeQP:
    """box: bounds on delta (default: x + delta in [0,1]^d; Linf domains cap it at the radius)."""
    d = net.n_inputs
    n_free = int(sum((s == FREE).sum() for s in states))
    N = d + n_free
    rows: list[np.ndarray] = []
    crows: list[np.ndarray] = []  # the pixel part of each row block in the basis W_1: rows[i][:, :d] = crows[i] @ W_1
    rhs: list[float] = []
    upper_rows: list[int] = []
    free: list[tuple[int, int]] = []
    pre: list[tuple[np.ndarray, np.ndarray]] = []
    # g^(1)(v) = W1 (x + delta) + b1
    M = np.zeros((net.weights[0].shape[0], N))
    M[:, :d] = net.weights[0]
    m = net.weights[0] @ x + net.biases[0]
    Mc = np.eye(M.shape[0])  # M[:, :d] = Mc @ W_1
    hl = np.zeros(N)
    hu = np.zeros(N)
    for k, (s, l, u) in enumerate(zip(states, bounds.lower, bounds.upper, strict=True)):
        pre.append((M, m))
        if k > 0:  # l <= g <= u for layers >= 2
            rows += [M, -M]
            crows += [Mc, -Mc]
            rhs += [u - m, m - l]
        H = np.zeros_like(M)
        Hc = np.zeros_like(Mc)
        h0 = np.zeros_like(m)
        on = s == ACTIVE
        H[on], Hc[on], h0[on] = M[on], Mc[on], m[on]
        fix_on = (s == ACTIVE) & (l < 0)
        fix_off = (s == INACTIVE) & (u > 0)
        if fix_on.any():  # fixed by branching: g >= 0
            rows.append(-M[fix_on])
            crows.append(-Mc[fix_on])
            rhs.append(m[fix_on])
        if fix_off.any():  # g <= 0
            rows.append(M[fix_off])
            crows.append(Mc[fix_off])
            rhs.append(-m[fix_off])
        js = np.flatnonzero(s == FREE)
        if js.size:  # per free neuron j, two rows: g_j - h_j <= 0, h_j - slope (g_j - l_j) <= 0
            cols = d + len(free) + np.arange(js.size)
            free += [(k, int(j)) for j in js]
            slope = u[js] / (u[js] - l[js])
            E = np.zeros((js.size, N))
            E[np.arange(js.size), cols] = 1.0
            first = sum(len(r) for r in rows)
            rows.append(np.stack([M[js] - E, E - slope[:, None] * M[js]], axis=1).reshape(2 * js.size, N))
            crows.append(np.stack([Mc[js], -slope[:, None] * Mc[js]], axis=1).reshape(2 * js.size, -1))
            rhs.append(np.stack([-m[js], slope * (m[js] - l[js])], axis=1).ravel())
            upper_rows += list(first + 1 + 2 * np.arange(js.size))
            hu[cols] = u[js]
            H[js] = E
        W, b = net.weights[k + 1], net.biases[k + 1]
        M, Mc, m = W @ H, W @ Hc, W @ h0 + b
    # f_t - f_c >= 0
    rows.append((M[c] - M[t])[None])
    crows.append((Mc[c] - Mc[t])[None])
    rhs.append(np.array([m[t] - m[c]]))
    A = np.vstack(rows)
    b = np.concatenate([np.atleast_1d(r) for r in rhs])
    dlo, dhi = box if box is not None else (-x, 1.0 - x)
    lo = np.r_[dlo, hl[d:]]
    hi = np.r_[dhi, hu[d:]]
    return NodeQP(BoxQP(A, b, lo, hi, n=d), free, np.array(upper_rows, dtype=int), pre,
                  (np.vstack(crows), net.weights[0]))
