"""Decision problems over an input box: is there z in [lower, upper] with f_t(z) >= f_label(z)
for some target t? (the VNN-COMP robustness property; `unsat` = robust).

1. bounds: first layer exact, later layers alpha-CROWN (`bounds.crown(iters=...)`), then the
   margin f_t - f_label bounded for every target; targets whose upper bound is < 0 are proven.
2. each open target (largest margin bound first): the Tjeng MILP minimising f_label - f_t with
   HiGHS, cutoff 1e-9 and a stop at the first point with f_t - f_label >= 0. The target is
   proven (f_t - f_label <= -1e-9 on the box, up to HiGHS's tolerances) when HiGHS reports
   nothing below the cutoff or a dual bound above it; a point is a candidate, re-checked in
   float64. Targets run in `jobs` processes (measured on 256x2: 9 MILPs of 7-33 s each, so two
   cores halve an instance's time); the first float64-checked point ends the search.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .bounds import Bounds, crown, optimized_bounds
from .domain import Domain
from .mip import TjengModel, solve
from .network import ReluNetwork
from .parallel import spawn_pool

CUTOFF = 1e-9


@dataclass
class BoxVerdict:
    verdict: str  # 'unsat' | 'sat' | 'unknown'
    point: np.ndarray | None = None  # sat: a float64-checked point of the box; unknown: a near miss, if any
    target: int = -1
    unstable: int = 0
    milp_solves: int = 0
    time_s: float = 0.0


def margin(net: ReluNetwork, z: np.ndarray, label: int, targets) -> float:
    logits = net.forward(z)
    return float(logits[list(targets)].max() - logits[label])


class _TargetMilp:
    """The Tjeng model of one box, built once; `__call__` decides one target."""

    def __init__(self, net: ReluNetwork, dom: Domain, bounds: Bounds, label: int, deadline: float):
        self.net, self.dom, self.label, self.deadline = net, dom, label, deadline
        self.model, self.logits = TjengModel(net, dom, bounds, 1.0).build_prefix(net.n_hidden_layers)

    def __call__(self, t: int) -> tuple[int, str, np.ndarray | None]:
        """(t, 'safe' | 'sat' | 'unknown', point)."""
        left = self.deadline - time.time()
        if left <= 0:
            return t, "unknown", None
        self.model.obj.set_value(self.logits[self.label] - self.logits[t])
        res = solve(self.model, left, cutoff=CUTOFF, stop_at=0.0)
        if res.status == "cutoff" or (np.isfinite(res.bound) and res.bound >= CUTOFF):
            return t, "safe", None
        if res.u is None:
            return t, "unknown", None
        z = np.clip(self.dom.x + res.u, self.dom.lo, self.dom.hi)
        return t, "sat" if margin(self.net, z, self.label, [t]) >= 0 else "unknown", z


_worker: _TargetMilp | None = None


def _init_worker(*args) -> None:
    global _worker
    _worker = _TargetMilp(*args)


def _run_worker(t: int):
    return _worker(t)


def verify_box(net: ReluNetwork, lower: np.ndarray, upper: np.ndarray, label: int, targets, time_limit: float,
               *, iters: int = 20, jobs: int = 2) -> BoxVerdict:
    start = time.perf_counter()
    deadline = time.time() + time_limit
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    dom = Domain(0.5 * (lower + upper), np.inf, np.inf, lower, upper)
    bounds = crown(net, dom, iters=iters)
    targets = list(targets)
    C = np.zeros((len(targets), net.n_outputs))
    C[np.arange(len(targets)), targets] = 1.0
    C[:, label] -= 1.0
    _, hi = optimized_bounds(net, dom, list(bounds.lower), list(bounds.upper), C, net.n_hidden_layers, iters=iters)
    out = BoxVerdict("unsat", unstable=bounds.n_unstable)
    open_targets = [t for t, h in sorted(zip(targets, hi), key=lambda p: -p[1]) if h >= 0]
    if open_targets:
        args = (net, dom, bounds, label, deadline)
        if jobs > 1 and len(open_targets) > 1:
            pool = spawn_pool(min(jobs, len(open_targets)), _init_worker, args)
            results = pool.imap_unordered(_run_worker, open_targets)
        else:
            pool, one = None, _TargetMilp(*args)
            results = map(one, open_targets)
        try:
            for t, verdict, z in results:
                out.milp_solves += 1
                if verdict == "sat":
                    out.verdict, out.point, out.target = "sat", z, t
                    break
                if verdict == "unknown":
                    out.verdict = "unknown"
                    if z is not None:
                        out.point, out.target = z, t
        finally:
            if pool is not None:
                pool.terminate()
    out.time_s = time.perf_counter() - start
    return out
