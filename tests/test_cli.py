import argparse
import subprocess
import sys

import pytest

from minadv.experiments.args import parse_images
from minadv.experiments.cli import main


def test_parse_images():
    assert parse_images("0:5") == [0, 1, 2, 3, 4]
    assert parse_images("3") == [3]
    assert parse_images("1,4,7") == [1, 4, 7]
    assert parse_images("0:2,8:10") == [0, 1, 8, 9]
    for bad in ("a:b", "5:5", "-1", "10000"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_images(bad)


@pytest.mark.parametrize("spec, reason", [
    ("5:5", "empty range 5:5 in '5:5': 5:6 is image 5"),
    ("0:3,5:2", "range 5:2 in '0:3,5:2' is backwards: use 2:5"),
    ("3:x", "bad image list '3:x'"),
    ("0:10001", "must lie in 0..9999"),
])
def test_parse_images_says_what_is_wrong(spec, reason):
    with pytest.raises(argparse.ArgumentTypeError) as err:
        parse_images(spec)
    assert reason in str(err.value)


def test_summary_prints_accuracy_and_regions(capsys):
    assert main(["summary", "--nets", "N1", "--images", "0:2"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy 0.9688" in out
    assert out.count("/50") == 2


@pytest.mark.slow
def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "minadv.experiments.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "summary" in out.stdout


def test_unknown_command_fails_cleanly(capsys):
    with pytest.raises(SystemExit) as err:
        main(["frobnicate"])
    assert err.value.code == 2


def test_exact_command_appends_rows_resumes_and_saves_points(tmp_path, capsys):
    import numpy as np
    import pandas as pd

    from minadv.experiments.data import mnist
    from minadv.experiments.models import load
    from minadv.verify import check

    out, adv = tmp_path / "r.csv", tmp_path / "adv.npz"
    args = ["exact", "--net", "N1", "--images", "1,4", "--norm", "2", "--out", str(out), "--save-adv", str(adv),
            "--time-limit", "60"]
    assert main(args) == 0
    frame = pd.read_csv(out)
    columns = {"net", "image", "method", "norm", "status", "value", "lower", "upper", "time_s", "margin"}
    assert columns <= set(frame.columns)
    assert list(frame.image) == [1, 4] and set(frame.method) == {"mip"} and set(frame.status) == {"optimal"}
    assert main(args + ["--images", "1,4,8"]) == 0  # resumes: only image 8 is new
    frame = pd.read_csv(out)
    assert sorted(frame.image) == [1, 4, 8]
    net, test = load("N1"), mnist("test")
    with np.load(adv) as z:
        assert sorted(z["image"]) == [1, 4, 8]
        for i, x, xa, c in zip(z["image"], z["x"], z["x_adv"], z["pred"], strict=True):
            assert np.array_equal(x, test.x(i)) and c == net.predict(x)
            assert check(net, xa, c).adversarial()
            row = frame[frame.image == i].iloc[0]
            assert np.linalg.norm(xa - x) == pytest.approx(row.value, rel=1e-12)


@pytest.mark.parametrize(
    "extra, msg",
    [(["--norm", "3"], "unknown norm"), (["--time-limit", "0"], "time_limit"),
     (["--net", "nosuch.pt"], "no model file")],
)
def test_exact_command_rejects_bad_options(tmp_path, capsys, extra, msg):
    assert main(["exact", "--images", "0", "--out", str(tmp_path / "r.csv"), *extra]) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err
    assert not (tmp_path / "r.csv").exists()


def test_exact_command_refuses_files_that_are_no_relu_classifier(tmp_path, capsys):
    """`minadv exact --net FILE`: exit 2 and one line naming the file, no row written."""
    from helpers import bad_model_files

    for name, words in bad_model_files(tmp_path).items():
        out = tmp_path / f"{name}.csv"
        assert main(["exact", "--net", str(tmp_path / name), "--images", "0", "--out", str(out)]) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("minadv exact: error:") and len(err.splitlines()) == 1, err
        assert words in err and not out.exists(), (name, err)
    assert main(["vnnlib", str(tmp_path / "sigmoid_state.pt"), str(tmp_path / "p.vnnlib")]) == 2
    assert "cannot say its activations" in capsys.readouterr().err


@pytest.fixture(scope="module")
def sat_property(tmp_path_factory, n1, test_split):
    """N1 and an Linf box of radius 0.2 around test image 0: `sat`, found at once."""
    from minadv.experiments.models import MODEL_DIR
    from minadv.verify import Property, write_vnnlib

    x = test_split.x(0)
    path = tmp_path_factory.mktemp("prop") / "p.vnnlib"
    write_vnnlib(Property.ball(x, 0.2, n1.predict(x), 10), path)
    return ["vnnlib", str(MODEL_DIR / "N1.pt"), str(path), "--time-limit", "60"]


@pytest.mark.parametrize("where, words", [("missing/cex.txt", "cex.txt: no folder"), (".", "Is a directory")])
def test_vnnlib_checks_the_counterexample_path_before_solving(sat_property, tmp_path, capsys, where, words):
    assert main([*sat_property, "--counterexample", str(tmp_path / where)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and words in err and err.count("\n") == 1 and "Traceback" not in err, (out, err)


def test_vnnlib_verdict_ends_stdout_even_if_the_counterexample_cannot_be_written(sat_property, tmp_path, capsys,
                                                                                 monkeypatch):
    from minadv.experiments.commands import vnnlib as vnnlib_cmd

    def disk_full(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vnnlib_cmd, "write_counterexample", disk_full)
    assert main([*sat_property, "--counterexample", str(tmp_path / "cex.txt")]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "sat" and "could not be written: [Errno 28] No space left" in err


def test_vnnlib_refuses_a_binary_property_in_one_line(sat_property, tmp_path, capsys):
    (tmp_path / "p.vnnlib").write_bytes(b"\x00\x01\xfe\xff binary")
    assert main(["vnnlib", sat_property[1], str(tmp_path / "p.vnnlib")]) == 2
    err = capsys.readouterr().err
    assert "p.vnnlib:1: not a VNN-LIB file: byte 0xfe" in err and err.count("\n") == 1, err


PROBE = """
import json


def add_arguments(p):
    pass


def run(args):
    from threadpoolctl import threadpool_info

    print(json.dumps({i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}))
"""

CALLER = """
import json, sys
from threadpoolctl import threadpool_info, threadpool_limits
from minadv.experiments import cli  # loads numpy's and scipy's OpenBLAS
threadpool_limits(2, user_api="blas")  # as on a 2-core machine, whatever this one has
cli.COMMANDS["probe"] = ("probe", "prints the BLAS thread counts")
code = cli.main(["probe"])
print(json.dumps({i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}))
sys.exit(code)
"""


@pytest.mark.slow
def test_a_command_runs_blas_on_one_thread_and_restores_it(tmp_path, monkeypatch, capsys):
    """With --jobs 1 the main process computes: its BLAS (numpy's and scipy's OpenBLAS) is
    pinned to one thread as the workers' is, and set back when the command returns."""
    import json
    import os

    (tmp_path / "probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "MINADV_BLAS_THREADS"}
    proc = subprocess.run([sys.executable, "-c", CALLER], capture_output=True, text=True, timeout=300,
                          env={**env, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    during, after = (json.loads(line) for line in proc.stdout.strip().splitlines())
    assert len(during) >= 1 and set(during.values()) == {1}, during
    assert set(after.values()) == {2}, after  # a library caller's setting comes back
    monkeypatch.setenv("MINADV_BLAS_THREADS", "two")
    assert main(["summary", "--nets", "N1", "--images", "0"]) == 2
    assert "$MINADV_BLAS_THREADS must be a positive integer, got 'two'" in capsys.readouterr().err


def test_train_writes_into_the_current_folder_never_the_package(tmp_path, monkeypatch, capsys):
    import numpy as np
    import torch

    from minadv.experiments.models import MODEL_DIR, load

    committed = {p.name: p.read_bytes() for p in MODEL_DIR.iterdir()}
    monkeypatch.chdir(tmp_path)
    assert main(["train", "N1", "--epochs", "1"]) == 0
    assert {p.name: p.read_bytes() for p in MODEL_DIR.iterdir()} == committed
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["N1.json", "N1.pt"]
    assert "(use it as --net models/N1.pt)" in capsys.readouterr().out
    state = torch.load(tmp_path / "models" / "N1.pt", weights_only=True)
    assert np.array_equal(load("models/N1.pt").weights[0], state["0.weight"].double().numpy())
    assert not np.array_equal(load("N1").weights[0], state["0.weight"].double().numpy())  # N1: the committed one
    assert main(["train", "N1", "--out", str(tmp_path / "models" / "N1.pt")]) == 2  # a file, not a folder
    assert "cannot create the folder" in capsys.readouterr().err
