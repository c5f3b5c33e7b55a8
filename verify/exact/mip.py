"""The Tjeng-style mixed-integer model (Tjeng, Xiao & Tedrake 2019; MIPVerify.jl) in Pyomo, solved by HiGHS.

Variables, with delta = r u (r: the incumbent's norm, so u is O(1) whatever the image):
  u in the box [(0 - x)/r, (1 - x)/r] (cap [-1, 1] for Linf), g^(k) the pre-activations of
  every hidden layer (equality rows g = W h + b), and for an unstable neuron (l < 0 < u)
  y >= 0, y >= g, y <= g - l (1 - a), y <= u a with a binary; stable neurons are exact.
Targets: binaries s_t, sum_t s_t = 1, f_t - f_c >= -M_t (1 - s_t) (one MILP for every target,
  so its dual bound is a bound on problem (1)); M_t bounds f_c - f_t on the domain.
Objective: Linf: tau >= |u_i|; L1: sum s_i, s_i >= |u_i|; L2 (HiGHS has no MIQP): sum s_i with
  s_i >= n (2 a u_i - a^2) tangents of n u_i^2 (scaled by n so each s_i is O(1) against HiGHS's
  absolute tolerances), an outer approximation whose optimum is a lower bound.

HiGHS traps handled here: its threads setting is process-wide (every solve passes THREADS);
a solve stopped by time reports `mip_dual_bound` as the bound, never an optimum; no cutoff is
ever set (under a cutoff "Infeasible" only means "optimum >= cutoff").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.common.factory import SolverFactory
from pyomo.contrib.solver.common.results import TerminationCondition

from ..bounds import Bounds, backsubstitute
from ..domain import Domain
from ..network import ReluNetwork
from ..qp.reference import HIGHS_THREADS as THREADS

LP_WIDEN = 1e-6  # bounds read off an LP/MIP carry HiGHS's tolerances: widen by LP_WIDEN (1 + |b|)


def highs():
    return SolverFactory("highs")


class MilpStatus(StrEnum):
    """How one HiGHS solve of a Tjeng model ended (`solve`)."""

    OPTIMAL = "optimal"  # to HiGHS's relative gap
    TIME_LIMIT = "time_limit"  # stopped by time: the dual bound holds, the point (if any) is feasible
    INFEASIBLE = "infeasible"  # no feasible point (no cutoff set)
    CUTOFF = "cutoff"  # a cutoff was set and nothing has an objective below it
    TARGET = "target"  # stop_at was set and a point reached it
    ERROR = "error"  # any other end (HiGHS error, unbounded, interrupted, ...)


# Pyomo's (HiGHS's) termination conditions, every member; provenInfeasible means CUTOFF under a cutoff
_OF_TERMINATION = {
    TerminationCondition.convergenceCriteriaSatisfied: MilpStatus.OPTIMAL,
    TerminationCondition.maxTimeLimit: MilpStatus.TIME_LIMIT,
    TerminationCondition.provenInfeasible: MilpStatus.INFEASIBLE,
    TerminationCondition.objectiveLimit: MilpStatus.TARGET,
    TerminationCondition.iterationLimit: MilpStatus.ERROR,
    TerminationCondition.minStepLength: MilpStatus.ERROR,
    TerminationCondition.unbounded: MilpStatus.ERROR,
    TerminationCondition.locallyInfeasible: MilpStatus.ERROR,
    TerminationCondition.infeasibleOrUnbounded: MilpStatus.ERROR,
    TerminationCondition.error: MilpStatus.ERROR,
    TerminationCondition.interrupted: MilpStatus.ERROR,
    TerminationCondition.licensingProblems: MilpStatus.ERROR,
    TerminationCondition.emptyModel: MilpStatus.ERROR,
    TerminationCondition.unknown: MilpStatus.ERROR,
}


@dataclass
class MilpOutcome:
    status: MilpStatus
    bound: float  # dual bound of the objective (-inf when unknown)
    objective: float  # incumbent objective (inf when none)
    u: np.ndarray | None  # the incumbent's u (delta / r)
    target: int


def solve_milp(model, time_limit: float, rel_gap: float = 1e-6, cutoff: float | None = None,
          stop_at: float | None = None) -> MilpOutcome:
    """Solve a minimisation model built by `TjengModel` with HiGHS (its persistent solver).

    cutoff: HiGHS prunes everything whose bound is >= cutoff; "infeasible" then only means
    "no point with objective < cutoff" and is reported as status 'cutoff', never 'infeasible'.
    stop_at: stop at the first point with objective <= stop_at (status 'target').
    """
    # always set both: HiGHS options persist across solves of the same (persistent) model
    options = {"objective_bound": np.inf if cutoff is None else float(cutoff),
               "objective_target": -np.inf if stop_at is None else float(stop_at)}
    res = model._solver.solve(
        model, load_solutions=False, raise_exception_on_nonoptimal_result=False, threads=THREADS,
        time_limit=max(time_limit, 0.01), rel_gap=rel_gap, solver_options=options,
    )
    status = _OF_TERMINATION[res.termination_condition]
    if status == MilpStatus.INFEASIBLE and cutoff is not None:
        status = MilpStatus.CUTOFF
    bound = res.objective_bound if res.objective_bound is not None else -np.inf
    if status in (MilpStatus.INFEASIBLE, MilpStatus.CUTOFF):
        return MilpOutcome(status, cutoff if status == MilpStatus.CUTOFF else np.inf, np.inf, None, -1)
    if res.incumbent_objective is None:
        return MilpOutcome(status, bound, np.inf, None, -1)
    values = res.solution_loader.get_vars()
    u = np.array([values[model.u[i]] for i in model.u])
    target = -1
    if hasattr(model, "pick"):
        target = max(model.pick, key=lambda t: values[model.pick[t]])
    elif hasattr(model, "target"):
        target = model.target
    return MilpOutcome(status, bound, res.incumbent_objective, u, target)


class TjengModel:
    """Builder of the Pyomo model: `build` for problem (1), `build_prefix` for bound tightening."""

    def __init__(self, net: ReluNetwork, dom: Domain, bounds: Bounds, scale: float, relax: bool = False):
        self.net, self.dom, self.bounds, self.r, self.relax = net, dom, bounds, scale, relax

    def _binary(self):
        return pyo.UnitInterval if self.relax else pyo.Binary

    def _model(self) -> pyo.ConcreteModel:
        m = pyo.ConcreteModel()
        lo, hi = self.dom.delta_lo / self.r, self.dom.delta_hi / self.r
        m.pixels = pyo.RangeSet(0, self.net.n_inputs - 1)
        m.u = pyo.Var(m.pixels, bounds=lambda _, i: (float(lo[i]), float(hi[i])))
        m._solver = highs()
        return m

    def _layers(self, m, n_layers: int) -> list:
        """Pre-activation variables and ReLU rows of hidden layers 1..n_layers; returns the
        post-activations of the last one (Pyomo terms, None for inactive neurons)."""
        m.layers = pyo.Block(range(n_layers))
        post = None
        for k in range(n_layers):
            W, b = self.net.weights[k], self.net.biases[k]
            l, u = self.bounds.lower[k], self.bounds.upper[k]
            blk = m.layers[k]
            # Pyomo calls these rules while constructing the component, within this iteration
            blk.g = pyo.Var(range(len(b)), bounds=lambda _, j: (float(l[j]), float(u[j])))  # noqa: B023
            blk.def_g = pyo.Constraint(range(len(b)),
                                       rule=lambda _, j: blk.g[j] == self._affine(m, W[j], b[j], post))  # noqa: B023
            post = self._relus(blk, l, u)
        return post

    def _affine(self, m, w: np.ndarray, b0: float, post):
        """w . h + b0 with h = x + r u (post is None: the input layer) or the given post-activations."""
        if post is None:
            nz = np.flatnonzero(w)
            return float(b0 + w @ self.dom.x) + pyo.quicksum(float(self.r * w[i]) * m.u[i] for i in nz)
        return float(b0) + pyo.quicksum(float(w[i]) * post[i]
                                        for i in range(len(post)) if w[i] != 0 and post[i] is not None)

    def _relus(self, blk, l, u) -> list:
        unstable = [j for j in range(len(l)) if l[j] < 0 < u[j]]
        blk.y = pyo.Var(unstable, bounds=lambda _, j: (0.0, float(u[j])))
        blk.a = pyo.Var(unstable, domain=self._binary())
        blk.above = pyo.Constraint(unstable, rule=lambda _, j: blk.y[j] >= blk.g[j])
        blk.gate = pyo.Constraint(unstable, rule=lambda _, j: blk.y[j] <= blk.g[j] - float(l[j]) * (1 - blk.a[j]))
        blk.on = pyo.Constraint(unstable, rule=lambda _, j: blk.y[j] <= float(u[j]) * blk.a[j])
        return [blk.g[j] if l[j] >= 0 else (blk.y[j] if u[j] > 0 else None) for j in range(len(l))]

    def _norm(self, m):
        """The norm of u as a linear expression (Linf: tau; L1: sum w; L2: sum w, outer approximation)."""
        if self.dom.norm == np.inf:
            m.tau = pyo.Var(bounds=(0, None))
            m.norm_up = pyo.Constraint(m.pixels, rule=lambda _, i: m.u[i] <= m.tau)
            m.norm_lo = pyo.Constraint(m.pixels, rule=lambda _, i: -m.u[i] <= m.tau)
            return m.tau
        m.w = pyo.Var(m.pixels, bounds=(0, None))
        if self.dom.norm == 1:
            m.norm_up = pyo.Constraint(m.pixels, rule=lambda _, i: m.u[i] <= m.w[i])
            m.norm_lo = pyo.Constraint(m.pixels, rule=lambda _, i: -m.u[i] <= m.w[i])
        else:
            m.cuts = pyo.ConstraintList()
            a = np.array([1.0, 3.0]) / np.sqrt(self.net.n_inputs)
            self.add_tangents(m, np.concatenate([a, -a]))
        return pyo.quicksum(m.w[i] for i in m.u)

    def add_tangents(self, m, at: np.ndarray) -> int:
        """L2: rows w_i >= n (2 a u_i - a^2). `at` holds points a for every pixel (1-d, any length
        but d) or one point per pixel (length d); a is clipped to u_i's bounds. Points with
        |a| < 1e-4 / sqrt(n) are skipped: their row is w_i >= 0 up to HiGHS's tolerances."""
        d = self.net.n_inputs
        at = np.asarray(at, dtype=float)
        pairs = list(enumerate(at)) if at.shape == (d,) else [(i, a) for a in at for i in range(d)]
        added = 0
        for i, a in pairs:
            lo, hi = m.u[i].bounds
            a = float(min(max(a, lo), hi))
            if abs(a) >= 1e-4 / np.sqrt(d):
                m.cuts.add(m.w[i] >= d * (2 * a * m.u[i] - a * a))
                added += 1
        return added

    def build(self, c: int, targets: list[int]) -> pyo.ConcreteModel:
        """Problem (1): minimise the norm of delta = r u over every target in `targets`."""
        m = self._model()
        post = self._layers(m, self.net.n_hidden_layers)
        W, b = self.net.weights[-1], self.net.biases[-1]
        gap = {t: self._affine(m, W[t] - W[c], b[t] - b[c], post) for t in targets}
        if len(targets) == 1:
            m.target = targets[0]
            m.adv = pyo.Constraint(expr=gap[targets[0]] >= 0)
        else:
            big = self._big_m(c, targets)
            m.pick = pyo.Var(targets, domain=self._binary())
            m.one = pyo.Constraint(expr=pyo.quicksum(m.pick[t] for t in targets) == 1)
            m.adv = pyo.Constraint(targets, rule=lambda _, t: gap[t] >= -big[t] * (1 - m.pick[t]))
        m.obj = pyo.Objective(expr=self._norm(m))
        return m

    def build_prefix(self, k: int) -> tuple[pyo.ConcreteModel, list]:
        """Hidden layers 1..k and the ball ||u||_p <= 1; returns the model and the pre-activation
        expressions of layer k+1 (for bounds)."""
        m = self._model()
        post = self._layers(m, k)
        if np.isfinite(self.dom.radius) and self.dom.norm != np.inf:
            m.ball = pyo.Constraint(expr=self._norm(m) <= (1.0 if self.dom.norm == 1 else self.net.n_inputs))
        W, b = self.net.weights[k], self.net.biases[k]
        m.obj = pyo.Objective(expr=0.0)
        return m, [self._affine(m, W[j], b[j], post) for j in range(len(b))]

    def _big_m(self, c: int, targets: list[int]) -> dict[int, float]:
        """M_t >= max (f_c - f_t) on the domain, by back-substitution from the last hidden layer."""
        C = np.zeros((len(targets), self.net.n_outputs))
        for row, t in enumerate(targets):
            C[row, c], C[row, t] = 1.0, -1.0
        _, hi = backsubstitute(self.net, self.dom, self.bounds.lower, self.bounds.upper, C, self.net.n_hidden_layers)
        return {t: max(float(hi[row]), 0.0) + 1e-6 for row, t in enumerate(targets)}


def reachable_targets(net: ReluNetwork, dom: Domain, bounds: Bounds, c: int) -> list[int]:
    """Targets t whose f_t - f_c can reach 0 on the domain (by back-substitution)."""
    targets = net.other_classes(c)
    C = np.zeros((len(targets), net.n_outputs))
    for row, t in enumerate(targets):
        C[row, t], C[row, c] = 1.0, -1.0
    _, hi = backsubstitute(net, dom, bounds.lower, bounds.upper, C, net.n_hidden_layers)
    return [t for row, t in enumerate(targets) if hi[row] >= 0]


def tighten(net: ReluNetwork, dom: Domain, bounds: Bounds, level: str = "lp", time_limit: float = 1.0) -> Bounds:
    """Per-neuron LP (level 'lp': binaries relaxed) or short MIP ('mip': time_limit seconds per
    neuron, HiGHS's dual bound) bounds of layers >= 2 over the Tjeng model of the earlier layers;
    the result is intersected with `bounds`."""
    if level not in ("lp", "mip"):
        raise ValueError(f"unknown tightening level {level!r}")
    scale = dom.radius if np.isfinite(dom.radius) else 1.0
    lower, upper = [a.copy() for a in bounds.lower], [a.copy() for a in bounds.upper]
    for k in range(1, net.n_hidden_layers):
        current = Bounds(tuple(lower), tuple(upper))
        m, pre = TjengModel(net, dom, current, scale, relax=level == "lp").build_prefix(k)
        for j in np.flatnonzero((lower[k] < 0) & (upper[k] > 0)):
            for sense, sign in ((pyo.minimize, -1.0), (pyo.maximize, 1.0)):
                m.obj.set_value(pre[j])
                m.obj.sense = sense
                out = solve_milp(m, time_limit)
                value = out.bound if level == "mip" else (out.objective if out.status == MilpStatus.OPTIMAL else np.nan)
                if not np.isfinite(value):
                    continue
                value += sign * LP_WIDEN * (1 + abs(value))
                if sign < 0:
                    lower[k][j] = max(lower[k][j], value)
                else:
                    upper[k][j] = min(upper[k][j], value)
    return Bounds(tuple(lower), tuple(upper))
