"""minadv.verify.exact: the proven minimal adversarial perturbation.

`minimal_perturbation` (in `minimal`) is the one call; it runs either scheme:
- `bnb`: branch and bound over ReLU activation patterns with convex node QPs (L2) or node LPs
  (L1, Linf: `lpnodes`, one HiGHS model per target, each node started from its parent's basis);
- `mip_search`: the Tjeng MIP (`mip`, Pyomo + HiGHS), minimising the norm directly (Linf, L1)
  or by L2 tangent cuts.
`incumbent` keeps the best float64-verified point; `regression` asserts that an attack's point
is never below a proven optimum."""

from .bnb import BranchAndBound, Branching, Finish, NodeBounds, NodeSolver
from .minimal import Method, Tightening, check_options, minimal_perturbation
from .mip import MilpStatus, TjengModel, solve_milp
from .regression import REL_GAP, assert_not_below_optimum, optimum_floor

__all__ = [
    "Branching", "BranchAndBound", "Finish", "NodeBounds", "NodeSolver", "Method", "Tightening", "check_options",
    "minimal_perturbation",
    "MilpStatus", "TjengModel", "solve_milp", "REL_GAP", "assert_not_below_optimum", "optimum_floor",
]
