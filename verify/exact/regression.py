"""For users' test suites: an attack's perturbation may never be smaller than the proven optimum.

    from minadv.verify import assert_not_below_optimum
    assert_not_below_optimum(net, x, delta)            # solves the exact problem, then compares

A valid adversarial point can never beat a proven lower bound, so a failure means the
attack's point is not adversarial (float64 check) or a certificate is wrong.
"""

from __future__ import annotations

import numpy as np

from ..adversarial import check, push_across
from ..domain import check_image, lp_norm, norm_name, parse_norm
from ..network import InputError, ReluNetwork
from ..result import Result, Status
from .minimal import minimal_perturbation

REL_GAP = 1e-4  # the exact solver's default relative gap: its tolerance on the optimum
IMAGE_ATOL = 1e-6  # pixels further apart than this (float32 rounding is 6e-8) make another image


def check_result_is_for(net: ReluNetwork, x: np.ndarray, result: Result, what: str) -> None:
    """InputError unless `result` can be a result for image x: its pred is net's class of x and
    the image it records (Result.x, where recorded) equals x to IMAGE_ATOL per pixel."""
    c = net.predict(x)
    if result.pred != c:
        raise InputError(f"the {what} result is for an image of class {result.pred}, the network puts x in class {c}: "
                         "a result for another image or network?")
    if result.x is not None:
        gap = np.abs(np.ravel(result.x) - x).max() if np.size(result.x) == x.size else np.inf
        if not gap <= IMAGE_ATOL:
            raise InputError(f"the {what} result was computed for another image (its x differs from this x by "
                             f"{gap:.3g} in a pixel)")


def optimum_floor(exact: Result, rel_gap: float = REL_GAP) -> float:
    """Smallest norm an adversarial point may have by `exact`'s certificate, less the tolerance:
    (1 - rel_gap) * value for a proven optimum, (1 - rel_gap) * lower otherwise (time limit,
    robust within a radius). An exact result with status `error` certifies nothing."""
    if exact.status == Status.ERROR:
        raise ValueError(f"the exact result has status error ({exact.message}): it certifies no bound")
    bound = exact.value if exact.status == Status.OPTIMAL else exact.lower
    return (1.0 - rel_gap) * float(bound)


def assert_not_below_optimum(
    net: ReluNetwork,
    x,
    delta: np.ndarray | Result,
    *,
    exact: Result | None = None,
    norm=2,
    time_limit: float = 300.0,
    rel_gap: float = REL_GAP,
) -> Result:
    """Raise AssertionError unless x + delta is adversarial (float64 check, the boundary counts)
    and ||delta||_p >= optimum_floor(exact, rel_gap).

    delta: the attack's perturbation, or its Result (a failed attack claims nothing and passes).
    exact: a precomputed `minimal_perturbation` result for (net, x, norm); solved here (with
    `time_limit`) when None. Returns the exact result, so a caller can reuse it.
    A delta of the wrong size, or a Result that cannot be for x (`check_result_is_for`), is an
    InputError: a mix-up of the caller's, not a verdict on the attack or the solver.
    """
    x = check_image(net, x)
    p = parse_norm(norm)
    if isinstance(delta, Result):
        check_result_is_for(net, x, delta, "attack's")
    else:
        delta = np.asarray(delta, dtype=np.float64)
        if delta.size != x.size:
            raise InputError(f"delta has {delta.size} values (shape {delta.shape}); the image has {x.size}")
    if exact is None:
        exact = minimal_perturbation(net, x, p, time_limit=time_limit)
    elif exact.norm != p:
        raise ValueError(f"the exact result is for L{norm_name(exact.norm)}, the check for L{norm_name(p)}")
    else:
        check_result_is_for(net, x, exact, "exact")
    floor = optimum_floor(exact, rel_gap)
    if isinstance(delta, Result):
        if delta.x_adv is None:
            return exact
        delta = delta.x_adv - x
    delta = delta.reshape(-1)
    c = net.predict(x)
    if push_across(net, x, x + delta, c) is None:
        v = check(net, x + delta, c)
        raise AssertionError(
            f"x + delta is not adversarial for class {c}: margin {v.margin:.3g} (needs >= 0), in [0,1]^d: "
            f"{v.in_box}; its norm {lp_norm(delta, p):.6g} proves nothing")
    value = lp_norm(delta, p)
    if value < floor:
        raise AssertionError(
            f"the attack's L{norm_name(p)} norm {value:.6g} is below the exact solver's certificate: "
            f"status {exact.status}, optimum/upper {exact.value:.6g}, lower {exact.lower:.6g}, tolerance "
            f"rel_gap {rel_gap:g} (floor {floor:.6g}); a valid adversarial point cannot beat a proven "
            f"bound, so the solver (or the network seen by the attack) is wrong")
    return exact
