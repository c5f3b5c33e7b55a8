"""`minadv bench exact|attacks|qp|nodeqp|vnncomp`: the benchmarks (not timed tests); see each module's docstring."""

from __future__ import annotations

import importlib

BENCHMARKS = {"exact": "minadv.experiments.bench_exact", "attacks": "minadv.experiments.bench_attacks",
              "qp": "minadv.experiments.bench_qp", "nodeqp": "minadv.experiments.bench_nodeqp",
              "vnncomp": "minadv.experiments.bench_vnncomp"}


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="bench_name", required=True)
    for name, module in BENCHMARKS.items():
        importlib.import_module(module).add_arguments(sub.add_parser(name))


def run(args) -> int:
    return importlib.import_module(BENCHMARKS[args.bench_name]).run(args)
