"""The one typed result record that every method (exact solver or attack) returns."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import numpy as np

from .domain import norm_name


class Status(StrEnum):
    OPTIMAL = "optimal"  # exact: lower and upper bound within the relative gap
    TIME_LIMIT = "time_limit"  # exact: stopped by the time limit; both bounds reported
    ROBUST = "robust"  # exact: no adversarial example in the domain (lower bound = radius)
    ERROR = "error"  # a solver failure or a point that failed the float64 check
    FOUND = "found"  # attack: a verified adversarial example
    FAILED = "failed"  # attack: nothing verified; no point, no norm


class Stop(StrEnum):
    """Why an exact search (`exact.bnb.BranchAndBound.run`, `exact.mip_search.MipSearch.run`) stopped;
    `exact.minimal_perturbation` maps it, with the incumbent and the gap, to a Status."""

    DONE = "done"  # the gap closed, or no adversarial point lies in the domain
    TIME_LIMIT = "time_limit"
    ERROR = "error"  # a solver failure the search cannot go past


@dataclass
class Counts:
    """Work done: unstable ReLUs after bound tightening, solves, rounds, nodes, regions."""

    unstable: int = 0
    milp_solves: int = 0
    qp_solves: int = 0
    cut_rounds: int = 0
    nodes: int = 0
    regions: int = 0
    pruned: int = 0


@dataclass
class Result:
    """Outcome of one method on one image.

    value is ||x_adv - x||_p of the returned point, which passed the float64 check
    (x_adv in [0,1]^d, margin = max_{l != pred} f_l - f_pred >= -1e-9); lower/upper are
    the exact solver's bounds on the minimal norm (nan for attacks). x is the image the
    method ran on (flat float64 copy; None in a hand-made record), so that a result can be
    told apart from one for another image (`minadv.verify.exact.regression.check_result_is_for`).
    """

    method: str
    norm: float
    status: Status
    pred: int
    value: float = math.nan
    lower: float = math.nan
    upper: float = math.nan
    x_adv: np.ndarray | None = None
    margin: float = math.nan
    target: int = -1
    time_s: float = 0.0
    counts: Counts = field(default_factory=Counts)
    message: str = ""
    x: np.ndarray | None = None

    @property
    def gap(self) -> float:
        """Relative gap (upper - lower) / upper of the exact solver; nan where undefined."""
        if not (np.isfinite(self.upper) and np.isfinite(self.lower)) or self.upper <= 0:
            return math.nan
        return (self.upper - self.lower) / self.upper

    @property
    def adversarial(self) -> bool:
        return self.x_adv is not None

    def row(self) -> dict:
        """Flat record for CSV tables (the point itself goes to .npz files)."""
        return {
            "method": self.method,
            "norm": norm_name(self.norm),
            "status": str(self.status),
            "value": self.value,
            "lower": self.lower,
            "upper": self.upper,
            "gap": self.gap,
            "time_s": self.time_s,
            "margin": self.margin,
            "pred": self.pred,
            "target": self.target,
            **asdict(self.counts),
            "message": self.message,
        }
