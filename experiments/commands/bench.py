"""`minadv bench exact|attacks|qp|nodeqp|vnncomp|modern`: the benchmarks (not timed tests); see each module."""

from __future__ import annotations

import importlib

BENCHMARKS = {"exact": "minadv.experiments.benchmarks.exact", "attacks": "minadv.experiments.benchmarks.attacks",
              "qp": "minadv.experiments.benchmarks.qp", "nodeqp": "minadv.experiments.benchmarks.nodeqp",
              "vnncomp": "minadv.experiments.benchmarks.vnncomp", "modern": "minadv.experiments.benchmarks.modern"}


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="bench_name", required=True)
    for name, module in BENCHMARKS.items():
        importlib.import_module(module).add_arguments(sub.add_parser(name))


def run(args) -> int:
    return importlib.import_module(BENCHMARKS[args.bench_name]).run(args)
