"""minadv.verify: the exact side. Networks, the float64 check, linear regions, bounds, exact solvers."""

from .adversarial import TOL, Verdict, check, push_across, verified_result
from .exact import minimal_perturbation
from .domain import Domain, check_image, lp_norm, norm_name, parse_norm
from .network import InputError, NetworkError, ReluNetwork
from .polytope import Regions, patterns, region_qp, regions_at, regions_of_patterns
from .qp import BoxQP, QPSolution, dual_bound, solve_clarabel, solve_reference
from .result import Counts, Result, Status

__all__ = [
    "TOL", "Verdict", "check", "push_across", "verified_result",
    "Domain", "check_image", "lp_norm", "norm_name", "parse_norm",
    "InputError", "NetworkError", "ReluNetwork",
    "Regions", "patterns", "region_qp", "regions_at", "regions_of_patterns",
    "BoxQP", "QPSolution", "dual_bound", "solve_clarabel", "solve_reference",
    "Counts", "Result", "Status", "minimal_perturbation",
]
