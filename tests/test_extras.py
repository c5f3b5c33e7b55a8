"""The exact solver without the optional extras: `minadv.verify` and `minimal_perturbation` work
with Foolbox, onnx, pandas, matplotlib and tqdm unimportable, and a missing extra is a one-line
error naming it."""

import subprocess
import sys
import textwrap

import pytest

BLOCKED = ("foolbox", "onnx", "pandas", "matplotlib", "tqdm")

# run in a fresh interpreter, with a finder ahead of all others that reports the blocked modules
# as not installed (sys.modules[name] = None would break pyomo's own optional import of matplotlib)
PRELUDE = f"""import sys
BLOCKED = {BLOCKED!r}

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Block())
"""


def run_blocked(body: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
                          capture_output=True, text=True, timeout=300)


def test_exact_solver_runs_without_the_extras():
    proc = run_blocked("""
        import numpy as np
        import minadv.verify as v
        from minadv.verify import ReluNetwork, minimal_perturbation

        # f = (relu(x0) - relu(x1), relu(x1) - relu(x0)): the boundary is x0 = x1, at L2 distance 0.2 / sqrt(2)
        net = ReluNetwork.from_layers([(np.eye(2), np.zeros(2)), (np.array([[1.0, -1.0], [-1.0, 1.0]]), np.zeros(2))])
        x = np.array([0.6, 0.4])
        res = minimal_perturbation(net, x, norm=2, time_limit=60)
        assert res.status.value == "optimal", res
        assert abs(res.value - 0.2 / np.sqrt(2)) < 1e-6, res
        assert v.check(net, res.x_adv, net.predict(x)).adversarial()
        blocked = [n for n in sys.modules if n.split(".")[0] in BLOCKED]
        assert not blocked, blocked
        print("ok", res.value)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


@pytest.mark.parametrize("body, extra", [
    ("from minadv.attacks import DeepFool\nDeepFool().foolbox_attack()", "attacks"),
    ("from minadv.verify import load_onnx\nload_onnx('net.onnx')", "onnx"),
])
def test_a_missing_extra_is_a_one_line_error_naming_it(body, extra):
    proc = run_blocked(body)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode != 0
    assert last.startswith("minadv.verify.extras.MissingExtraError") and f"install minadv[{extra}]" in last, proc.stderr


def test_the_cli_without_the_experiments_extra_exits_2_with_one_line():
    proc = run_blocked("from minadv.experiments.cli import main\nsys.exit(main(['summary']))")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("minadv: error: pandas is not installed: install minadv[experiments] "
                                   "(pip install 'minadv[experiments]')")
