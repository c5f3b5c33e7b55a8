import dataclasses
import re

import numpy as np
import pytest

from minadv.attacks import ATTACKS
from minadv.verify import (
    InputError,
    Result,
    Status,
    assert_not_below_optimum,
    minimal_perturbation,
    optimum_floor,
)


@pytest.fixture(scope="module")
def n1_image1(n1, test_split):
    x = test_split.x(1)
    exact = minimal_perturbation(n1, x, time_limit=60)
    assert exact.status == Status.OPTIMAL
    return x, exact


def test_the_optimum_and_larger_perturbations_pass(n1, n1_image1):
    x, exact = n1_image1
    delta = exact.x_adv - x
    assert assert_not_below_optimum(n1, x, delta, exact=exact) is exact
    assert_not_below_optimum(n1, x, np.clip(x + 1.5 * delta, 0, 1) - x, exact=exact)
    assert_not_below_optimum(n1, x, Result("my_attack", 2.0, Status.FAILED, 2), exact=exact)  # claims nothing


def test_solves_when_no_exact_result_is_given(n1, test_split):
    x = test_split.x(8)
    exact = minimal_perturbation(n1, x, time_limit=60)
    solved = assert_not_below_optimum(n1, x, exact, time_limit=60)  # an attack's Result is accepted too
    assert solved.status == Status.OPTIMAL and solved.value == pytest.approx(exact.value, rel=1e-4)


def test_a_point_that_is_not_adversarial_fails(n1, n1_image1):
    x, exact = n1_image1
    with pytest.raises(AssertionError, match="not adversarial"):
        assert_not_below_optimum(n1, x, 0.9 * (exact.x_adv - x), exact=exact)


def test_a_norm_below_the_certificate_fails(n1, n1_image1):
    x, exact = n1_image1
    # A wrong certificate (as from a buggy solver) claims the optimum is 1.5x larger.
    wrong = dataclasses.replace(exact, value=1.5 * exact.value, lower=1.5 * exact.lower, upper=1.5 * exact.upper)
    with pytest.raises(AssertionError, match="below the exact solver's certificate"):
        assert_not_below_optimum(n1, x, exact.x_adv - x, exact=wrong)
    unproven = dataclasses.replace(wrong, status=Status.TIME_LIMIT, lower=0.5 * exact.value)
    assert_not_below_optimum(n1, x, exact.x_adv - x, exact=unproven)  # only the lower bound counts then


def test_floor_and_refusals(n1, n1_image1):
    x, exact = n1_image1
    assert optimum_floor(exact) == pytest.approx((1 - 1e-4) * exact.value)
    with pytest.raises(ValueError, match="certifies no bound"):
        optimum_floor(dataclasses.replace(exact, status=Status.ERROR))
    with pytest.raises(ValueError, match="L2"):
        assert_not_below_optimum(n1, x, exact.x_adv - x, exact=exact, norm="inf")


def test_a_delta_of_the_wrong_shape_is_an_input_error(n1, n1_image1):
    x, exact = n1_image1
    for delta in (np.zeros(10), np.zeros((2, 784))):
        with pytest.raises(InputError, match=rf"delta has {delta.size} values \(shape {re.escape(str(delta.shape))}\); "
                                             "the image has 784"):
            assert_not_below_optimum(n1, x, delta, exact=exact)
    assert_not_below_optimum(n1, x, (exact.x_adv - x).reshape(28, 28), exact=exact)  # 784 values in any shape


@pytest.mark.slow
def test_a_result_for_another_image_is_a_mix_up_not_a_solver_bug(n1, n1_image1, test_split):
    x, exact = n1_image1
    c = n1.predict(x)
    # another image of the same class (the class check cannot tell) and one of another class
    same = next(i for i in range(2, 100) if n1.predict(test_split.x(i)) == c)
    other = next(i for i in range(2, 100) if n1.predict(test_split.x(i)) != c)
    for i in (same, other):
        xi = test_split.x(i)
        exact_i = minimal_perturbation(n1, xi, time_limit=60)
        assert exact_i.status == Status.OPTIMAL
        with pytest.raises(InputError, match="another image"):
            assert_not_below_optimum(n1, xi, exact_i.x_adv - xi, exact=exact)  # exact of image 1, x of image i
        with pytest.raises(InputError, match="another image"):
            assert_not_below_optimum(n1, xi, exact, exact=exact_i)  # the attack's Result is image 1's
        assert_not_below_optimum(n1, xi, exact_i, exact=exact_i)


@pytest.mark.skipif("rlrqp" not in ATTACKS, reason="rLR-QP not registered yet (attacks branch)")
@pytest.mark.parametrize("net_name, image", [("N1", 1), ("N1", 8), pytest.param("N2", 3, marks=pytest.mark.slow),
                                             pytest.param("N2", 4, marks=pytest.mark.slow)])
def test_rlrqp_never_beats_the_mip(net_name, image, n1, n2, test_split):
    net, x = {"N1": n1, "N2": n2}[net_name], test_split.x(image)
    assert_not_below_optimum(net, x, ATTACKS["rlrqp"]().run(net, x), time_limit=60)
