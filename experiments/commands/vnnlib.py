"""`minadv vnnlib NET.onnx PROP.vnnlib --time-limit SECONDS [--counterexample FILE]`.

Decides a VNN-LIB robustness property (see experiments/vnncomp.py): prints what it did and,
alone on its last line, the verdict `sat`, `unsat` or `timeout`. A `sat` verdict comes with a
float64-checked counterexample, written in the VNN-COMP format to --counterexample.
"""

from __future__ import annotations

import sys
from pathlib import Path

from minadv.verify import BoxMethod, load_network, read_vnnlib, write_counterexample

from ..store import check_writable
from ..vnncomp import Answer, decide


def add_arguments(p) -> None:
    p.add_argument("net", type=Path, help="the network: .onnx, a torch.save'd nn.Sequential (.pt), "
                   "or a state_dict (.pt) with its card (.json) beside it")
    p.add_argument("prop", type=Path, help="the property (.vnnlib)")
    p.add_argument("--time-limit", type=float, default=300.0, help="seconds (default 300)")
    p.add_argument("--counterexample", type=Path, help="where to write the counterexample of a sat verdict")
    p.add_argument("--method", choices=[m.value for m in BoxMethod], default=BoxMethod.SPLITS.value,
                   help="search after the bounds: branch and bound over ReLU splits (default) or one MILP per target")


def run(args) -> int:
    from minadv.verify import InputError

    if not args.time_limit > 0:
        raise InputError(f"--time-limit must be positive, got {args.time_limit}")
    if args.counterexample:
        check_writable(args.counterexample, create=False)
    net = load_network(args.net)
    prop = read_vnnlib(args.prop)
    if (prop.n_inputs, prop.n_outputs) != (net.n_inputs, net.n_outputs):
        raise InputError(f"{args.prop} has {prop.n_inputs} inputs and {prop.n_outputs} outputs; "
                         f"{args.net} is {net!r}")
    d = decide(net, prop, args.time_limit, method=args.method)
    left = "".join(f"; {what}: {' '.join(map(str, ts))}" for what, ts in
                   (("open targets", d.open_targets), ("not reached", d.unreached_targets)) if ts)
    print(f"{args.net.name} {args.prop.name}: {d.answer} after {d.time_s:.2f} s"
          f"{' by ' + d.stage if d.stage else ''} ({d.unstable} unstable ReLUs, {d.searches} target searches, "
          f"{d.nodes} nodes{left})")
    code = 0
    if d.answer == Answer.SAT and args.counterexample:
        try:  # the folder was writable before the solve; should that have changed, the verdict still ends stdout
            write_counterexample(args.counterexample, d.counterexample, net.forward(d.counterexample))
            print(f"counterexample written to {args.counterexample}")
        except OSError as err:
            print(f"minadv vnnlib: error: the counterexample could not be written: {err}", file=sys.stderr)
            code = 2
    print(d.answer)
    return code
