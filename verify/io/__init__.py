"""minadv.verify.io: what comes in and goes out as files. Model files (.pt with its card, ONNX),
VNN-LIB properties (box + linear output constraints), and VNN-COMP counterexample files, each read
with a one-line error for anything minadv cannot take."""

from .counterexample import (
    CexCheck,
    check_counterexample,
    format_counterexample,
    parse_counterexample,
    read_counterexample,
    write_counterexample,
)
from .models import load_network
from .onnx import load_onnx
from .vnnlib import Property, VnnlibError, format_vnnlib, parse_vnnlib, read_vnnlib, write_vnnlib

__all__ = [
    "CexCheck", "check_counterexample", "format_counterexample", "parse_counterexample", "read_counterexample",
    "write_counterexample", "load_network", "load_onnx",
    "Property", "VnnlibError", "format_vnnlib", "parse_vnnlib", "read_vnnlib", "write_vnnlib",
]
