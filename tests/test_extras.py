"""The exact solver without the optional extras: `minadv.verify` and `minimal_perturbation` work
with Foolbox, onnx, pandas, matplotlib and tqdm unimportable, and a missing extra is a one-line
error naming it. One fresh interpreter runs every check (starting one costs seconds: torch)."""

import json
import subprocess
import sys
import textwrap

import pytest

BLOCKED = ("foolbox", "onnx", "pandas", "matplotlib", "tqdm")

# A finder ahead of all others reports the blocked modules as not installed
# (sys.modules[name] = None would break pyomo's own optional import of matplotlib).
SCRIPT = f"""
import contextlib, io, json, sys
BLOCKED = {BLOCKED!r}

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Block())
""" + textwrap.dedent("""
    import numpy as np
    import minadv.verify as v
    from minadv.verify import ReluNetwork, minimal_perturbation
    from minadv.verify.extras import MissingExtraError

    out = {}
    # f = (relu(x0) - relu(x1), relu(x1) - relu(x0)): the boundary is x0 = x1, at L2 distance 0.2 / sqrt(2)
    net = ReluNetwork.from_layers([(np.eye(2), np.zeros(2)), (np.array([[1.0, -1.0], [-1.0, 1.0]]), np.zeros(2))])
    x = np.array([0.6, 0.4])
    res = minimal_perturbation(net, x, norm=2, time_limit=60)
    out["exact"] = [str(res.status), res.value, v.check(net, res.x_adv, net.predict(x)).adversarial()]
    out["imported"] = [n for n in sys.modules if n.split(".")[0] in BLOCKED]

    def error_of(f):
        try:
            f()
        except MissingExtraError as err:
            return str(err)
        return None

    from minadv.attacks import DeepFool
    out["attacks"] = error_of(lambda: DeepFool().foolbox_attack())
    out["onnx"] = error_of(lambda: v.load_onnx("net.onnx"))

    from minadv.experiments.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        out["cli"] = [main(["summary"]), err.getvalue()]
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def without_extras() -> dict:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_exact_solver_runs_without_the_extras(without_extras):
    status, value, adversarial = without_extras["exact"]
    assert status == "optimal" and abs(value - 0.2 / 2 ** 0.5) < 1e-6 and adversarial
    assert without_extras["imported"] == []


@pytest.mark.parametrize("what, module, extra", [("attacks", "foolbox", "attacks"), ("onnx", "onnx", "onnx")])
def test_a_missing_extra_is_a_one_line_error_naming_it(without_extras, what, module, extra):
    assert without_extras[what] == f"{module} is not installed: install minadv[{extra}] (pip install 'minadv[{extra}]')"


def test_the_cli_without_the_experiments_extra_exits_2_with_one_line(without_extras):
    code, err = without_extras["cli"]
    assert code == 2
    assert err == ("minadv: error: pandas is not installed: install minadv[experiments] "
                   "(pip install 'minadv[experiments]')\n")
