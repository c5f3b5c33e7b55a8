"""One vocabulary per outcome: every status is a str-valued enum (printed and written as the
same text as before), and every map from one vocabulary to the next covers all members of its
source, so a new or unmapped value fails here instead of silently becoming `error`."""

import pytest
from pyomo.contrib.solver.common.results import TerminationCondition

from minadv.experiments.vnncomp import ANSWER_OF_BOX, Answer
from minadv.verify import QPStatus, Status
from minadv.verify.decide.verdicts import BOX_OF_TARGET, BoxAnswer, TargetVerdict
from minadv.verify.exact.minimal import GAP_OPEN, WITHOUT_POINT
from minadv.verify.exact.mip import _OF_TERMINATION, MilpStatus
from minadv.verify.exact.mip_search import STOP_OF_MILP
from minadv.verify.qp.batched import OF_QP, BatchStatus
from minadv.verify.result import Stop

TEXTS = {
    QPStatus: {"optimal", "infeasible", "cutoff", "error"},
    BatchStatus: {"optimal", "infeasible", "pruned", "unconverged"},
    MilpStatus: {"optimal", "time_limit", "infeasible", "cutoff", "target", "error"},
    Stop: {"done", "time_limit", "error"},
    Status: {"optimal", "time_limit", "robust", "error", "found", "failed"},
    TargetVerdict: {"safe", "sat", "unknown", "unreached"},
    BoxAnswer: {"unsat", "sat", "unknown"},
    Answer: {"sat", "unsat", "timeout"},
}


@pytest.mark.parametrize("enum", list(TEXTS), ids=lambda e: e.__name__)
def test_each_vocabulary_keeps_its_text(enum):
    """str() and f-strings give the value: CSVs and printed verdicts read as before."""
    assert {str(m) for m in enum} == {f"{m}" for m in enum} == {m.value for m in enum} == TEXTS[enum]
    assert all(m == m.value for m in enum)  # a results file's string still compares equal


@pytest.mark.parametrize(
    "mapping, source, target",
    [
        (_OF_TERMINATION, TerminationCondition, MilpStatus),  # HiGHS (via Pyomo) -> a MILP's outcome
        (OF_QP, QPStatus, BatchStatus),  # DAQP's verdict -> the batched solver's
        (WITHOUT_POINT, Stop, Status),  # an exact search's stop, no point in the domain -> the answer
        (GAP_OPEN, Stop, Status),  # ... with a point but the gap open -> the answer
        (BOX_OF_TARGET, TargetVerdict, BoxAnswer),  # one target's search -> the box
        (ANSWER_OF_BOX, BoxAnswer, Answer),  # the box -> the VNN-COMP answer
    ],
)
def test_every_member_is_mapped(mapping, source, target):
    for member in source:
        assert member in mapping, f"{source.__name__}.{member.name} has no {target.__name__}"
        assert isinstance(mapping[member], target)


def test_every_milp_outcome_has_a_way_out_of_the_exact_search():
    """MipSearch.run: optimal -> cut and solve again, infeasible -> done (nothing in the
    domain), every other outcome -> its Stop."""
    for status in MilpStatus:
        assert status in (MilpStatus.OPTIMAL, MilpStatus.INFEASIBLE) or isinstance(STOP_OF_MILP[status], Stop), status


def test_an_exact_search_that_is_done_without_a_point_is_robust_and_never_error():
    assert WITHOUT_POINT[Stop.DONE] == Status.ROBUST and WITHOUT_POINT[Stop.TIME_LIMIT] == Status.TIME_LIMIT
    assert GAP_OPEN[Stop.TIME_LIMIT] == Status.TIME_LIMIT
