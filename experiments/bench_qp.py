"""Benchmark of the region QP solvers on problem (3): the batched dual Newton method
(`verify.fastqp`) against DAQP and Clarabel one problem at a time.

    minadv bench qp [--nets N1 N2] [--images 0:5] [--points 40] [--radius 1.0] [--reference 30]

Regions: the distinct activation patterns of `points` random points x + eps around each
image (eps uniform in B(0, radius), as rLR-QP samples), every target t != c, no threshold
(no pruning). Prints ms per QP, Newton steps, DAQP fallbacks and the largest value gap to
DAQP on the first `reference` problems of each image. One torch thread.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from minadv.attacks.rlrqp import ball
from minadv.verify import patterns, solve_clarabel
from minadv.verify.fastqp import OPTIMAL, RegionQPs, solve_batch
from minadv.verify.qp import solve_daqp

from .cli import parse_images
from .data import mnist
from .models import load


def add_arguments(p) -> None:
    p.add_argument("--nets", nargs="+", default=["N1", "N2"])
    p.add_argument("--images", type=parse_images, default=parse_images("0:5"))
    p.add_argument("--points", type=int, default=40)
    p.add_argument("--radius", type=float, default=1.0)
    p.add_argument("--reference", type=int, default=30, help="problems per image also solved by DAQP / Clarabel")


def run(args) -> int:
    test = mnist("test")
    rng = np.random.default_rng(0)
    print(f"{'net':>4} {'image':>5} {'QPs':>5} {'fast ms/QP':>10} {'steps med/max':>13} {'fallbacks':>9} "
          f"{'DAQP ms/QP':>10} {'Clarabel ms/QP':>14} {'max |fast - DAQP|':>17}")
    for name in args.nets:
        net = load(name)
        for i in args.images:
            x = test.x(i)
            c = net.predict(x)
            active = patterns(net, x + ball(rng, args.points, x.size, args.radius))
            active = torch.unique(active, dim=0)
            qps = RegionQPs(net, x, c)
            P, _, _ = qps.batch(active, [t for t in range(net.n_outputs) if t != c])
            start = time.perf_counter()
            sol = solve_batch(P)
            fast = (time.perf_counter() - start) / len(P)
            ref = range(min(args.reference, len(P)))
            times, gaps = {}, []
            for solver in (solve_daqp, solve_clarabel):
                start = time.perf_counter()
                out = [solver(P.dense(k)) for k in ref]
                times[solver] = (time.perf_counter() - start) / len(ref)
                if solver is solve_daqp:
                    gaps = [abs(o.norm - sol.value[k]) for k, o in zip(ref, out) if o.status == OPTIMAL]
            steps = f"{np.median(sol.iterations):.0f}/{sol.iterations.max()}"
            print(f"{name:>4} {i:>5} {len(P):>5} {1e3 * fast:>10.2f} {steps:>13} {sol.fallbacks:>9} "
                  f"{1e3 * times[solve_daqp]:>10.2f} {1e3 * times[solve_clarabel]:>14.2f} {max(gaps, default=0):>17.1e}")
    return 0
