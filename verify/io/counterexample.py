"""Counterexamples to VNN-LIB properties: the float64 check and the VNN-COMP result file.

The file (VNN-COMP 2022 on, as its tools write it): the verdict `sat` on the first line,
then one parenthesised list of assignments, the inputs X_i and then the outputs Y_j:

    sat
    ((X_0 0.1)
     (X_1 0.25)
     ...
     (Y_9 -1.5))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..network import InputError, ReluNetwork
from .vnnlib import (
    VAR,
    Atom,
    Property,
    SList,
    VnnlibError,
    format_number,
    parse_number,
    read_text,
    sexprs,
)


@dataclass(frozen=True)
class CexCheck:
    """A candidate x against a property, in float64: x in the box, margin = max_{j in targets} Y_j - Y_label."""

    in_box: bool
    margin: float
    target: int  # the target j attaining the margin

    @property
    def valid(self) -> bool:
        """x violates the property: inside the box and some target output >= the label's (exactly, in float64)."""
        return self.in_box and self.margin >= 0

    def __bool__(self):
        """Refused: a dataclass instance is always truthy, so `if check_counterexample(...)` would
        accept every point. Ask `.valid`."""
        raise TypeError("a CexCheck has no truth value: use its .valid (in the box and margin >= 0)")


def check_counterexample(net: ReluNetwork, prop: Property, x) -> CexCheck:
    """Recompute the network at x in float64 and test the property's unsafe condition."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if (x.size, net.n_inputs, net.n_outputs) != (prop.n_inputs, prop.n_inputs, prop.n_outputs):
        raise InputError(f"point of size {x.size}, network {net!r} and property with {prop.n_inputs} inputs and "
                         f"{prop.n_outputs} outputs do not fit together")
    y = net.forward(x)
    t = max(prop.targets, key=lambda j: y[j])
    in_box = bool(np.all(np.isfinite(x)) and np.all(prop.lower <= x) and np.all(x <= prop.upper))
    return CexCheck(in_box, float(y[t] - y[prop.label]), int(t))


def format_counterexample(x, y) -> str:
    """The `sat` result file for input x and output y."""
    pairs = [f"X_{i} {format_number(v)}" for i, v in enumerate(np.ravel(x))]
    pairs += [f"Y_{j} {format_number(v)}" for j, v in enumerate(np.ravel(y))]
    return "sat\n(" + "\n ".join(f"({p})" for p in pairs) + ")\n"


def write_counterexample(path: str | Path, x, y) -> None:
    Path(path).write_text(format_counterexample(x, y))


def parse_counterexample(text: str, source: str = "<counterexample>") -> tuple[np.ndarray, np.ndarray]:
    """(x, y) from the text of a `sat` result file; anything else is a `VnnlibError` naming the line."""
    forms = sexprs(text, source)
    if not (forms and isinstance(forms[0], Atom) and forms[0].text == "sat"):
        verdict = text.strip().split("\n")[0][:30]
        raise VnnlibError(f"{source}: the verdict is {verdict!r}; only a 'sat' file holds a counterexample")
    if len(forms) != 2 or not isinstance(forms[1], SList):
        raise VnnlibError(f"{source}:{forms[0].line}: expected one list ((X_0 v) ... (Y_0 v) ...) after 'sat'")
    values: dict[str, dict[int, float]] = {"X": {}, "Y": {}}
    for item in forms[1].items:
        m = VAR.match(item.items[0].text) if isinstance(item, SList) and len(item.items) == 2 \
            and all(isinstance(a, Atom) for a in item.items) else None
        if not m:
            raise VnnlibError(f"{source}:{item.line}: expected an assignment (X_i value) or (Y_j value)")
        kind, k = m.group(1), int(m.group(2))
        if k in values[kind]:
            raise VnnlibError(f"{source}:{item.line}: {kind}_{k} is assigned twice")
        values[kind][k] = parse_number(item.items[1].text, source, item.line)
    out = []
    for kind, vals in values.items():
        if not vals or set(vals) != set(range(len(vals))):
            raise VnnlibError(f"{source}: the {kind} values must be {kind}_0 .. {kind}_n, each assigned once")
        out.append(np.array([vals[k] for k in range(len(vals))]))
    return out[0], out[1]


def read_counterexample(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) from a `sat` result file."""
    return parse_counterexample(read_text(path, "counterexample file"), source=str(path))
