"""The VNN-COMP 2021 MNIST benchmark (mnistfc): every instance within its own time-out.

    minadv bench vnncomp [--benchmark DIR] [--nets 256x2 ...] [--props prop_4_0.05 ...] [--out results/vnncomp.csv]
                         [--cap SECONDS] [--dstar] [--method splits|milp]

DIR (default: ../shared/benchmarks/vnncomp2021-mnistfc beside the project, or $MINADV_VNNCOMP)
holds the ONNX networks, the .vnnlib properties and mnistfc_instances.csv (network, property,
time-out); its files are read in place, never copied. One CSV row per instance, written as it
finishes (resumable): answer (sat / unsat / timeout), time, what decided it, the time limit it
ran with, for a timeout the targets searched and still open and those never reached; a `sat`
answer's counterexample goes to OUT_counterexamples/ (VNN-COMP format).
--cap runs each instance with min(time-out, cap): a quick first pass over all instances; a
later run with a larger cap (or none) re-runs only the instances that timed out under a
smaller limit (or with the other --method), from scratch, and replaces their rows, so every
answer comes from one run within the instance's time-out; the `method` column says which
search ran after the bounds. With --dstar, after the decisions, the minimal Linf distance
d* of each property's centre image (`minimal_perturbation`, norm inf, within the instance's
time-out and the cap; first incumbent: the closest of PGD with eps bisected and the image's
counterexamples), once per network and image (the eps = 0.03 and 0.05 properties share it),
with its bounds: sat iff d* <= eps, a cross-check of the answers.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from minadv.verify import (
    BoxMethod,
    InputError,
    ReluNetwork,
    Status,
    load_network,
    minimal_perturbation,
    read_counterexample,
    read_vnnlib,
    write_counterexample,
)

from ..machine import machine
from ..tables import markdown
from ..vnncomp import Answer, decide, linf_attack

COLUMNS = ["network", "property", "eps", "timeout_s", "limit_s", "method", "answer", "time_s", "stage", "unstable",
           "searches", "nodes", "open_targets", "unreached_targets",
           "dstar_status", "dstar", "dstar_lower", "dstar_upper", "dstar_time_s"]

TARGET_LISTS = {"open_targets": str, "unreached_targets": str}  # "3 7": read as text, not as a number


def default_dir() -> Path:
    env = os.environ.get("MINADV_VNNCOMP")
    return Path(env) if env else Path.cwd().parent / "shared" / "benchmarks" / "vnncomp2021-mnistfc"


def add_arguments(p) -> None:
    p.add_argument("--benchmark", type=Path, default=None,
                   help="benchmark folder (default: ../shared/benchmarks/vnncomp2021-mnistfc)")
    p.add_argument("--nets", nargs="+", default=["256x2", "256x4", "256x6"],
                   help="which networks (substring of the file name)")
    p.add_argument("--props", nargs="+", default=None, help="only these properties (substring of the file name)")
    p.add_argument("--out", type=Path, default=Path("results/vnncomp.csv"))
    p.add_argument("--cap", type=float, default=None, help="run each instance with min(time-out, cap) seconds")
    p.add_argument("--dstar", action="store_true", help="also compute the minimal Linf distance of each centre image")
    p.add_argument("--method", choices=[m.value for m in BoxMethod], default=BoxMethod.SPLITS.value,
                   help="search after the bounds (verify.decide): ReLU-split branch and bound (default) "
                        "or one MILP per target")


def instances(folder: Path) -> list[tuple[str, str, float]]:
    listing = folder / "mnistfc_instances.csv"
    if not listing.exists():
        raise InputError(f"no mnistfc_instances.csv in {folder}; give the benchmark folder with --benchmark")
    with open(listing) as fh:
        return [(r[0].strip(), r[1].strip(), float(r[2])) for r in csv.reader(fh) if r]


def summary(frame: pd.DataFrame) -> str:
    rows = []
    for net, g in list(frame.groupby("network")) + [("all", frame)]:
        dec = g.answer != Answer.TIMEOUT
        rows.append({"network": net, "instances": len(g), "decided": dec.sum(), "sat": (g.answer == Answer.SAT).sum(),
                     "unsat": (g.answer == Answer.UNSAT).sum(), "timeout": (~dec).sum(),
                     "median time (s)": f"{g.time_s.median():.1f}"})
    return markdown(pd.DataFrame(rows))


def _needs_decision(row, limit: float, method: str) -> bool:
    """No row yet, or a timeout under a smaller limit or with the other search method."""
    return row is None or (row.answer == Answer.TIMEOUT and (row.limit_s < limit - 1e-9 or row.method != method))


def _needs_dstar(row, limit: float) -> bool:
    return not isinstance(row.dstar_status, str) or (row.dstar_status == Status.TIME_LIMIT
                                                       and row.dstar_time_s < 0.99 * limit)


def cex_path(out: Path, net_file: str, prop_file: str) -> Path:
    """Where the benchmark keeps a `sat` instance's counterexample (VNN-COMP format)."""
    return out.parent / f"{out.stem}_counterexamples" / f"{Path(net_file).stem}__{Path(prop_file).stem}.txt"


def _write(out: Path, old: pd.DataFrame, row: dict) -> pd.DataFrame:
    """old with `row` replacing the instance's previous row, written atomically (a killed run
    leaves the previous file)."""
    same = (old.network == row["network"]) & (old.property == row["property"])
    line = pd.DataFrame([{k: row.get(k, np.nan) for k in COLUMNS}])
    if same.any():  # in place, so the file keeps the instance list's order
        i = int(np.flatnonzero(same)[0])
        new = pd.concat([old.iloc[:i], line, old.iloc[i + 1 :]], ignore_index=True)
    else:
        new = pd.concat([old, line], ignore_index=True)
    tmp = out.with_suffix(".tmp")
    new.to_csv(tmp, index=False)
    tmp.replace(out)
    return new


def _listed(targets, answer: Answer) -> str:
    """'3 7'; for a timeout with none, 'none' (an empty cell marks rows written before the
    column existed)."""
    return " ".join(map(str, targets)) or ("none" if answer == Answer.TIMEOUT else "")


INSTANCE_COLUMNS = ["network", "property", "answer", "time (s)", "limit (s)", "search", "decided by / open targets",
                    "d* (Linf)"]


def instance_table(frame: pd.DataFrame) -> str:
    """One line per instance (grouped by network, in the order they were run): answer, time, the
    time limit and search method it ran with, what decided it (for a timeout: the targets
    searched and left open and those not reached, '?' in rows written before they were
    recorded), and d* (or its bounds) where computed."""
    rows = []
    for r in frame.sort_values("network", kind="stable").itertuples():
        if r.dstar_status == Status.OPTIMAL:
            dstar = f"{r.dstar:.5f}"
        elif isinstance(r.dstar_status, str):
            dstar = f"[{r.dstar_lower:.4f}, {r.dstar_upper:.4f}] ({r.dstar_status})"
        else:
            dstar = "-"
        stage = r.stage if isinstance(r.stage, str) else ""
        if r.answer == Answer.TIMEOUT and not isinstance(r.open_targets, str):
            stage = "open: ?"
        elif r.answer == Answer.TIMEOUT:
            stage = f"open: {r.open_targets}"
            if isinstance(r.unreached_targets, str):
                stage += f"; not reached: {r.unreached_targets}"
        rows.append({"network": r.network.removesuffix(".onnx"), "property": r.property.removesuffix(".vnnlib"),
                     "answer": r.answer, "time (s)": f"{r.time_s:.1f}", "limit (s)": f"{r.limit_s:g}",
                     "search": r.method, "decided by / open targets": stage, "d* (Linf)": dstar})
    return markdown(pd.DataFrame(rows, columns=INSTANCE_COLUMNS))


def run(args) -> int:
    folder = args.benchmark or default_dir()
    todo = [i for i in instances(folder) if any(n in i[0] for n in args.nets)
            and (args.props is None or any(q in i[1] for q in args.props))]
    old = pd.read_csv(args.out, dtype=TARGET_LISTS) if args.out.exists() else pd.DataFrame(columns=COLUMNS)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    nets: dict[str, ReluNetwork] = {}
    load = lambda f: nets.setdefault(f, load_network(folder / f))  # noqa: E731
    limit_of = lambda timeout: min(timeout, args.cap or timeout)  # noqa: E731

    def current(net_file, prop_file):
        rows = [r for r in old.itertuples() if (r.network, r.property) == (net_file, prop_file)]
        return rows[0] if rows else None

    decide_now = [i for i in todo if _needs_decision(current(i[0], i[1]), limit_of(i[2]), args.method)]
    for net_file, prop_file, timeout in tqdm(decide_now, desc="mnistfc", unit="inst"):
        net, prop, limit = load(net_file), read_vnnlib(folder / prop_file), limit_of(timeout)
        d = decide(net, prop, limit, method=args.method)
        if d.answer == Answer.SAT:
            path = cex_path(args.out, net_file, prop_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_counterexample(path, d.counterexample, net.forward(d.counterexample))
        old = _write(args.out, old, dict(network=net_file, property=prop_file, eps=prop.eps, timeout_s=timeout,
                                         limit_s=limit, method=args.method, answer=str(d.answer),
                                         time_s=round(d.time_s, 3),
                                         stage=d.stage, unstable=d.unstable, searches=d.searches, nodes=d.nodes,
                                         open_targets=_listed(d.open_targets, d.answer),
                                         unreached_targets=" ".join(map(str, d.unreached_targets))))
    if args.dstar:
        old = _dstars(args, folder, todo, old, load, limit_of, current)
    print(f"\n{summary(old[old.network.str.contains('|'.join(args.nets))])}\n\nmachine: {machine()}")
    # the .md covers every row of the results file, not only this run's networks
    args.out.with_suffix(".md").write_text(f"{summary(old)}\n\n{instance_table(old)}\n\nmachine: {machine()}\n")
    return 0


def _dstars(args, folder, todo, old, load, limit_of, current) -> pd.DataFrame:
    """d* once per (network, centre image), for every instance row of that image: the first
    incumbent is the closest of PGD with eps bisected and the image's saved counterexamples."""
    groups: dict[tuple[str, bytes], list] = {}
    for net_file, prop_file, timeout in todo:
        prop = read_vnnlib(folder / prop_file)
        if prop.center is not None:
            # the benchmark's boxes are float32, so the centres of one image's properties differ by ~1e-7
            groups.setdefault((net_file, np.round(prop.center, 4).tobytes()), []).append((prop_file, timeout, prop))
    work = [(k, g) for k, g in groups.items() if any(_needs_dstar(current(k[0], p), limit_of(t)) for p, t, _ in g)]
    for (net_file, _), group in tqdm(work, desc="d*", unit="image"):
        net, x0, label = load(net_file), group[0][2].center, group[0][2].label
        candidates = [linf_attack(net, x0, label)]
        candidates += [read_counterexample(cex_path(args.out, net_file, p))[0] for p, _, _ in group
                       if cex_path(args.out, net_file, p).exists()]
        candidates = [z for z in candidates if z is not None]
        start = min(candidates, key=lambda z: np.abs(z - x0).max(), default=None)
        limit = min(limit_of(t) for _, t, _ in group)
        r = minimal_perturbation(net, x0, "inf", upper_bound=start, time_limit=limit)
        cols = dict(dstar_status=str(r.status), dstar=r.value, dstar_lower=r.lower, dstar_upper=r.upper,
                    dstar_time_s=round(r.time_s, 3))
        for prop_file, _, _ in group:
            old = _write(args.out, old, {**current(net_file, prop_file)._asdict(), **cols})
    return old
