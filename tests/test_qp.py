import numpy as np
import pytest

from minadv.verify.qp.reference import (
    BoxQP,
    norm_dual_bound,
    solve_daqp,
    solve_lp,
    solve_norm,
    solve_reference,
)


def _feasible_qp(seed, n_extra=0):
    rng = np.random.default_rng(seed)
    N = 9 + n_extra
    A = rng.normal(size=(6, N))
    v0 = rng.uniform(-0.8, 0.8, N)
    b = A @ v0 + 0.05
    lo, hi = -rng.uniform(0.2, 1, N), rng.uniform(0.2, 1, N)
    lo[:9], hi[:9] = np.minimum(lo[:9], v0[:9] - 0.01), np.maximum(hi[:9], v0[:9] + 0.01)
    lo[9:], hi[9:] = np.minimum(lo[9:], v0[9:]), np.maximum(hi[9:], v0[9:])
    return BoxQP(A, b, lo, hi, n=9)


@pytest.mark.parametrize("p", [1.0, 2.0, np.inf])
@pytest.mark.parametrize("seed", range(5))
def test_norm_dual_bound_is_tight_at_optimal_multipliers_and_valid_for_any(p, seed):
    qp = _feasible_qp(seed, n_extra=3)
    ref = solve_reference(qp, p)
    assert ref.status == "optimal"
    assert norm_dual_bound(qp, ref.lam, p) == pytest.approx(ref.norm, abs=1e-6)
    rng = np.random.default_rng(seed)
    for _ in range(300):
        assert norm_dual_bound(qp, rng.exponential(size=6) * rng.random(), p) <= ref.norm + 1e-12


@pytest.mark.parametrize("p", [1.0, 2.0, np.inf])
@pytest.mark.parametrize("seed", range(5))
def test_fast_solvers_agree_with_cvxpy(p, seed):
    qp = _feasible_qp(seed, n_extra=3)
    ref = solve_reference(qp, p)
    sol = solve_norm(qp, p)
    assert sol.status == "optimal"
    assert sol.norm == pytest.approx(ref.norm, abs=1e-6)
    assert sol.lower <= ref.norm + 1e-9 and sol.lower == pytest.approx(ref.norm, abs=1e-6)
    assert qp.violation(sol.v) <= 1e-6


def test_infeasible_problems_are_reported_by_every_solver():
    A = np.array([[1.0, 0.0], [-1.0, 0.0]])
    qp = BoxQP(A, np.array([-0.5, -0.5]), -np.ones(2), np.ones(2))
    assert solve_daqp(qp).status == "infeasible"
    assert solve_lp(qp, 1.0).status == "infeasible" and solve_lp(qp, np.inf).status == "infeasible"
