"""`minadv train NAME... [--out DIR]`: deterministic training; writes DIR/<name>.pt and DIR/<name>.json.

NAME: N1, N2, S1-S3 (the committed networks) or the paper's 1x1024, 5x1024, 10x1024, plain or
adversarially trained (suffix -at; --pgd-steps and --eps set its L2 PGD attack).

DIR defaults to models/ in the current folder, never the installed package: the committed
weights that the names N1 and N2 stand for stay as they are, and a trained network is used
by its path (`--net models/N1.pt`, `--nets models/N1.pt`).
"""

from __future__ import annotations

from pathlib import Path

from ..models import ARCHITECTURES, TRAIN_DEFAULTS, TRAINED_DIR, AdversarialTraining, train
from ..scale_models import PAPER_PGD_STEPS, SCALE_NAMES, train_scale


def add_arguments(p) -> None:
    p.add_argument("names", nargs="+", choices=[*ARCHITECTURES, *SCALE_NAMES], help="networks to train")
    p.add_argument("--seed", type=int, default=TRAIN_DEFAULTS["seed"])
    p.add_argument("--epochs", type=int, help="default: N1, N2: 10; S1-S3: 3; 1x1024(-at): 3; 5x1024, 10x1024(-at): 2")
    p.add_argument("--out", "--out-dir", dest="out", type=Path, default=TRAINED_DIR,
                   help=f"folder for <name>.pt and <name>.json (default ./{TRAINED_DIR}; "
                        "the committed networks are never overwritten)")
    p.add_argument("--pgd-steps", type=int, default=PAPER_PGD_STEPS,
                   help=f"-at networks: L2 PGD steps per batch (default: the paper's {PAPER_PGD_STEPS})")
    p.add_argument("--eps", type=float, default=AdversarialTraining.eps,
                   help=f"-at networks: L2 radius of the PGD attack (default {AdversarialTraining.eps})")


def run(args) -> int:
    from minadv.verify import InputError

    try:  # before the training, not after it
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"--out {args.out}: cannot create the folder: {err.strerror}") from None
    if args.pgd_steps < 1 or args.eps <= 0:
        raise InputError("--pgd-steps must be at least 1 and --eps positive")
    for name in args.names:
        if name in SCALE_NAMES:
            train_scale(name, args.out, seed=args.seed, epochs=args.epochs, pgd_steps=args.pgd_steps, eps=args.eps)
        else:
            train(name, seed=args.seed, epochs=args.epochs, out_dir=args.out)
    return 0
