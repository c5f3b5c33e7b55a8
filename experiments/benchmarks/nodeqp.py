"""Benchmark of the branch-and-bound's node QP solvers: `qp.reduced.solve_node` (DAQP on the
reduced problem) against `qp.solve_daqp` (DAQP on the whole node problem), paired.

    minadv bench nodeqp qps [--qps node_qps.pkl | --nets N1 N2 --images 2 --per-image 300] [--every 1]
    minadv bench nodeqp bnb [--cases N1:2,31,40 N2:5,19] [--time-limit 600] [--rounds 1]

qps: both solvers on the same node QPs, one after the other (order alternating), one
thread. The QPs are a pickle of `BoxQP`s (e.g. recorded from a BnB run; the row basis C, W_1
is recovered from N1's or N2's first layer, untimed) or the nodes of BnB runs on the given
images (recorded with their basis). Prints median / total ms per QP of each, how
`solve_node` ended (fixed point, cycle, certified infeasible, DAQP fallbacks), and the
largest differences: norm, and how far `solve_node`'s bound lies below DAQP's.

bnb: `minimal_perturbation` (L2) on each image with both node solvers (its `node_solver`
option), alternating, in one process: time, nodes, value, lower bound.
"""

from __future__ import annotations

import pickle
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from minadv.verify.exact import BranchAndBound, minimal_perturbation
from minadv.verify.qp import QPStatus, solve_daqp, solve_node

from ..args import parse_images
from ..data import mnist
from ..models import load


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="what", required=True)
    q = sub.add_parser("qps")
    q.add_argument("--qps", type=Path, default=None, help="pickle of a list of BoxQP")
    q.add_argument("--nets", nargs="+", default=["N1", "N2"])
    q.add_argument("--images", type=parse_images, default=parse_images("2"))
    q.add_argument("--per-image", type=int, default=300, help="node QPs recorded per image")
    q.add_argument("--every", type=int, default=1, help="benchmark every k-th QP only")
    b = sub.add_parser("bnb")
    b.add_argument("--cases", nargs="+", default=["N1:2,31,40", "N2:5,19"], help="NET:images")
    b.add_argument("--time-limit", type=float, default=600.0)
    b.add_argument("--rounds", type=int, default=1, help="repetitions of each pair")


def _with_basis(qps: list) -> list[tuple]:
    """(qp, (C, W_1)) for recorded BoxQPs: C = A_d pinv(W_1) for the network that reproduces A_d."""
    nets = [load(name).weights[0] for name in ("N1", "N2")]
    pinv = [np.linalg.pinv(W) for W in nets]
    out = []
    for qp in qps:
        Ad = qp.A[:, : qp.n_obj]
        fits = [(np.abs((C := Ad @ P) @ W - Ad).max(), C, W)
                for W, P in zip(nets, pinv, strict=True) if W.shape[1] == Ad.shape[1]]
        err, C, W = min(fits, key=lambda f: f[0])
        out.append((qp, (C, W) if err <= 1e-9 * max(1.0, np.abs(Ad).max()) else None))
    return out


def _record(nets, images, per_image) -> list[tuple]:
    """The node QPs (with basis) of BnB runs, the first `per_image` of each image."""
    test = mnist("test")
    out = []
    for name in nets:
        net = load(name)
        for i in images:
            x = test.x(i)
            seen = []

            def record(node, seen=seen):
                seen.append((node.problem.qp, node.problem.basis))
                if len(seen) >= per_image:
                    raise StopIteration

            bb = BranchAndBound(net, x, net.predict(x), on_node=record)
            try:
                bb.run(time_limit=300)
            except StopIteration:
                pass
            out += seen
    return out


def _qps(args) -> int:
    problems = (_with_basis(pickle.load(open(args.qps, "rb"))) if args.qps
                else _record(args.nets, args.images, args.per_image))
    problems = problems[:: args.every]
    t_node, t_daqp, hows = [], [], Counter()
    worst_norm = worst_bound = 0.0
    for k, (qp, basis) in enumerate(problems):
        info = {}
        for which in ((0, 1) if k % 2 else (1, 0)):
            start = time.perf_counter()
            if which == 0:
                sol = solve_node(qp, basis, info=info)
                t_node.append(time.perf_counter() - start)
            else:
                ref = solve_daqp(qp)
                t_daqp.append(time.perf_counter() - start)
        hows[info["how"] + (" -> DAQP" if info["fallback"] else "")] += 1
        if sol.status == ref.status == QPStatus.OPTIMAL:
            scale = max(ref.norm, 1e-3)
            worst_norm = max(worst_norm, abs(sol.norm - ref.norm) / scale)
            worst_bound = max(worst_bound, (ref.lower - sol.lower) / scale)
        elif sol.status != ref.status:
            hows[f"status differs: {sol.status} vs DAQP {ref.status}"] += 1
    t_node, t_daqp = np.array(t_node) * 1e3, np.array(t_daqp) * 1e3
    print(f"{len(problems)} node QPs, ms per QP (paired):")
    print(f"  {'solver':<12} {'median':>8} {'mean':>8} {'p90':>8} {'max':>8} {'total s':>8}")
    for name, t in (("solve_node", t_node), ("solve_daqp", t_daqp)):
        print(f"  {name:<12} {np.median(t):8.2f} {t.mean():8.2f} {np.percentile(t, 90):8.2f} {t.max():8.2f} "
              f"{t.sum() / 1e3:8.2f}")
    print(f"  speed-up: median {np.median(t_daqp) / np.median(t_node):.1f}x, total {t_daqp.sum() / t_node.sum():.1f}x, "
          f"per-QP ratio median {np.median(t_daqp / t_node):.1f}x")
    print("  solve_node ended: " + ", ".join(f"{h}: {c}" for h, c in hows.most_common()))
    print(f"  largest |norm - DAQP's| / max(norm, 1e-3): {worst_norm:.1e}; "
          f"largest (DAQP's bound - ours) / max(norm, 1e-3): {worst_bound:.1e}")
    return 0


def _bnb(args) -> int:
    test = mnist("test")
    print(f"{'net':>4} {'image':>5} {'solver':>8} {'status':>8} {'value':>12} {'lower':>12} {'time s':>8} {'nodes':>6}")
    for case in args.cases:
        name, images = case.split(":")
        net = load(name)
        for i in parse_images(images):
            x = test.x(i)
            rows = {}
            for r in range(args.rounds):
                for solver in (("daqp", "reduced") if r % 2 == 0 else ("reduced", "daqp")):
                    res = minimal_perturbation(net, x, 2, time_limit=args.time_limit, node_solver=solver)
                    rows.setdefault(solver, []).append(res)
                    print(f"{name:>4} {i:>5} {solver:>8} {res.status:>8} {res.value:12.8f} {res.lower:12.8f} "
                          f"{res.time_s:8.2f} {res.counts.nodes:>6}", flush=True)
            a, b = rows["daqp"][0], rows["reduced"][0]
            print(f"{'':>10} value differs by {abs(a.value - b.value):.1e}, "
                  f"time {np.median([r.time_s for r in rows['daqp']]):.2f} s"
                  f" -> {np.median([r.time_s for r in rows['reduced']]):.2f} s")
    return 0


def run(args) -> int:
    torch.set_num_threads(1)
    return _qps(args) if args.what == "qps" else _bnb(args)
