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
