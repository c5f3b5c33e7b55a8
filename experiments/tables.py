"""The one Markdown table writer: every table minadv writes (Table 1, the benchmarks, VNN-COMP)
goes through `markdown`, a GitHub pipe table of a frame whose cells are already text."""

from __future__ import annotations

import pandas as pd


def markdown(frame: pd.DataFrame, note: str = "", right: int = 0) -> str:
    """frame as a pipe table, one row per row, cells as they are (str() of each); the last
    `right` columns right-aligned (numbers), the others left. `note` follows after a blank line.
    (Hand-written rather than DataFrame.to_markdown: that needs tabulate and pads every cell.)"""
    cols = [str(c) for c in frame.columns]
    align = ["---"] * (len(cols) - right) + ["---:"] * right
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + (f"\n\n{note}" if note else "")
