"""`minadv train N1|N2|S1|S2|S3 [--out DIR]`: deterministic training; writes DIR/<name>.pt and DIR/<name>.json.

DIR defaults to models/ in the current folder, never the installed package: the committed
weights that the names N1 and N2 stand for stay as they are, and a trained network is used
by its path (`--net models/N1.pt`, `--nets models/N1.pt`).
"""

from __future__ import annotations

from pathlib import Path

from ..models import ARCHITECTURES, TRAIN_DEFAULTS, TRAINED_DIR, train


def add_arguments(p) -> None:
    p.add_argument("names", nargs="+", choices=sorted(ARCHITECTURES), help="networks to train")
    p.add_argument("--seed", type=int, default=TRAIN_DEFAULTS["seed"])
    p.add_argument("--epochs", type=int, help="default: the committed network's (N1, N2: 10; S1-S3: 3)")
    p.add_argument("--out", "--out-dir", dest="out", type=Path, default=TRAINED_DIR,
                   help=f"folder for <name>.pt and <name>.json (default ./{TRAINED_DIR}; "
                        "the committed networks are never overwritten)")


def run(args) -> int:
    from minadv.verify import InputError

    try:  # before the training, not after it
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"--out {args.out}: cannot create the folder: {err.strerror}") from None
    for name in args.names:
        train(name, seed=args.seed, epochs=args.epochs, out_dir=args.out)
    return 0
