"""Benchmark of the exact solver: the first N test images of N1 and N2, one row per image.

    minadv bench exact [--images 0:50] [--nets N1 N2] [--norm 2] [--time-limit 300] [--out results/bench_exact.csv]

Resumable (rows are appended as images finish); prints per-image status, time, unstable
ReLUs, nodes and the median/max per network, and writes the same as Markdown beside the CSV.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .cli import parse_images
from .machine import machine
from .runner import run_many
from .store import ResultStore


def add_arguments(p) -> None:
    p.add_argument("--nets", nargs="+", default=["N1", "N2"])
    p.add_argument("--images", type=parse_images, default=parse_images("0:50"))
    p.add_argument("--norm", default="2")
    p.add_argument("--method", default="auto", choices=["auto", "bnb", "mip"])
    p.add_argument("--time-limit", type=float, default=300.0)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("results/bench_exact.csv"))


def summary(frame: pd.DataFrame) -> str:
    """Markdown: per network, images proven / total, median and max time, median unstable and nodes."""
    lines = ["| net | norm | images | proven optimal | median time (s) | max time (s) | median unstable "
             "| median nodes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (net, norm), g in frame.groupby(["net", "norm"], sort=True):
        lines.append(
            f"| {net} | L{norm} | {len(g)} | {(g.status == 'optimal').sum()} | {g.time_s.median():.2f} | "
            f"{g.time_s.max():.2f} | {g.unstable.median():.0f} | {g.nodes.median():.0f} |")
    return "\n".join(lines)


def run(args) -> int:
    store = ResultStore(args.out)
    options = {"time_limit": args.time_limit, "method": args.method}
    for net in args.nets:
        run_many(net, args.images, "mip", args.norm, store, options, jobs=args.jobs)
    frame = store.frame[store.frame.image.isin(args.images) & store.frame.net.isin(args.nets)]
    cols = ["net", "image", "status", "value", "lower", "time_s", "unstable", "nodes", "milp_solves"]
    print(frame[cols].to_string(index=False))
    table = summary(frame)
    print(f"\n{table}\n\nmachine: {machine()}")
    args.out.with_suffix(".md").write_text(table + "\n")
    return 0
