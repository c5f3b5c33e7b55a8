"""Optional dependencies: which pip extra of minadv provides each one.

The exact solver (`minadv.verify`) needs only the core dependencies; Foolbox (with its scipy
pin), onnx, and the table/figure stack of the command line come with extras, so that a user
of the solver alone is not held to Foolbox's pins. A missing one is a one-line error that
names the extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# top-level module -> the extra of minadv that installs it (pyproject.toml, optional-dependencies)
EXTRAS = {"foolbox": "attacks", "numba": "attacks", "onnx": "onnx",
          "pandas": "experiments", "matplotlib": "experiments", "tqdm": "experiments",
          "dask": "cluster", "distributed": "cluster"}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def missing_extra(err: ModuleNotFoundError) -> MissingExtraError | None:
    """The one-line error for `err` when it is about a module an extra provides, else None."""
    top = (err.name or "").split(".")[0]
    if top not in EXTRAS:
        return None
    extra = EXTRAS[top]
    return MissingExtraError(f"{top} is not installed: install minadv[{extra}] (pip install 'minadv[{extra}]')")


def require(module: str) -> ModuleType:
    """`importlib.import_module(module)`, or MissingExtraError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        extra = missing_extra(err)
        if extra is None:
            raise
        raise extra from None
