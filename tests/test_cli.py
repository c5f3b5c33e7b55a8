import argparse
import subprocess
import sys

import pytest

from minadv.experiments.cli import main, parse_images


def test_parse_images():
    assert parse_images("0:5") == [0, 1, 2, 3, 4]
    assert parse_images("3") == [3]
    assert parse_images("1,4,7") == [1, 4, 7]
    assert parse_images("0:2,8:10") == [0, 1, 8, 9]
    for bad in ("a:b", "5:5", "-1", "10000"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_images(bad)


def test_summary_prints_accuracy_and_regions(capsys):
    assert main(["summary", "--nets", "N1", "--images", "0:2"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy 0.9688" in out
    assert out.count("/50") == 2


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "minadv.experiments.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "summary" in out.stdout


def test_unknown_command_fails_cleanly(capsys):
    with pytest.raises(SystemExit) as err:
        main(["frobnicate"])
    assert err.value.code == 2
