"""`minadv bench exact`: the suites' cases, the cross-check column, and a run end to end."""

import numpy as np
import pandas as pd
import pytest

from minadv.experiments.benchmarks.exact import SUITES, Case, cases, schemes, summary
from minadv.experiments.cli import main


def test_the_scale_suite_covers_the_issue_networks_and_norms():
    scale = set(SUITES["scale"])
    assert {c.net for c in scale if c.norm == "2"} == {"N1", "N2", "S1", "S2", "S3"}
    assert {c.net for c in scale if c.norm == "inf"} == {c.net for c in scale if c.norm == "1"} == {"N1", "N2", "S1"}
    assert all(c.cross for c in scale)
    assert cases("scale", ["S1"], "inf", False) == [Case("S1", "inf", True)]
    assert cases("paper", None, None, False) == [Case("N1", "2", False), Case("N2", "2", False)]
    assert cases("paper", ["my.onnx"], "1", True) == [Case("my.onnx", "1", True)]


def test_each_scheme_is_checked_by_the_other():
    assert schemes("auto") == ("bnb", "mip")
    assert schemes("mip") == ("mip", "bnb")
    assert schemes("bnb") == ("bnb", "mip")


def _row(image, options, status, value, norm="2"):
    return dict(net="S1", norm=norm, image=image, options=options, status=status, value=value, time_s=1.0,
                unstable=10, nodes=5)


def test_the_cross_check_column_counts_only_images_both_schemes_proved():
    frame = pd.DataFrame([
        _row(0, "", "optimal", 1.0), _row(0, "method='mip'", "optimal", 1.00005),  # agree (5e-5)
        _row(1, "", "optimal", 2.0), _row(1, "method='mip'", "optimal", 2.01),  # disagree (5e-3)
        _row(2, "", "optimal", 3.0), _row(2, "method='mip'", "time_limit", 3.5),  # not both proven
        _row(3, "", "time_limit", 4.0), _row(3, "method='mip'", "optimal", 4.0),
    ])
    line = summary(frame, "auto").splitlines()[-1]
    assert line.startswith("| S1 | L2 | 4 | 3 |")
    assert line.endswith("| 1/2 (5.0e-03) |"), line


def test_linf_rows_are_cross_checked_by_the_mip():
    frame = pd.DataFrame([_row(0, "", "optimal", 0.1, "inf"), _row(0, "method='mip'", "optimal", 0.1, "inf")])
    assert summary(frame, "auto").splitlines()[-1].endswith("| 1/1 (0.0e+00) |")


@pytest.fixture(scope="module")
def small_net(tmp_path_factory):
    """A 784-12-10 network (whole nn.Sequential): exact in well under a second by either scheme."""
    import torch
    from torch import nn

    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("net") / "small.pt"
    torch.save(nn.Sequential(nn.Linear(784, 12), nn.ReLU(), nn.Linear(12, 10)).double(), path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["2", "inf"])
def test_bench_exact_cross_checks_both_schemes_and_resumes(tmp_path, capsys, small_net, norm):
    out = tmp_path / "bench.csv"
    argv = ["bench", "exact", "--nets", str(small_net), "--norm", norm, "--cross-check", "--images", "0",
            "--time-limit", "120", "--out", str(out)]
    assert main(argv) == 0
    rows = pd.read_csv(out, keep_default_na=False)
    other = schemes("auto")[1]
    assert sorted(set(rows.options)) == ["", f"method='{other}'"] and set(rows.status) == {"optimal"}
    by = rows.pivot(index="image", columns="options", values="value")
    diff = (by[""] - by[f"method='{other}'"]).abs() / by.max(axis=1)
    assert (diff <= 1e-4).all(), diff
    table = out.with_suffix(".md").read_text().splitlines()
    assert table[2].startswith(f"| {small_net} | L{norm} | 1 | 1 |")
    assert table[2].endswith(f"| 1/1 ({diff.max():.1e}) |"), table[2]
    capsys.readouterr()
    assert main(argv) == 0  # resumed: nothing solved again, no row added
    assert len(pd.read_csv(out)) == 2


def test_bad_input_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:  # argparse: exit 2
        main(["bench", "exact", "--suite", "nope", "--out", str(tmp_path / "b.csv")])
    assert exc.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err
    assert main(["bench", "exact", "--norm", "3", "--images", "0", "--out", str(tmp_path / "b.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minadv bench: error:") and err.count("\n") == 1, err
    assert not (tmp_path / "b.csv").exists()


def test_markdown_describes_every_call_so_far(tmp_path, capsys, small_net):
    out = tmp_path / "bench.csv"
    for norm in ("2", "1"):
        argv = ["bench", "exact", "--nets", str(small_net), "--norm", norm, "--images", "0", "--out", str(out)]
        assert main(argv) == 0
        printed = capsys.readouterr().out
    table = out.with_suffix(".md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| ")][2:]
    assert [line.split(" | ")[1] for line in rows] == ["L2", "L1"], table
    assert "| L1 |" in printed and "| L2 |" not in printed  # the printed table: this call's cases only


def test_warm_start_gives_the_exact_solver_the_attacks_point():
    """`warm_start`: DeepFool's point is the first incumbent (S3 image 2: the branch and bound's
    own incumbents stay near 1.4 for minutes; DeepFool finds 0.83 in a fraction of a second),
    and the answer is still the exact solver's (bounds, float64-verified point)."""
    from minadv.experiments.data import mnist
    from minadv.experiments.models import load
    from minadv.experiments.runner import make_method

    net, x = load("S3"), mnist("test").x(2)
    found = make_method("deepfool", "2")(net, x)
    result = make_method("mip", "2", {"time_limit": 5.0, "warm_start": "deepfool"})(net, x)
    assert result.status in ("optimal", "time_limit") and result.method == "mip"
    assert result.value <= found.value + 1e-12 and result.lower <= result.value
    assert np.isclose(np.linalg.norm(result.x_adv - x), result.value, rtol=1e-9)
    assert net.predict(result.x_adv) != net.predict(x)


def test_warm_start_rows_are_their_own_and_only_l2(tmp_path, capsys, small_net):
    out = tmp_path / "bench.csv"
    base = ["bench", "exact", "--nets", str(small_net), "--images", "0", "--out", str(out)]
    assert main([*base, "--warm-start", "deepfool"]) == 0 and main(base) == 0
    rows = pd.read_csv(out, keep_default_na=False).set_index("options")
    assert sorted(rows.index) == ["", "warm_start='deepfool'"] and set(rows.status) == {"optimal"}
    assert rows.value[""] == pytest.approx(rows.value["warm_start='deepfool'"], rel=1e-4)
    table = out.with_suffix(".md").read_text()
    assert f"| {small_net}, deepfool start | L2 | 1 | 1 |" in table and f"| {small_net} | L2 | 1 | 1 |" in table
    capsys.readouterr()
    assert main([*base, "--norm", "inf", "--warm-start", "rlrqp"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minadv bench: error:") and "L2 attack" in err and err.count("\n") == 1, err


def test_decide_finish_rows_are_their_own_and_only_l2(tmp_path, capsys, small_net):
    """--finish decide --decide-after 0 (the hand-over right after the roots): its own rows, the
    same optimum, labelled in the table; another norm or a negative time is a one-line error."""
    out = tmp_path / "bench.csv"
    base = ["bench", "exact", "--nets", str(small_net), "--images", "0", "--out", str(out)]
    assert main([*base, "--finish", "decide", "--decide-after", "0"]) == 0 and main(base) == 0
    rows = pd.read_csv(out, keep_default_na=False).set_index("options")
    key = "decide_after=0.0 finish='decide'"
    assert sorted(rows.index) == ["", key] and set(rows.status) == {"optimal"}
    assert rows.value[""] == pytest.approx(rows.value[key], rel=1e-4)
    table = out.with_suffix(".md").read_text()
    assert f"| {small_net}, decide_after=0.0, decide finish | L2 | 1 | 1 |" in table, table
    capsys.readouterr()
    for bad in (["--norm", "inf", "--finish", "decide"], ["--finish", "decide", "--decide-after", "-1"]):
        assert main([*base, *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("minadv bench: error:") and err.count("\n") == 1, err
