"""Figure 1 of Croce & Hein (GCPR 2018): sorted ratio curves ||delta_method|| / ||delta_MIP|| over
the images with a proven optimum, PNG (dpi 200) and PDF.

figure1: the paper's two panels (CW on N1, L-BFGS on N2); figure1_all_methods: one panel per
network with every attack. Drawn on matplotlib Figure objects (Agg for PNG), no pyplot state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .table1 import REFERENCE, label, method_order, norm_suffix

PAPER_PANELS = (("N1", "cw"), ("N2", "lbfgs"))
DPI = 200


def _ratio_label(norm: str) -> str:
    """||delta_method||_p / ||delta_MIP||_p in mathtext (p = 1, 2 or infinity)."""
    p = r"\infty" if norm == "inf" else norm
    return rf"$\|\delta_{{\mathrm{{method}}}}\|_{{{p}}} \,/\, \|\delta_{{\mathrm{{MIP}}}}\|_{{{p}}}$"


def _panel(ax, curves: dict[str, np.ndarray], title: str, norm: str = "2", ylabel: str | None = None,
           one: str = "optimum (ratio 1)") -> None:
    """Each curve sorted ascending against its image rank (images with a proven optimum and a point
    of that method), the ratio = 1 line, labels, legend."""
    ax.axhline(1.0, color="0.3", lw=0.8, ls="--", label=one)
    for name, r in curves.items():
        r = np.sort(np.asarray(r, dtype=float))
        ax.plot(np.arange(1, len(r) + 1), r, marker="o", ms=2.5, lw=1.2, label=f"{label(name)} ({len(r)})")
    if not any(len(r) for r in curves.values()):
        ax.text(0.5, 0.5, "no ratios yet", ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("images, sorted by ratio")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel or _ratio_label(norm))
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(fontsize=8, loc="upper left")


def _paths(folder: Path, name: str) -> list[Path]:
    return [folder / f"{name}.png", folder / f"{name}.pdf"]


def figure_paths(folder: Path, norm: str = "2") -> list[Path]:
    """The files write_figures writes in folder: for L2 figure1 (the paper's panels, L2 attacks) and
    figure1_all_methods; for another norm only figure1_all_methods_l<norm>."""
    paper = _paths(folder, "figure1") if norm == "2" else []
    return paper + _paths(folder, f"figure1_all_methods{norm_suffix(norm)}")


def _save(fig: Figure, folder: Path, name: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = _paths(folder, name)
    fig.savefig(paths[0], dpi=DPI)
    fig.savefig(paths[1])
    return paths


def write_figures(ratios: pd.DataFrame, nets: list[str], folder: Path, norm: str = "2") -> list[Path]:
    """figure_paths(folder, norm) (.png, .pdf), from `table1.ratios` rows of that norm."""
    every = sorted_ratio_figure(ratios, nets, folder, f"figure1_all_methods{norm_suffix(norm)}", norm)
    if norm != "2":
        return every

    def of(net: str, method: str) -> np.ndarray:
        return ratios[(ratios.net == net) & (ratios.method == method)].ratio.to_numpy()

    fig = Figure(figsize=(8, 3.3), layout="constrained")
    for ax, (net, method) in zip(fig.subplots(1, 2), PAPER_PANELS, strict=True):
        r = of(net, method)
        _panel(ax, {method: r}, f"{label(method)} on {net}, {len(r)} images")
    return _save(fig, folder, "figure1") + every


def sorted_ratio_figure(ratios: pd.DataFrame, nets: list[str], folder: Path, name: str, norm: str = "2") -> list[Path]:
    """One panel per network with the sorted ratio curve of every attack in `ratios` (`table1.ratios`
    rows); folder/name.png and .pdf."""
    fig = Figure(figsize=(4 * len(nets), 3.3), layout="constrained")
    for ax, net in zip(np.atleast_1d(fig.subplots(1, len(nets))), nets, strict=True):
        methods = sorted(set(ratios[ratios.net == net].method) - {REFERENCE}, key=method_order)
        n = int(((ratios.net == net) & (ratios.method == REFERENCE)).sum())
        _panel(ax, {m: ratios[(ratios.net == net) & (ratios.method == m)].ratio.to_numpy() for m in methods},
               f"{net}: all attacks, {n} images", norm)
    return _save(fig, folder, name)


def ratio_figure(ratios: pd.DataFrame, nets: list[str], folder: Path, name: str, ylabel: str) -> list[Path]:
    """One panel per network with the sorted curve of `ratio` per method of `ratios` (rows net,
    method, ratio against a reference method, e.g. Table 2's rLR-QP); folder/name.png and .pdf."""
    fig = Figure(figsize=(4 * len(nets), 3.3), layout="constrained")
    for ax, net in zip(np.atleast_1d(fig.subplots(1, len(nets))), nets, strict=True):
        g = ratios[ratios.net == net]
        _panel(ax, {m: g[g.method == m].ratio.to_numpy() for m in sorted(set(g.method), key=method_order)},
               f"{net}: {g.image.nunique()} images", ylabel=ylabel, one="ratio 1")
    return _save(fig, folder, name)


def quality_time_figure(table: pd.DataFrame, folder: Path, name: str, norm: str = "2") -> list[Path]:
    """One point per (attack, network) of a `table1.table1` table: mean time per image (log scale)
    against mean ratio to the optimum (over the images where the attack found a point), the attack's
    label and its failures beside it; folder/name.png and .pdf."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    rows = table[(table.method != REFERENCE) & table.mean_ratio.notna()]
    for (net, marker) in zip(sorted(set(rows.net)), "os^Dv", strict=False):
        g = rows[rows.net == net]
        ax.scatter(g.mean_time_s, g.mean_ratio, marker=marker, label=net)
        for t in g.itertuples():
            failed = f" ({t.n_failed} failed)" if t.n_failed else ""
            ax.annotate(label(t.method) + failed, (t.mean_time_s, t.mean_ratio), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("mean time per image (s)")
    ax.set_ylabel("mean " + _ratio_label(norm))
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(fontsize=8)
    return _save(fig, folder, name)
