"""minadv.verify.bounds: bounds l <= g_j(z) <= u on every hidden pre-activation over the domain
{x + delta : delta in the box, ||delta||_p <= r} (interval, CROWN, optimised CROWN slopes) and the
ReLU relaxations they define; a branch-and-bound node's first-layer bounds under its fixed ReLUs;
the support function of box cap L2 ball (also the split search's, `splits`)."""

from .fixings import Multipliers, ball_box_support, support_ball_box, under_fixings
from .preactivation import (
    WIDEN,
    Bounds,
    backsubstitute,
    crown,
    optimized_bounds,
    relu_relaxation,
    through_relaxations,
)

__all__ = ["WIDEN", "Bounds", "Multipliers", "backsubstitute", "ball_box_support", "crown", "optimized_bounds",
           "relu_relaxation", "support_ball_box", "through_relaxations", "under_fixings"]
