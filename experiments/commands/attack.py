"""`minadv attack`: one attack on test images, one CSV row per image (resumable), the same
columns and .npz arrays as `minadv exact`; a failed image has status `failed` and no point."""

from __future__ import annotations

import ast
import inspect

import numpy as np

from minadv import attacks  # the registry is read when used (a test may replace minadv.attacks.ATTACKS)
from minadv.verify import InputError, norm_name

from ..runner import open_executor, run_many
from ..store import ResultStore
from .exact import add_common, net_spec


def add_arguments(p) -> None:
    add_common(p, "results_attack.csv")
    p.add_argument("--method", required=True, choices=sorted(attacks.ATTACKS),
                   help="the attack, in its own norm (the *-linf ones Linf, the others L2)")
    p.add_argument("--seed", type=int, help="random seed of rlrqp (default 0)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the attack's constructor, e.g. targets=warm or n1=20 (repeatable)")
    p.add_argument("--device",
                   help="device (cpu, cuda) of rlrqp's working-set region solver or of cw-torch; "
                        "same as --option device=...")
    p.add_argument("--batch", type=int,
                   help="images per call of batched attacks (all but rlrqp and lbfgs; default 50)")


def parse_options(method: str, pairs: list[str], seed: int | None) -> dict:
    """KEY=VALUE strings as constructor keywords of the attack (values as Python literals)."""
    allowed = inspect.signature(attacks.ATTACKS[method]).parameters
    options = {} if seed is None else {"seed": seed}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in allowed:
            raise InputError(f"bad option {pair!r} for {method}; options: {', '.join(allowed)}")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    if "seed" in options and "seed" not in allowed:
        raise InputError(f"{method} takes no seed")
    try:
        attacks.ATTACKS[method](**options)
    except (TypeError, ValueError) as err:
        raise InputError(f"{method}: {err}") from None
    return options


def run(args) -> int:
    options = parse_options(args.method, [*args.option, *([f"device={args.device}"] if args.device else [])], args.seed)
    norm = norm_name(attacks.ATTACKS[args.method].norm)
    with ResultStore(args.out, args.save_adv) as store, open_executor(args.executor, args.jobs, args.address) as ex:
        rows = run_many(net_spec(args), args.images, args.method, norm, store, options, force=args.force,
                        batch=args.batch, executor=ex)
    found = [r for r in rows if r["status"] == "found"]
    if rows:
        norms = [r["value"] for r in found]
        median = f"median L{norm} {np.median(norms):.4f}, " if norms else ""
        print(f"{len(rows)} images attacked now: {len(found)} found, {len(rows) - len(found)} failed; {median}"
              f"median time {np.median([r['time_s'] for r in rows]):.2f} s; results in {args.out}")
    else:
        print(f"nothing to do: every image is already in {args.out} (use --force to recompute)")
    return 0
