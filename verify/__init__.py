"""minadv.verify: the exact side. Networks (also from ONNX), VNN-LIB properties, the float64 check, linear
regions, bounds, exact solvers."""

from .adversarial import TOL, Verdict, check, push_across, verified_result
from .counterexample import (
                             CexCheck,
                             check_counterexample,
                             format_counterexample,
                             parse_counterexample,
                             read_counterexample,
                             write_counterexample,
)
from .domain import Domain, check_image, lp_norm, norm_name, parse_norm
from .exact import minimal_perturbation
from .network import InputError, NetworkError, ReluNetwork
from .onnx_import import load_onnx
from .polytope import Regions, patterns, region_qp, regions_at, regions_of_patterns
from .qp import BoxQP, QPSolution, QPStatus, dual_bound, solve_clarabel, solve_reference
from .regression import REL_GAP, assert_not_below_optimum, optimum_floor
from .result import Counts, Result, Status
from .vnnlib import (
                             Property,
                             VnnlibError,
                             format_vnnlib,
                             parse_vnnlib,
                             read_vnnlib,
                             write_vnnlib,
)

__all__ = [
    "TOL", "Verdict", "check", "push_across", "verified_result",
    "Domain", "check_image", "lp_norm", "norm_name", "parse_norm",
    "CexCheck", "check_counterexample", "format_counterexample", "parse_counterexample",
    "read_counterexample", "write_counterexample",
    "InputError", "NetworkError", "ReluNetwork", "load_onnx",
    "Regions", "patterns", "region_qp", "regions_at", "regions_of_patterns",
    "BoxQP", "QPSolution", "QPStatus", "dual_bound", "solve_clarabel", "solve_reference",
    "Counts", "Result", "Status", "minimal_perturbation",
    "REL_GAP", "assert_not_below_optimum", "optimum_floor",
    "Property", "VnnlibError", "format_vnnlib", "parse_vnnlib", "read_vnnlib", "write_vnnlib",
]
