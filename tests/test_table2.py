"""Tables 2 and 3: statistics from result rows (ratios to rLR-QP, IR %, failures left out and
counted), rLR-QP's applications, `minadv reproduce table2 | table3` end to end."""

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import minadv.experiments.commands.main_experiments as main_experiments
from minadv.attacks import RLRQP
from minadv.experiments.cli import main
from minadv.experiments.table2 import TABLE3_STEPS, table2, table3, to_markdown

from helpers import random_net

MODELS = Path(__file__).resolve().parents[1] / "experiments" / "models"

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


# --- Table 3's applications and `minadv reproduce table2 | table3` -------------------------------


@pytest.mark.parametrize("solver", ["dense", "workingset"])
def test_each_application_is_the_run_with_that_many_iterations(solver):
    """RLRQP.applications' k-th point is RLRQP(iterations=k)'s, on images where the search moves."""
    net = random_net([30, 24, 6], seed=3)
    moved = 0
    for seed in range(6):
        x = np.random.default_rng(seed).uniform(0.2, 0.8, 30)
        c = net.predict(x)
        small = dict(n1=1, n2=2, n3=1, n4=1, solver=solver, seed=seed)  # a short search: later ones still gain
        each = list(RLRQP(iterations=3, **small).applications(net, x, c))
        assert len(each) == 3
        for k, cand in enumerate(each, start=1):
            alone = RLRQP(iterations=k, **small).find(net, x, c)
            np.testing.assert_array_equal(cand.point, alone.point)
            assert cand.target == alone.target
        norms = [np.linalg.norm(cand.point - x) for cand in each]
        assert norms[2] <= norms[1] + 1e-12 and norms[1] <= norms[0] + 1e-12  # each polished: rounding
        moved += norms[2] < norms[0]
    assert moved  # else the test shows nothing about the later applications


def test_table3_statistics():
    cw = {0: 1.0, 1: 2.0}
    values = {0: [3.0, 2.0, 1.25, 1.0, 1.0, 0.8, 0.8, 0.8, 0.8], 1: [4.0, 4.0, 2.5, 2.5, 2.0, 2.0, 2.0, 1.6, 1.6]}
    steps = pd.DataFrame([(i, s, v, cw[i]) for i, vs in values.items() for s, v in zip(TABLE3_STEPS, vs, strict=True)],
                         columns=["image", "step", "value", "cw"]).set_index("step", drop=False)
    t = table3(steps.reset_index(drop=True)).set_index("step")
    first, second = t.loc["rlrqp-1"], t.loc["rlrqp-2"]
    assert (first["mean"], first["min"], first["max"], first.n_better) == (0.8, 0.8, 0.8, 0)
    assert first.progress_mean_percent != first.progress_mean_percent  # nan: no rLR-QP step before it
    assert (second["mean"], second.n_better) == (pytest.approx((1.0 + 0.8) / 2), 0)
    assert second.progress_max_percent == pytest.approx(25.0)  # 1.25 -> 1.0 on image 0; 2.5 -> 2.5 on image 1
    assert second.progress_mean_percent == pytest.approx(12.5)
    last = t.loc["rlrqp-7"]
    assert (last.n_better, last["max"]) == (2, pytest.approx(1.25))
    assert (t.loc["deepfool"]["min"], t.loc["rlrqp-7"].paper_n_better) == (pytest.approx(1 / 3), 24)


@pytest.fixture
def scale_models(tmp_path):
    """N1 and N2 standing in for 1x1024 (one hidden layer) and 5x1024 (two) in a models folder."""
    models = tmp_path / "models"
    models.mkdir()
    for name, net in (("1x1024", "N1"), ("5x1024", "N2")):
        for ext in ("pt", "json"):
            shutil.copy(MODELS / f"{net}.{ext}", models / f"{name}.{ext}")
    return models


@pytest.mark.slow
def test_reproduce_table2_and_table3(tmp_path, scale_models, monkeypatch, capsys):
    out = tmp_path / "results"
    args = ["--models", str(scale_models), "--images", "0:2", "--quick", "--out", str(out)]
    assert main(["reproduce", "table2", "--nets", "1x1024", "5x1024", *args]) == 0
    rows = pd.read_csv(out / "table2" / "results.csv", keep_default_na=False)
    assert len(rows) == 2 * 2 * 3 and set(rows.status) == {"found"}
    rl = rows[rows.method == "rlrqp"]
    assert list(rl.groupby("net").options.first()) == ["", "targets='warm'"]  # the paper's targets by depth
    table = pd.read_csv(out / "partial" / "table2.csv").set_index(["net", "method"])
    v = rows.pivot_table(index=["net", "image"], columns="method", values="value")
    for net in ("1x1024", "5x1024"):
        r = v.loc[net, "cw-torch"] / v.loc[net, "rlrqp"]
        assert table.loc[(net, "cw-torch"), "mean_ratio"] == pytest.approx(r.mean())
        assert table.loc[(net, "cw-torch"), "ir_percent"] == pytest.approx(100 * (r > 1).mean())
    assert (out / "partial" / "figures" / "table2_ratios.png").stat().st_size > 0
    assert not (out / "table2.md").exists()  # a partial run leaves the default run's table alone

    capsys.readouterr()
    assert main(["reproduce", "table2", "--nets", "1x1024", "5x1024", *args]) == 0  # resumed: nothing recomputed
    assert "0/" not in capsys.readouterr().err and len(pd.read_csv(out / "table2" / "results.csv")) == 12
    before = (out / "partial" / "table2.csv").read_text()
    tables_only = ["--models", str(scale_models), "--images", "0:3", "--quick", "--out", str(out), "--tables-only"]
    assert main(["reproduce", "table2", "--nets", "1x1024", "5x1024", *tables_only]) == 0
    assert len(pd.read_csv(out / "table2" / "results.csv")) == 12  # image 2 not run: only the stored rows
    assert (out / "partial" / "table2.csv").read_text() == before
    assert "CW with" in (out / "partial" / "table2.md").read_text()
    # a clone without the trained networks: the depth (rLR-QP's targets) comes from the kept cards
    without = [*tables_only[2:], "--models", str(tmp_path / "no-models")]
    (out / "partial" / "table2.csv").unlink()
    assert main(["reproduce", "table2", "--nets", "1x1024", "5x1024", *without]) == 0
    assert (out / "partial" / "table2.csv").read_text() == before
    assert main(["reproduce", "table2", "--nets", "1x1024", "10x1024", *without]) == 2  # no rows, no card
    assert "no card of 10x1024 with its architecture" in capsys.readouterr().err
    assert main(["reproduce", "table3", "--nets", "1x1024", *without]) == 2  # Table 3 reruns DeepFool's warm start
    assert "minadv train 1x1024" in capsys.readouterr().err
    nets = ["--nets", "1x1024", "5x1024"]
    assert main(["reproduce", "table2", *nets, "--methods", "deepfool", "rlrqp", *tables_only]) == 0
    assert "CW" not in (out / "partial" / "table2.md").read_text()  # the note names only the attacks run

    monkeypatch.setattr(main_experiments, "TABLE3_SELECT", 10.0)  # every image, to see the applications
    assert main(["reproduce", "table3", "--nets", "1x1024", *args]) == 0
    rows = pd.read_csv(out / "table2" / "results.csv", keep_default_na=False)
    later = rows[rows.options.str.startswith("iterations=")]
    assert sorted(set(later.options)) == [f"iterations={k}" for k in range(2, 8)] and len(later) == 2 * 6
    rl = rows[(rows.net == "1x1024") & (rows.method == "rlrqp")]
    rl = rl.assign(k=rl.options.str.extract(r"iterations=(\d)")[0].fillna("1").astype(int))
    for _, g in rl.groupby("image"):
        norms = g.sort_values("k").value.to_numpy()
        assert len(norms) == 7 and np.all(np.diff(norms) <= 1e-12)  # each application keeps the best
    t3 = pd.read_csv(out / "partial" / "table3.csv").set_index("step")
    assert list(t3.index) == list(TABLE3_STEPS) and set(t3.images) == {2}
    first = v.loc["1x1024"]
    assert t3.loc["rlrqp-1", "mean"] == pytest.approx((first["cw-torch"] / first["rlrqp"]).mean())


def test_reproduce_table2_bad_input(tmp_path, scale_models, capsys):
    base = ["reproduce", "table2", "--models", str(scale_models), "--out", str(tmp_path)]
    for extra, words in ((["--nets", "10x1024"], "minadv train 10x1024"),
                         (["--nets", "1x1024", "--methods", "deepfool", "cw-torch"], "rlrqp"),
                         (["--nets", "1x1024", "--time-limit", "5"], "--time-limit"),
                         (["--nets", "1x1024", "--device", "nosuch"], "--device: bad device"),
                         (["--nets", "1x1024", "--norm", "inf"], "--norm is for table1")):
        assert main([*base, *extra]) == 2
        assert words in capsys.readouterr().err
    assert main(["reproduce", "table3", "--models", str(scale_models), "--nets", "1x1024", "5x1024"]) == 2
    assert "one network" in capsys.readouterr().err


def test_rows_stay_tied_to_their_network(tmp_path, scale_models, capsys):
    """A store's rows were made by one network: a retrained one under the same name is refused."""
    out = tmp_path / "results"
    base = ["reproduce", "table2", "--models", str(scale_models), "--nets", "1x1024", "--images", "0:1",
            "--out", str(out), "--tables-only"]
    assert main(base) == 2  # nothing stored yet: nothing to tabulate
    assert "holds no rows" in capsys.readouterr().err
    kept = json.loads((out / "table2" / "networks" / "1x1024.json").read_text())
    assert kept["weights_sha256"] == hashlib.sha256((scale_models / "1x1024.pt").read_bytes()).hexdigest()
    assert kept["architecture"] == json.loads((scale_models / "1x1024.json").read_text())["architecture"]
    assert main(base) == 2 and "holds no rows" in capsys.readouterr().err  # the same network: accepted
    shutil.copy(MODELS / "N2.pt", scale_models / "1x1024.pt")  # "retrained": other weights, same name
    capsys.readouterr()
    assert main(base) == 2
    assert "holds rows of another 1x1024" in capsys.readouterr().err
    assert main([*base[:-3], "--out", str(tmp_path / "other"), "--tables-only"]) == 2
    assert "holds no rows" in capsys.readouterr().err  # another --out: the network is accepted there
