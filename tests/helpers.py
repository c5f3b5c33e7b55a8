"""Helpers shared by the tests (imported as `from helpers import ...`; tests/ is on sys.path)."""

import json
import multiprocessing as mp
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from torch import nn

from minadv.verify import ReluNetwork


def random_net(sizes, seed=0, scale=1.0) -> ReluNetwork:
    """A random ReLU network with the given layer sizes (inputs first)."""
    rng = np.random.default_rng(seed)
    return ReluNetwork.from_layers(
        (rng.normal(0, scale / np.sqrt(n_in), (n_out, n_in)), rng.normal(0, 0.3, n_out))
        for n_in, n_out in pairwise(sizes)
    )


def bad_model_files(d: Path) -> dict[str, str]:
    """name -> words of the error: files that are no ReLU classifier minadv can read."""
    sigmoid = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2))
    torch.save(sigmoid.state_dict(), d / "sigmoid_state.pt")  # no card: the same keys as a ReLU network's
    torch.save(sigmoid.state_dict(), d / "sigmoid_card.pt")
    (d / "sigmoid_card.json").write_text(json.dumps({"layers": "Sequential(Linear, Sigmoid, Linear)"}))
    torch.save(sigmoid, d / "sigmoid_whole.pt")
    torch.save(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1)), d / "one_output.pt")
    torch.save(nn.Sequential(nn.Linear(4, 3)), d / "affine.pt")
    torch.save({"epoch": 3, "note": "not weights", "lr": [0.1, 0.01]}, d / "stuff.pt")
    torch.save({"1.weight": torch.zeros(2, 2), "1.bias": torch.zeros(2)}, d / "odd_keys.pt")
    (d / "odd_keys.json").write_text(json.dumps({"layers": "Sequential(Linear, ReLU, Linear)"}))
    torch.save(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).state_dict(), d / "bad_card.pt")
    (d / "bad_card.json").write_text("{not json")
    (d / "text.pt").write_text("these are not the weights you are looking for\n")
    (d / "empty.pt").write_bytes(b"")
    (d / "folder.pt").mkdir()
    return {"sigmoid_state.pt": "card", "sigmoid_card.pt": "Sigmoid", "sigmoid_whole.pt": "Sigmoid",
            "one_output.pt": "1 output", "affine.pt": "no hidden layer", "stuff.pt": "not a model",
            "odd_keys.pt": "0.weight", "bad_card.pt": "not a model card", "text.pt": "not a torch file",
            "empty.pt": "not a torch file", "folder.pt": "directory"}


def _hold(csv_path, npz_path, ready, release):
    from minadv.experiments.store import ResultStore

    ResultStore(csv_path, npz_path)  # held until this process ends
    ready.set()
    release.wait(60)


@contextmanager
def held_by_another_process(csv_path, npz_path=None):
    """While the block runs, another process holds the results store at csv_path (and npz_path)."""
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(csv_path, npz_path, ready, release))
    holder.start()
    try:
        assert ready.wait(30), "the holder did not take the lock"
        yield
    finally:
        release.set()
        holder.join(30)


def start_as_from_a_terminal(cmd: list[str]) -> subprocess.Popen:
    """cmd in a new session (its own process group, for os.killpg) with SIGINT at its default, as a
    terminal's foreground job gets it: a shell's background job (`cmd &`, e.g. a CI script started
    that way) would start it with SIGINT ignored, and Python then installs no KeyboardInterrupt."""
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def interrupt_when(proc: subprocess.Popen, ready, *, within: float = 240, settle: float = 0.0,
                   wait: float = 60) -> str:
    """Ctrl-C as a terminal sends it (SIGINT to proc's whole process group) once ready() holds (or
    `within` seconds have passed) and then `settle` seconds more; proc's stderr once it has ended
    (killed if it has not within `wait` seconds, so that no test leaves a process behind)."""
    try:
        deadline = time.monotonic() + within
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(settle)
        os.killpg(proc.pid, signal.SIGINT)
        return proc.communicate(timeout=wait)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def rows_written(csv, rows: int = 1):
    """A ready() for `interrupt_when`: csv holds a header and at least `rows` rows."""
    return lambda: csv.exists() and csv.read_text().count("\n") >= rows + 1


def deepfool_args(out, *extra, images="0:2") -> list[str]:
    """`minadv attack` with DeepFool on N1 (cheap) writing to `out`, plus `extra` arguments."""
    return ["attack", "--method", "deepfool", "--net", "N1", "--images", images, "--out", str(out), *extra]


def projection_instance(seed: int, n: int = 40, d: int = 12):
    """FAB's projection tests: n points p in [0,1]^d, hyperplanes w.delta = t with some zero weights
    and some t out of reach in the box."""
    rng = np.random.default_rng(seed)
    p = rng.random((n, d))
    w = rng.normal(size=(n, d)) * (rng.random((n, d)) > 0.2)
    t = rng.normal(size=n) * 1.5
    return p, w, t
