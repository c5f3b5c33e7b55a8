"""minadv.verify: the exact side. Networks (also from ONNX), the float64 check, linear regions, bounds, exact solvers."""

from .adversarial import TOL, Verdict, check, push_across, verified_result
from .domain import Domain, check_image, lp_norm, norm_name, parse_norm
from .network import InputError, NetworkError, ReluNetwork
from .onnx_import import load_onnx
from .polytope import Regions, patterns, region_qp, regions_at, regions_of_patterns
from .qp import BoxQP, QPSolution, dual_bound, solve_clarabel, solve_reference
from .result import Counts, Result, Status

__all__ = [
    "TOL", "Verdict", "check", "push_across", "verified_result",
    "Domain", "check_image", "lp_norm", "norm_name", "parse_norm",
    "InputError", "NetworkError", "ReluNetwork", "load_onnx",
    "Regions", "patterns", "region_qp", "regions_at", "regions_of_patterns",
    "BoxQP", "QPSolution", "dual_bound", "solve_clarabel", "solve_reference",
    "Counts", "Result", "Status",
]
