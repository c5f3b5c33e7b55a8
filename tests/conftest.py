from pathlib import Path

import numpy as np
import pytest
import torch
from minadv.experiments.data import mnist
from minadv.experiments.models import load
from minadv.verify import ReluNetwork

# The VNN-COMP 2021 MNIST benchmark, read from ../shared beside the project (never copied into it).
MNISTFC = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "vnncomp2021-mnistfc"


def random_net(sizes, seed=0, scale=1.0) -> ReluNetwork:
    """A random ReLU network with the given layer sizes (inputs first)."""
    rng = np.random.default_rng(seed)
    return ReluNetwork.from_layers(
        (rng.normal(0, scale / np.sqrt(n_in), (n_out, n_in)), rng.normal(0, 0.3, n_out))
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    )


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
