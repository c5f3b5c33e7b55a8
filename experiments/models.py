"""The committed networks: the paper's N1 (784-50-10) and N2 (784-50-15-10), and the exact
solver's scale suite S1 (784-100-10), S2 (784-200-10), S3 (784-100-100-10), trained for 3 epochs
as a user would (issue "proven minimal L2 on 100 to 300 hidden ReLUs"); deterministic training
and loading.

The committed weights live in the package, experiments/models/<name>.pt (state_dict of an
nn.Sequential of Linear/ReLU) with a JSON card beside them (architecture, seed, epochs,
optimiser, accuracy, data sha256; its "layers" is what says the activations are ReLU,
`load_network`); the names N1 and N2 load them. `train` writes the same
two files into a folder of the user's (default ./models), loaded by path.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from torch import nn

from minadv.verify import ReluNetwork, load_network

from .data import Split, data_sha256, mnist

MODEL_DIR = Path(__file__).parent / "models"  # the committed weights
TRAINED_DIR = Path("models")  # where `train` writes by default: relative to the current folder
ARCHITECTURES = {
    "N1": (784, 50, 10), "N2": (784, 50, 15, 10),
    "S1": (784, 100, 10), "S2": (784, 200, 10), "S3": (784, 100, 100, 10),
}
EPOCHS = {"N1": 10, "N2": 10, "S1": 3, "S2": 3, "S3": 3}
TRAIN_DEFAULTS = dict(seed=0, lr=1e-3, batch_size=128)


@dataclass(frozen=True)
class AdversarialTraining:
    """Adversarial training as in Croce & Hein 2018, Section 5 (after Madry et al. 2018): every
    batch half clean, half replaced by `attacks.pgd_l2` points (radius eps, `steps` steps) made
    against the current weights; plain gradient steps of the cross-entropy on the whole batch.

    eps = 2.0: the paper does not state its radius; 2.0 is the L2 radius its authors use for
    MNIST L2 adversarial training and evaluation in their later work (FAB, Croce & Hein, ICML
    2020), above the typical minimal L2 perturbation of a plainly trained MNIST network (about
    1), so that the training changes the decision near most test images."""

    eps: float = 2.0
    steps: int = 100

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from minadv.attacks import pgd_l2

        return pgd_l2(model, x, y, eps=self.eps, steps=self.steps)

    def card(self) -> dict:
        return {"attack": "L2 PGD (normalised plain gradient step, no random start, projection onto ball then box)",
                "eps": self.eps, "pgd_steps": self.steps, "pgd_step_size": 2.5 * self.eps / self.steps,
                "adversarial_fraction": 0.5}


def build(sizes: tuple[int, ...]) -> nn.Sequential:
    mods: list[nn.Module] = []
    for k, (n_in, n_out) in enumerate(pairwise(sizes)):
        mods.append(nn.Linear(n_in, n_out))
        if k < len(sizes) - 2:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def accuracy(net: ReluNetwork, split: Split) -> float:
    return float(np.mean(net.predict(split.x()) == split.labels))


def robust_accuracy(model: nn.Module, split: Split, adversarial: AdversarialTraining, images: int) -> float:
    """The share of the first `images` images of `split` that the training attack leaves
    correctly classified (by the float32 model the attack ran on)."""
    x, y = torch.from_numpy(split.x(slice(0, images))).float(), torch.from_numpy(split.labels[:images])
    z = adversarial.attack(model, x, y)
    with torch.no_grad():
        return int((model(z).argmax(1) == y).sum()) / len(y)


def train(name: str, *, seed: int = 0, epochs: int | None = None, lr: float = 1e-3, batch_size: int = 128,
          out_dir: Path = TRAINED_DIR, log=print, sizes: tuple[int, ...] | None = None,
          adversarial: AdversarialTraining | None = None, robust_images: int = 1000) -> dict:
    """Train `name` with Adam on the 60000 training images, one thread, fixed seed; save .pt + .json in out_dir.
    sizes: the layer widths (default: ARCHITECTURES[name]); epochs: default EPOCHS[name];
    adversarial: adversarial training (the card then gives the robust accuracy under its attack on
    the first `robust_images` test images)."""
    if sizes is None and name not in ARCHITECTURES:
        raise ValueError(f"unknown network {name!r}; known: {', '.join(ARCHITECTURES)}")
    if epochs is None and name not in EPOCHS:
        raise ValueError(f"give the epochs for {name!r}: it has no default (EPOCHS)")
    sizes = ARCHITECTURES[name] if sizes is None else tuple(sizes)
    epochs = EPOCHS[name] if epochs is None else epochs
    train_split, test_split = mnist("train"), mnist("test")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same float sums, so the same weights, on one machine (another
    # CPU's kernels sum in another order: the card names the CPU)
    try:
        torch.manual_seed(seed)
        model = build(sizes)
        X = torch.from_numpy(train_split.x()).float()
        y = torch.from_numpy(train_split.labels)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        for _epoch in range(epochs):
            for idx in torch.randperm(len(y), generator=gen).split(batch_size):
                xb = X[idx]
                if adversarial is not None:  # the second half of the batch replaced by attack points
                    half = len(idx) // 2
                    xb = torch.cat([xb[:half], adversarial.attack(model, xb[half:], y[idx[half:]])])
                opt.zero_grad()
                nn.functional.cross_entropy(model(xb), y[idx]).backward()
                opt.step()
        seconds = time.perf_counter() - start
        robust = None if adversarial is None else robust_accuracy(model, test_split, adversarial, robust_images)
    finally:
        torch.set_num_threads(threads)
    net = ReluNetwork.from_sequential(model)
    card = {
        "name": name,
        "architecture": "-".join(map(str, sizes)),
        "layers": "Sequential(" + ", ".join(type(m).__name__ for m in model) + ")",
        "seed": seed,
        "epochs": epochs,
        "optimizer": f"Adam(lr={lr})",
        "batch_size": batch_size,
        "loss": "cross_entropy",
        "train_images": len(train_split),
        "test_accuracy": accuracy(net, test_split),
        "train_seconds": round(seconds, 2),
        "seconds_per_epoch": round(seconds / max(epochs, 1), 2),
        **({} if adversarial is None else {"adversarial_training": adversarial.card(),
                                           "robust_accuracy": robust, "robust_images": robust_images}),
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "train_data_sha256": data_sha256(train_split),
        "test_data_sha256": data_sha256(test_split),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / f"{name}.pt")
    (out_dir / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    log(f"{name}: test accuracy {card['test_accuracy']:.4f}, trained in {seconds:.1f} s -> {out_dir / name}.pt "
        f"(use it as --net {out_dir / name}.pt)")
    return card


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo, else the platform's) and the vector extension torch's
    kernels use: the two things that decide the order of float sums in training."""
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
    except OSError:
        names = []
    return f"{names[0] if names else platform.processor() or platform.machine()}, " \
           f"{torch.backends.cpu.get_cpu_capability()}"


def load(name_or_path: str | Path) -> ReluNetwork:
    """A committed network by name (N1, N2, S1, S2, S3) or a path to a model file."""
    path = MODEL_DIR / f"{name_or_path}.pt" if str(name_or_path) in ARCHITECTURES else Path(name_or_path)
    return load_network(path)


def card(name: str) -> dict:
    return json.loads((MODEL_DIR / f"{name}.json").read_text())
