import math
import struct

import pandas as pd
import pytest

from minadv.experiments.figures import write_figures
from minadv.experiments.table1 import (
    COLUMNS,
    BelowOptimumError,
    ratios,
    table1,
    to_latex,
    to_markdown,
    write_tables,
)


def _frame(rows):
    cols = ["net", "image", "method", "norm", "status", "value", "lower", "time_s", "margin"]
    return pd.DataFrame([dict(zip(cols, (*r[:3], "2", *r[3:]), strict=True)) for r in rows])


def _results(deepfool_0=0.5):
    """N1: the MIP proves images 0-2 and stops at a time limit on 3; DeepFool matches image 0, is
    1.5x off on 1, fails on 2 and beats the MIP's incumbent on the unproven image 3. N2: CW only."""
    nan = math.nan
    return _frame([
        ("N1", 0, "mip", "optimal", 0.5, 0.49996, 2.0, 0.0),
        ("N1", 1, "mip", "optimal", 1.0, 1.0, 4.0, 0.0),
        ("N1", 2, "mip", "optimal", 0.2, 0.2, 6.0, 0.0),
        ("N1", 3, "mip", "time_limit", 0.8, 0.6, 300.0, 0.0),
        ("N1", 0, "deepfool", "found", deepfool_0, nan, 0.1, 0.0),
        ("N1", 1, "deepfool", "found", 1.5, nan, 0.2, 0.0),
        ("N1", 2, "deepfool", "failed", nan, nan, 0.3, nan),
        ("N1", 3, "deepfool", "found", 0.7, nan, 0.4, 0.0),
        ("N2", 0, "cw", "found", 0.3, nan, 1.0, 0.0),
    ])


def _row(table, net, method):
    return table[(table.net == net) & (table.method == method)].iloc[0]


def test_ratios_use_proven_optima_only_and_count_the_rest():
    table = table1(_results())
    assert list(table.columns) == COLUMNS
    assert list(zip(table.net, table.method, strict=True)) == [("N1", "mip"), ("N1", "deepfool"), ("N2", "cw")]
    df = _row(table, "N1", "deepfool")
    assert (df.images, df.n_matched, df.n_failed, df.n_not_optimal) == (4, 1, 1, 1)
    assert df.mean_ratio == pytest.approx(1.25) and df.max_ratio == pytest.approx(1.5)  # 0.7 on image 3 left out
    assert df.mean_time_s == pytest.approx(0.25)
    assert (df.paper_mean_ratio, df.paper_max_ratio) == (1.1226, 1.6059)
    mip = _row(table, "N1", "mip")
    assert (mip.images, mip.n_matched, mip.n_failed, mip.n_not_optimal, mip.mean_ratio) == (4, 3, 0, 1, 1.0)
    cw = _row(table, "N2", "cw")  # no exact result for N2: nothing to compare with
    assert (cw.n_not_optimal, cw.n_matched) == (1, 0) and math.isnan(cw.mean_ratio)
    assert sorted(ratios(_results()).query("method == 'deepfool'").image) == [0, 1]


def test_a_ratio_below_one_against_a_proven_optimum_raises_with_the_rows():
    with pytest.raises(BelowOptimumError, match=r"(?s)deepfool.*0\.98"):
        table1(_results(deepfool_0=0.49))
    within = table1(_results(deepfool_0=0.5 * (1 - 0.5e-4)))  # inside the solver's relative gap 1e-4
    assert _row(within, "N1", "deepfool").n_matched == 1


def test_duplicate_rows_are_refused():
    frame = _results()
    with pytest.raises(ValueError, match="several rows"):
        table1(pd.concat([frame, frame.iloc[[4]]]))


def test_markdown_and_latex_contents(tmp_path):
    frame = _results()
    frame.loc[frame.net == "N2", "net"] = "my_net"
    table = table1(frame)
    md = to_markdown(table, note="machine: test")
    assert "| N1 | DeepFool | 4 | 1.2500 | 1.5000 | 1 | 1 | 1 | 0.25 | 1.1226 / 1.6059 |" in md
    assert md.index("| N1 | MIP |") < md.index("| N1 | DeepFool |")
    assert "| my_net | CW | 1 | – | – | 0 | 0 | 1 | 1.00 | – |" in md and md.endswith("machine: test\n")
    tex = to_latex(table)
    assert "\\toprule" in tex and "\\bottomrule" in tex and "\\end{tabular}" in tex
    assert "N1 & DeepFool & 4 & 1.2500 & 1.5000 & 1 & 1 & 1 & 0.25 \\\\" in tex
    assert "my\\_net & CW & 1 & -- & -- & 0 & 0 & 1 & 1.00 \\\\" in tex
    paths = write_tables(table, tmp_path)
    assert [p.name for p in paths] == ["table1.md", "table1.csv", "table1.tex"]
    csv = pd.read_csv(paths[1])
    assert list(csv.columns) == COLUMNS and len(csv) == 3 and csv.mean_ratio[1] == pytest.approx(1.25)
    assert paths[0].read_text() == to_markdown(table) and paths[2].read_text() == tex


def test_figures_are_written_as_png_and_pdf(tmp_path):
    paths = write_figures(ratios(_results()), ["N1", "N2"], tmp_path)
    assert sorted(p.name for p in paths) == ["figure1.pdf", "figure1.png", "figure1_all_methods.pdf",
                                            "figure1_all_methods.png"]
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(b"%PDF" if p.suffix == ".pdf" else b"\x89PNG")
    width, _ = struct.unpack(">II", (tmp_path / "figure1.png").read_bytes()[16:24])
    assert width == 8 * 200  # 8 inches at dpi 200
