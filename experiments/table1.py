"""Table 1 of Croce & Hein (GCPR 2018): per network and method, the ratio
||delta_method|| / ||delta_MIP|| to the proven optimum (mean, max), the images where the method
failed, the images without a proven optimum, and the mean time per image; as Markdown (with the
paper's numbers beside), CSV and LaTeX.

Ratios use only images whose `mip` row is `optimal` and where the method returned a point;
the others are counted (n_not_optimal, n_failed), never averaged in.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from minadv.verify import REL_GAP, Status

from .tables import markdown

REFERENCE = "mip"
MATCHED = 1 + REL_GAP  # a ratio up to this counts as the optimum found (the solver's own tolerance)
ORDER = ("mip", "rlrqp", "deepfool", "lbfgs", "cw", "fmn", "ddn", "bb", "fab", "fmn-linf", "fab-linf", "pgd-linf")
LABELS = {"mip": "MIP", "rlrqp": "rLR-QP", "deepfool": "DeepFool", "lbfgs": "L-BFGS", "cw": "CW",
          "cw-torch": "CW (torch)", "fmn": "FMN", "ddn": "DDN", "bb": "Brendel-Bethge", "fab": "FAB",
          "fmn-linf": "FMN-Linf", "fab-linf": "FAB-Linf", "pgd-linf": "PGD-Linf (bisection)"}
# The paper's Table 1, (mean, max) ratio on its own N1 and N2 (same architectures, other weights).
PAPER = {
    ("N1", "rlrqp"): (1.0, 1.0), ("N1", "deepfool"): (1.1226, 1.6059),
    ("N1", "lbfgs"): (1.2749, 2.2936), ("N1", "cw"): (1.0269, 1.4546),
    ("N2", "rlrqp"): (1.0, 1.0), ("N2", "deepfool"): (1.1426, 1.5953),
    ("N2", "lbfgs"): (1.0180, 1.3457), ("N2", "cw"): (1.0686, 1.4517),
}
COLUMNS = ["net", "method", "images", "mean_ratio", "max_ratio", "n_matched", "n_failed", "n_not_optimal",
           "mean_time_s", "paper_mean_ratio", "paper_max_ratio"]
FAILED = (Status.FAILED, Status.ERROR)


class BelowOptimumError(RuntimeError):
    """A method's norm below a proven optimum: its point, its check or the solver is wrong."""


def label(method: str) -> str:
    return LABELS.get(method, method)


def ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of `frame` (one per net x image x method x norm; the optimum is the same norm's `mip`
    row) that have a point and a proven optimum, with columns `optimum` (the mip value) and
    `ratio` = value / optimum.

    Raises BelowOptimumError, listing the rows, on any ratio below 1 - REL_GAP."""
    if frame.duplicated(["net", "image", "method", "norm"]).any():
        raise ValueError("several rows for one (net, image, method, norm): keep those of one options setting")
    proven = frame[(frame.method == REFERENCE) & (frame.status == Status.OPTIMAL)]
    proven = proven[["net", "image", "norm", "value"]].rename(columns={"value": "optimum"})
    out = frame[frame.value.notna()].merge(proven, on=["net", "image", "norm"])
    out = out.assign(ratio=out.value / out.optimum)
    bad = out[out.ratio < 1 - REL_GAP]
    if len(bad):
        cols = ["net", "image", "method", "status", "value", "optimum", "ratio", "margin"]
        raise BelowOptimumError(f"ratio below 1 against a proven optimum (a bug):\n{bad[cols].to_string(index=False)}")
    return out


def method_order(method: str) -> tuple:
    """Sort key: the paper's order (MIP, rLR-QP, DeepFool, L-BFGS, CW), then FMN, DDN, Brendel-Bethge,
    FAB (Table 1, extended), then other methods by name."""
    return (ORDER.index(method), "") if method in ORDER else (len(ORDER), method)


def table1(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (net, method) of `frame`, the results of one norm, with COLUMNS (paper columns nan
    where it has none; the paper's numbers are L2 ones)."""
    r = ratios(frame)
    proven = frame[(frame.method == REFERENCE) & (frame.status == Status.OPTIMAL)]
    rows = []
    for (net, method), g in frame.groupby(["net", "method"]):
        ratio = r[(r.net == net) & (r.method == method)].ratio
        paper = PAPER.get((net, method), (math.nan, math.nan))
        rows.append({
            "net": net, "method": method, "images": len(g),
            "mean_ratio": ratio.mean(), "max_ratio": ratio.max(), "n_matched": int((ratio <= MATCHED).sum()),
            "n_failed": int(g.status.isin(FAILED).sum()),
            "n_not_optimal": int((~g.image.isin(proven[proven.net == net].image)).sum()),
            "mean_time_s": g.time_s.mean(), "paper_mean_ratio": paper[0], "paper_max_ratio": paper[1],
        })
    rows.sort(key=lambda row: (row["net"], method_order(row["method"])))
    return pd.DataFrame(rows, columns=COLUMNS)


def _num(v: float, fmt: str, missing: str) -> str:
    return missing if pd.isna(v) else format(v, fmt)


def to_markdown(table: pd.DataFrame, note: str = "") -> str:
    """The table for the README, the paper's mean / max ratio in the last column."""
    shown = pd.DataFrame({
        "net": table.net, "method": table.method.map(label), "images": table.images,
        "mean ratio": [_num(v, ".4f", "–") for v in table.mean_ratio],
        "max ratio": [_num(v, ".4f", "–") for v in table.max_ratio],
        "matched optimum": table.n_matched, "failed": table.n_failed, "MIP not optimal": table.n_not_optimal,
        "mean time (s)": [f"{v:.2f}" for v in table.mean_time_s],
        "paper: mean / max ratio": ["–" if pd.isna(m) else f"{m:.4f} / {x:.4f}"
                                    for m, x in zip(table.paper_mean_ratio, table.paper_max_ratio, strict=True)],
    })
    return markdown(shown, note, right=8) + "\n"


def _tex(s: str) -> str:
    return "".join("\\" + ch if ch in "&%$#_{}" else ch for ch in str(s))


def norm_suffix(norm: str) -> str:
    """The part of a file name that tells a norm's tables, figures and points apart: '' for L2 (the
    names of Table 1's run), '_linf' for Linf, '_l1' for L1."""
    return "" if norm == "2" else f"_l{norm}"


def to_latex(table: pd.DataFrame, norm: str = "2") -> str:
    """A booktabs table (\\usepackage{booktabs}) of the reproduced numbers (ratios in the L`norm` norm)."""
    lines = [
        f"% minadv reproduce: ratio = ||delta_method||_{norm} / ||delta_MIP||_{norm} over images with a proven optimum",
        "\\begin{tabular}{llrrrrrrr}", "\\toprule",
        "Net & Method & Images & Mean ratio & Max ratio & Matched & Failed & MIP not optimal & Time (s) \\\\",
        "\\midrule",
    ]
    for t in table.itertuples():
        lines.append(
            f"{_tex(t.net)} & {_tex(label(t.method))} & {t.images} & {_num(t.mean_ratio, '.4f', '--')} & "
            f"{_num(t.max_ratio, '.4f', '--')} & {t.n_matched} & {t.n_failed} & {t.n_not_optimal} & "
            f"{t.mean_time_s:.2f} \\\\")
    return "\n".join([*lines, "\\bottomrule", "\\end{tabular}"]) + "\n"


def table_paths(folder: Path, norm: str = "2") -> list[Path]:
    """folder/table1.md, table1.csv and table1.tex (L2); table1_linf.* for Linf (`norm_suffix`)."""
    return [folder / f"table1{norm_suffix(norm)}.{ext}" for ext in ("md", "csv", "tex")]


def write_tables(table: pd.DataFrame, folder: Path, note: str = "", norm: str = "2") -> list[Path]:
    """The table as Markdown, CSV and LaTeX at table_paths(folder, norm)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = table_paths(folder, norm)
    paths[0].write_text(to_markdown(table, note))
    table.to_csv(paths[1], index=False)
    paths[2].write_text(to_latex(table, norm))
    return paths
