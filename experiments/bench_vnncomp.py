"""The VNN-COMP 2021 MNIST benchmark (mnistfc): every instance within its own time-out.

    minadv bench vnncomp [--benchmark DIR] [--nets 256x2 ...] [--out results/vnncomp.csv] [--dstar]

DIR (default: ../shared/benchmarks/vnncomp2021-mnistfc beside the project, or $MINADV_VNNCOMP)
holds the ONNX networks, the .vnnlib properties and mnistfc_instances.csv (network, property,
time-out); its files are read in place, never copied. One CSV row per instance, appended as it
finishes (resumable): answer (sat / unsat / timeout), time, what decided it; with --dstar, the
minimal Linf distance d* of the property's centre image (`minimal_perturbation`, norm inf) in a
separate budget of the same time-out, with its bounds: sat iff d* <= eps, a cross-check.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd
from minadv.verify import InputError, ReluNetwork, minimal_perturbation, read_vnnlib
from tqdm import tqdm

from .machine import machine
from .vnncomp import decide

COLUMNS = ["network", "property", "eps", "timeout_s", "answer", "time_s", "stage", "unstable", "milp_solves",
           "dstar_status", "dstar", "dstar_lower", "dstar_upper", "dstar_time_s"]


def default_dir() -> Path:
    env = os.environ.get("MINADV_VNNCOMP")
    return Path(env) if env else Path.cwd().parent / "shared" / "benchmarks" / "vnncomp2021-mnistfc"


def add_arguments(p) -> None:
    p.add_argument("--benchmark", type=Path, default=None, help="benchmark folder (default: ../shared/benchmarks/vnncomp2021-mnistfc)")
    p.add_argument("--nets", nargs="+", default=["256x2", "256x4", "256x6"], help="which networks (substring of the file name)")
    p.add_argument("--out", type=Path, default=Path("results/vnncomp.csv"))
    p.add_argument("--dstar", action="store_true", help="also compute the minimal Linf distance of each centre image")


def instances(folder: Path) -> list[tuple[str, str, float]]:
    listing = folder / "mnistfc_instances.csv"
    if not listing.exists():
        raise InputError(f"no mnistfc_instances.csv in {folder}; give the benchmark folder with --benchmark")
    with open(listing) as fh:
        return [(r[0].strip(), r[1].strip(), float(r[2])) for r in csv.reader(fh) if r]


def summary(frame: pd.DataFrame) -> str:
    lines = ["| network | instances | decided | sat | unsat | timeout | median time (s) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for net, g in list(frame.groupby("network")) + [("all", frame)]:
        dec = g.answer != "timeout"
        lines.append(f"| {net} | {len(g)} | {dec.sum()} | {(g.answer == 'sat').sum()} | {(g.answer == 'unsat').sum()} | "
                     f"{(~dec).sum()} | {g.time_s.median():.1f} |")
    return "\n".join(lines)


def run(args) -> int:
    folder = args.benchmark or default_dir()
    todo = [i for i in instances(folder) if any(n in i[0] for n in args.nets)]
    done = set()
    if args.out.exists():
        old = pd.read_csv(args.out)
        done = set(zip(old.network, old.property))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    nets: dict[str, ReluNetwork] = {}
    for net_file, prop_file, timeout in tqdm([i for i in todo if (i[0], i[1]) not in done], desc="mnistfc", unit="inst"):
        net = nets.setdefault(net_file, ReluNetwork.load(folder / net_file))
        prop = read_vnnlib(folder / prop_file)
        d = decide(net, prop, timeout)
        row = {"network": net_file, "property": prop_file, "eps": prop.eps, "timeout_s": timeout, "answer": d.answer,
               "time_s": round(d.time_s, 3), "stage": d.stage, "unstable": d.unstable, "milp_solves": d.milp_solves}
        if args.dstar and prop.center is not None:
            r = minimal_perturbation(net, prop.center, "inf", time_limit=timeout)
            row.update(dstar_status=str(r.status), dstar=r.value, dstar_lower=r.lower, dstar_upper=r.upper,
                       dstar_time_s=round(r.time_s, 3))
        frame = pd.DataFrame([{k: row.get(k, "") for k in COLUMNS}])
        frame.to_csv(args.out, mode="a", header=not args.out.exists(), index=False)
    frame = pd.read_csv(args.out)
    frame = frame[frame.network.str.contains("|".join(args.nets))]
    table = summary(frame)
    print(f"\n{table}\n\nmachine: {machine()}")
    args.out.with_suffix(".md").write_text(table + "\n")
    return 0
