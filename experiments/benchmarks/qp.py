"""Benchmark of the region QP solvers on problem (3): the batched dual Newton method on every
region row (`verify.qp.batched`, "dense") and constraint generation with matrix-free rows
(`verify.qp.workingset`), against DAQP and Clarabel one problem at a time.

    minadv bench qp [--nets N1 N2] [--net PATH ...] [--images 0:5] [--points 40] [--radius 1.0]
                    [--solvers dense workingset] [--reference 30] [--device cpu]

Regions: the distinct activation patterns of `points` random points x + eps around each
image (eps uniform in B(0, radius), as rLR-QP samples), or with --points 0 the region of x
alone; every target t != c, no threshold (no pruning). Prints per solver the seconds per
region (all targets together) and the largest value gap between the solvers (inf when they
disagree on which problems are optimal), and ms per QP of
DAQP / Clarabel with their largest gap on the first `reference` problems of each image (0: skip
them; on 784-1024-10 they take seconds per QP). One torch thread.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from minadv.attacks import ball, check_device
from minadv.verify import patterns, solve_clarabel
from minadv.verify.qp import OPTIMAL, RegionQPs, WorkingSetQPs, dense_qp, solve_batch, solve_daqp

from ..args import parse_images
from ..data import mnist
from ..models import load

SOLVERS = ("dense", "workingset")


def add_arguments(p) -> None:
    p.add_argument("--nets", nargs="+", default=["N1", "N2"])
    p.add_argument("--net", action="append", default=[], metavar="PATH",
                   help="a network file (.pt state_dict or .onnx), repeatable; with it --nets defaults to none")
    p.add_argument("--images", type=parse_images, default=parse_images("0:5"))
    p.add_argument("--points", type=int, default=40, help="random points per image (0: the region of x only)")
    p.add_argument("--radius", type=float, default=1.0)
    p.add_argument("--solvers", nargs="+", choices=SOLVERS, default=list(SOLVERS))
    p.add_argument("--reference", type=int, default=30, help="problems per image also solved by DAQP / Clarabel")
    p.add_argument("--device", default="cpu", help="device of the working-set solver's network passes (cpu, cuda)")


def networks(args) -> list[str]:
    """--net paths, plus --nets (default N1 N2 only when no --net is given)."""
    return [*args.net, *([] if args.net and args.nets == ["N1", "N2"] else args.nets)]


def _dense(net, x, c, active, targets, device):
    P, _, _ = RegionQPs(net, x, c).batch(active, targets)
    sol = solve_batch(P)
    return sol.value, sol.status, sol.fallbacks


def _workingset(net, x, c, active, targets, device):
    qps = WorkingSetQPs(net, x, c, device=device)
    sols = [qps.solve(a, targets).solution for a in active]
    return (np.concatenate([s.value for s in sols]), np.concatenate([s.status for s in sols]),
            sum(s.fallbacks for s in sols))


def _gap(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| over the problems both solved to optimality; inf if they disagree on which."""
    both = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(both, np.isfinite(a) | np.isfinite(b)):
        return np.inf
    return float(np.abs(a[both] - b[both]).max(initial=0.0))


def run(args) -> int:
    try:
        check_device(args.device)
    except ValueError as err:
        from minadv.verify import InputError

        raise InputError(str(err)) from None
    test = mnist("test")
    rng = np.random.default_rng(0)
    solve = {"dense": _dense, "workingset": _workingset}
    print(f"{'net':>8} {'image':>5} {'regions':>7} {'QPs':>5} "
          + " ".join(f"{s + ' s/region':>20} {'fallbacks':>9}" for s in args.solvers)
          + f" {'max |gap|':>9} {'DAQP ms/QP':>10} {'Clarabel ms/QP':>14} {'max |ref gap|':>13}")
    for spec in networks(args):
        net, label = load(spec), Path(spec).stem
        for i in args.images:
            x = test.x(i)
            c = net.predict(x)
            Y = x[None] if args.points == 0 else x + ball(rng, args.points, x.size, args.radius)
            active = torch.unique(patterns(net, Y), dim=0)
            targets = net.other_classes(c)
            values, cells = [], []
            for name in args.solvers:
                start = time.perf_counter()
                value, status, fallbacks = solve[name](net, x, c, active, targets, args.device)
                seconds = (time.perf_counter() - start) / len(active)
                values.append(np.where(status == OPTIMAL, value, np.inf))
                cells.append(f"{seconds:>20.3f} {fallbacks:>9}")
            gap = max((_gap(v, values[0]) for v in values[1:]), default=0.0)
            ref = range(min(args.reference, len(values[0])))
            times, ref_gap = {solve_daqp: np.nan, solve_clarabel: np.nan}, 0.0
            for solver in times if len(ref) else ():
                start = time.perf_counter()
                out = [solver(dense_qp(net, x, c, active[k // len(targets)], targets[k % len(targets)])) for k in ref]
                times[solver] = (time.perf_counter() - start) / len(ref)
                gaps = (abs(o.norm - values[0][k]) for k, o in zip(ref, out, strict=True) if o.status == OPTIMAL)
                ref_gap = max([ref_gap, *gaps])
            print(f"{label:>8} {i:>5} {len(active):>7} {len(active) * len(targets):>5} {' '.join(cells)} "
                  f"{gap:>9.1e} {1e3 * times[solve_daqp]:>10.1f} {1e3 * times[solve_clarabel]:>14.1f} {ref_gap:>13.1e}")
    return 0
