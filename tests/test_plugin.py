"""The pytest plugin (minadv.testing.plugin), run on users' test files by pytest's own `pytester`:
a passing suite, a failing attack, a skip when the optimum is not proven, the cache on a second run,
a tampered entry, the settings, and the README's example as written."""

import json
import re
from pathlib import Path

import hypothesis  # noqa: F401 (see below)
import numpy as np
import pytest
import torch

import minadv.testing.certificates as certificates
from minadv.experiments.data import cache_dir
from minadv.testing.certificates import _sha256

# hypothesis is imported above, before pytester's runs: an in-process run drops the modules it imported,
# and hypothesis's own pytest plugin imported it again in every run (with assertion rewriting: 4 s or more)
ROOT = Path(__file__).resolve().parents[1]
MNIST_CACHE = cache_dir()  # read now: pytester points HOME, and with it the default cache, at its tmp folder
INI = "[pytest]\nminadv_certificates = certs\n"

# an attack that finds the optimal point itself: the smallest perturbation that passes
PASSING = """
def test_the_optimal_point_passes(minadv_n1, optimum):
    cert = optimum(minadv_n1, 4)
    cert.assert_not_below(cert.result.x_adv - cert.x)
"""


def readme_example() -> str:
    """The python block of the README's section on users' test suites."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### In your own test suite"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(autouse=True)
def _mnist_from_the_cache(monkeypatch):
    monkeypatch.setenv("MINADV_CACHE", str(MNIST_CACHE))


@pytest.fixture
def refuse_to_solve(monkeypatch):
    """From here on, an exact solve through the certificate cache fails the user's test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the exact problem was solved again")

    return lambda: monkeypatch.setattr(certificates, "minimal_perturbation", refuse)


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


def test_a_passing_suite_solves_once_then_reads_the_cache(pytester, refuse_to_solve):
    pytester.makeini(INI)
    pytester.makepyfile(test_user=PASSING)
    first = pytester.runpytest()
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*certs: 0 read from the cache, 1 solved now, 0 rejected"])
    assert len(entries(pytester.path / "certs")) == 1
    refuse_to_solve()
    second = pytester.runpytest()
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(["*certs: 1 read from the cache, 0 solved now, 0 rejected"])


def test_an_attack_at_0_9_times_the_optimal_point_fails_and_says_why(pytester):
    pytester.makeini(INI)
    pytester.makepyfile(test_user="""
        def test_my_attack(minadv_n1, optimum):
            cert = optimum(minadv_n1, 4)
            cert.assert_not_below(0.9 * (cert.result.x_adv - cert.x))
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    [path] = entries(pytester.path / "certs")
    lower = json.loads(path.read_text())["certificate"]["lower"]
    result.stdout.fnmatch_lines([
        f"E * MNIST test image 4, L2: x + delta is not adversarial for class 4: * its norm * proves nothing. "
        f"Certified lower bound {lower:.6g} (status optimal, upper *); certificate {path} (solved now and stored; "
        f"solver minadv *"])
    assert "Certificate(net=" not in result.stdout.str()  # the frame holding the arrays stays hidden


def test_an_optimum_not_proven_in_its_time_limit_skips_until_a_longer_limit_proves_it(pytester):
    pytester.makeini(INI)
    pytester.makepyfile(test_user="""
        def test_my_attack(minadv_n1, optimum):
            cert = optimum(minadv_n1, 1)
            cert.assert_not_below(cert.result.x_adv - cert.x)
    """)
    short = pytester.runpytest("-rs", "--minadv-time-limit", "0.001")
    short.assert_outcomes(skipped=1)
    short.stdout.fnmatch_lines(["SKIPPED * MNIST test image 1: the L2 optimum was not proven within 0.001 s "
                                "(status time_limit, lower *, upper *); certificate *"])
    longer = pytester.runpytest("--minadv-time-limit", "60")
    longer.assert_outcomes(passed=1)
    longer.stdout.fnmatch_lines(["*certs: 0 read from the cache, 1 solved now, 0 rejected"])


def test_a_tampered_entry_is_detected_and_solved_again(pytester, test_split, refuse_to_solve):
    pytester.makeini(INI)
    pytester.makepyfile(test_user=PASSING)
    pytester.runpytest().assert_outcomes(passed=1)
    [path] = entries(pytester.path / "certs")
    doc = json.loads(path.read_text())
    x, cert = test_split.x(4), doc["certificate"]
    doc["x_adv"] = list(x + 0.9 * (np.array(doc["x_adv"]) - x))  # a point closer than the optimum ...
    cert["upper"] = cert["value"] = cert["lower"] = 0.9 * cert["upper"]
    doc["sha256"] = _sha256({k: v for k, v in doc.items() if k != "sha256"})  # ... with a matching checksum
    path.write_text(json.dumps(doc))
    again = pytester.runpytest()
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["*certs: 0 read from the cache, 1 solved now, 1 rejected",
                                f"rejected and solved again: {path}: its point fails the float64 adversarial check*"])
    refuse_to_solve()
    pytester.runpytest().stdout.fnmatch_lines(["*certs: 1 read from the cache, 0 solved now, 0 rejected"])


def test_a_network_from_a_file_shares_the_certificates_of_the_same_weights(pytester, n1, refuse_to_solve):
    pytester.makeini(INI)
    pytester.makepyfile(test_user=PASSING)
    pytester.runpytest().assert_outcomes(passed=1)
    (pytester.path / "models").mkdir()
    torch.save(n1.to_torch(torch.float64), pytester.path / "models" / "mine.pt")
    pytester.makepyfile(test_user="""
        def test_from_a_file(minadv_network, optimum):
            net = minadv_network("models/mine.pt")  # relative to the rootdir
            cert = optimum(net, 4)
            cert.assert_not_below(cert.result.x_adv - cert.x)
    """)
    refuse_to_solve()
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*certs: 1 read from the cache, 0 solved now, 0 rejected"])


def test_settings_folder_option_bad_time_limit_and_switching_the_plugin_off(pytester):
    pytester.makepyfile(test_user=PASSING)
    pytester.runpytest("--minadv-certificates", "elsewhere").assert_outcomes(passed=1)
    assert len(entries(pytester.path / "elsewhere")) == 1
    bad = pytester.runpytest("--minadv-time-limit", "soon")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["ERROR: minadv time limit must be a positive number of seconds, got 'soon'"])
    off = pytester.runpytest("-p", "no:minadv")
    off.assert_outcomes(errors=1)
    off.stdout.fnmatch_lines(["*fixture 'minadv_n1' not found"])


@pytest.mark.slow
def test_the_readme_example_runs_as_written(pytester, refuse_to_solve):
    """No ini: the certificates go to pytest's cache folder."""
    pytester.makepyfile(test_my_attack=readme_example())
    first = pytester.runpytest()
    first.assert_outcomes(passed=2)
    assert len(entries(pytester.path / ".pytest_cache" / "d" / "minadv-certificates")) == 2
    refuse_to_solve()
    second = pytester.runpytest()
    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines(["*minadv-certificates: 2 read from the cache, 0 solved now, 0 rejected"])
