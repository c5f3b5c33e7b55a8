from pathlib import Path

import pytest
import torch

from minadv.experiments.data import mnist
from minadv.experiments.models import load

pytest_plugins = ["pytester"]  # tests/test_plugin.py runs users' test files against the minadv plugin

# The VNN-COMP 2021 MNIST benchmark, read from ../shared beside the project (never copied into it).
MNISTFC = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "vnncomp2021-mnistfc"


@pytest.fixture(scope="session")
def test_split():
    return mnist("test")


@pytest.fixture(scope="session")
def n1():
    return load("N1")


@pytest.fixture(scope="session")
def n2():
    return load("N2")


torch.set_num_threads(1)  # as the CLI does: small tensors, and CI machines share cores


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def mnistfc() -> Path:
    if not MNISTFC.is_dir():
        pytest.skip(f"shared benchmark not present at {MNISTFC}")
    return MNISTFC


@pytest.fixture
def no_work(monkeypatch):
    """Any unit of work started (one image or a batch) fails the test: for checks that must end a
    command before it computes anything."""
    import minadv.experiments.runner as runner

    def fail(*a, **k):
        raise AssertionError("work started before the outputs were checked")

    monkeypatch.setattr(runner, "run_one", fail)
    monkeypatch.setattr(runner, "_batch_job", fail)
