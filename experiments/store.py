"""Results that survive interruption, reruns and a second run: one CSV row per key, points in .npz.

Key: (net, image, method, norm, options), `options` the canonical string of the method's
non-default options ('' for the defaults; files written before the column read as '').

One run at a time: opening a store takes an exclusive `flock` on `<file>.lock` beside the CSV
and beside the .npz, held until `close()`; a second run (another process) gets an InputError
naming the file (exit 2) instead of computing the same rows and overwriting the other's points.

Writes, each complete before the next starts: a replaced row's point is removed, then the row
is written, then its point, so that a point on disk always belongs to the row beside it; a
kill in between leaves a row without its point, which `done` does not count as done while
points are kept (it is computed again).
- the .npz: written whole to a temporary beside it, fsynced, moved over it with `os.replace`
  (atomic);
- the CSV: a new key is one appended line, flushed and fsynced; a key already there (--force, a
  retried time_limit row, a row whose point was missing) or a file in an older column layout:
  the whole file rewritten as the .npz is (temporary, fsync, os.replace).

`status` is the last column because no status is a prefix of another: a line cut anywhere ends
in an empty or unknown status, so a last line without its newline is kept (the newline added)
exactly when it is complete, and dropped otherwise. A file whose first line is not a results
header is never modified (InputError).
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from minadv.verify import InputError, Result, Status

KEY = ("net", "image", "method", "norm", "options")
COLUMNS = [
    "net", "image", "method", "norm", "options", "value", "lower", "upper", "gap", "time_s", "time_limit",
    "margin", "pred", "label", "target", "unstable", "milp_solves", "qp_solves", "cut_rounds", "nodes",
    "regions", "pruned", "message", "status",
]
HEADER = ",".join(COLUMNS) + "\n"
REQUIRED = ("net", "image", "method", "norm", "status", "value")  # in every layout this module wrote
POINT_ARRAYS = ("image", "x", "x_adv", "pred")
TEXT_COLUMNS = ("net", "method", "norm", "options", "message", "status")
STATUSES = {s.value for s in Status}


class Interrupted(Exception):
    """Ctrl-C during a run: every finished row is kept; the message says where (the CLI exits 130)."""


def check_writable(*paths: Path, create: bool = True) -> None:
    """Make sure a file can be created at each path (its folder created when `create`, else it
    must exist) and, where the path exists, written: outputs fail before any work, not after
    the first image or a long solve (InputError)."""
    for path in map(Path, paths):
        try:
            if path.is_dir():
                raise IsADirectoryError(21, "Is a directory")
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            elif not path.parent.is_dir():
                raise FileNotFoundError(2, f"no folder {path.parent}")
            with tempfile.TemporaryFile(dir=path.parent):
                pass
            if path.exists() and not os.access(path, os.W_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as err:
            raise InputError(f"cannot write {path}: {err.strerror or err}") from None


# lock file (real path) -> [descriptor, holders]: a command may open several stores on one file
# one after another inside a longer hold (reproduce); another process is refused.
_HELD: dict[str, list] = {}


def _lock(path: Path) -> str:
    lock = path.with_name(path.name + ".lock")
    key = os.path.realpath(lock)
    if key in _HELD:
        _HELD[key][1] += 1
        return key
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InputError(f"another minadv run holds {path}; wait for it to finish or choose another output") from None
    _HELD[key] = [fd, 1]
    return key


def _unlock(key: str) -> None:
    held = _HELD[key]
    held[1] -= 1
    if held[1] == 0:
        os.close(held[0])
        del _HELD[key]


def _replace(path: Path, write) -> None:
    """write(binary file) to a temporary beside `path`, fsync, then move it over `path` atomically
    (the new file keeps the old one's permissions)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _complete(fields: list[str], header: list[str]) -> bool:
    """A row with every column, an integer image and a known status (see the module notes)."""
    if len(fields) != len(header):
        return False
    row = dict(zip(header, fields, strict=True))
    return row["image"].isdigit() and row["status"] in STATUSES


def _csv_line(fields: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue()


def _text(value) -> str:
    """A CSV field: one line (the torn-line repair works line by line)."""
    return "" if value is None else " ".join(str(value).splitlines())


class ResultStore:
    """The results CSV (and optional .npz of points) of one run, locked while open: use
    `with ResultStore(csv, npz) as store:` (or call close())."""

    def __init__(self, csv_path: str | Path, npz_path: str | Path | None = None):
        self.csv_path = Path(csv_path)
        self.npz_path = Path(npz_path) if npz_path else None
        self._locks: list[str] = []
        try:
            for path in (self.csv_path, self.npz_path):
                if path is not None:
                    check_writable(path)
                    self._locks.append(_lock(path))
            self._repair()
            self._rows, self._layout_current = self._read()
            self._points = self._read_points()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        while self._locks:
            _unlock(self._locks.pop())

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._rows)

    def _not_results(self) -> InputError:
        return InputError(f"{self.csv_path} is not a minadv results file")

    def _header(self, line: str) -> list[str]:
        fields = next(csv.reader([line.rstrip("\n")]), [])
        if not (set(REQUIRED) <= set(fields) <= set(COLUMNS)) or len(set(fields)) != len(fields):
            raise self._not_results()
        return fields

    def _repair(self) -> None:
        """A last line without its newline (a write cut short): kept with the newline added if
        complete, else dropped; the start of a header alone (a first write cut short): emptied."""
        if not self.csv_path.exists():
            return
        text = self._contents()
        if not text or text.endswith("\n"):
            return
        if "\n" not in text and HEADER.startswith(text) and text != HEADER[:-1]:
            os.truncate(self.csv_path, 0)
            return
        header = self._header(text.split("\n", 1)[0])
        cut = text.rfind("\n") + 1
        if cut and not _complete(next(csv.reader([text[cut:]]), []), header):
            os.truncate(self.csv_path, len(text[:cut].encode()))
        else:  # a complete row, or the header alone
            with open(self.csv_path, "a") as fh:
                fh.write("\n")

    def _read(self) -> tuple[dict[tuple, list[str]], bool]:
        """Rows by key in file order (of an older file with repeated keys: the last one), as the
        strings in the file, in COLUMNS order; and whether the file has the current header."""
        if not self.csv_path.exists() or self.csv_path.stat().st_size == 0:
            return {}, True
        lines = csv.reader(io.StringIO(self._contents(), newline=""))
        header = self._header(_csv_line(next(lines)))
        rows: dict[tuple, list[str]] = {}
        for n, fields in enumerate(lines, start=2):
            if not _complete(fields, header):
                raise InputError(f"{self.csv_path}: line {n} is not a complete results row")
            row = dict(zip(header, fields, strict=True))
            rows[self._key(*(row.get(k, "") for k in KEY))] = [row.get(c, "") for c in COLUMNS]
        return rows, header == COLUMNS

    def _contents(self) -> str:
        try:
            return self.csv_path.read_bytes().decode()
        except UnicodeDecodeError:
            raise self._not_results() from None

    @staticmethod
    def _key(net, image, method, norm, options) -> tuple:
        return str(net), int(image), str(method), str(norm), str(options)

    def _read_points(self) -> dict[tuple, tuple]:
        if not (self.npz_path and self.npz_path.exists()):
            return {}
        try:
            with np.load(self.npz_path, allow_pickle=False) as z:
                if not set(POINT_ARRAYS) <= set(z.files):
                    raise ValueError
                n = len(z["image"])
                column = {k: z[k] if k in z else np.full(n, "") for k in ("net", "method", "norm", "options")}
                return {
                    self._key(net, i, m, p, o): (x, xa, int(c))
                    for net, i, m, p, o, x, xa, c in zip(column["net"], z["image"], column["method"], column["norm"],
                                                         column["options"], z["x"], z["x_adv"], z["pred"], strict=True)
                }
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            raise InputError(f"{self.npz_path} is not a minadv points file") from None

    @property
    def frame(self) -> pd.DataFrame:
        """The rows, one per key, columns COLUMNS (numbers as numbers, nan where empty)."""
        if not self._rows:
            return pd.DataFrame(columns=COLUMNS)
        text = HEADER + "".join(_csv_line(f) for f in self._rows.values())
        frame = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=["", "nan"],
                            dtype={c: str for c in TEXT_COLUMNS})
        return frame.fillna({c: "" for c in TEXT_COLUMNS})

    def keys(self) -> set[tuple]:
        return set(self._rows)

    def done(self, net: str, image: int, method: str, norm: str, options: str = "",
             time_limit: float | None = None) -> bool:
        """Whether the key's row is stored and needs no new run: its point is stored too when this
        store keeps points (rows with a value have one), and a `time_limit` row ran with at least
        `time_limit` seconds (rows without the column: their time)."""
        key = self._key(net, image, method, norm, options)
        if key not in self._rows:
            return False
        row = dict(zip(COLUMNS, self._rows[key], strict=True))
        if self.npz_path is not None and row["value"] not in ("", "nan") and key not in self._points:
            return False
        if row["status"] == Status.TIME_LIMIT and time_limit is not None:
            ran = float(row["time_limit"] or row["time_s"] or 0.0)
            return time_limit <= ran
        return True

    def append(self, net: str, image: int, result: Result, x: np.ndarray, label: int = -1, options: str = "",
               time_limit: float | None = None) -> dict:
        """Store one finished, verified result: the key's earlier point (if any) removed, then its
        row (replacing the key's earlier row), then its point (if any, and if this store keeps
        points)."""
        row = {"net": net, "image": int(image), "label": int(label), "options": options,
               "time_limit": "" if time_limit is None else float(time_limit), **result.row()}
        row = {k: row.get(k, "") for k in COLUMNS}
        key = self._key(*(row[k] for k in KEY))
        keep = self.npz_path is not None
        if keep and self._points.pop(key, None) is not None:
            self._write_points()  # the point of the row being replaced goes before that row
        fields = [_text(row[c]) for c in COLUMNS]
        rewrite = key in self._rows or not self._layout_current
        self._rows[key] = fields
        if rewrite:
            text = HEADER + "".join(map(_csv_line, self._rows.values()))
            _replace(self.csv_path, lambda fh: fh.write(text.encode()))
            self._layout_current = True
        else:
            new = not self.csv_path.exists() or self.csv_path.stat().st_size == 0
            with open(self.csv_path, "a") as fh:
                fh.write((HEADER if new else "") + _csv_line(fields))
                fh.flush()
                os.fsync(fh.fileno())
        if keep and result.x_adv is not None:
            self._points[key] = (np.asarray(x, dtype=np.float64).reshape(-1), result.x_adv.reshape(-1), result.pred)
            self._write_points()
        return row

    def _write_points(self) -> None:
        keys = list(self._points)
        x, x_adv, pred = (np.array([self._points[k][j] for k in keys]) for j in range(3))
        arrays = {name: np.array([k[j] for k in keys]) for j, name in enumerate(KEY) if name != "image"}
        _replace(self.npz_path, lambda fh: np.savez_compressed(
            fh, image=np.array([k[1] for k in keys], dtype=np.int64), x=x, x_adv=x_adv, pred=pred.astype(np.int64),
            **arrays))

