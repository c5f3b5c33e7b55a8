"""VNN-LIB robustness properties: an input box and "some target output >= the label's output".

Read: one bound per side for every X_i, as `(assert (<= X_i c))` / `(assert (>= X_i c))`
(either operand order, also inside `(and ...)`), and ONE output assertion that is a
disjunction of `Y_j >= Y_label` (`(or (and (>= Y_j Y_l)) ...)`, `(or (>= Y_j Y_l) ...)`, a
single comparison, or `(<= Y_l Y_j)`). The property is violated (the instance is `sat`)
iff some x in the box has Y_j >= Y_label for a target j. Anything else is a `VnnlibError`
naming the line.

When the box is clip(x0 +- eps, 0, 1), `center` and `eps` recover x0 and eps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np

# Boxes written from float32 tensors are off by ~1e-7 from clip(x0 +- eps, 0, 1).
BALL_TOL = 1e-6


class VnnlibError(ValueError):
    """A VNN-LIB file that is malformed or not an input box with a robustness output constraint."""


@dataclass(frozen=True, eq=False)
class Property:
    """Input box lower <= x <= upper; violated iff max_{j in targets} Y_j - Y_label >= 0 somewhere in it."""

    lower: np.ndarray
    upper: np.ndarray
    label: int
    targets: tuple[int, ...]
    n_outputs: int

    @classmethod
    def ball(cls, x0, eps: float, label: int, n_outputs: int) -> Property:
        """The box clip(x0 +- eps, 0, 1) with every other output as a target."""
        x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
        targets = tuple(j for j in range(n_outputs) if j != label)
        return cls(np.clip(x0 - eps, 0, 1), np.clip(x0 + eps, 0, 1), label, targets, n_outputs)

    @property
    def n_inputs(self) -> int:
        return len(self.lower)

    @property
    def center(self) -> np.ndarray | None:
        """x0 with box = clip(x0 +- eps, 0, 1), or None if the box has no such form.

        A pixel clipped at 0 has x0 = upper - eps, one clipped at 1 has x0 = lower + eps;
        one clipped on both sides (eps >= 1/2) could be anywhere in [1 - eps, eps] and gets 1/2.
        """
        return self._ball[0]

    @property
    def eps(self) -> float | None:
        """The Linf radius of the box around `center` (median half-width of unclipped pixels)."""
        return self._ball[1]

    @property
    def eps_inside(self) -> float | None:
        """Largest r with clip(center +- r, 0, 1) inside the box: d* <= eps_inside implies sat."""
        if self.center is None:
            return None
        c, lo, hi = self.center, self.lower, self.upper
        gaps = np.minimum(np.where(lo > 0, c - lo, np.inf), np.where(hi < 1, hi - c, np.inf))
        return float(gaps.min())

    @property
    def eps_outside(self) -> float | None:
        """Smallest r with the box inside clip(center +- r, 0, 1): d* > eps_outside implies unsat."""
        if self.center is None:
            return None
        return float(np.maximum(self.center - self.lower, self.upper - self.center).max())

    @cached_property
    def _ball(self) -> tuple[np.ndarray | None, float | None]:
        return _recover_ball(self.lower, self.upper)


def _recover_ball(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray | None, float | None]:
    """(x0, eps) with clip(x0 +- eps, 0, 1) = [lo, hi] up to BALL_TOL, else (None, None)."""
    if lo.min() < 0 or hi.max() > 1:
        return None, None
    at0, at1 = lo == 0, hi == 1
    free = ~at0 & ~at1
    if free.any():
        eps = float(np.median((hi - lo)[free] / 2))
    else:  # every pixel touches 0 or 1: the largest eps the box allows
        eps = float(min(hi[at0 & ~at1].min(initial=1.0), (1 - lo[at1 & ~at0]).min(initial=1.0)))
    # A pixel clipped at 0 has hi = x0 + eps with x0 in [0, eps]; at 1 likewise.
    reach = np.where(at0, hi, 1 - lo)
    ok = np.where(free, np.abs((hi - lo) / 2 - eps) <= BALL_TOL,
                  np.where(at0 & at1, eps >= 0.5 - BALL_TOL,
                           (reach >= eps - BALL_TOL) & (reach <= 2 * eps + BALL_TOL)))
    if not ok.all():
        return None, None
    x0 = np.where(free, (lo + hi) / 2, np.where(at0 & at1, 0.5, np.where(at0, hi - eps, lo + eps)))
    return np.clip(x0, 0, 1), eps


# --- reading ------------------------------------------------------------------------


class Atom(NamedTuple):
    text: str
    line: int


class SList(NamedTuple):
    items: list
    line: int


def _head(expr) -> str | None:
    """The operator of a list expression, e.g. 'and' for (and ...)."""
    if isinstance(expr, SList) and expr.items and isinstance(expr.items[0], Atom):
        return expr.items[0].text
    return None


_TOKENS = re.compile(r";[^\n]*|\(|\)|[^\s();]+|\n")
# At most 9 digits: an index is a plain int (Python refuses int() of over 4300 digits)
VAR = re.compile(r"([XY])_([0-9]{1,9})$")


def parse_number(text: str, source: str, line: int) -> float:
    """A finite decimal number, else a VnnlibError naming the line."""
    try:
        v = float(text)
    except ValueError:
        raise VnnlibError(f"{source}:{line}: {text!r} is not a number") from None
    if not np.isfinite(v):
        raise VnnlibError(f"{source}:{line}: {text!r} is not a finite number")
    return v


def sexprs(text: str, source: str) -> list:
    """Top-level s-expressions (nested SList / Atom with line numbers); comments dropped."""
    stack: list[SList] = [SList([], 1)]
    line = 1
    for m in _TOKENS.finditer(text):
        tok = m.group()
        if tok == "\n":
            line += 1
        elif tok == "(":
            stack.append(SList([], line))
        elif tok == ")":
            if len(stack) == 1:
                raise VnnlibError(f"{source}:{line}: unbalanced ')'")
            done = stack.pop()
            stack[-1].items.append(done)
        elif not tok.startswith(";"):
            stack[-1].items.append(Atom(tok, line))
    if len(stack) > 1:
        raise VnnlibError(f"{source}:{stack[-1].line}: '(' opened here is never closed")
    return stack[0].items


def read_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of the file `what` at path: a missing file is a FileNotFoundError, a
    folder or a file that is not UTF-8 text (e.g. a binary) a VnnlibError naming the line."""
    path = Path(path)
    if path.is_dir():
        raise VnnlibError(f"{path} is a folder, not a {what}")
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {path}")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise VnnlibError(f"{path}:{line}: not a {what}: byte 0x{raw[err.start]:02x} at offset {err.start} "
                          "is not UTF-8 text") from None


def read_vnnlib(path: str | Path) -> Property:
    """The property in a .vnnlib file."""
    return parse_vnnlib(read_text(path, "VNN-LIB file"), source=str(path))


def parse_vnnlib(text: str, source: str = "<vnnlib>") -> Property:
    """The property in VNN-LIB text; errors name `source` and the line."""
    return _Reader(source).read(text)


class _Reader:
    def __init__(self, source: str):
        self.source = source
        self.declared: dict[str, dict[int, int]] = {"X": {}, "Y": {}}  # index -> line
        self.lower: dict[int, float] = {}
        self.upper: dict[int, float] = {}
        self.outputs: list[tuple[int, int]] = []  # (j, l): Y_j >= Y_l
        self.output_line: int | None = None

    def error(self, line: int, msg: str) -> VnnlibError:
        return VnnlibError(f"{self.source}:{line}: {msg}")

    def read(self, text: str) -> Property:
        for form in sexprs(text, self.source):
            if isinstance(form, Atom):
                raise self.error(form.line, f"unexpected {form.text!r} outside parentheses")
            head = _head(form)
            if head == "declare-const":
                self._declare(form)
            elif head == "assert" and len(form.items) == 2:
                self._assert(form.items[1])
            else:
                raise self.error(form.line, f"expected (declare-const NAME Real) or (assert ...), got ({head} ...)")
        return self._property()

    def _declare(self, form: SList) -> None:
        items = form.items
        if len(items) != 3 or not all(isinstance(a, Atom) for a in items) or items[2].text != "Real":
            raise self.error(form.line, "expected (declare-const NAME Real)")
        m = VAR.match(items[1].text)
        if not m:
            raise self.error(form.line, f"variable {items[1].text!r}: minadv reads inputs X_i and outputs Y_j")
        kind, k = m.group(1), int(m.group(2))
        if k in self.declared[kind]:
            raise self.error(form.line, f"{items[1].text} is already declared at line {self.declared[kind][k]}")
        self.declared[kind][k] = form.line

    def _assert(self, expr) -> None:
        # A conjunction: each part is an assertion of its own, in order. A stack, not recursion,
        # so that a deeply nested (and (and ...)) is read, not a RecursionError.
        todo = [expr]
        while todo:
            expr = todo.pop()
            if _head(expr) == "and":
                todo.extend(reversed(expr.items[1:]))
                continue
            cmp = self._comparison(expr)
            if cmp and cmp[0] == "X":
                self._input_bound(cmp, expr.line)
                continue
            if self.output_line is not None:
                raise self.error(expr.line, f"a second output constraint (the first is at line {self.output_line}); "
                                            "minadv reads one disjunction of Y_j >= Y_label")
            self.output_line = expr.line
            self.outputs = self._disjunction(expr)

    def _comparison(self, expr):
        """('X', i, (lower, upper)) for a bound on X_i, ('Y', j, l) for Y_j >= Y_l, None if no (<= a b)/(>= a b)."""
        if _head(expr) not in ("<=", ">="):
            return None
        items = expr.items
        if len(items) != 3 or not all(isinstance(a, Atom) for a in items):
            raise self.error(expr.line, f"({items[0].text} ...) must compare two variables or numbers")
        op, a, b = (t.text for t in items)
        if op == "<=":
            a, b = b, a  # now a >= b
        va, vb = VAR.match(a), VAR.match(b)
        for v, t in ((va, a), (vb, b)):
            if v and int(v.group(2)) not in self.declared[v.group(1)]:
                raise self.error(expr.line, f"{t} is used before its declare-const")
        if va and vb and va.group(1) == vb.group(1) == "Y":
            return "Y", int(va.group(2)), int(vb.group(2))
        if va and not vb and va.group(1) == "X":
            return "X", int(va.group(2)), (parse_number(b, self.source, expr.line), None)
        if vb and not va and vb.group(1) == "X":
            return "X", int(vb.group(2)), (None, parse_number(a, self.source, expr.line))
        raise self.error(expr.line, f"unsupported comparison ({' '.join(t.text for t in items)}): "
                                    "minadv reads bounds X_i vs a number and Y_j vs Y_label")

    def _input_bound(self, cmp, line: int) -> None:
        _, i, (lo, hi) = cmp
        if lo is not None:
            self.lower[i] = max(lo, self.lower.get(i, -np.inf))
        if hi is not None:
            self.upper[i] = min(hi, self.upper.get(i, np.inf))
        if self.lower.get(i, -np.inf) > self.upper.get(i, np.inf):
            raise self.error(line, f"X_{i} has lower bound {self.lower[i]} > upper bound {self.upper[i]}")

    def _disjunction(self, expr) -> list[tuple[int, int]]:
        out = []
        for t in expr.items[1:] if _head(expr) == "or" else [expr]:
            if _head(t) == "and" and len(t.items) == 2:
                t = t.items[1]
            cmp = self._comparison(t)
            if not cmp or cmp[0] != "Y":
                raise self.error(t.line, "expected Y_j >= Y_label (alone or as (and (>= Y_j Y_label)) inside (or ...))")
            out.append(cmp[1:])
        return out

    def _property(self) -> Property:
        line = self.output_line or 1
        n_in, n_out = len(self.declared["X"]), len(self.declared["Y"])
        for kind, n in (("X", n_in), ("Y", n_out)):
            extra = set(self.declared[kind]) - set(range(n))
            if extra:
                k, gap = min(extra), min(set(range(n)) - set(self.declared[kind]))
                raise self.error(self.declared[kind][k], f"{kind}_{k} is declared but {kind}_{gap} is not; "
                                                         f"minadv needs {kind}_0 .. {kind}_{n - 1}")
        if not n_in:
            raise self.error(1, "no input variables X_i declared")
        if not self.outputs:
            raise self.error(1, "no output constraint (assert (or (and (>= Y_j Y_label)) ...))")
        for i in range(n_in):
            if i not in self.lower or i not in self.upper:
                side = "lower" if i not in self.lower else "upper"
                raise self.error(self.declared["X"][i], f"X_{i} has no {side} bound")
        labels = {l for _, l in self.outputs}
        if len(labels) != 1:
            raise self.error(line, f"the disjuncts compare against different outputs {sorted(labels)}; "
                                   "minadv reads Y_j >= Y_label for one label")
        label = labels.pop()
        targets = tuple(sorted({j for j, _ in self.outputs}))
        if label in targets:
            raise self.error(line, f"Y_{label} >= Y_{label} holds everywhere")
        lower = np.array([self.lower[i] for i in range(n_in)])
        upper = np.array([self.upper[i] for i in range(n_in)])
        return Property(lower, upper, label, targets, n_out)


# --- writing ------------------------------------------------------------------------


def format_number(v: float) -> str:
    """Shortest decimal that reads back to the same float64, without an exponent."""
    return np.format_float_positional(float(v), unique=True, trim="0")


def format_vnnlib(prop: Property) -> str:
    """VNN-LIB text of a property, in the layout of the VNN-COMP 2021 MNIST properties."""
    lines = [f"; robustness property with label {prop.label}", ""]
    lines += [f"(declare-const X_{i} Real)" for i in range(prop.n_inputs)] + [""]
    lines += [f"(declare-const Y_{j} Real)" for j in range(prop.n_outputs)] + ["", "; Input constraints:"]
    for i, (lo, hi) in enumerate(zip(prop.lower, prop.upper, strict=True)):
        lines += [f"(assert (<= X_{i} {format_number(hi)}))", f"(assert (>= X_{i} {format_number(lo)}))"]
    lines += ["", "; Output constraints:", "(assert (or"]
    lines += [f"    (and (>= Y_{j} Y_{prop.label}))" for j in prop.targets]
    return "\n".join(lines + ["))", ""])


def write_vnnlib(prop: Property, path: str | Path) -> None:
    Path(path).write_text(format_vnnlib(prop))
