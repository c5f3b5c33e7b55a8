"""The verdicts of deciding a box (VNN-COMP robustness: is there z in [lower, upper] with
f_t(z) >= f_label(z) for some target t?), for the whole box; one target's verdict is the split
search's `TargetVerdict`."""

from __future__ import annotations

from enum import StrEnum

from ..splits import TargetVerdict


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
