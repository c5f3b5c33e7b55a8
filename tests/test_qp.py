import numpy as np
import pytest

from minadv.verify.qp.reference import (
    BoxQP,
    certifies_infeasible,
    farkas_lp,
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


def test_the_phase1_lp_certifies_infeasible_problems_only():
    """farkas_lp: a float64-checked Farkas vector for infeasible problems (random rows pushed off
    the box, zero-cost extra variables included), None for feasible ones."""
    for seed in range(6):
        qp = _feasible_qp(seed, n_extra=seed % 3)
        assert farkas_lp(qp) is None
        rng = np.random.default_rng(seed)
        y0 = rng.uniform(0.5, 1.0, 3)  # rows 0-2 combined: a row that misses the box by 0.1
        lo, hi = qp.lo, qp.hi
        w = y0 @ qp.A[:3]
        gap = np.where(w > 0, w * lo, w * hi).sum() - 0.1
        b = qp.b.copy()
        b[:3] = gap / y0.sum()  # y0 @ b = gap < min_box y0 @ A v
        bad = BoxQP(qp.A, b, lo, hi, n=qp.n)
        y = farkas_lp(bad)
        assert y is not None and certifies_infeasible(bad, y)
        assert solve_reference(bad).status == "infeasible"


def test_a_certificate_must_beat_the_rounding_error_of_its_check():
    """v <= 0.5 and v >= 0.5 + 1e-10 on a box of half-width 1e6: y = (1, 1) gives
    min_box y^T (A v - b) = 1e-10, below the rounding error the check allows for (~1e-9 here),
    so it is not taken as proof; on the box [0, 1] the same margin is far above it."""
    A = np.array([[1.0], [-1.0]])
    b = np.array([0.5, -0.5 - 1e-10])
    assert not certifies_infeasible(BoxQP(A, b, np.array([-1e6]), np.array([1e6])), np.ones(2))
    assert certifies_infeasible(BoxQP(A, b, np.array([0.0]), np.array([1.0])), np.ones(2))


@pytest.mark.parametrize("p", [1.0, np.inf])
def test_an_lp_stopped_at_a_cutoff_bounds_its_optimum(p):
    """solve_lp with a cutoff below the optimum may stop early (status cutoff): its bound is
    then at least the cutoff and at most the optimum; above the optimum it solves to the end."""
    stopped = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        N, m = 120, 40
        A = rng.normal(size=(m, N))
        v0 = rng.uniform(-0.5, 0.5, N)
        qp = BoxQP(A, A @ v0 + 0.01, -np.ones(N), np.ones(N))
        opt = solve_lp(qp, p)
        assert opt.status == "optimal"
        for cutoff in (0.3 * opt.norm, 0.9 * opt.norm, 1.1 * opt.norm):
            sol = solve_lp(qp, p, cutoff)
            if sol.status == "cutoff":
                stopped += 1
                assert cutoff <= sol.lower <= opt.norm + 1e-9 and sol.v is None
            else:
                assert sol.status == "optimal" and sol.norm == pytest.approx(opt.norm, rel=1e-9)
    assert stopped >= 5
