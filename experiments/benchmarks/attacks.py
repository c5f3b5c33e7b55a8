"""Benchmark of the attacks: per-image time and L2 norm of each method on the first test images
of N1 and N2, and the ratio to the proven optimum where an exact results CSV is given.

    minadv bench attacks [--images 0:50] [--nets N1 N2] [--net PATH ...] [--methods rlrqp deepfool lbfgs cw]
                         [--option KEY=VALUE ...] [--device cpu]
                         [--exact results/bench_exact_v1.csv] [--out results/bench_attacks.csv]

--net PATH: any network file (rows labelled with the file's stem, e.g. 1x1024); --option and
--device go to rLR-QP (e.g. --option targets=warm for deep networks, --device cuda).

Resumable (rows are appended as images finish; CW and DeepFool write a batch of 50). One
torch thread. Prints one line per image and method, then per network and method: images
found, median / max time per image, median norm, ratio to the optimum (median, max, images
within the exact solver's relative gap 1e-4) and for rLR-QP the median regions checked, QPs
solved and QPs pruned; the table is also written as Markdown beside the CSV.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from minadv import attacks  # the registry is read when used (a test may replace minadv.attacks.ATTACKS)

from ..args import parse_images
from ..machine import machine
from ..runner import run_many
from ..store import ResultStore
from ..tables import markdown

REACHED = 1 + 1e-4  # the exact solver stops at (upper - lower) <= 1e-4 * upper


def add_arguments(p) -> None:
    p.add_argument("--nets", nargs="+", default=["N1", "N2"])
    p.add_argument("--net", action="append", default=[], metavar="PATH",
                   help="a network file (.pt state_dict or .onnx), repeatable; with it --nets defaults to none")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of rLR-QP, e.g. targets=warm or solver=workingset (repeatable)")
    p.add_argument("--device", help="device of rLR-QP's working-set region solver (cpu, cuda)")
    p.add_argument("--images", type=parse_images, default=parse_images("0:50"))
    p.add_argument("--methods", nargs="+", choices=sorted(attacks.ATTACKS),
                   default=["rlrqp", "deepfool", "lbfgs", "cw"])
    p.add_argument("--exact", type=Path, default=Path("results/bench_exact_v1.csv"),
                   help="results of `minadv bench exact` for the ratios (skipped if missing)")
    p.add_argument("--out", type=Path, default=Path("results/bench_attacks.csv"))


def with_ratios(frame: pd.DataFrame, exact: Path) -> pd.DataFrame:
    """frame plus `optimum` and `ratio` = value / optimum for images the exact solver proved."""
    if not exact.exists():
        return frame.assign(optimum=float("nan"), ratio=float("nan"))
    proven = pd.read_csv(exact)
    proven = proven[(proven.status == "optimal") & (proven.norm.astype(str) == "2")]
    proven = proven.assign(net=proven.net.astype(str))[["net", "image", "value"]].rename(columns={"value": "optimum"})
    out = frame.merge(proven, on=["net", "image"], how="left")
    return out.assign(ratio=out.value / out.optimum)


def summary(frame: pd.DataFrame) -> str:
    rows = []
    for (net, method), g in frame.groupby(["net", "method"], sort=True):
        found = g[g.status == "found"]
        r = found.ratio.dropna()
        rows.append({
            "net": net, "method": method, "images": len(g), "found": len(found),
            "median time (s)": f"{g.time_s.median():.3f}", "max time (s)": f"{g.time_s.max():.3f}",
            "median L2": f"{found.value.median():.4f}",
            "ratio to optimum: median / max / reached":
                f"{r.median():.4f} / {r.max():.4f} / {(r <= REACHED).sum()} of {len(r)}" if len(r) else "-",
            "median regions / QPs / pruned":
                (f"{found.regions.median():.0f} / {found.qp_solves.median():.0f} / {found.pruned.median():.0f}"
                 if method == "rlrqp" else "-"),
        })
    return markdown(pd.DataFrame(rows))


def run(args) -> int:
    from ..commands.attack import parse_options
    from .qp import networks

    pairs = [*args.option, *([f"device={args.device}"] if args.device else [])]
    options = {m: parse_options(m, pairs, None) if m == "rlrqp" else {} for m in args.methods}
    store = ResultStore(args.out)
    labels = []
    for net in networks(args):
        labels.append(Path(net).stem if net in args.net else net)
        for method in args.methods:
            run_many(net, args.images, method, "2", store, options[method], net_label=labels[-1])
    frame = store.frame[store.frame.image.isin(args.images) & store.frame.net.isin(labels)
                        & store.frame.method.isin(args.methods)]
    frame = with_ratios(frame, args.exact)
    cols = ["net", "method", "image", "status", "value", "ratio", "time_s", "regions", "qp_solves", "pruned"]
    print(frame[cols].to_string(index=False))
    missed = frame[(frame.method == "rlrqp") & (frame.ratio > REACHED)]
    table = summary(frame)
    print(f"\n{table}\n\nrLR-QP above the optimum on: "
          + (", ".join(f"{r.net} #{r.image} ({r.ratio:.4f}x)" for r in missed.itertuples()) or "none")
          + f"\nmachine: {machine()}, 1 torch thread")
    args.out.with_suffix(".md").write_text(table + "\n")
    return 0
