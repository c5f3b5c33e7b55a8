"""Tables 2 and 3 of Croce & Hein (GCPR 2018).

Table 2: per network and attack (CW, DeepFool), the ratios ||delta_attack||_2 / ||delta_rLR-QP||_2
(mean, min, max), the improvement rate IR% (the share of images where rLR-QP's norm is strictly
smaller) and the attack's failures, with the paper's MNIST numbers beside.

Table 3: on the images where CW / rLR-QP < 0.95 after rLR-QP's first application, the ratio
C = ||delta_CW||_2 / ||delta_step||_2 (mean, min, max) and N, the images with ||delta_step|| <
||delta_CW||, for DeepFool, DeepFool + binary search (rLR-QP's warm start) and applications I-VII
of rLR-QP (each from the last one's point, restricted to its class), and the progressive
improvement ||delta_previous|| / ||delta_step|| - 1 (mean, max over the images, in %).

As in the paper, an image where the attack found no point is counted as a failure and left out
of the statistics; an image where rLR-QP found none is counted too (the paper's rLR-QP never
failed). The rows come from the results store (`table1.ratios` checks the same rows against a
proven optimum where there is one).
"""

from __future__ import annotations

import math

import pandas as pd

from .table1 import FAILED, label

REFERENCE = "rlrqp"
COMPARED = ("cw-torch", "deepfool")
# The paper's Table 2, MNIST rows: (mean, min, max, IR %, failures) per (network, attack); its
# CW is Foolbox's (here cw-torch, the same algorithm).
PAPER = {
    ("1x1024", "cw"): (1.029, 0.827, 1.474, 94.4, 0), ("1x1024", "deepfool"): (1.157, 1.000, 13.861, 99.9, 1),
    ("1x1024-at", "cw"): (1.066, 0.454, 2.434, 83.3, 0), ("1x1024-at", "deepfool"): (2.107, 1.000, 26.179, 100, 49),
    ("5x1024", "cw"): (1.021, 0.496, 1.471, 89.3, 0), ("5x1024", "deepfool"): (1.120, 1.001, 6.060, 100, 8),
    ("5x1024-at", "cw"): (1.013, 0.585, 1.880, 75.1, 0), ("5x1024-at", "deepfool"): (1.404, 1.000, 11.009, 100, 4),
    ("10x1024", "cw"): (0.989, 0.704, 1.535, 47.8, 0), ("10x1024", "deepfool"): (1.188, 1.000, 1.768, 100, 5),
    ("10x1024-at", "cw"): (0.997, 0.270, 1.507, 67.7, 61), ("10x1024-at", "deepfool"): (2.084, 1.000, 5.518, 100, 4),
}
PAPER_IMAGES = {"1x1024": 1000, "5x1024": 700, "10x1024": 500}
COLUMNS = ["net", "method", "images", "compared", "mean_ratio", "min_ratio", "max_ratio", "ir_percent", "n_failed",
           "n_reference_failed", "paper_mean", "paper_min", "paper_max", "paper_ir_percent", "paper_failed"]


# The paper's Table 3 (MNIST 1x1024-at, 79 of 1000 images): step -> (mean, min, max, N, progr. mean %, max %)
TABLE3_STEPS = ("deepfool", "deepfool+bisection", *[f"rlrqp-{k}" for k in range(1, 8)])
TABLE3_LABELS = dict(zip(TABLE3_STEPS, ["DeepFool", "DeepFool + binary search",
                                         *[f"{r} application of rLR-QP" for r in
                                           ("I", "II", "III", "IV", "V", "VI", "VII")]], strict=True))
PAPER_TABLE3 = {
    "deepfool": (0.500, 0.236, 0.893, 0, math.nan, math.nan),
    "deepfool+bisection": (0.511, 0.235, 0.893, 0, math.nan, math.nan),
    "rlrqp-1": (0.865, 0.454, 0.949, 0, math.nan, math.nan),
    "rlrqp-2": (0.905, 0.454, 1.292, 15, 4.9, 44.5),
    "rlrqp-3": (0.908, 0.550, 1.292, 16, 0.5, 21.2),
    "rlrqp-4": (0.912, 0.550, 1.292, 18, 0.4, 12.9),
    "rlrqp-5": (0.918, 0.550, 1.292, 20, 0.8, 45.7),
    "rlrqp-6": (0.927, 0.550, 1.292, 23, 1.0, 30.1),
    "rlrqp-7": (0.930, 0.550, 1.292, 24, 0.4, 31.4),
}
TABLE3_SELECT = 0.95  # the paper's images: CW / rLR-QP (first application) below this
TABLE3_COLUMNS = ["step", "images", "mean", "min", "max", "n_better", "progress_mean_percent",
                  "progress_max_percent", "paper_mean", "paper_min", "paper_max", "paper_n_better",
                  "paper_progress_mean_percent", "paper_progress_max_percent"]


def paper_key(method: str) -> str:
    """cw and cw-torch are both the paper's CW."""
    return "cw" if method.startswith("cw") else method


def table2(frame: pd.DataFrame, compared=COMPARED) -> pd.DataFrame:
    """One row per (net, compared attack) with COLUMNS, from result rows (net, image, method,
    status, value) of one norm and one options setting per method."""
    if frame.duplicated(["net", "image", "method"]).any():
        raise ValueError("several rows for one (net, image, method): keep those of one options setting")
    rows = []
    for net, g in frame.groupby("net", sort=True):
        ref = g[g.method == REFERENCE].set_index("image")
        for method in compared:
            a = g[g.method == method].set_index("image")
            both = a.index.intersection(ref.index)
            ok = both[a.value.loc[both].notna().to_numpy() & ref.value.loc[both].notna().to_numpy()]
            ratio = a.value.loc[ok] / ref.value.loc[ok]
            paper = PAPER.get((net, paper_key(method)), (math.nan,) * 5)
            rows.append({
                "net": net, "method": method, "images": len(both), "compared": len(ok),
                "mean_ratio": ratio.mean(), "min_ratio": ratio.min(), "max_ratio": ratio.max(),
                "ir_percent": 100 * (ratio > 1).mean() if len(ok) else math.nan,
                "n_failed": int(a.status.loc[both].isin(FAILED).sum()),
                "n_reference_failed": int(ref.status.loc[both].isin(FAILED).sum()),
                **dict(zip(COLUMNS[-5:], paper, strict=True)),
            })
    rows.sort(key=lambda r: (_depth(r["net"]), r["net"]))
    return pd.DataFrame(rows, columns=COLUMNS)


def _depth(net: str) -> int:
    """Hidden layers of a scale name (1x1024-at -> 1): the paper's row order; others last."""
    head = net.split("x", 1)[0]
    return int(head) if head.isdigit() else 1 << 30


def to_markdown(table: pd.DataFrame, note: str = "") -> str:
    """Ours beside the paper's: mean / min / max, IR % (failures)."""
    def cell(mean, lo, hi, ir, failed):
        if pd.isna(mean):
            return "–"
        return f"{mean:.3f} / {lo:.3f} / {hi:.3f}, {ir:.1f}" + (f" ({failed:.0f})" if failed else "")

    lines = ["| net | attack | images | ratio mean / min / max, IR % (failures) | paper | rLR-QP failed |",
             "| --- | --- | ---: | --- | --- | ---: |"]
    for t in table.itertuples():
        ours = cell(t.mean_ratio, t.min_ratio, t.max_ratio, t.ir_percent, t.n_failed)
        paper = cell(t.paper_mean, t.paper_min, t.paper_max, t.paper_ir_percent, t.paper_failed)
        lines.append(f"| {t.net} | {label(t.method)} | {t.images} | {ours} | {paper} | {t.n_reference_failed} |")
    return "\n".join(lines) + (f"\n\n{note}" if note else "") + "\n"


def to_latex(table: pd.DataFrame) -> str:
    """Table 2 as a booktabs tabular (\\usepackage{booktabs}): ours, then the paper's; a failure count
    in brackets after IR %."""
    def cells(mean, lo, hi, ir, failed) -> str:
        if pd.isna(mean):
            return "-- & -- & -- & --"
        return f"{mean:.3f} & {lo:.3f} & {hi:.3f} & {ir:.1f}" + (f" ({failed:.0f})" if failed else "")

    lines = ["% minadv reproduce table2: ratio = ||delta_attack||_2 / ||delta_rLR-QP||_2",
             "\\begin{tabular}{llrrrrrrrrr}", "\\toprule",
             "Net & Attack & Images & Mean & Min & Max & IR\\% & Paper mean & Min & Max & IR\\% \\\\", "\\midrule"]
    for t in table.itertuples():
        ours = cells(t.mean_ratio, t.min_ratio, t.max_ratio, t.ir_percent, t.n_failed)
        paper = cells(t.paper_mean, t.paper_min, t.paper_max, t.paper_ir_percent, t.paper_failed)
        lines.append(f"{t.net} & {label(t.method)} & {t.images} & {ours} & {paper} \\\\")
    return "\n".join([*lines, "\\bottomrule", "\\end{tabular}"]) + "\n"


def table3(steps: pd.DataFrame) -> pd.DataFrame:
    """Table 3 from one row per (image, step) with columns image, step (TABLE3_STEPS), value (the
    step's norm, nan where it found no point) and cw (CW's norm on that image). Every statistic
    is over the images where the step has a value; the progressive improvement over those where
    the previous step has one too."""
    if steps.duplicated(["image", "step"]).any():
        raise ValueError("several rows for one (image, step)")
    wide = steps.pivot(index="image", columns="step", values="value")
    cw = steps.groupby("image").cw.first()
    rows, previous = [], None
    for step in [s for s in TABLE3_STEPS if s in wide.columns]:
        v = wide[step].dropna()
        ratio = cw.loc[v.index] / v
        progress = (100 * (wide[previous] / wide[step] - 1)).dropna() if previous and previous.startswith("rlrqp") \
            else pd.Series(dtype=float)
        paper = PAPER_TABLE3.get(step, (math.nan,) * 6)
        rows.append({"step": step, "images": len(v), "mean": ratio.mean(), "min": ratio.min(), "max": ratio.max(),
                     "n_better": int((v < cw.loc[v.index]).sum()),
                     "progress_mean_percent": progress.mean() if len(progress) else math.nan,
                     "progress_max_percent": progress.max() if len(progress) else math.nan,
                     **dict(zip(TABLE3_COLUMNS[-6:], paper, strict=True))})
        previous = step
    return pd.DataFrame(rows, columns=TABLE3_COLUMNS)


def table3_markdown(table: pd.DataFrame, note: str = "") -> str:
    """Ours beside the paper's: C mean / min / max, N, progressive improvement mean / max."""
    def cell(mean, lo, hi, n, pm, px):
        if pd.isna(mean):
            return "–", "–"
        prog = "–" if pd.isna(pm) else f"{round(pm, 1) + 0.0:.1f}% / {round(px, 1) + 0.0:.1f}%"  # no -0.0
        return f"{mean:.3f} / {lo:.3f} / {hi:.3f}, N = {n:.0f}", prog

    lines = ["| step | images | C mean / min / max, N | progr. improvement mean / max | paper: C, N | paper: progr. |",
             "| --- | ---: | --- | --- | --- | --- |"]
    for t in table.itertuples():
        ours = cell(t.mean, t.min, t.max, t.n_better, t.progress_mean_percent, t.progress_max_percent)
        paper = cell(t.paper_mean, t.paper_min, t.paper_max, t.paper_n_better, t.paper_progress_mean_percent,
                     t.paper_progress_max_percent)
        lines.append(f"| {TABLE3_LABELS[t.step]} | {t.images} | {ours[0]} | {ours[1]} | {paper[0]} | {paper[1]} |")
    return "\n".join(lines) + (f"\n\n{note}" if note else "") + "\n"


def table3_latex(table: pd.DataFrame) -> str:
    """Table 3 as a booktabs tabular: C mean, min, max, N, progressive improvement mean and max."""
    def num(v, fmt):
        return "--" if pd.isna(v) else format(v, fmt)

    lines = ["% minadv reproduce table3: C = ||delta_CW||_2 / ||delta_step||_2", "\\begin{tabular}{lrrrrrrr}",
             "\\toprule", "Step & Images & Mean & Min & Max & N & Progr. mean (\\%) & Progr. max (\\%) \\\\",
             "\\midrule"]
    for t in table.itertuples():
        lines.append(f"{TABLE3_LABELS[t.step]} & {t.images} & {num(t.mean, '.3f')} & {num(t.min, '.3f')} & "
                     f"{num(t.max, '.3f')} & {t.n_better} & {num(t.progress_mean_percent, '.1f')} & "
                     f"{num(t.progress_max_percent, '.1f')} \\\\")
    return "\n".join([*lines, "\\bottomrule", "\\end{tabular}"]) + "\n"
