"""Decision problems over an input box: is there z in [lower, upper] with f_t(z) >= f_label(z)
for some target t? (the VNN-COMP robustness property; `unsat` = robust).

1. bounds: first layer exact, later layers alpha-CROWN (`bounds.crown(iters=...)`), then the
   margin f_t - f_label bounded for every target; targets whose upper bound is < 0 are proven.
2. each open target (largest margin bound first), by one of two complete searches:
   - method 'splits' (default): branch and bound over ReLU splits with beta-CROWN node bounds
     (`splits.SplitSearch`); a target is proven when every leaf's bound is < 0.
   - method 'milp': the Tjeng MILP minimising f_label - f_t with HiGHS, cutoff 1e-9 and a stop
     at the first point with f_t - f_label >= 0; proven (up to HiGHS's tolerances) when HiGHS
     reports nothing below the cutoff or a dual bound above it.
   'splits' is the default because it decided far more VNN-COMP instances than 'milp' (see
   docs/performance-log.md).
   A point either search returns is re-checked in float64. Targets run in `jobs` processes
   (one core each); the first float64-checked point ends the search. While the workers start (a
   spawned process spends seconds importing torch and minadv, longer than most searches of the
   decided VNN-COMP instances), split searches run in this process, `quick` seconds in all.
"""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from ..bounds import Bounds, crown, optimized_bounds
from ..domain import Domain, choice
from ..exact import MilpStatus, TjengModel, solve_milp
from ..network import ReluNetwork, margin_rows
from ..parallel import spawn_pool
from ..splits import SplitSearch
from .verdicts import BOX_OF_TARGET, BoxAnswer, TargetVerdict

CUTOFF = 1e-9


class BoxMethod(StrEnum):
    """How one target's margin is decided over the box (see the module's docstring)."""

    SPLITS = "splits"
    MILP = "milp"


@dataclass
class BoxVerdict:
    verdict: BoxAnswer
    point: np.ndarray | None = None  # sat: a float64-checked point of the box; unknown: a near miss, if any
    target: int = -1
    unstable: int = 0
    searches: int = 0  # targets searched after the bounds (MILPs or split searches), unreached ones not counted
    nodes: int = 0  # nodes bounded by the split searches
    time_s: float = 0.0
    open_targets: list[int] = field(default_factory=list)  # unknown: searched, neither proven nor refuted
    unreached_targets: list[int] = field(default_factory=list)  # unknown: the time ran out before their search


def margin(net: ReluNetwork, z: np.ndarray, label: int, targets) -> float:
    logits = net.forward(z)
    return float(logits[list(targets)].max() - logits[label])


class _TargetSearch:
    """One box's bounds (and, for 'milp', its Tjeng model, built once); `__call__` decides one target."""

    def __init__(self, net: ReluNetwork, dom: Domain, bounds: Bounds, label: int, deadline: float, method: BoxMethod):
        self.net, self.dom, self.bounds, self.label = net, dom, bounds, label
        self.deadline, self.method = deadline, method
        if method == BoxMethod.MILP:
            self.model, self.logits = TjengModel(net, dom, bounds, 1.0).build_prefix(net.n_hidden_layers)

    def __call__(self, t: int) -> tuple[int, TargetVerdict, np.ndarray | None, int]:
        """(t, its verdict (UNREACHED: no time left to start), point, nodes)."""
        if self.deadline - time.time() <= 0:
            return t, TargetVerdict.UNREACHED, None, 0
        if self.method == BoxMethod.SPLITS:
            o = SplitSearch(self.net, self.dom, self.bounds, self.label, t).run(self.deadline)
            return t, o.verdict, o.point, o.nodes
        self.model.obj.set_value(self.logits[self.label] - self.logits[t])
        res = solve_milp(self.model, self.deadline - time.time(), cutoff=CUTOFF, stop_at=0.0)
        if res.status == MilpStatus.CUTOFF or (np.isfinite(res.bound) and res.bound >= CUTOFF):
            return t, TargetVerdict.SAFE, None, 0
        if res.u is None:
            return t, TargetVerdict.UNKNOWN, None, 0
        z = np.clip(self.dom.x + res.u, self.dom.lo, self.dom.hi)
        verdict = TargetVerdict.SAT if margin(self.net, z, self.label, [t]) >= 0 else TargetVerdict.UNKNOWN
        return t, verdict, z, 0


_worker: _TargetSearch | None = None  # a worker process serves one pool, i.e. one box


def _run_worker(job: tuple):
    """(args, t): the box's search is built on the worker's first target. The arguments travel
    with the targets, not as the pool's initargs: a spawned child reads those only after it has
    imported minadv (about 5 s), and `Pool()` blocks until then once they exceed the pipe's buffer."""
    global _worker
    args, t = job
    if _worker is None:
        _worker = _TargetSearch(*args)
    return _worker(t)


def _searches(args: tuple, targets: list[int], jobs: int, quick: float):
    """(t, verdict, point, nodes) for the targets, as they finish. With jobs > 1 and more than one
    target, `jobs` worker processes start at once; while they import, split searches run here for
    up to `quick` seconds in all, and the targets left (the unfinished one included) go to them."""
    if not targets:
        return
    net, dom, bounds, label, deadline, method = args
    if jobs <= 1 or len(targets) <= 1:
        yield from map(_TargetSearch(*args), targets)
        return
    targets = list(targets)
    pool = spawn_pool(min(jobs, len(targets)))
    try:
        if method == BoxMethod.SPLITS and quick > 0:
            here = _TargetSearch(net, dom, bounds, label, min(deadline, time.time() + quick), method)
            while targets:
                t, verdict, z, nodes = here(targets[0])
                ran_out = time.time() >= here.deadline < deadline
                if verdict in (TargetVerdict.UNKNOWN, TargetVerdict.UNREACHED) and ran_out:
                    break  # the quick phase is over, not the time: this target and the rest go to the workers
                yield t, verdict, z, nodes
                targets.pop(0)
        if targets:
            yield from pool.imap_unordered(_run_worker, [(args, t) for t in targets])
    finally:
        pool.terminate()


def verify_box(net: ReluNetwork, lower: np.ndarray, upper: np.ndarray, label: int, targets, time_limit: float,
               *, iters: int = 20, jobs: int = 2, method: BoxMethod | str = BoxMethod.SPLITS,
               quick: float = 5.0) -> BoxVerdict:
    method = choice(BoxMethod, method, "method")
    start = time.perf_counter()
    deadline = time.time() + time_limit
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    dom = Domain(0.5 * (lower + upper), np.inf, np.inf, lower, upper)
    bounds = crown(net, dom, iters=iters)
    targets = list(targets)
    C = margin_rows(net.n_outputs, label, targets)
    _, hi = optimized_bounds(net, dom, list(bounds.lower), list(bounds.upper), C, net.n_hidden_layers, iters=iters)
    out = BoxVerdict(BoxAnswer.UNSAT, unstable=bounds.n_unstable)
    to_search = [t for t, h in sorted(zip(targets, hi, strict=True), key=lambda p: -p[1]) if h >= 0]
    args = (net, dom, bounds, label, deadline, method)
    with closing(_searches(args, to_search, jobs, quick)) as results:
        for t, verdict, z, nodes in results:
            if BOX_OF_TARGET[verdict] != BoxAnswer.UNSAT:  # SAT settles the box; an open target leaves it open
                out.verdict = BOX_OF_TARGET[verdict]
            if verdict == TargetVerdict.UNREACHED:
                out.unreached_targets.append(t)
                continue
            out.searches += 1
            out.nodes += nodes
            if verdict == TargetVerdict.SAT:
                out.point, out.target = z, t
                break
            if verdict == TargetVerdict.UNKNOWN:
                out.open_targets.append(t)
                if z is not None:
                    out.point, out.target = z, t
    out.open_targets.sort()
    out.unreached_targets.sort()
    out.time_s = time.perf_counter() - start
    return out
