"""minadv.verify.bounds: bounds l <= g_j(z) <= u on every hidden pre-activation over the domain
{x + delta : delta in the box, ||delta||_p <= r} (interval, CROWN, optimised CROWN slopes) and the
ReLU relaxations they define."""

from .preactivation import (
    WIDEN,
    Bounds,
    backsubstitute,
    crown,
    optimized_bounds,
    relu_relaxation,
    through_relaxations,
)

__all__ = ["WIDEN", "Bounds", "backsubstitute", "crown", "optimized_bounds", "relu_relaxation",
           "through_relaxations"]
