"""The `minadv` command line: one sub-command per module, each with add_arguments() and run()."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import torch

from minadv.verify import pinned_threads

# name -> (module implementing it, one-line help)
COMMANDS = {
    "data": ("minadv.experiments.commands.data", "fetch MNIST (offline) and show where the cache is"),
    "train": ("minadv.experiments.commands.train", "train N1 / N2 deterministically and save weights + card"),
    "summary": ("minadv.experiments.commands.summary", "accuracy and linear-region statistics of N1/N2 on test images"),
    "exact": ("minadv.experiments.commands.exact", "proven minimal adversarial perturbations (L2, Linf, L1)"),
    "attack": ("minadv.experiments.commands.attack", "run an attack (see --method) on test images"),
    "certify": ("minadv.testing.certify", "fill a certificate folder for the pytest plugin (minadv.testing)"),
    "vnnlib": ("minadv.experiments.commands.vnnlib", "decide a VNN-LIB robustness property: sat / unsat / timeout"),
    "bench": ("minadv.experiments.commands.bench", "benchmarks: per-image time and quality on the first test images"),
    "reproduce": ("minadv.experiments.commands.reproduce", "Table 1 and Figure 1: exact solver and attacks on N1/N2"),
}


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
    from minadv.verify import InputError, MissingExtraError, NetworkError, VnnlibError, missing_extra

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
        # against a busy second core slow it down many times (docs/performance-log.md);
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
