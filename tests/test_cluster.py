"""`--executor dask` (issue 21): the same rows as local processes, no row lost or duplicated
when a worker dies, bad addresses and a missing extra refused before any work."""

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import minadv.experiments.runner as runner
from minadv.experiments.cli import main
from minadv.experiments.commands import reproduce
from minadv.experiments.store import KEY, ResultStore

from helpers import deepfool_args, interrupt_when, rows_written, start_as_from_a_terminal


@pytest.fixture
def cluster():
    """minadv.experiments.cluster; the tests that use it are skipped without the cluster extra."""
    return pytest.importorskip("minadv.experiments.cluster", reason="needs the cluster extra (dask[distributed])")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:{port}", "not-an-address"])
def test_a_bad_address_is_one_line_and_exit_2_before_any_work(tmp_path, monkeypatch, capsys, no_work, cluster,
                                                               address):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 0.5)
    address = address.format(port=_free_port())
    out = tmp_path / "r.csv"
    assert main(deepfool_args(out, "--executor", "dask", "--address", address)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"minadv attack: error: no Dask scheduler answers at {address}: ")
    assert err.count("\n") == 1 and not out.exists()


def test_an_address_without_the_dask_executor_is_refused(tmp_path, capsys, no_work):
    assert main(deepfool_args(tmp_path / "r.csv", "--address", "tcp://127.0.0.1:8786")) == 2
    err = capsys.readouterr().err
    assert err == "minadv attack: error: --address is a Dask scheduler's: use it with --executor dask\n"


@pytest.mark.parametrize("command", ["exact", "attack", "reproduce"])
def test_without_the_extra_the_dask_executor_is_one_line_naming_it(tmp_path, monkeypatch, capsys, no_work, command):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "minadv.experiments.cluster", raising=False)
    args = {"exact": ["exact", "--images", "0", "--out", str(tmp_path / "r.csv")],
            "attack": deepfool_args(tmp_path / "r.csv"),
            "reproduce": ["reproduce", "--quick", "--out", str(tmp_path)]}[command]
    assert main([*args, "--executor", "dask"]) == 2
    assert capsys.readouterr().err == (f"minadv {command}: error: distributed is not installed: install "
                                       "minadv[cluster] (pip install 'minadv[cluster]')\n")
    assert not (tmp_path / "r.csv").exists() and not (tmp_path / "results.csv").exists()


def die_on_images(folder, once, always):
    """A worker plugin (defined here, so that it travels by value): in each worker, restarted
    ones too, run_one writes a line to tries_<image> in `folder`, then kills its worker process
    on image `once` the first time and on image `always` every time."""
    from distributed import WorkerPlugin

    class DieOnImages(WorkerPlugin):
        def setup(self, worker):
            real = runner.run_one

            def run_one(net, image, *args):
                tries = os.path.join(folder, f"tries_{image}")
                with open(tries, "a") as fh:
                    fh.write("try\n")
                with open(tries) as fh:
                    first = len(fh.readlines()) == 1
                if image == always or (image == once and first):
                    os._exit(1)
                return real(net, image, *args)

            runner.run_one = run_one

    return DieOnImages()


def _blas_and_torch_threads():
    import scipy.linalg  # noqa: F401  (its OpenBLAS too)
    import threadpoolctl
    import torch

    return torch.get_num_threads(), {i["num_threads"] for i in threadpoolctl.threadpool_info()}


@pytest.mark.slow
def test_a_dead_worker_loses_no_row_and_duplicates_none(tmp_path, cluster):
    """Image 2's worker dies on its first try: retried once, its row found. Image 4's dies on
    every try: after the retry, an `error` row saying so. Every image has one row; the others are
    those of a run in this process; and restarted workers are pinned to one thread too."""
    images, once, always = range(7), 2, 4
    with ResultStore(tmp_path / "local.csv") as store:
        runner.run_many("N1", images, "deepfool", "2", store, progress=False, batch=1)
    local = pd.read_csv(tmp_path / "local.csv").set_index("image")
    with cluster.DaskExecutor(2) as ex, ResultStore(tmp_path / "dask.csv") as store:
        ex.client.register_plugin(die_on_images(str(tmp_path), once, always))
        rows = runner.run_many("N1", images, "deepfool", "2", store, progress=False, batch=1, executor=ex)
        ex.client.wait_for_workers(2)
        pinned = ex.client.run(_blas_and_torch_threads)
    frame = pd.read_csv(tmp_path / "dask.csv")
    assert sorted(frame.image) == list(images) and len(rows) == len(images)
    assert not frame.duplicated(list(KEY)).any()
    tries = {i: len((tmp_path / f"tries_{i}").read_text().splitlines()) for i in images}
    # a finished result not yet read when its worker died is computed again: a unit can run more than once
    assert tries[always] == 2 and tries[once] >= 2 and min(tries.values()) >= 1
    frame = frame.set_index("image")
    lost = frame.loc[always]
    assert lost.status == "error" and lost.message.startswith("worker lost: ") and np.isnan(lost.value)
    assert lost.pred == local.loc[always].pred
    kept = [i for i in images if i != always]
    assert list(frame.loc[kept].status) == ["found"] * len(kept)
    assert frame.loc[kept].value.tolist() == local.loc[kept].value.tolist()  # identical, not close
    assert list(pinned.values()) == [(1, {1})] * 2


@pytest.mark.slow
def test_reproduce_quick_on_a_local_dask_cluster_gives_the_rows_of_two_processes(tmp_path, cluster):
    """`minadv reproduce --quick` (N1, images 0:3) with 2 Dask workers and with --jobs 2: the same
    rows, exact optima and attack points alike; only the times differ."""
    runs = {}
    for name, extra in [("process", []), ("dask", ["--executor", "dask"])]:
        out = tmp_path / name
        assert main(["reproduce", "--quick", "--nets", "N1", "--images", "0:3", "--jobs", "2",
                     "--out", str(out), *extra]) == 0
        runs[name] = pd.read_csv(out / "results.csv").sort_values(list(KEY)).reset_index(drop=True)
    process, dask = runs["process"], runs["dask"]
    assert len(process) == 3 * len(reproduce.default_methods()) and set(process.status) <= {"optimal", "found"}
    pd.testing.assert_frame_equal(dask.drop(columns="time_s"), process.drop(columns="time_s"))


@pytest.mark.slow
def test_ctrl_c_on_a_local_dask_cluster_keeps_the_rows_and_the_same_command_resumes(tmp_path, cluster):
    """SIGINT to the whole process group (as a terminal sends it) once rows are written: one line,
    no traceback, exit 130, no process left; the same command then computes only the rest."""
    out = tmp_path / "r.csv"
    args = ["attack", "--method", "lbfgs", "--net", "N1", "--images", "0:8", "--executor", "dask", "--jobs", "2",
            "--out", str(out)]
    proc = start_as_from_a_terminal([sys.executable, "-m", "minadv.experiments.cli", *args])
    err = interrupt_when(proc, rows_written(out), wait=90)
    kept = pd.read_csv(out)
    assert proc.returncode == 130 and "Traceback" not in err and 1 <= len(kept) < 8
    last = f"minadv attack: interrupted; {len(kept)} rows kept in {out}; the same command resumes"
    assert err.splitlines()[-1] == last
    deadline = time.monotonic() + 10  # a worker that just ended is a zombie until init reaps it

    def left():
        return subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True).returncode == 0

    while left() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left()
    assert main(args) == 0
    frame = pd.read_csv(out)
    assert sorted(frame.image) == list(range(8))
    pd.testing.assert_frame_equal(frame.iloc[: len(kept)], kept)  # kept as they were, not computed again
