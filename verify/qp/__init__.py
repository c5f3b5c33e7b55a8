"""minadv.verify.qp: minimum-norm problems over a polyhedron intersected with the box [0,1]^d.

- `reference`: the problem `BoxQP` (min ||delta||_p s.t. A delta <= b, x + delta in the box) and
  its reference solvers (Clarabel, DAQP, the HiGHS LP `NormLP`) with dual bounds and Farkas certificates;
- `regions`: linear regions of a ReLU network (activation patterns) and the region QP on one;
- `batched`: many region QPs at once (projected Newton on the small dual, in torch);
- `workingset`: the region QP matrix-free with a working set of rows (wide and deep networks);
- `reduced`: the branch-and-bound's node QP on a small reduced problem."""

from .batched import OPTIMAL, RegionQPs, solve_batch
from .reduced import solve_node
from .reference import (
    BoxQP,
    NormLP,
    QPSolution,
    QPStatus,
    dual_bound,
    farkas_lp,
    solve_clarabel,
    solve_daqp,
    solve_norm,
    solve_reference,
)
from .regions import Regions, patterns, region_qp, regions_at, regions_of_patterns
from .workingset import WorkingSetQPs, dense_qp

__all__ = [
    "OPTIMAL", "RegionQPs", "solve_batch", "solve_node",
    "BoxQP", "NormLP", "QPSolution", "QPStatus", "dual_bound", "farkas_lp", "solve_clarabel", "solve_daqp",
    "solve_norm", "solve_reference",
    "Regions", "patterns", "region_qp", "regions_at", "regions_of_patterns", "WorkingSetQPs", "dense_qp",
]
