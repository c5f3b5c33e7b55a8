"""`minadv bench modern`: "Table 1, extended", the minimum-norm attacks of today (FMN, DDN,
Brendel-Bethge, FAB) beside those of Table 1 (rLR-QP, DeepFool, L-BFGS, CW), all against the proven
L2 optimum; and its Linf twin, FMN-Linf, FAB-Linf and PGD-Linf with bisection against the proven Linf
optimum.

It runs nothing: it reads the results files of `minadv reproduce` (by default results/results.csv,
Table 1's run, and results/modern/results.csv, the run of
`minadv reproduce --methods mip fmn ddn bb fab --out results/modern`), keeps each method's rows with
its default options for the nets and images asked (one `mip` row per image: the first file's), and
writes results/table1_modern.{md,csv,tex} (table1's columns and formats), the sorted ratio curves of
every attack (results/figures/table1_modern_ratios.{png,pdf}) and mean ratio against mean time per
image (results/figures/table1_modern_time.{png,pdf}). A row below a proven optimum is an error
(table1.BelowOptimumError). The Linf rows (by default from results/linf/results.csv, the run of
`minadv reproduce --norm inf --methods mip fmn-linf fab-linf pgd-linf --out results/linf`) give
results/table1_modern_linf.* and figures/table1_modern_linf_{ratios,time}.*; a norm without rows in
the files gives no table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..args import format_images, parse_images
from ..figures import quality_time_figure, sorted_ratio_figure
from ..machine import machine
from ..store import ResultStore
from ..table1 import norm_suffix, ratios, table1, to_latex, to_markdown

NAME = "table1_modern"


def add_arguments(p) -> None:
    p.add_argument("--results", nargs="+", type=Path,
                   default=[Path("results/results.csv"), Path("results/modern/results.csv"),
                            Path("results/linf/results.csv")],
                   help="results files of `minadv reproduce` (default: Table 1's, results/modern's, results/linf's)")
    p.add_argument("--norms", nargs="+", choices=["2", "inf"], default=["2", "inf"],
                   help="a table per norm (default 2 and inf): table1_modern, table1_modern_linf")
    p.add_argument("--nets", nargs="+", default=["N1", "N2"])
    p.add_argument("--images", type=parse_images, default=parse_images("0:50"))
    p.add_argument("--out", type=Path, default=Path("results"),
                   help=f"folder of {NAME}.{{md,csv,tex}} ({NAME}_linf.* for Linf); figures in OUT/figures")


def gather(paths: list[Path], nets: list[str], images: list[int], norm: str = "2") -> pd.DataFrame:
    """The rows of `norm` with default options of `nets` x `images` from every file, each (net,
    image, method) once (the first file that has it)."""
    frames = []
    for path in paths:
        with ResultStore(path) as store:
            frames.append(store.frame)
    frame = pd.concat(frames, ignore_index=True)
    frame = frame[frame.net.isin(nets) & frame.image.isin(images) & (frame.norm == norm) & (frame.options == "")]
    return frame.drop_duplicates(["net", "image", "method"], keep="first")


def run(args) -> int:
    images = list(dict.fromkeys(args.images))
    for norm in dict.fromkeys(args.norms):
        frame = gather(args.results, args.nets, images, norm)
        if frame.empty:
            files = ", ".join(map(str, args.results))
            print(f"no L{norm} rows for {', '.join(args.nets)} in {files}: no L{norm} table")
            continue
        write(frame, args, images, norm)
    return 0


def write(frame: pd.DataFrame, args, images: list[int], norm: str) -> None:
    """The table and figures of one norm's rows."""
    name = NAME + norm_suffix(norm)
    table = table1(frame)
    note = (f"Table 1, extended: ratio = ||delta_method||_{norm} / ||delta_MIP||_{norm} on the images with a "
            f"proven optimum where the method found a point; matched: ratio <= 1 + 1e-4; time: mean seconds per "
            f"image (batched attacks: batch wall time / images). {len(images)} test images "
            f"({format_images(images)}); from {', '.join(map(str, args.results))}; tables written on {machine()}.")
    args.out.mkdir(parents=True, exist_ok=True)
    paths = [args.out / f"{name}.{ext}" for ext in ("md", "csv", "tex")]
    paths[0].write_text(to_markdown(table, note))
    table.to_csv(paths[1], index=False)
    paths[2].write_text(to_latex(table, norm))
    paths += sorted_ratio_figure(ratios(frame), args.nets, args.out / "figures", f"{name}_ratios", norm)
    paths += quality_time_figure(table, args.out / "figures", f"{name}_time", norm)
    print(f"{to_markdown(table, note)}\nwrote {', '.join(map(str, paths))}")
