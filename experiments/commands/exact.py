"""`minadv exact`: proven minimal perturbations of test images, one CSV row per image (resumable)."""

from __future__ import annotations

from pathlib import Path

from minadv.verify import Method, Tightening

from ..args import parse_images
from ..runner import WarmStart, add_executor_arguments, add_finish_arguments, open_executor, run_many
from ..store import ResultStore


def add_common(p, default_out: str) -> None:
    """Options shared by `minadv exact` and `minadv attack`."""
    p.add_argument("--net", default="N1", help="N1, N2 or a path to a model file: .onnx, a torch.save'd "
                   "nn.Sequential (.pt), or a state_dict (.pt) with its card (.json) beside it")
    p.add_argument("--onnx", type=Path, help="an ONNX network (same as --net PATH)")
    p.add_argument("--images", type=parse_images, default=parse_images("0:50"), help="test images, e.g. 0:50 or 3,7")
    p.add_argument("--out", type=Path, default=Path(default_out),
                   help="results CSV (one row per image; finished rows are kept)")
    p.add_argument("--save-adv", type=Path, help=".npz with arrays image, x, x_adv, pred")
    p.add_argument("--jobs", type=int, default=1,
                   help="images in parallel (processes, or a local Dask cluster's workers); default 1")
    add_executor_arguments(p)
    p.add_argument("--force", action="store_true",
                   help="recompute images already in the results file (their rows are replaced)")


def add_arguments(p) -> None:
    add_common(p, "results_exact.csv")
    p.add_argument("--norm", default="2", help="2, inf or 1 (default 2)")
    p.add_argument("--time-limit", type=float, default=300.0, help="seconds per image (default 300)")
    p.add_argument("--rel-gap", type=float, default=1e-4, help="stop when (upper - lower) <= gap * upper")
    p.add_argument("--method", choices=[m.value for m in Method], default=Method.AUTO.value,
                   help="auto: bnb (every norm)")
    p.add_argument("--tightening", choices=[m.value for m in Tightening], default=Tightening.LP.value,
                   help="bounds of layers >= 2 (mip)")
    p.add_argument("--warm-start", choices=[w.value for w in WarmStart], default=WarmStart.NONE.value,
                   help="L2: the first incumbent from this attack, run first on the image (its time counts and "
                        "comes off --time-limit); the answer stays proven; default none")
    add_finish_arguments(p)


def net_spec(args) -> str:
    """--onnx PATH, else --net."""
    return str(args.onnx) if args.onnx else args.net


def run(args) -> int:
    options = {"time_limit": args.time_limit, "rel_gap": args.rel_gap, "method": args.method,
               "tightening": args.tightening, "warm_start": args.warm_start, "finish": args.finish,
               "decide_after": args.decide_after}
    with ResultStore(args.out, args.save_adv) as store, open_executor(args.executor, args.jobs, args.address) as ex:
        rows = run_many(net_spec(args), args.images, "mip", args.norm, store, options, force=args.force, executor=ex)
    proven = sum(r["status"] == "optimal" for r in rows)
    print(f"{len(rows)} images solved now ({proven} proven optimal); results in {args.out}")
    return 0
