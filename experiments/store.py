"""Results that survive interruption: one CSV row per (net, image, method, norm), points in .npz.

A row is appended (one write, flushed and fsynced) only once its result is complete and
verified; a killed run leaves at most a torn last line, which the next open drops. The
.npz (arrays image, x, x_adv, pred, plus net/method per row) is rewritten atomically.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
from minadv.verify import Result

KEY = ("net", "image", "method", "norm")
COLUMNS = [
    "net", "image", "method", "norm", "status", "value", "lower", "upper", "gap", "time_s", "margin",
    "pred", "label", "target", "unstable", "milp_solves", "qp_solves", "cut_rounds", "nodes", "regions",
    "pruned", "message",
]


class ResultStore:
    """Append-only results CSV (and optional .npz of points) with resume by KEY."""

    def __init__(self, csv_path: str | Path, npz_path: str | Path | None = None):
        self.csv_path = Path(csv_path)
        self.npz_path = Path(npz_path) if npz_path else None
        self._repair()
        self.frame = self._read()
        self._points = self._read_points()

    def _repair(self) -> None:
        """Drop a torn last line left by a killed run."""
        if not self.csv_path.exists():
            return
        data = self.csv_path.read_bytes()
        if data and not data.endswith(b"\n"):
            self.csv_path.write_bytes(data[: data.rfind(b"\n") + 1])

    def _read(self) -> pd.DataFrame:
        if not self.csv_path.exists() or self.csv_path.stat().st_size == 0:
            return pd.DataFrame(columns=COLUMNS)
        frame = pd.read_csv(self.csv_path, keep_default_na=False, na_values=["", "nan"])
        frame["norm"] = frame["norm"].astype(str)
        frame["net"] = frame["net"].astype(str)
        return frame

    def _read_points(self) -> dict[tuple, tuple]:
        if not (self.npz_path and self.npz_path.exists()):
            return {}
        with np.load(self.npz_path, allow_pickle=False) as z:
            nets = z["net"] if "net" in z else np.full(len(z["image"]), "")
            methods = z["method"] if "method" in z else np.full(len(z["image"]), "")
            norms = z["norm"] if "norm" in z else np.full(len(z["image"]), "")
            return {
                (str(n), int(i), str(m), str(p)): (x, xa, int(c))
                for n, i, m, p, x, xa, c in zip(nets, z["image"], methods, norms, z["x"], z["x_adv"], z["pred"])
            }

    def done(self) -> set[tuple]:
        return {(str(r.net), int(r.image), str(r.method), str(r.norm)) for r in self.frame.itertuples()}

    def latest(self) -> pd.DataFrame:
        """One row per KEY: the last one written (a --force rerun appends a newer row)."""
        return self.frame.drop_duplicates(list(KEY), keep="last").reset_index(drop=True)

    def has(self, net: str, image: int, method: str, norm: str) -> bool:
        return (net, int(image), method, norm) in self.done()

    def append(self, net: str, image: int, result: Result, x: np.ndarray, label: int = -1) -> dict:
        """Write the row (and the point, if any) of one finished, verified result."""
        row = {"net": net, "image": int(image), "label": int(label), **result.row()}
        row = {k: row.get(k, "") for k in COLUMNS}
        if self.npz_path is not None and result.x_adv is not None:
            self._points[(net, int(image), result.method, row["norm"])] = (
                np.asarray(x, dtype=np.float64).reshape(-1), result.x_adv.reshape(-1), result.pred)
            self._write_points()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        if not self.csv_path.exists() or self.csv_path.stat().st_size == 0:
            self.csv_path.parent.mkdir(parents=True, exist_ok=True)
            writer.writeheader()
        writer.writerow(row)
        with open(self.csv_path, "a") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        self.frame = pd.concat([self.frame, pd.DataFrame([row])], ignore_index=True) if len(self.frame) else pd.DataFrame([row])
        return row

    def _write_points(self) -> None:
        keys = sorted(self._points)
        x, x_adv, pred = (np.array([self._points[k][j] for k in keys]) for j in range(3))
        tmp = self.npz_path.with_name(self.npz_path.name + ".tmp.npz")
        self.npz_path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            tmp, image=np.array([k[1] for k in keys], dtype=np.int64), x=x, x_adv=x_adv,
            pred=pred.astype(np.int64), net=np.array([k[0] for k in keys]), method=np.array([k[2] for k in keys]),
            norm=np.array([k[3] for k in keys]),
        )
        tmp.replace(self.npz_path)
