"""Deciding robustness over a box (VNN-COMP properties): PGD, verify_box, decide, `minadv vnnlib`."""

import numpy as np
import pandas as pd
import pytest
import torch
from bruteforce import interval_signs, max_margin_in_box

from minadv.attacks.pgd import pgd_box
from minadv.experiments.benchmarks.vnncomp import TARGET_LISTS
from minadv.experiments.cli import main
from minadv.experiments.vnncomp import decide
from minadv.verify import (
    Property,
    check_counterexample,
    read_counterexample,
    write_vnnlib,
)
from minadv.verify.decide import box as decide_module
from minadv.verify.decide.box import verify_box
from minadv.verify.parallel import spawn_pool

from helpers import random_net

TINY = [4, 6, 5, 3]


def tiny_case(seed, eps):
    """A tiny random network, a centre in (0.2, 0.8)^4 and the box clip(x0 +- eps, 0, 1)."""
    net = random_net(TINY, seed=seed, scale=2.0)
    x0 = np.random.default_rng(seed).uniform(0.2, 0.8, TINY[0])
    return net, Property.ball(x0, eps, net.predict(x0), net.n_outputs)


def cases():
    """(net, prop, brute-force max margin) with the margin clearly away from 0 (no tie to
    decide) and at most 8 neurons left unstable by interval arithmetic (for the brute force's time)."""
    out = []
    for seed in range(12):
        for eps in (0.02, 0.1, 0.3):
            net, prop = tiny_case(seed, eps)
            if (interval_signs(net, prop.lower, prop.upper) == 0).sum() > 8:
                continue
            m = max_margin_in_box(net, prop.lower, prop.upper, prop.label)
            if abs(m) > 1e-4:
                out.append((net, prop, m))
    return out


CASES = cases()


def test_cases_cover_both_answers():
    signs = [m > 0 for *_, m in CASES]
    assert sum(signs) >= 5 and len(signs) - sum(signs) >= 5


@pytest.mark.parametrize("k", range(len(CASES)))
def test_verify_box_agrees_with_brute_force(k):
    net, prop, m = CASES[k]
    v = verify_box(net, prop.lower, prop.upper, prop.label, prop.targets, 30.0, jobs=1)
    assert v.verdict == ("sat" if m > 0 else "unsat")
    if v.verdict == "sat":
        assert check_counterexample(net, prop, v.point).valid


@pytest.mark.slow
@pytest.mark.parametrize("quick", [0.0, 30.0])
def test_verify_box_in_two_processes_agrees_with_one(quick, monkeypatch):
    """quick = 0: every open target goes to the two worker processes; quick = 30 s: the tiny
    searches all finish in this process while the workers start, and the workers get none."""
    sent = []

    def pool(*args):
        real = spawn_pool(*args)
        imap = real.imap_unordered
        real.imap_unordered = lambda f, targets: sent.extend(targets) or imap(f, targets)
        return real

    monkeypatch.setattr(decide_module, "spawn_pool", pool)
    searched = 0
    for net, prop, m in CASES[:8]:
        v = verify_box(net, prop.lower, prop.upper, prop.label, prop.targets, 30.0, jobs=2, quick=quick)
        assert v.verdict == ("sat" if m > 0 else "unsat")
        searched += v.searches
    assert searched >= 2
    assert (len(sent) > 0) == (quick == 0)


def test_pgd_finds_points_only_where_they_exist():
    found = 0
    for net, prop, m in CASES:
        z = pgd_box(net, prop.lower, prop.upper, prop.label, prop.targets)
        if m < 0:
            assert z is None
        elif z is not None:
            found += 1
            assert check_counterexample(net, prop, z).valid
    assert found >= 0.8 * sum(m > 0 for *_, m in CASES)


def test_pgd_is_reproducible_and_starts_from_a_given_point():
    net, prop, m = next(c for c in CASES if c[2] > 0)
    a = pgd_box(net, prop.lower, prop.upper, prop.label, seed=3)
    b = pgd_box(net, prop.lower, prop.upper, prop.label, seed=3)
    assert np.array_equal(a, b)
    assert check_counterexample(net, prop, pgd_box(net, prop.lower, prop.upper, prop.label, start=a, steps=1)).valid


def test_decide_answers_are_right():
    for net, prop, m in CASES[:10]:
        d = decide(net, prop, 30.0, jobs=1)
        assert d.answer == ("sat" if m > 0 else "unsat")
        if d.answer == "sat":
            assert check_counterexample(net, prop, d.counterexample).valid


def _save(net, path):
    torch.save(net.to_torch(torch.float64), path)  # the whole nn.Sequential: its modules say ReLU
    return path


def test_vnnlib_command_sat_writes_a_checked_counterexample(tmp_path, capsys):
    net, prop, m = next(c for c in CASES if c[2] > 0)
    write_vnnlib(prop, tmp_path / "p.vnnlib")
    args = [str(_save(net, tmp_path / "n.pt")), str(tmp_path / "p.vnnlib")]
    assert main(["vnnlib", *args, "--time-limit", "30", "--counterexample", str(tmp_path / "ce.txt")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "sat"
    z, _ = read_counterexample(tmp_path / "ce.txt")
    assert check_counterexample(net, prop, z).valid


@pytest.mark.parametrize("liar", ["pgd", "search"])
def test_vnnlib_command_refuses_a_point_that_violates_nothing(liar, tmp_path, capsys, monkeypatch):
    """The float64 gate on the path `minadv vnnlib` takes: PGD, or the search, handing back the
    box's centre (classified as the label, so no counterexample) must not give `sat`."""
    from minadv.experiments import vnncomp
    from minadv.verify.decide.box import BoxVerdict
    from minadv.verify.decide.verdicts import BoxAnswer

    net, prop, m = next(c for c in CASES if c[2] < 0)
    assert not check_counterexample(net, prop, prop.center).valid
    monkeypatch.setattr(vnncomp, "pgd_box", lambda *a, **k: prop.center.copy())
    if liar == "search":
        monkeypatch.setattr(vnncomp, "verify_box",
                            lambda *a, **k: BoxVerdict(BoxAnswer.SAT, prop.center.copy(), target=0))
    write_vnnlib(prop, tmp_path / "p.vnnlib")
    argv = ["vnnlib", str(_save(net, tmp_path / "n.pt")), str(tmp_path / "p.vnnlib"), "--time-limit", "30",
            "--counterexample", str(tmp_path / "ce.txt")]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == ("unsat" if liar == "pgd" else "timeout")
    assert not (tmp_path / "ce.txt").exists()


def test_a_counterexample_check_has_no_truth_value():
    net, prop, m = CASES[0]
    with pytest.raises(TypeError, match=r"\.valid"):
        bool(check_counterexample(net, prop, prop.center))


def test_vnnlib_command_unsat(tmp_path, capsys):
    net, prop, m = next(c for c in CASES if c[2] < 0)
    write_vnnlib(prop, tmp_path / "p.vnnlib")
    assert main(["vnnlib", str(_save(net, tmp_path / "n.pt")), str(tmp_path / "p.vnnlib"), "--time-limit", "30"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "unsat"


@pytest.mark.slow
def test_a_timeout_names_the_open_targets(tmp_path, capsys):
    """An instance the bounds leave open, run with no time for the search: `minadv vnnlib` says
    timeout and that its open targets were not reached, and the benchmark records them in its
    CSV and table."""
    net = random_net([4, 8, 6, 3], seed=5, scale=2.5)  # a robust box where alpha-CROWN leaves two targets open
    x0 = np.random.default_rng(5).uniform(0.2, 0.8, 4)
    prop = Property.ball(x0, 0.25, net.predict(x0), 3)
    assert max_margin_in_box(net, prop.lower, prop.upper, prop.label) < 0
    open_ = verify_box(net, prop.lower, prop.upper, prop.label, prop.targets, 1e-9, jobs=1).unreached_targets
    assert len(open_) == 2
    _save(net, tmp_path / "n.pt")
    write_vnnlib(prop, tmp_path / "p.vnnlib")
    assert main(["vnnlib", str(tmp_path / "n.pt"), str(tmp_path / "p.vnnlib"), "--time-limit", "1e-6"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "timeout" and out[0].endswith(f"0 nodes; not reached: {' '.join(map(str, open_))})")
    (tmp_path / "mnistfc_instances.csv").write_text("n.pt,p.vnnlib,120\n")
    res = tmp_path / "res.csv"
    assert main(["bench", "vnncomp", "--benchmark", str(tmp_path), "--nets", "n.pt", "--out", str(res),
                 "--cap", "1e-6"]) == 0
    row = pd.read_csv(res, dtype=TARGET_LISTS).iloc[0]
    assert (row.answer, row.open_targets, row.unreached_targets) == ("timeout", "none", " ".join(map(str, open_)))
    assert f"| open: none; not reached: {row.unreached_targets} |" in (tmp_path / "res.md").read_text()


def test_vnnlib_command_refuses_bad_input(tmp_path, capsys):
    net, prop, _ = CASES[0]
    write_vnnlib(prop, tmp_path / "p.vnnlib")
    other = _save(random_net([5, 4, 3]), tmp_path / "other.pt")
    assert main(["vnnlib", str(other), str(tmp_path / "p.vnnlib")]) == 2
    assert "inputs" in capsys.readouterr().err
    (tmp_path / "bad.vnnlib").write_text("(assert (<= X_0 oops))\n")
    assert main(["vnnlib", str(_save(net, tmp_path / "n.pt")), str(tmp_path / "bad.vnnlib")]) == 2
    assert main(["vnnlib", str(tmp_path / "n.pt"), str(tmp_path / "p.vnnlib"), "--time-limit", "0"]) == 2


def test_shared_instance_proven_by_bounds(mnistfc, capsys):
    """prop_2_0.03 on 256x2: alpha-CROWN alone proves it (a few unstable ReLUs, no MILP)."""
    net_file, prop_file = mnistfc / "mnist-net_256x2.onnx", mnistfc / "prop_2_0.03.vnnlib"
    assert main(["vnnlib", str(net_file), str(prop_file), "--time-limit", "60"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "unsat" and "by bounds" in out[0]


@pytest.mark.slow
def test_benchmark_script_resumes_and_its_dstar_agrees_with_the_answers(tmp_path, capsys):
    """A two-instance benchmark folder (a .pt network, two properties): rows appended once,
    not recomputed on a second run; sat iff d* <= eps."""
    sat = next(c for c in CASES if c[2] > 0)
    unsat = next(c for c in CASES if c[2] < 0 and c[0] is sat[0]) if any(
        c[2] < 0 and c[0] is sat[0] for c in CASES) else None
    net, prop_sat, _ = sat
    prop_unsat = unsat[1] if unsat else Property.ball(prop_sat.center, 1e-3, prop_sat.label, net.n_outputs)
    _save(net, tmp_path / "net.pt")
    write_vnnlib(prop_sat, tmp_path / "a.vnnlib")
    write_vnnlib(prop_unsat, tmp_path / "b.vnnlib")
    # generous time-outs: a loaded machine
    (tmp_path / "mnistfc_instances.csv").write_text("net.pt,a.vnnlib,120\nnet.pt,b.vnnlib,120\n")
    out = tmp_path / "res.csv"
    argv = ["bench", "vnncomp", "--benchmark", str(tmp_path), "--nets", "net", "--out", str(out), "--dstar"]
    assert main(argv) == 0
    frame = pd.read_csv(out)
    assert list(frame.answer) == ["sat", "unsat"]
    assert (frame.dstar_status == "optimal").all()
    assert (frame.dstar <= frame.eps).tolist() == [True, False]
    from minadv.experiments.benchmarks.vnncomp import cex_path

    z, _ = read_counterexample(cex_path(out, "net.pt", "a.vnnlib"))
    assert check_counterexample(net, prop_sat, z).valid and not cex_path(out, "net.pt", "b.vnnlib").exists()
    assert main(argv) == 0
    assert pd.read_csv(out).equals(frame)  # nothing recomputed
    table = (tmp_path / "res.md").read_text()
    assert "| all | 2 | 2 | 1 | 1 | 0 |" in table
    assert "| net.pt | b | unsat |" in table and " | 120 | " in table  # the limit it ran with
    # a row that timed out under a smaller limit is re-run (and replaced) by a run with a larger one
    frame.loc[1, ["answer", "limit_s", "dstar_status"]] = ["timeout", 0.5, np.nan]
    frame.to_csv(out, index=False)
    assert main(argv + ["--cap", "0.4"]) == 0
    assert pd.read_csv(out).answer.tolist() == ["sat", "timeout"]  # 0.4 s is no more than the row had
    assert main(argv) == 0
    again = pd.read_csv(out)
    assert len(again) == 2 and set(again.answer) == {"sat", "unsat"} and (again.limit_s == 120).all()
    assert (again.dstar_status == "optimal").all()
    # a timeout of the other search method is re-run with this run's method (--props: that one only)
    again.loc[:, ["answer", "method"]] = [["sat", "milp"], ["timeout", "milp"]]
    again.to_csv(out, index=False)
    assert main(argv + ["--props", "a.vnn"]) == 0
    assert pd.read_csv(out).method.tolist() == ["milp", "milp"]
    assert main(argv) == 0
    last = pd.read_csv(out)
    assert last.answer.tolist() == ["sat", "unsat"] and last.method.tolist() == ["milp", "splits"]
