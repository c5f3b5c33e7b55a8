"""`minadv train N1|N2`: deterministic training; overwrites experiments/models/<name>.pt and .json."""

from __future__ import annotations

from pathlib import Path

from .models import ARCHITECTURES, MODEL_DIR, TRAIN_DEFAULTS, train


def add_arguments(p) -> None:
    p.add_argument("names", nargs="+", choices=sorted(ARCHITECTURES), help="networks to train")
    p.add_argument("--seed", type=int, default=TRAIN_DEFAULTS["seed"])
    p.add_argument("--epochs", type=int, default=TRAIN_DEFAULTS["epochs"])
    p.add_argument("--out-dir", type=Path, default=MODEL_DIR, help=f"where to write the weights (default {MODEL_DIR})")


def run(args) -> int:
    for name in args.names:
        train(name, seed=args.seed, epochs=args.epochs, out_dir=args.out_dir)
    return 0
