"""The `minadv` command line: one sub-command per module, each with add_arguments() and run()."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import torch

from minadv.verify.parallel import pinned_threads

# name -> (module implementing it, one-line help)
COMMANDS = {
    "data": ("minadv.experiments.data_cmd", "fetch MNIST (offline) and show where the cache is"),
    "train": ("minadv.experiments.train_cmd", "train N1 / N2 deterministically and save weights + card"),
    "summary": ("minadv.experiments.summary", "accuracy and linear-region statistics of N1/N2 on test images"),
    "exact": ("minadv.experiments.exact_cmd", "proven minimal adversarial perturbations (L2, Linf, L1)"),
    "attack": ("minadv.experiments.attack_cmd", "run rLR-QP or a baseline (deepfool, cw, lbfgs) on test images"),
    "certify": ("minadv.experiments.certify_cmd", "fill a certificate folder for the pytest plugin (minadv.testing)"),
    "vnnlib": ("minadv.experiments.vnnlib_cmd", "decide a VNN-LIB robustness property: sat / unsat / timeout"),
    "bench": ("minadv.experiments.bench_cmd", "benchmarks: per-image time and quality on the first test images"),
    "reproduce": ("minadv.experiments.reproduce", "Table 1 and Figure 1: exact solver and attacks on N1/N2"),
}


def parse_images(spec: str) -> list[int]:
    """'0:50' -> 0..49, '3' -> [3], '1,4,7' -> [1, 4, 7], '0:10,20:25' -> both ranges."""
    out: list[int] = []
    for part in spec.split(","):
        try:
            if ":" in part:
                lo, hi = part.split(":")
                lo, hi = int(lo or 0), int(hi)
            else:
                lo = int(part)
                hi = lo + 1
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad image list {spec!r}: use e.g. 0:50 or 1,4,7") from None
        if lo == hi:
            raise argparse.ArgumentTypeError(f"empty range {part} in {spec!r}: {lo}:{hi + 1} is image {lo}")
        if lo > hi:
            raise argparse.ArgumentTypeError(f"range {part} in {spec!r} is backwards: use {hi}:{lo}")
        out.extend(range(lo, hi))
    if min(out) < 0 or max(out) >= 10000:
        raise argparse.ArgumentTypeError(f"image indices in {spec!r} must lie in 0..9999")
    return out


def format_images(images: list[int]) -> str:
    """The inverse of parse_images: [0, 1, 2, 7] -> '0:3,7'."""
    parts, k = [], 0
    while k < len(images):
        j = k
        while j + 1 < len(images) and images[j + 1] == images[j] + 1:
            j += 1
        parts.append(f"{images[k]}:{images[j] + 1}" if j > k else str(images[k]))
        k = j + 1
    return ",".join(parts)


def threads(var: str) -> int:
    """The thread count in environment variable `var`: a positive integer, 1 if unset."""
    from minadv.verify import InputError

    value = os.environ.get(var, "1")
    if not (value.isdecimal() and int(value) >= 1):
        raise InputError(f"${var} must be a positive integer, got {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minadv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a sub-command; bad input (InputError, NetworkError, VnnlibError, DataError, missing
    files) ends with a one-line message on stderr and exit code 2, as does a missing optional
    dependency (it names the extra to install); Ctrl-C with one line and 130."""
    from minadv.verify import InputError, NetworkError, VnnlibError
    from minadv.verify.extras import MissingExtraError, missing_extra

    try:
        from .data import DataError
        from .store import Interrupted

        parser = build_parser()
    except ModuleNotFoundError as err:  # the commands need the `experiments` extra (pandas, ...)
        extra = missing_extra(err)
        if extra is None:
            raise
        print(f"minadv: error: {extra}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        # minadv's tensors are small: one torch thread is fastest, and several threads spinning
        # against a busy second core made PGD 20x slower (12.5 s vs 0.6 s, measured here);
        # BLAS likewise, as in the workers (verify/parallel.py)
        torch.set_num_threads(threads("MINADV_TORCH_THREADS"))
        with pinned_threads(threads("MINADV_BLAS_THREADS")):
            return int(importlib.import_module(args._module).run(args) or 0)
    except (InputError, NetworkError, VnnlibError, DataError, FileNotFoundError, MissingExtraError) as err:
        print(f"minadv {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Interrupted as err:
        print(f"minadv {args.command}: {err}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"minadv {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
