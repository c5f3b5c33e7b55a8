"""Table 2's statistics from result rows: ratios to rLR-QP, IR %, failures left out and counted."""

import math

import pandas as pd
import pytest

from minadv.experiments.table2 import table2, to_markdown

nan = math.nan


def _frame(rows):
    return pd.DataFrame(rows, columns=["net", "image", "method", "status", "value"])


def test_ratios_ir_and_failures():
    values = {0: (1.0, 1.2, 2.0), 1: (2.0, 1.0, nan), 2: (0.5, 0.5, 0.5), 3: (nan, 0.7, 0.9)}  # rLR-QP, CW, DF
    frame = _frame([("1x1024", i, m, "failed" if math.isnan(v) else "found", v)
                    for i, vs in values.items() for m, v in zip(("rlrqp", "cw-torch", "deepfool"), vs, strict=True)])
    t = table2(frame).set_index("method")
    cw, df = t.loc["cw-torch"], t.loc["deepfool"]
    assert (cw.images, cw.compared, cw.n_failed, cw.n_reference_failed) == (4, 3, 0, 1)
    assert cw.mean_ratio == pytest.approx((1.2 + 0.5 + 1.0) / 3)
    assert (cw.min_ratio, cw.max_ratio) == (0.5, 1.2)
    assert cw.ir_percent == pytest.approx(100 / 3)  # a tie is no improvement
    assert (df.compared, df.n_failed, df.mean_ratio, df.ir_percent) == (2, 1, 1.5, 50.0)
    assert (cw.paper_mean, cw.paper_ir_percent, df.paper_failed) == (1.029, 94.4, 1)
    md = to_markdown(table2(frame))
    assert "| 1x1024 | DeepFool | 4 | 1.500 / 1.000 / 2.000, 50.0 (1) | 1.157 / 1.000 / 13.861, 99.9 (1) | 1 |" in md


def test_duplicate_rows_are_refused():
    frame = _frame([("1x1024", 0, "rlrqp", "found", 1.0), ("1x1024", 0, "rlrqp", "found", 1.1)])
    with pytest.raises(ValueError, match="several rows"):
        table2(frame)
