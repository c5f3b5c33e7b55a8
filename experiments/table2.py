"""Table 2 of Croce & Hein (GCPR 2018): per network and attack (CW, DeepFool), the ratios
||delta_attack||_2 / ||delta_rLR-QP||_2 (mean, min, max), the improvement rate IR% (the share
of images where rLR-QP's norm is strictly smaller) and the attack's failures, with the paper's
MNIST numbers beside.

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
    return pd.DataFrame(rows, columns=COLUMNS)


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
