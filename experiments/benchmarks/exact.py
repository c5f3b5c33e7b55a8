"""Benchmark of the exact solver: the first test images of each network, one row per image.

    minadv bench exact [--suite paper|scale] [--images 0:50] [--nets N1 N2] [--norm 2]
                       [--time-limit 300] [--cross-check] [--warm-start none|deepfool|rlrqp]
                       [--finish qp|decide] [--decide-after 30] [--out results/bench_exact.csv]

Suites (each sets networks, norms and the cross-check; --nets / --norm / --images narrow them):
- `paper` (default): N1 and N2, L2.
- `scale`: L2 on N1, N2, S1 = 784-100-10, S2 = 784-200-10, S3 = 784-100-100-10, and Linf and L1
  on N1, N2, S1, each image by the default scheme (bnb) and cross-checked by the other one (the
  Pyomo + HiGHS MIP).

Rows go through the results store (resumable: finished rows are never recomputed, a
`time_limit` row is retried with a larger --time-limit); a cross-check row is keyed by its
scheme (`options` method='mip' or method='bnb'). The table (Markdown beside the CSV) gives per
network and norm of the whole CSV (every call so far, not only the last; the printed one: this
call's cases): images, proven optimal, median / max time, median unstable ReLUs and nodes,
and where both schemes proved an image, how many agree to 1e-4 relative and the largest
relative difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from minadv.verify import InputError, Status, norm_name, parse_norm

from ..args import parse_images
from ..machine import machine
from ..runner import WarmStart, add_finish_arguments, options_key, run_many
from ..store import ResultStore
from ..tables import markdown

AGREE = 1e-4  # relative: the exact solver's default gap


@dataclass(frozen=True)
class Case:
    """One network and norm of a suite; `cross` runs the other exact scheme too."""

    net: str
    norm: str
    cross: bool


SCALE_L2 = ("N1", "N2", "S1", "S2", "S3")
SCALE_LINF_L1 = ("N1", "N2", "S1")
SUITES = {
    "paper": tuple(Case(net, "2", False) for net in ("N1", "N2")),
    "scale": (*(Case(net, "2", True) for net in SCALE_L2),
              *(Case(net, norm, True) for norm in ("inf", "1") for net in SCALE_LINF_L1)),
}


def add_arguments(p) -> None:
    p.add_argument("--suite", choices=sorted(SUITES), default="paper",
                   help="paper: N1, N2 in L2; scale: L2 on N1, N2, S1-S3 and Linf / L1 on N1, N2, S1, cross-checked")
    p.add_argument("--nets", nargs="+", help="only these networks of the suite (with paper: any names or paths)")
    p.add_argument("--images", type=parse_images, default=parse_images("0:50"))
    p.add_argument("--norm", help="only this norm of the suite (with paper: any of 2, inf, 1; default 2)")
    p.add_argument("--method", default="auto", choices=["auto", "bnb", "mip"], help="the scheme of the main rows")
    p.add_argument("--cross-check", action="store_true", help="also run the other scheme (the scale suite does)")
    p.add_argument("--time-limit", type=float, default=300.0)
    p.add_argument("--warm-start", choices=[w.value for w in WarmStart], default=WarmStart.NONE.value,
                   help="L2: the exact solver's first incumbent from this attack (its time counts); default none")
    add_finish_arguments(p)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("results/bench_exact.csv"))


def cases(suite: str, nets: list[str] | None, norm: str | None, cross_check: bool) -> list[Case]:
    """The suite's cases, narrowed to `nets` / `norm`; with `paper`, nets and norm may be any."""
    p = norm_name(parse_norm(norm)) if norm is not None else None
    if suite == "paper":
        chosen = [Case(net, p or "2", False) for net in (nets or [c.net for c in SUITES["paper"]])]
    else:
        chosen = [c for c in SUITES[suite] if (not nets or c.net in nets) and (p is None or c.norm == p)]
    return [Case(c.net, c.norm, c.cross or cross_check) for c in chosen]


def schemes(method: str) -> tuple[str, str]:
    """(the scheme `method` runs, the other one, which cross-checks it); auto is bnb for every norm."""
    main = method if method != "auto" else "bnb"
    return main, "mip" if main == "bnb" else "bnb"


SUMMARY_COLUMNS = ["net", "norm", "images", "proven optimal", "median time (s)", "max time (s)", "median unstable",
                   "median nodes", "both schemes proven: agree to 1e-4 (max rel. diff)"]


# how an option of the row key reads beside the network in the table ("S3, rlrqp start")
LABELS = {"warm_start": "{} start", "finish": "{} finish"}
BNB_ONLY = ("finish=", "decide_after=")  # options the MIP's cross-check rows run without


def _split_key(options: str) -> tuple[str, tuple[str, ...]]:
    """A row key's `options` as (its method token, '' for the default scheme; the other tokens)."""
    tokens = options.split()
    method = [t.startswith("method=") for t in tokens]
    return " ".join(t for t, m in zip(tokens, method, strict=True) if m), tuple(
        t for t, m in zip(tokens, method, strict=True) if not m)


def _label(net: str, tokens: tuple[str, ...]) -> str:
    parts = [net]
    for token in tokens:
        name, value = token.split("=", 1)
        parts.append(LABELS.get(name, name + "={}").format(value.strip("'")))
    return ", ".join(parts)


def summary(frame: pd.DataFrame, method: str) -> str:
    """Markdown: per network, norm and options beyond the scheme (a warm start, a finish, ...:
    named beside the network, `LABELS`), the statistics of the rows run with `method` and the
    cross-check column (the rows of the other scheme with the same other options but the
    branch and bound's own, `BNB_ONLY`, where both proved the image)."""
    main, other = (options_key("mip", {"method": s}) for s in (method, schemes(method)[1]))
    rows_out = []
    for (net, norm), g in frame.groupby(["net", "norm"], sort=False):
        keys = [_split_key(o) for o in g.options.fillna("")]
        scheme = pd.Series([k[0] for k in keys], index=g.index)
        rest = pd.Series([k[1] for k in keys], index=g.index)
        for tokens in sorted(set(rest[scheme == main]), key=lambda t: (len(t), t)):  # the defaults first
            rows = g[(scheme == main) & (rest == tokens)]
            proven = rows[rows.status == Status.OPTIMAL.value].set_index("image").value
            mip_tokens = tuple(t for t in tokens if not t.startswith(BNB_ONLY))
            proven_other = g[(scheme == other) & (rest == mip_tokens) & (g.status == Status.OPTIMAL.value)]
            checked = proven_other.set_index("image").value
            both = proven.index.intersection(checked.index)
            diffs = [abs(proven[i] - checked[i]) / max(abs(proven[i]), abs(checked[i]), 1e-12) for i in both]
            rows_out.append({
                "net": _label(net, tokens), "norm": f"L{norm}",
                "images": len(rows), "proven optimal": len(proven),
                "median time (s)": f"{rows.time_s.median():.2f}", "max time (s)": f"{rows.time_s.max():.2f}",
                "median unstable": f"{rows.unstable.median():.0f}", "median nodes": f"{rows.nodes.median():.0f}",
                "both schemes proven: agree to 1e-4 (max rel. diff)":
                    f"{sum(d <= AGREE for d in diffs)}/{len(diffs)} ({max(diffs):.1e})" if diffs else "-",
            })
    return markdown(pd.DataFrame(rows_out, columns=SUMMARY_COLUMNS))


def run(args) -> int:
    todo = cases(args.suite, args.nets, args.norm, args.cross_check)
    if args.warm_start != WarmStart.NONE and any(c.norm != "2" for c in todo):
        raise InputError(f"--warm-start {args.warm_start} is an L2 attack; choose --norm 2")
    with ResultStore(args.out) as store:
        for case in todo:
            for scheme in (args.method, schemes(args.method)[1]) if case.cross else (args.method,):
                options = {"time_limit": args.time_limit, "method": scheme, "warm_start": args.warm_start}
                if scheme != "mip":  # the finish is the branch and bound's; the MIP cross-checks without it
                    options |= {"finish": args.finish, "decide_after": args.decide_after}
                run_many(case.net, args.images, "mip", case.norm, store, options, jobs=args.jobs)
        everything = store.frame
    wanted = {(c.net, c.norm) for c in todo}
    asked = np.array([(n, p) in wanted for n, p in zip(everything.net, everything.norm, strict=True)], dtype=bool)
    frame = everything[asked & everything.image.isin(args.images)]
    cols = ["net", "norm", "options", "image", "status", "value", "lower", "time_s", "unstable", "nodes"]
    print(frame[cols].to_string(index=False))
    # rows of earlier calls, resumed, may come from other machines (the rows do not name theirs)
    footer = f"machine of the last call: {machine()} (rows of earlier calls keep their machines' times)"
    print(f"\n{summary(frame, args.method)}\n\n{footer}")
    # the Markdown beside the CSV describes the whole CSV, not only this call's cases
    args.out.with_suffix(".md").write_text(f"{summary(everything, args.method)}\n\n{footer}\n")
    return 0
