"""`minadv attack`: the results CSV and .npz of `minadv exact`, resumable, failures without points."""

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest

import minadv.experiments.runner as runner
from minadv.experiments.cli import main
from minadv.experiments.store import COLUMNS
from minadv.verify import check

from helpers import deepfool_args, held_by_another_process, interrupt_when, rows_written, start_as_from_a_terminal


def test_attack_command_writes_resumes_and_records_failures(tmp_path, capsys, n1, test_split):
    out, adv = tmp_path / "results.csv", tmp_path / "adv.npz"
    args = ["attack", "--method", "deepfool", "--net", "N1", "--images", "0:2",
            "--out", str(out), "--save-adv", str(adv)]
    assert main(args) == 0
    assert "2 images attacked now: 2 found" in capsys.readouterr().out
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main([*args[:-4], "--images", "2", "--out", str(out), "--save-adv", str(adv),
                 "--option", "steps=0", "--force"]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == COLUMNS and len(frame) == 3
    assert list(frame.status) == ["found", "found", "failed"] and np.isnan(frame.value[2])
    with np.load(adv) as z:
        assert sorted(z["image"]) == [0, 1]  # the failed image has no point
        for i, x, x_adv, pred in zip(z["image"], z["x"], z["x_adv"], z["pred"], strict=True):
            np.testing.assert_array_equal(x, test_split.x(int(i)))
            assert check(n1, x_adv, int(pred)).adversarial()
            assert np.linalg.norm(x_adv - x) == frame.value[frame.image == i].item()


def test_an_linf_attack_writes_linf_rows(tmp_path, capsys, n1, test_split):
    out = tmp_path / "linf.csv"
    argv = ["attack", "--method", "pgd-linf", "--net", "N1", "--images", "1", "--out", str(out),
            "--save-adv", str(tmp_path / "linf.npz"), "--option", "steps=20", "--option", "restarts=2"]
    assert main(argv) == 0
    row = pd.read_csv(out, dtype={"norm": str}).iloc[0]
    assert (row.method, row.norm, row.status) == ("pgd-linf", "inf", "found")
    with np.load(tmp_path / "linf.npz") as z:
        assert row.value == pytest.approx(np.abs(z["x_adv"][0] - test_split.x(1)).max(), abs=1e-12)
    assert "median Linf" in capsys.readouterr().out


def test_attack_command_rejects_bad_options(capsys):
    assert main(["attack", "--method", "rlrqp", "--images", "0", "--option", "n9=3"]) == 2
    assert "options: n1, n2, n3, n4, alpha, targets, iterations, seed" in capsys.readouterr().err
    assert main(["attack", "--method", "lbfgs", "--images", "0", "--seed", "1"]) == 2
    assert main(["attack", "--method", "rlrqp", "--images", "0", "--option", "targets=best"]) == 2
    assert main(["attack", "--method", "rlrqp", "--images", "0", "--option", "starts=best"]) == 2
    assert "unknown starts 'best'; use one of paper, per_target" in capsys.readouterr().err


def test_rlrqp_starts_option_is_recorded_in_the_options_column(tmp_path):
    out = tmp_path / "r.csv"
    base = ["attack", "--method", "rlrqp", "--net", "N1", "--images", "0", "--out", str(out)]
    assert main(base) == 0
    assert main([*base, "--option", "starts=per_target"]) == 0
    assert main([*base, "--option", "starts=paper"]) == 0  # the default: the same row, nothing to do
    frame = pd.read_csv(out, keep_default_na=False)
    assert list(frame.options) == ["", "starts='per_target'"] and list(frame.status) == ["found", "found"]


@pytest.mark.slow
def test_batched_attack_split_over_two_processes_gives_the_same_rows(tmp_path):
    """DeepFool batches of 50 split into one batch per process: same points as one batch."""
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    base = ["attack", "--method", "deepfool", "--net", "N1", "--images", "0:6"]
    assert main([*base, "--out", str(one)]) == 0
    assert main([*base, "--out", str(two), "--jobs", "2"]) == 0
    a, b = pd.read_csv(one).sort_values("image"), pd.read_csv(two).sort_values("image")
    assert list(b.image) == list(range(6)) and list(b.status) == ["found"] * 6
    np.testing.assert_allclose(b.value.to_numpy(), a.value.to_numpy(), rtol=1e-6)


# --- the results files under reruns, a second run, bad outputs and Ctrl-C (issue 15, items 4-11) ---


def test_a_run_with_save_adv_writes_the_points_of_rows_stored_without(tmp_path):
    """Item 5: resume looks at the points too, not only at the CSV."""
    out, adv = tmp_path / "r.csv", tmp_path / "adv.npz"
    assert main(deepfool_args(out)) == 0
    assert main(deepfool_args(out, "--save-adv", str(adv))) == 0
    with np.load(adv) as z:
        assert sorted(z["image"]) == [0, 1]
    assert list(pd.read_csv(out).image) == [0, 1]


def test_force_replaces_rows_instead_of_appending(tmp_path):
    """Item 6: one row per (network, image, method, norm, options)."""
    out = tmp_path / "r.csv"
    assert main(deepfool_args(out)) == 0
    first = pd.read_csv(out)
    assert main(deepfool_args(out, "--force")) == 0
    assert main(deepfool_args(out, "--force", "--option", "steps=0")) == 0  # other options: other rows
    frame = pd.read_csv(out, keep_default_na=False)
    assert list(zip(frame.image, frame.options, strict=True)) == [(0, ""), (1, ""), (0, "steps=0"), (1, "steps=0")]
    np.testing.assert_allclose(frame.value[:2].astype(float), first.value, rtol=1e-6)


def test_an_image_asked_twice_runs_once(tmp_path, capsys):
    """Item 7: --images 3,3 is image 3."""
    out = tmp_path / "r.csv"
    assert main(deepfool_args(out, images="3,3")) == 0
    assert "1 images attacked now" in capsys.readouterr().out
    assert list(pd.read_csv(out).image) == [3]


def test_a_time_limit_row_is_retried_with_a_larger_time_limit(tmp_path, capsys):
    """Item 7: a row stopped by the time limit is redone by a run that allows more time."""
    args = ["exact", "--net", "N1", "--images", "0", "--out", str(tmp_path / "r.csv")]
    assert main([*args, "--time-limit", "0.01"]) == 0
    assert list(pd.read_csv(tmp_path / "r.csv").status) == ["time_limit"]
    assert main([*args, "--time-limit", "0.01"]) == 0  # the same limit: nothing to gain
    assert "0 images solved now" in capsys.readouterr().out
    assert main([*args, "--time-limit", "60"]) == 0
    assert list(pd.read_csv(tmp_path / "r.csv").status) == ["optimal"]


@pytest.mark.parametrize("text", ["a,b\n1,2\n3,4", "x\n"])
def test_an_unrelated_csv_as_out_is_refused_and_left_untouched(tmp_path, capsys, text):
    """Items 8 and 11: no KeyError 'norm', no line deleted."""
    out = tmp_path / "other.csv"
    out.write_text(text)
    assert main(deepfool_args(out)) == 2
    assert capsys.readouterr().err == f"minadv attack: error: {out} is not a minadv results file\n"
    assert out.read_text() == text


def test_outputs_that_cannot_be_written_fail_before_any_work(tmp_path, capsys, no_work):
    """Item 9: a folder that cannot be created (a file is in the way), for the CSV and the .npz."""
    (tmp_path / "file").write_text("")
    assert main(deepfool_args(tmp_path / "file" / "r.csv")) == 2
    assert main(deepfool_args(tmp_path / "r.csv", "--save-adv", str(tmp_path / "file" / "adv.npz"))) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("minadv attack: error: cannot write") for line in err)


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody can write to: mode 0555, or, for root (who writes through modes), a
    read-only tmpfs mounted on it (skipped where mounting is not allowed)."""
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    if os.geteuid() != 0:
        yield folder
        return
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True)
    if mount.returncode != 0:
        pytest.skip(f"root writes through modes and cannot mount a read-only folder: {mount.stderr!r}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_output_folder_fails_before_any_work(read_only_folder, capsys, no_work):
    folder = read_only_folder
    assert main(deepfool_args(folder / "r.csv")) == 2
    assert "cannot write" in capsys.readouterr().err


def test_a_second_run_on_the_same_results_file_exits_2(tmp_path, capsys, no_work):
    """Item 4: while another process holds the file, a run neither computes nor writes."""
    with held_by_another_process(tmp_path / "r.csv"):
        assert main(deepfool_args(tmp_path / "r.csv")) == 2
    assert capsys.readouterr().err == (f"minadv attack: error: another minadv run holds {tmp_path / 'r.csv'}; "
                                       "wait for it to finish or choose another output\n")


def test_a_model_that_does_not_load_fails_before_the_progress_bar(tmp_path, capsys):
    """Item 14: the error alone on its line, no bar before it."""
    args = ["exact", "--net", str(tmp_path / "missing.pt"), "--images", "0", "--out", str(tmp_path / "r.csv")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("minadv exact: error:") and err.count("\n") == 1 and "%|" not in err


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["workers starting", "rows written"])
def test_ctrl_c_prints_one_line_and_exits_130(tmp_path, moment):
    """Item 11: Ctrl-C (SIGINT to the whole process group, as a terminal sends it) during a run with
    two worker processes, while they start (import torch) or once rows are written: one line, no
    traceback, exit 130; the rows kept are those in the file."""
    out = tmp_path / "r.csv"
    cmd = [sys.executable, "-m", "minadv.experiments.cli", "exact", "--net", "N1", "--images", "0:50", "--jobs", "2",
           "--out", str(out)]
    proc = start_as_from_a_terminal(cmd)
    if moment == "workers starting":  # the lock is taken just before the pool starts
        err = interrupt_when(proc, (tmp_path / "r.csv.lock").exists, settle=1.0)
    else:
        err = interrupt_when(proc, rows_written(out))
    assert proc.returncode == 130 and "Traceback" not in err
    if moment == "rows written":
        rows = len(pd.read_csv(out))
        assert rows >= 1
        assert err.splitlines()[-1] == f"minadv exact: interrupted; {rows} rows kept in {out}; the same command resumes"
    else:
        assert err.splitlines()[-1].startswith("minadv exact: interrupted")


def test_ctrl_c_while_the_pool_starts_is_not_lost(monkeypatch):
    """A SIGINT that arrives while the workers are being spawned is raised as KeyboardInterrupt
    once the pool is ended, not swallowed (the run would go on after the user's Ctrl-C)."""
    started = []

    def spawn_and_interrupt(jobs, initializer):
        pool = mp.get_context("spawn").Pool(1, initializer)
        started.append(pool)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # Ctrl-C in the middle of the start
        return pool

    monkeypatch.setattr(runner, "spawn_pool", spawn_and_interrupt)
    with pytest.raises(KeyboardInterrupt):
        runner._pool(2)
    assert len(started) == 1
    with pytest.raises(ValueError, match="Pool not running"):
        started[0].apply(int, (1,))
    assert signal.SIGINT not in signal.sigpending()
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
