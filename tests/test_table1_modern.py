"""`minadv bench modern` (Table 1, extended) and FAB's Jacobian."""

import math

import numpy as np
import pandas as pd
import torch

from minadv.attacks.fab import logits_and_jacobian
from minadv.experiments.cli import main
from minadv.experiments.store import COLUMNS

from helpers import random_net


def _results(path, rows, norm="2"):
    frame = pd.DataFrame([dict(zip(["net", "image", "method", "options", "value", "time_s", "status"], r,
                                   strict=True)) for r in rows])
    frame = frame.assign(norm=norm).reindex(columns=COLUMNS)
    frame.to_csv(path, index=False)


def test_bench_modern_joins_the_files_and_writes_table_and_figures(tmp_path):
    nan = math.nan
    _results(tmp_path / "a.csv", [("N1", 0, "mip", "", 0.5, 2.0, "optimal"), ("N1", 1, "mip", "", 1.0, 2.0, "optimal"),
                                  ("N1", 0, "cw", "", 0.6, 1.0, "found"), ("N1", 1, "cw", "", 1.0, 1.0, "found")])
    _results(tmp_path / "b.csv", [("N1", 0, "mip", "", 0.4, 2.0, "optimal"),  # the first file's mip row is kept
                                  ("N1", 0, "fab", "", 0.5, 0.1, "found"), ("N1", 1, "fab", "", nan, 0.1, "failed"),
                                  ("N1", 0, "fab", "steps=10", 0.9, 0.1, "found"),  # not the defaults: left out
                                  ("N1", 7, "fab", "", 0.9, 0.1, "found")])  # not an asked image
    out = tmp_path / "out"
    assert main(["bench", "modern", "--results", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"),
                 "--nets", "N1", "--images", "0:2", "--out", str(out)]) == 0
    table = pd.read_csv(out / "table1_modern.csv")
    assert list(table.method) == ["mip", "cw", "fab"]
    fab = table[table.method == "fab"].iloc[0]
    assert (fab.images, fab.n_matched, fab.n_failed, fab.mean_ratio) == (2, 1, 1, 1.0)
    assert table[table.method == "cw"].iloc[0].mean_ratio == (0.6 / 0.5 + 1.0) / 2
    assert "| N1 | FAB | 2 |" in (out / "table1_modern.md").read_text()
    assert "FAB" in (out / "table1_modern.tex").read_text()
    for name in ("table1_modern_ratios", "table1_modern_time"):
        for ext in ("png", "pdf"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 0


def test_bench_modern_writes_a_table_per_norm(tmp_path, capsys):
    """Linf rows (their own mip optimum) give table1_modern_linf and its figures; the L2 table keeps
    only L2 rows; a norm without rows gives no table."""
    _results(tmp_path / "l2.csv", [("N1", 0, "mip", "", 0.5, 2.0, "optimal"), ("N1", 0, "fab", "", 0.6, 1.0, "found")])
    _results(tmp_path / "linf.csv", [("N1", 0, "mip", "", 0.04, 3.0, "optimal"),
                                     ("N1", 0, "fab-linf", "", 0.05, 1.0, "found"),
                                     ("N1", 0, "pgd-linf", "", 0.04, 2.0, "found")], norm="inf")
    out = tmp_path / "out"
    args = ["bench", "modern", "--nets", "N1", "--images", "0", "--out", str(out), "--results"]
    assert main([*args, str(tmp_path / "l2.csv"), str(tmp_path / "linf.csv")]) == 0
    assert list(pd.read_csv(out / "table1_modern.csv").method) == ["mip", "fab"]
    linf = pd.read_csv(out / "table1_modern_linf.csv").set_index("method")
    assert list(linf.index) == ["mip", "fab-linf", "pgd-linf"]
    assert linf.mean_ratio["fab-linf"] == 0.05 / 0.04 and linf.n_matched["pgd-linf"] == 1
    assert "||delta_method||_inf" in (out / "table1_modern_linf.md").read_text()
    for name in ("table1_modern_linf_ratios", "table1_modern_linf_time"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
    only_l2 = tmp_path / "only_l2"
    assert main([*args[:-2], str(only_l2), "--results", str(tmp_path / "l2.csv")]) == 0
    assert (only_l2 / "table1_modern.csv").exists() and not (only_l2 / "table1_modern_linf.csv").exists()
    assert "no Linf rows for N1" in capsys.readouterr().out


def test_fab_jacobian_is_autograds():
    net = random_net((6, 5, 4, 3), seed=1)
    z = torch.tensor(np.random.default_rng(0).random((4, 6)))
    f, J = logits_and_jacobian([(torch.tensor(W), torch.tensor(b)) for W, b in zip(net.weights, net.biases,
                                                                                   strict=True)], z)
    model = net.to_torch(torch.float64)
    np.testing.assert_allclose(f.numpy(), model(z).detach().numpy(), atol=1e-12)
    want = torch.stack([torch.autograd.functional.jacobian(model, zi) for zi in z])
    np.testing.assert_allclose(J.numpy(), want.numpy(), atol=1e-12)


def test_reproduce_runs_todays_attacks_only_when_asked():
    """Table 1's full run (and what counts as partial) stays the paper's methods."""
    from minadv.experiments.commands.reproduce import methods_to_run

    assert methods_to_run(None) == ["mip", "rlrqp", "deepfool", "cw", "lbfgs"]
    assert methods_to_run(["fab", "mip", "bb"]) == ["mip", "fab", "bb"]
