import numpy as np
import pandas as pd
import pytest

import minadv.attacks
import minadv.experiments.commands.reproduce as reproduce
import minadv.experiments.runner as runner
from minadv.attacks import Attack, Candidate
from minadv.experiments.cli import main
from minadv.experiments.data import mnist
from minadv.experiments.models import load
from minadv.experiments.store import COLUMNS
from minadv.experiments.table1 import COLUMNS as TABLE_COLUMNS
from minadv.verify import check, minimal_perturbation


class ScaledOptimum(Attack):
    """A stand-in attack: the exact solver's point, its perturbation scaled by 1.1."""

    name = "scaled"

    def find(self, net, x, c):
        res = minimal_perturbation(net, x, time_limit=60)
        return Candidate(x + 1.1 * (res.x_adv - x))


class NeverFinds(Attack):
    name = "never"

    def find(self, net, x, c):
        return Candidate(None)


@pytest.fixture
def attacks(monkeypatch):
    monkeypatch.setattr(minadv.attacks, "ATTACKS", {"scaled": ScaledOptimum, "never": NeverFinds})


@pytest.fixture
def full_run(monkeypatch):
    """The defaults (the full run) made small: N1, images 1 and 8."""
    monkeypatch.setattr(reproduce, "NETS", ("N1",))
    monkeypatch.setattr(reproduce, "IMAGES", "1,8")


TABLES = ("table1.md", "table1.csv", "table1.tex")
FIGURES = ("figure1.png", "figure1.pdf", "figure1_all_methods.png", "figure1_all_methods.pdf")


@pytest.mark.slow
def test_reproduce_end_to_end_and_resume(tmp_path, attacks, full_run, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out, fig = tmp_path / "results", tmp_path / "results" / "figures"
    args = ["reproduce", "--out", str(out)]
    assert main(args) == 0
    frame = pd.read_csv(out / "results.csv")
    assert set(COLUMNS) <= set(frame.columns)
    assert list(frame.method) == ["mip"] * 2 + ["scaled"] * 2 + ["never"] * 2  # exact first
    assert set(frame.status) == {"optimal", "found", "failed"}
    net, test = load("N1"), mnist("test")
    for method in ("mip", "scaled"):
        with np.load(out / f"adv_N1_{method}.npz") as z:
            assert sorted(z["image"]) == [1, 8] and {"x", "x_adv", "pred"} <= set(z.files)
            for i, x, xa in zip(z["image"], z["x"], z["x_adv"], strict=True):
                assert np.array_equal(x, test.x(i)) and check(net, xa, net.predict(x)).adversarial()
    assert not (out / "adv_N1_never.npz").exists()  # a failed attack has no point to store
    table = pd.read_csv(out / "table1.csv")
    assert list(table.columns) == TABLE_COLUMNS
    assert list(table.method) == ["mip", "never", "scaled"]  # the paper's order, then by name
    mip, never, scaled = (table.iloc[k] for k in range(3))
    assert (mip.n_not_optimal, mip.n_matched, mip.mean_ratio) == (0, 2, 1.0)
    assert 1.0 + 1e-4 < scaled.mean_ratio <= scaled.max_ratio <= 1.1 + 1e-9 and scaled.n_matched == 0
    assert (never.n_failed, never.n_not_optimal) == (2, 0) and np.isnan(never.mean_ratio)
    assert "| N1 | scaled | 2 |" in (out / "table1.md").read_text()
    assert "N1 & scaled & 2 &" in (out / "table1.tex").read_text()
    assert all((fig / name).stat().st_size > 0 for name in FIGURES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # nothing outside --out

    def no_work(*a, **k):
        raise AssertionError("a finished row was recomputed")

    monkeypatch.setattr(runner, "run_one", no_work)
    capsys.readouterr()
    assert main(args) == 0  # resume: every row is there, nothing runs
    assert pd.read_csv(out / "results.csv").equals(frame)
    assert "| N1 | scaled | 2 |" in capsys.readouterr().out


def test_reproduce_refuses_an_unknown_method(tmp_path, attacks, capsys):
    assert main(["reproduce", "--methods", "mip", "nosuch", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown method nosuch" in err and "scaled" in err
    assert not (tmp_path / "results.csv").exists()


@pytest.mark.slow
def test_a_partial_run_never_replaces_the_full_run_tables_or_figures(tmp_path, attacks, full_run, monkeypatch):
    """Item 10: tables and figures under --out; a part of the run writes its own to OUT/partial/."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results"
    assert main(["reproduce", "--out", str(out)]) == 0
    full = {p: p.read_bytes() for p in [*(out / n for n in TABLES), *(out / "figures" / n for n in FIGURES)]}
    rows = pd.read_csv(out / "results.csv")
    assert main(["reproduce", "--out", str(out), "--methods", "mip", "scaled", "--images", "1"]) == 0
    assert all(p.read_bytes() == data for p, data in full.items())
    assert not (tmp_path / "figures").exists()
    partial = pd.read_csv(out / "partial" / "table1.csv")
    assert list(partial.method) == ["mip", "never", "scaled"] and list(partial.images) == [1, 1, 1]
    assert all((out / "partial" / "figures" / n).stat().st_size > 0 for n in FIGURES)
    assert pd.read_csv(out / "results.csv").equals(rows)  # its rows were there: kept, not recomputed


def test_an_unwritable_figures_folder_fails_before_any_work(tmp_path, attacks, full_run, monkeypatch, capsys):
    """Item 9: the tables' and figures' places are checked before the first image."""

    def no_work(*a, **k):
        raise AssertionError("work started before the outputs were checked")

    monkeypatch.setattr(runner, "run_one", no_work)
    (tmp_path / "figures").write_text("a file where the figures folder goes")
    assert main(["reproduce", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"minadv reproduce: error: cannot write {tmp_path / 'figures'}")


def test_default_methods_leave_out_cw_torch():
    """Table 1's default run: Foolbox's CW as in the paper; its torch twin only when asked."""
    from minadv.experiments.commands.reproduce import methods_to_run

    default = methods_to_run(None)
    assert default[0] == "mip" and "cw" in default and "cw-torch" not in default
    assert methods_to_run(["cw-torch", "mip"]) == ["mip", "cw-torch"]


class ScaledLinfOptimum(Attack):
    """A stand-in Linf attack: the exact Linf solver's point, its perturbation scaled by 1.1."""

    name, norm = "scaled-linf", np.inf

    def find(self, net, x, c):
        res = minimal_perturbation(net, x, norm=np.inf, time_limit=60)
        return Candidate(x + 1.1 * (res.x_adv - x))


@pytest.fixture
def both_norms(monkeypatch):
    monkeypatch.setattr(minadv.attacks, "ATTACKS", {"scaled": ScaledOptimum, "scaled-linf": ScaledLinfOptimum})


@pytest.fixture
def small_net(tmp_path):
    """A 784-12-10 network file (whole nn.Sequential): exact in well under a second in either norm."""
    import torch
    from torch import nn

    torch.manual_seed(3)
    path = tmp_path / "small.pt"
    torch.save(nn.Sequential(nn.Linear(784, 12), nn.ReLU(), nn.Linear(12, 10)).double(), path)
    return path


def test_methods_of_the_other_norm_are_refused_in_one_line(tmp_path, both_norms, no_work, capsys):
    assert reproduce.methods_to_run(None, "inf") == ["mip", "scaled-linf"]  # each norm's own attacks
    assert reproduce.methods_to_run(None) == ["mip", "scaled"]
    assert main(["reproduce", "--norm", "inf", "--methods", "mip", "scaled", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scaled: not Linf attacks" in err and "scaled-linf" in err
    assert main(["reproduce", "--methods", "scaled-linf", "--out", str(tmp_path)]) == 2
    assert "scaled-linf: not L2 attacks" in capsys.readouterr().err
    assert not (tmp_path / "results.csv").exists()


@pytest.mark.slow
def test_an_linf_run_writes_its_own_points_tables_and_figures(tmp_path, both_norms, small_net):
    """--norm inf beside an L2 run in one folder: Linf rows, *_linf points, tables and figure; the
    L2 files untouched, and each table against its own norm's optimum."""
    out = tmp_path / "out"
    common = ["--nets", str(small_net), "--images", "0", "--out", str(out)]
    assert main(["reproduce", "--methods", "mip", "scaled", *common]) == 0
    l2 = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "results.csv"}
    assert main(["reproduce", "--norm", "inf", "--methods", "mip", "scaled-linf", *common]) == 0
    assert all(p.read_bytes() == data for p, data in l2.items())
    rows = pd.read_csv(out / "results.csv", dtype={"norm": str})
    assert sorted(zip(rows.method, rows.norm, strict=True)) == [
        ("mip", "2"), ("mip", "inf"), ("scaled", "2"), ("scaled-linf", "inf")]
    mip = rows[rows.method == "mip"].set_index("norm")
    assert set(mip.status) == {"optimal"} and mip.value["inf"] <= mip.value["2"]
    net, x = load(str(small_net)), mnist("test").x(0)
    with np.load(out / "adv_small_mip_linf.npz") as z:
        assert np.max(np.abs(z["x_adv"][0] - x)) == pytest.approx(mip.value["inf"], rel=1e-9)
        assert check(net, z["x_adv"][0], net.predict(x)).adversarial()
    table = pd.read_csv(out / "partial" / "table1_linf.csv")
    assert list(table.method) == ["mip", "scaled-linf"]
    assert table.mean_ratio.iloc[1] == pytest.approx(1.1, rel=1e-6)
    assert "||delta_method||_inf" in (out / "partial" / "table1_linf.md").read_text()
    assert (out / "partial" / "figures" / "figure1_all_methods_linf.png").stat().st_size > 0
    assert list(pd.read_csv(out / "partial" / "table1.csv").method) == ["mip", "scaled"]
