"""The paper's large MNIST networks, 784-1024-10, 784-(1024x5)-10 and 784-(1024x10)-10
(Croce & Hein 2018, Section 4), trained quickly and deterministically for the region-QP and
rLR-QP benchmarks at that scale.

Training is `models.train` (Adam, lr 1e-3, batch 128, one thread, fixed seed) for a few epochs:
enough for ~97-98% test accuracy, not the paper's exact networks. The weights are not committed
(5x1024 is ~17 MB); `train_scale(name, out_dir)` writes out_dir/<name>.pt (a state_dict of the
nn.Sequential, the format `models.load` reads) and <name>.json (the card: architecture, seed,
epochs, test accuracy, data sha256 and the sha256 of the .pt).

A name with the suffix -at (1x1024-at, ...) is the same architecture with adversarial training
(`models.AdversarialTraining`: L2 PGD, eps 2.0, 100 steps by default; `pgd_steps` fewer where
the machine is small, which the card records).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .models import AdversarialTraining, train

SCALE_ARCHITECTURES = {
    "1x1024": (784, 1024, 10),
    "5x1024": (784, *[1024] * 5, 10),
    "10x1024": (784, *[1024] * 10, 10),
}
SCALE_EPOCHS = {"1x1024": 3, "5x1024": 2, "10x1024": 2}
AT = "-at"  # name suffix: adversarially trained
SCALE_NAMES = [n + s for n in SCALE_ARCHITECTURES for s in ("", AT)]
PAPER_PGD_STEPS = 100


def train_scale(name: str, out_dir: Path, *, seed: int = 0, epochs: int | None = None, log=print,
                pgd_steps: int = PAPER_PGD_STEPS, eps: float = AdversarialTraining.eps,
                sizes: tuple[int, ...] | None = None) -> dict:
    """Train network `name` (one of SCALE_NAMES) into out_dir; returns its card. pgd_steps, eps:
    the attack of adversarial training (-at names only); sizes: other layer widths for tests."""
    base = name.removesuffix(AT)
    if name not in SCALE_NAMES:
        raise ValueError(f"unknown network {name!r}; known: {', '.join(SCALE_NAMES)}")
    adversarial = AdversarialTraining(eps=eps, steps=pgd_steps) if name.endswith(AT) else None
    out_dir = Path(out_dir)
    card = train(name, seed=seed, epochs=SCALE_EPOCHS[base] if epochs is None else epochs, out_dir=out_dir,
                 log=log, sizes=SCALE_ARCHITECTURES[base] if sizes is None else sizes, adversarial=adversarial)
    if adversarial is not None and pgd_steps < PAPER_PGD_STEPS:
        card["note"] = f"{pgd_steps} PGD steps per batch, not the paper's {PAPER_PGD_STEPS} (training time here)"
    card["weights_sha256"] = hashlib.sha256((out_dir / f"{name}.pt").read_bytes()).hexdigest()
    (out_dir / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
