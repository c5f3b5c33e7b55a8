"""Exact minimal perturbation with the Tjeng MIP (Pyomo + HiGHS).

L1 and Linf: one MILP (its optimum, certified by HiGHS's dual bound). L2: HiGHS has no MIQP,
so a loop of MILPs over an outer approximation of ||u||^2 (`mip.TjengModel`): each MILP's
dual bound is a lower bound; the region QP (polytope module) on the activation pattern of the
MILP's point gives a verified upper bound; tangents at the MILP point and at the nearest
verified point so far (in the domain or not) make the next master exact there. Ends when
upper - lower <= rel_gap * upper, or when lower >= the domain's radius (no adversarial point
within it: only points in the domain become incumbents).
"""

from __future__ import annotations

import time

import numpy as np

from ..bounds import crown
from ..domain import Domain
from ..network import ReluNetwork
from ..qp import QPStatus, regions_at, solve_norm
from ..result import Counts, Stop
from .incumbent import Incumbent, improve
from .mip import MilpStatus, TjengModel, reachable_targets, solve_milp, tighten

# why the search stops after a MILP that ended neither optimal (cut and solve again) nor infeasible
# (no point in the domain: done); CUTOFF and TARGET answer options that `run` never sets
STOP_OF_MILP = {MilpStatus.TIME_LIMIT: Stop.TIME_LIMIT, MilpStatus.ERROR: Stop.ERROR,
                MilpStatus.CUTOFF: Stop.ERROR, MilpStatus.TARGET: Stop.ERROR}


class MipSearch:
    def __init__(self, net: ReluNetwork, x: np.ndarray, c: int, p: float, *, incumbent: Incumbent,
                 radius: float = np.inf, rel_gap: float = 1e-4, tightening: str = "lp"):
        self.net, self.x, self.c, self.p = net, x, c, p
        self.inc, self.radius, self.rel_gap, self.tightening = incumbent, radius, rel_gap, tightening
        self.nearest = incumbent  # the nearest verified point, in the domain or not: L2 tangents there
        self.counts = Counts()

    def offer(self, point: np.ndarray) -> None:
        """Keep the point if it is the nearest yet; it becomes the incumbent if it lies in the domain
        (the nearest lies outside only while there is no incumbent: the incumbent's norm is <= radius)."""
        nearest = improve(self.net, self.x, self.c, self.p, self.nearest, point)
        if nearest is not self.nearest:
            self.nearest = nearest
            if nearest.value <= self.radius:
                self.inc = nearest

    def _polish(self, u: np.ndarray, scale: float, t: int) -> None:
        """Offer the MILP point and the region problem's optimum on its activation pattern."""
        z = np.clip(self.x + scale * u, 0, 1)
        self.offer(z)
        if t < 0:
            return
        sol = solve_norm(regions_at(self.net, z).qp(0, self.x, self.c, t), self.p)
        self.counts.qp_solves += 1
        self.counts.regions += 1
        if sol.status == QPStatus.OPTIMAL:
            self.offer(self.x + sol.v)

    def _to_norm(self, objective: float, scale: float) -> float:
        if not np.isfinite(objective):
            return objective
        return scale * (np.sqrt(max(objective, 0.0) / self.net.n_inputs) if self.p == 2 else objective)

    def run(self, time_limit: float) -> tuple[float, Stop]:
        """Returns (lower bound, why it stopped); the incumbent is in self.inc (no incumbent after
        DONE: no adversarial example in the domain)."""
        start = time.perf_counter()
        radius = min(self.radius, self.inc.value)
        scale = radius if np.isfinite(radius) else 1.0
        dom = Domain(self.x, self.p, radius)
        bounds = crown(self.net, dom)
        if self.tightening in ("lp", "mip"):
            bounds = tighten(self.net, dom, bounds, self.tightening)
        self.counts.unstable = bounds.n_unstable
        targets = reachable_targets(self.net, dom, bounds, self.c)
        if not targets:
            return radius, Stop.DONE
        builder = TjengModel(self.net, dom, bounds, scale)
        model = builder.build(self.c, targets)
        lower = 0.0
        while True:
            left = time_limit - (time.perf_counter() - start)
            if left <= 0:
                return lower, Stop.TIME_LIMIT
            out = solve_milp(model, left)
            self.counts.milp_solves += 1
            if out.status == MilpStatus.INFEASIBLE:  # no adversarial example inside the domain
                return radius, Stop.DONE
            lower = max(lower, self._to_norm(out.bound, scale))
            if out.u is not None:
                self._polish(out.u, scale, out.target)
            upper = self.inc.value
            if np.isfinite(upper) and upper - lower <= self.rel_gap * upper:  # (inf - l <= inf: no)
                return lower, Stop.DONE
            if lower >= self.radius:  # the MILP's points all lie outside the domain: none inside
                return self.radius, Stop.DONE
            if out.status != MilpStatus.OPTIMAL:
                return lower, STOP_OF_MILP[out.status]
            if self.p != 2:  # a proven MILP optimum whose point did not close the gap
                return lower, Stop.ERROR
            self.counts.cut_rounds += 1
            added = builder.add_tangents(model, out.u)
            if self.nearest.point is not None:
                added += builder.add_tangents(model, (self.nearest.point - self.x) / scale)
            if added == 0:
                return lower, Stop.ERROR
