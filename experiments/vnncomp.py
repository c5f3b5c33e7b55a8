"""Deciding VNN-COMP robustness instances: attack first (sat), then prove (unsat).

    decide(net, prop, time_limit) -> Decision(answer: Answer (sat / unsat / timeout), counterexample, time)

1. PGD inside the property's box (`attacks.pgd.pgd_box`);
2. `verify.decide.verify_box`: alpha-CROWN bounds, then a complete search per open target
   (`method`: 'splits', branch and bound over ReLU splits with beta-CROWN bounds, or 'milp');
3. a near miss of the search (a point the float64 check refuses) restarts PGD from it.
A `sat` answer always carries a point that passes `check_counterexample` (float64, in the box);
an answer found after `time_limit` is reported as `timeout`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from minadv.attacks import pgd_box
from minadv.verify import Property, ReluNetwork, check_counterexample
from minadv.verify.decide import BoxAnswer, verify_box


class Answer(StrEnum):
    """The VNN-COMP verdict: the text `minadv vnnlib` prints and the benchmark's CSV holds."""

    SAT = "sat"  # with a float64-checked counterexample
    UNSAT = "unsat"
    TIMEOUT = "timeout"  # not decided within the time limit


# the box's verdict as an answer; a SAT answer also needs its point to pass `check_counterexample`
ANSWER_OF_BOX = {BoxAnswer.UNSAT: Answer.UNSAT, BoxAnswer.SAT: Answer.SAT, BoxAnswer.UNKNOWN: Answer.TIMEOUT}


@dataclass
class Decision:
    answer: Answer
    counterexample: np.ndarray | None
    time_s: float
    stage: str  # what decided it: 'pgd', 'bounds', 'splits', 'milp', 'pgd-from-splits' / '-milp', or '' for a timeout
    unstable: int = 0
    searches: int = 0
    nodes: int = 0
    open_targets: tuple[int, ...] = ()  # a timeout: the targets searched and neither proven nor refuted
    unreached_targets: tuple[int, ...] = ()  # a timeout: the targets whose search had no time to start


def _valid(net: ReluNetwork, prop: Property, z) -> bool:
    return z is not None and check_counterexample(net, prop, z).valid


def decide(net: ReluNetwork, prop: Property, time_limit: float, *, jobs: int = 2, method: str = "splits") -> Decision:
    start = time.perf_counter()

    def done(answer, z, stage, v=None):
        took = time.perf_counter() - start
        if took > time_limit:  # an answer after the time-out does not count
            answer, z, stage = Answer.TIMEOUT, None, ""
        left = (tuple(v.open_targets), tuple(v.unreached_targets)) if v and answer == Answer.TIMEOUT else ((), ())
        counts = (v.unstable, v.searches, v.nodes, *left) if v else ()
        return Decision(answer, z, took, stage, *counts)

    z = pgd_box(net, prop.lower, prop.upper, prop.label, prop.targets)
    if _valid(net, prop, z):
        return done(Answer.SAT, z, "pgd")
    v = verify_box(net, prop.lower, prop.upper, prop.label, prop.targets,
                   time_limit - (time.perf_counter() - start), jobs=jobs, method=method)
    answer = ANSWER_OF_BOX[v.verdict]
    if answer == Answer.UNSAT:
        return done(answer, None, method if v.searches else "bounds", v)
    if answer == Answer.SAT and _valid(net, prop, v.point):
        return done(answer, v.point, method, v)
    if v.point is not None:  # a near miss, or a sat point the float64 check refused
        z = pgd_box(net, prop.lower, prop.upper, prop.label, prop.targets, start=v.point, restarts=8)
        if _valid(net, prop, z):
            return done(Answer.SAT, z, f"pgd-from-{method}", v)
    return done(Answer.TIMEOUT, None, "", v)


def linf_attack(net: ReluNetwork, x0: np.ndarray, label: int, *, hi: float = 0.5, steps: int = 12) -> np.ndarray | None:
    """A small-Linf adversarial point of x0 for the exact solver's first incumbent: PGD in
    clip(x0 +- eps, 0, 1) with eps bisected between 0 and `hi` (`steps` halvings); None if
    PGD finds nothing even at `hi`."""
    x0 = np.asarray(x0, dtype=np.float64)
    best, lo = None, 0.0
    for _ in range(steps):
        eps = hi if best is None else 0.5 * (lo + hi)
        z = pgd_box(net, np.clip(x0 - eps, 0, 1), np.clip(x0 + eps, 0, 1), label)
        if z is not None:
            best, hi = z, float(np.abs(z - x0).max())
        elif best is None:
            return None
        else:
            lo = eps
    return best

