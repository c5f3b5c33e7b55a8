"""`minadv reproduce`: Table 1 and Figure 1 of Croce & Hein (GCPR 2018) in one resumable command.

For every network, first the exact L2 solver (`mip`: its optimum is every ratio's denominator),
then every attack, one row per (net, image, method) in OUT/results.csv and the points in
OUT/adv_<net>_<method>.npz (rows already there are kept, not recomputed, unless --force);
then OUT/table1.{md,csv,tex} and the figures, from every method stored for those nets and images.
"""

from __future__ import annotations

import time
from pathlib import Path

from minadv.verify import InputError

from .cli import format_images, parse_images
from .figures import write_figures
from .machine import machine
from .runner import EXACT_METHODS, method_names, run_many
from .store import ResultStore
from .table1 import ratios, table1, to_markdown, write_tables

IMAGES, QUICK_IMAGES = "0:50", "0:5"
# --quick: attack presets that finish in seconds (CW: 5 x 1000 steps instead of the paper's 20 x 10000)
QUICK_OPTIONS = {"cw": {"binary_search_steps": 5, "steps": 1000}}


def add_arguments(p) -> None:
    p.add_argument("--nets", nargs="+", default=["N1", "N2"], help="N1, N2 or model files (default N1 N2)")
    p.add_argument("--images", type=parse_images, help=f"test images (default {IMAGES}; {QUICK_IMAGES} with --quick)")
    p.add_argument("--methods", nargs="+", help="default: mip and every attack (mip always runs first)")
    p.add_argument("--jobs", type=int, default=1, help="images in parallel (processes); default 1")
    p.add_argument("--force", action="store_true", help="recompute rows already in the results file")
    p.add_argument("--quick", action="store_true",
                   help=f"images {QUICK_IMAGES} and fast attack presets, written to results/quick/ (figures too)")
    p.add_argument("--time-limit", type=float, default=300.0, help="seconds per image for the exact solver")
    p.add_argument("--out", type=Path, help="results folder (default results/, or results/quick/ with --quick)")
    p.add_argument("--figures", type=Path, help="figures folder (default figures/, or OUT/figures/ with --quick)")


def methods_to_run(asked: list[str] | None) -> list[str]:
    """The asked methods (default: all), exact ones first; an unknown name is an InputError."""
    known = method_names()
    asked = asked or known
    unknown = [m for m in asked if m not in known]
    if unknown:
        raise InputError(f"unknown method {', '.join(unknown)}; known: {', '.join(known)}")
    return sorted(dict.fromkeys(asked), key=lambda m: m not in EXACT_METHODS)


def net_label(net: str) -> str:
    """N1 -> N1, models/my_net.pt -> my_net (the label in results and file names)."""
    return Path(net).stem


def run(args) -> int:
    out = args.out or Path("results/quick" if args.quick else "results")
    figures = args.figures or (out / "figures" if args.quick else Path("figures"))
    images = args.images or parse_images(QUICK_IMAGES if args.quick else IMAGES)
    methods = methods_to_run(args.methods)
    start = time.perf_counter()
    for method in methods:
        options = {"time_limit": args.time_limit} if method in EXACT_METHODS else {}
        options.update(QUICK_OPTIONS.get(method, {}) if args.quick else {})
        for net in args.nets:
            label = net_label(net)
            store = ResultStore(out / "results.csv", out / f"adv_{label}_{method}.npz")
            run_many(net, images, method, "2", store, options, jobs=args.jobs, force=args.force, net_label=label)
    wall = time.perf_counter() - start
    frame = ResultStore(out / "results.csv").latest()
    labels = [net_label(n) for n in args.nets]
    frame = frame[frame.net.isin(labels) & frame.image.isin(images) & (frame.norm == "2")]
    table = table1(frame)
    note = (f"ratio = ||delta_method||_2 / ||delta_MIP||_2 on the images with a proven optimum where the method "
            f"found a point; matched: ratio <= 1 + 1e-4. {len(images)} test images ({format_images(images)}); "
            f"sum of per-image times {frame.time_s.sum():.0f} s; machine: {machine()}.")
    paths = write_tables(table, out, note) + write_figures(ratios(frame), labels, figures)
    print(f"\n{to_markdown(table, note)}\nthis run: {wall:.0f} s wall time; wrote {', '.join(map(str, paths))}")
    return 0
