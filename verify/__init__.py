"""minadv.verify: the exact side.

At the top: the network (`network`), the threat model (`domain`), the one result record
(`result`) and the float64 adversarial check (`adversarial`). Sub-packages, each with its public
API in its `__init__`:
- `io`: model files (.pt, ONNX), VNN-LIB properties, counterexample files;
- `qp`: minimum-norm QPs over polyhedra cap box, linear regions, their solvers;
- `bounds`: bounds on hidden pre-activations over box cap ball;
- `exact`: the proven minimal perturbation (branch and bound, Tjeng MIP);
- `decide`: decision problems over a box (VNN-COMP properties).
The names below are the ones users need most."""

from .adversarial import TOL, Verdict, check, push_across, verified_result
from .decide import BoxAnswer, BoxMethod, BoxVerdict, verify_box
from .domain import Domain, check_image, choice, lp_norm, norm_name, parse_norm
from .exact import (
    REL_GAP,
    Method,
    NodeSolver,
    Tightening,
    assert_not_below_optimum,
    check_options,
    minimal_perturbation,
    optimum_floor,
)
from .extras import MissingExtraError, missing_extra, require
from .io import (
    CexCheck,
    Property,
    VnnlibError,
    check_counterexample,
    format_counterexample,
    format_vnnlib,
    load_network,
    load_onnx,
    parse_counterexample,
    parse_vnnlib,
    read_counterexample,
    read_vnnlib,
    write_counterexample,
    write_vnnlib,
)
from .network import InputError, NetworkError, NeuronState, ReluNetwork
from .parallel import one_thread_env, pinned_threads, spawn_pool
from .qp import (
    BoxQP,
    QPSolution,
    QPStatus,
    Regions,
    dual_bound,
    patterns,
    region_qp,
    regions_at,
    regions_of_patterns,
    solve_clarabel,
    solve_reference,
)
from .result import Counts, Result, Status

__all__ = [
    "TOL", "Verdict", "check", "push_across", "verified_result",
    "BoxAnswer", "BoxMethod", "BoxVerdict", "verify_box",
    "Domain", "check_image", "choice", "lp_norm", "norm_name", "parse_norm",
    "REL_GAP", "Method", "NodeSolver", "Tightening", "assert_not_below_optimum", "check_options",
    "minimal_perturbation", "optimum_floor",
    "CexCheck", "Property", "VnnlibError", "check_counterexample", "format_counterexample", "format_vnnlib",
    "load_network", "load_onnx", "parse_counterexample", "parse_vnnlib", "read_counterexample", "read_vnnlib",
    "write_counterexample", "write_vnnlib",
    "InputError", "NetworkError", "NeuronState", "ReluNetwork",
    "MissingExtraError", "missing_extra", "require",
    "one_thread_env", "pinned_threads", "spawn_pool",
    "BoxQP", "QPSolution", "QPStatus", "Regions", "dual_bound", "patterns", "region_qp", "regions_at",
    "regions_of_patterns", "solve_clarabel", "solve_reference",
    "Counts", "Result", "Status",
]
