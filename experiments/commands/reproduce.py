"""`minadv reproduce [table1]`: Table 1 and Figure 1 of Croce & Hein (GCPR 2018) in one resumable
command (`minadv reproduce table2|table3`: the paper's main experiments, `main_experiments`).

For every network, first the exact L2 solver (`mip`: its optimum is every ratio's denominator),
then every attack, one row per (net, image, method) in OUT/results.csv and the points in
OUT/adv_<net>_<method>.npz (rows already there are kept, not recomputed, unless --force);
then OUT/table1.{md,csv,tex} and OUT/figures/, from every method stored for those nets and
images with this run's settings. A partial run (other nets, methods, images or time limit than
the defaults) writes its tables and figures to OUT/partial/ instead, so that it never replaces
those of the full run.

--norm inf: the same for Linf (the exact solver's Linf scheme, Linf attacks named with --methods):
the points in OUT/adv_<net>_<method>_linf.npz, the tables in table1_linf.{md,csv,tex} and the figure
in figures/figure1_all_methods_linf.{png,pdf} (`table1.norm_suffix`), so that an Linf run never
replaces an L2 run's files in the same folder; its full run is mip alone on N1 and N2, images 0:50.
"""

from __future__ import annotations

import time
from pathlib import Path

from minadv.verify import InputError, norm_name, parse_norm

from ..args import format_images, parse_images
from ..figures import figure_paths, write_figures
from ..machine import machine
from ..models import TRAINED_DIR
from ..runner import EXACT_METHODS, add_executor_arguments, method_names, open_executor, options_key, run_many
from ..store import ResultStore, check_writable
from ..table1 import norm_suffix, ratios, table1, table_paths, to_markdown, write_tables
from . import main_experiments

NETS, IMAGES, QUICK_IMAGES, TIME_LIMIT = ("N1", "N2"), "0:50", "0:5", 300.0
# not in the default run: today's attacks of Table 1, extended (`minadv bench modern`), and cw-torch
# (Foolbox's CW, which the paper's Table 1 used, again in torch); --methods names them
EXTENDED = ("fmn", "ddn", "bb", "fab", "fmn-linf", "fab-linf", "pgd-linf")
NOT_BY_DEFAULT = (*EXTENDED, "cw-torch")
# --quick: attack presets that finish in seconds (CW: 5 x 1000 steps instead of the paper's 20 x 10000)
QUICK_OPTIONS = {"cw": {"binary_search_steps": 5, "steps": 1000}}


def add_arguments(p) -> None:
    p.add_argument("table", nargs="?", choices=("table1", "table2", "table3"), default="table1",
                   help="table1 (default): N1 and N2 against the proven optimum; table2: CW and DeepFool against "
                        "rLR-QP on the 1x1024, 5x1024 and 10x1024 networks, plain and -at; table3: iterated rLR-QP "
                        "on 1x1024-at")
    p.add_argument("--nets", nargs="+",
                   help="N1, N2 or model files (default N1 N2); table2: 1x1024 ... 10x1024-at or model files; "
                        "table3: one network (default 1x1024-at)")
    p.add_argument("--models", type=Path, default=TRAINED_DIR,
                   help=f"table2/table3: the folder of `minadv train`'s networks (default ./{TRAINED_DIR})")
    p.add_argument("--norm", choices=["2", "inf"], default="2",
                   help="table1: 2 (default) or inf: the exact Linf optimum and Linf attacks, files named *_linf")
    p.add_argument("--images", type=parse_images, help=f"test images (default {IMAGES}; {QUICK_IMAGES} with --quick)")
    p.add_argument("--methods", nargs="+",
                   help=f"default: mip and Table 1's attacks, not {', '.join(NOT_BY_DEFAULT)} (mip always runs first)")
    p.add_argument("--jobs", type=int, default=1,
                   help="images in parallel (processes, or a local Dask cluster's workers); default 1")
    add_executor_arguments(p)
    p.add_argument("--force", action="store_true", help="recompute rows already in the results file (replaced)")
    p.add_argument("--quick", action="store_true",
                   help=f"images {QUICK_IMAGES} and fast attack presets, written to results/quick/")
    p.add_argument("--tables-only", action="store_true",
                   help="table2/table3: compute nothing, write the tables from the rows already stored "
                        "(table2 needs no model file: it reads the cards kept with the rows)")
    p.add_argument("--device", help="table2/table3: where rLR-QP's working-set solver and cw-torch run (cpu, cuda)")
    p.add_argument("--time-limit", type=float, help=f"seconds per image for the exact solver (default {TIME_LIMIT:g})")
    p.add_argument("--out", type=Path,
                   help="results folder, tables in it, figures in OUT/figures; a partial run's tables and figures "
                        "in OUT/partial/ (default results/, or results/quick/ with --quick)")


def method_norm(method: str) -> str | None:
    """'2', 'inf' or '1': the norm of an attack; None for the exact methods (every norm)."""
    if method in EXACT_METHODS:
        return None
    from minadv.attacks import ATTACKS

    return norm_name(ATTACKS[method].norm)


def default_methods(norm: str = "2") -> list[str]:
    """mip and Table 1's attacks (L2): every method of that norm but NOT_BY_DEFAULT; for Linf, mip."""
    return [m for m in method_names() if m not in NOT_BY_DEFAULT and method_norm(m) in (None, norm)]


def methods_to_run(asked: list[str] | None, norm: str = "2") -> list[str]:
    """The asked methods (default: `default_methods`), exact ones first; an unknown name, or an attack
    of another norm, is an InputError."""
    norm = norm_name(parse_norm(norm))
    known = method_names()
    asked = asked or default_methods(norm)
    unknown = [m for m in asked if m not in known]
    if unknown:
        raise InputError(f"unknown method {', '.join(unknown)}; known: {', '.join(known)}")
    other = [m for m in asked if method_norm(m) not in (None, norm)]
    if other:
        fits = [m for m in known if method_norm(m) in (None, norm)]
        raise InputError(f"{', '.join(other)}: not L{norm} attacks (--norm {norm}); L{norm} methods: {', '.join(fits)}")
    return sorted(dict.fromkeys(asked), key=lambda m: m not in EXACT_METHODS)


def net_label(net: str) -> str:
    """N1 -> N1, models/my_net.pt -> my_net (the label in results and file names)."""
    return Path(net).stem


def method_options(method: str, args) -> dict:
    """The options of `method` in this run: the time limit (exact), the --quick presets."""
    options = {"time_limit": args.time_limit} if method in EXACT_METHODS else {}
    return options | (QUICK_OPTIONS.get(method, {}) if args.quick else {})


def run(args) -> int:
    if args.table != "table1":
        return main_experiments.run(args)
    if args.device is not None or args.tables_only:
        raise InputError("--device and --tables-only are for table2 and table3")
    args.nets = args.nets or list(NETS)
    args.time_limit = TIME_LIMIT if args.time_limit is None else args.time_limit
    out = args.out or Path("results/quick" if args.quick else "results")
    default_images = parse_images(QUICK_IMAGES if args.quick else IMAGES)
    images = list(dict.fromkeys(args.images or default_images))
    norm, suffix = args.norm, norm_suffix(args.norm)
    methods = methods_to_run(args.methods, norm)
    partial = (sorted(args.nets) != sorted(NETS) or set(methods) != set(default_methods(norm))
               or images != default_images or args.time_limit != TIME_LIMIT)
    tables = out / "partial" if partial else out
    start = time.perf_counter()
    with ResultStore(out / "results.csv"):  # one run at a time on OUT, held to the end
        check_writable(*table_paths(tables, norm), *figure_paths(tables / "figures", norm))
        with open_executor(args.executor, args.jobs, args.address) as executor:  # one cluster for the whole run
            for method in methods:
                for net in args.nets:
                    label = net_label(net)
                    with ResultStore(out / "results.csv", out / f"adv_{label}_{method}{suffix}.npz") as store:
                        run_many(net, images, method, norm, store, method_options(method, args), force=args.force,
                                 net_label=label, executor=executor)
        wall = time.perf_counter() - start
        with ResultStore(out / "results.csv") as store:
            frame = store.frame
        labels = [net_label(n) for n in args.nets]
        settings = {m: options_key(m, method_options(m, args)) for m in method_names()}
        frame = frame[frame.net.isin(labels) & frame.image.isin(images) & (frame.norm == norm)
                      & (frame.options == frame.method.map(settings))]
        table = table1(frame)
        note = (f"ratio = ||delta_method||_{norm} / ||delta_MIP||_{norm} on the images with a proven optimum where "
                f"the method found a point; matched: ratio <= 1 + 1e-4. {len(images)} test images "
                f"({format_images(images)}); sum of per-image times {frame.time_s.sum():.0f} s; machine: {machine()}.")
        paths = (write_tables(table, tables, note, norm)
                 + write_figures(ratios(frame), labels, tables / "figures", norm))
    print(f"\n{to_markdown(table, note)}\nthis run: {wall:.0f} s wall time; wrote {', '.join(map(str, paths))}")
    return 0
