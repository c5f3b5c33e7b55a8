"""`minadv summary`: accuracy of N1/N2 and the linear region Q(x) of a few test images.

Per image: label, decision c, how many ReLUs are active, and problem (3) on Q(x) for
every target (how many targets are reachable inside Q(x), the smallest L2 distance).
"""

from __future__ import annotations

import time

from minadv.verify import QPStatus, region_qp

from ..args import parse_images
from ..data import mnist
from ..models import ARCHITECTURES, accuracy, load


def add_arguments(p) -> None:
    p.add_argument("--nets", nargs="+", default=sorted(ARCHITECTURES), help="N1, N2 or model paths")
    p.add_argument("--images", type=parse_images, default=parse_images("0:5"), help="test images (default 0:5)")


def run(args) -> int:
    test = mnist("test")
    for name in args.nets:
        net = load(name)
        print(f"\n{name} {net}: test accuracy {accuracy(net, test):.4f}")
        print(f"{'image':>5} {'label':>5} {'pred':>4} {'active':>9} {'targets in Q(x)':>15} {'min L2 in Q(x)':>14} "
              f"{'QP time':>8}")
        for i in args.images:
            x = test.x(i)
            c = net.predict(x)
            active = int(sum((g >= 0).sum() for g in net.pre_activations(x)[:-1]))
            start = time.perf_counter()
            sols = region_qp(net, x, c)
            seconds = time.perf_counter() - start
            feasible = [s.norm for s in sols.values() if s.status == QPStatus.OPTIMAL]
            best = f"{min(feasible):.4f}" if feasible else "none"
            print(f"{i:>5} {test.labels[i]:>5} {c:>4} {active:>4}/{sum(net.hidden_sizes):<4} "
                  f"{len(feasible):>15} {best:>14} {seconds:>7.3f}s")
    return 0
