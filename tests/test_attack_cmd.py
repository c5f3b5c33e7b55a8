"""`minadv attack`: the results CSV and .npz of `minadv exact`, resumable, failures without points."""

import numpy as np
import pandas as pd
from minadv.experiments.cli import main
from minadv.experiments.store import COLUMNS
from minadv.verify import check


def test_attack_command_writes_resumes_and_records_failures(tmp_path, capsys, n1, test_split):
    out, adv = tmp_path / "results.csv", tmp_path / "adv.npz"
    args = ["attack", "--method", "deepfool", "--net", "N1", "--images", "0:2", "--out", str(out), "--save-adv", str(adv)]
    assert main(args) == 0
    assert "2 images attacked now: 2 found" in capsys.readouterr().out
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main([*args[:-4], "--images", "2", "--out", str(out), "--save-adv", str(adv), "--option", "steps=0", "--force"]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == COLUMNS and len(frame) == 3
    assert list(frame.status) == ["found", "found", "failed"] and np.isnan(frame.value[2])
    with np.load(adv) as z:
        assert sorted(z["image"]) == [0, 1]  # the failed image has no point
        for i, x, x_adv, pred in zip(z["image"], z["x"], z["x_adv"], z["pred"]):
            np.testing.assert_array_equal(x, test_split.x(int(i)))
            assert check(n1, x_adv, int(pred)).adversarial()
            assert np.linalg.norm(x_adv - x) == frame.value[frame.image == i].item()


def test_attack_command_rejects_bad_options(capsys):
    assert main(["attack", "--method", "rlrqp", "--images", "0", "--option", "n9=3"]) == 2
    assert "options: n1, n2, n3, n4, alpha, targets, iterations, seed" in capsys.readouterr().err
    assert main(["attack", "--method", "lbfgs", "--images", "0", "--seed", "1"]) == 2
    assert main(["attack", "--method", "rlrqp", "--images", "0", "--option", "targets=best"]) == 2


def test_batched_attack_split_over_two_processes_gives_the_same_rows(tmp_path):
    """DeepFool batches of 50 split into one batch per process: same points as one batch."""
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    base = ["attack", "--method", "deepfool", "--net", "N1", "--images", "0:6"]
    assert main([*base, "--out", str(one)]) == 0
    assert main([*base, "--out", str(two), "--jobs", "2"]) == 0
    a, b = pd.read_csv(one).sort_values("image"), pd.read_csv(two).sort_values("image")
    assert list(b.image) == list(range(6)) and list(b.status) == ["found"] * 6
    np.testing.assert_allclose(b.value.to_numpy(), a.value.to_numpy(), rtol=1e-6)
