"""The verdicts of deciding a box (VNN-COMP robustness: is there z in [lower, upper] with
f_t(z) >= f_label(z) for some target t?), per target and for the whole box."""

from __future__ import annotations

from enum import StrEnum


class TargetVerdict(StrEnum):
    """One target's search (`decide.splits.SplitSearch`, or the MILP in `decide`)."""

    SAFE = "safe"  # proven: f_t < f_label on the whole box
    SAT = "sat"  # a float64-checked point with f_t >= f_label
    UNKNOWN = "unknown"  # the search stopped (time) or a near miss the float64 check refused
    UNREACHED = "unreached"  # `decide`: the time ran out before this target's search started


class BoxAnswer(StrEnum):
    """The box's verdict (`decide.box.verify_box`)."""

    UNSAT = "unsat"  # every target proven safe
    SAT = "sat"
    UNKNOWN = "unknown"


# what one target's verdict says of the box: SAFE leaves the answer to the other targets (the
# box is UNSAT only when every target is SAFE), SAT settles it, UNKNOWN / UNREACHED leave it open
BOX_OF_TARGET = {
    TargetVerdict.SAFE: BoxAnswer.UNSAT,
    TargetVerdict.SAT: BoxAnswer.SAT,
    TargetVerdict.UNKNOWN: BoxAnswer.UNKNOWN,
    TargetVerdict.UNREACHED: BoxAnswer.UNKNOWN,
}
