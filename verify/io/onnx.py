"""A feed-forward ReLU network from an ONNX file, as a float64 `ReluNetwork`.

Every tensor between two ReLUs is tracked as an exact affine function of the last ReLU's
output h (or of the input): T = sum_k h_k cols[k] + const, with `cols` of shape
(len(h), *T.shape). Gemm, MatMul, Add, Sub, Mul, Div by constants, Flatten, Reshape and
Identity act on that pair, so normalisation (Sub/Div) and MatMul+Add fold into the layer
they precede; each Relu closes a layer (W, b). Anything else is refused with a
`NetworkError` naming the node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..extras import require
from ..network import NetworkError, ReluNetwork

SUPPORTED = ("Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Flatten", "Reshape", "Identity", "Constant")


@dataclass(frozen=True)
class _Affine:
    """T = tensordot(h, cols, 1) + const for the output h of ReLU layer `layer` (or the input)."""

    cols: np.ndarray  # (len(h), *shape)
    const: np.ndarray  # shape
    layer: int

    @property
    def shape(self) -> tuple[int, ...]:
        return self.const.shape

    def map(self, f, g=None) -> _Affine:
        """f applied to every column, g (default f) to the constant; f must be linear."""
        cols = np.stack([f(c) for c in self.cols])
        return _Affine(cols, np.asarray((g or f)(self.const), dtype=np.float64), self.layer)


def load_onnx(path: str | Path) -> ReluNetwork:
    """The ReLU network of an ONNX file (one input, one output, a chain of supported nodes)."""
    onnx = require("onnx")

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no ONNX file at {path}")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf raises its own DecodeError types
        raise NetworkError(f"{path}: not a readable ONNX model ({e})") from e
    try:
        return from_onnx_graph(model.graph)
    except NetworkError as e:
        raise NetworkError(f"{path}: {e}") from None


def from_onnx_graph(graph) -> ReluNetwork:
    """The ReLU network computed by an `onnx.GraphProto`."""
    numpy_helper = require("onnx.numpy_helper")

    values: dict[str, np.ndarray | _Affine] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in values]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise NetworkError(f"the graph has {len(inputs)} data inputs and {len(graph.output)} outputs; "
                           "minadv needs one of each")
    values[inputs[0].name] = _identity(_input_shape(inputs[0]), 0)

    layers: list[tuple[np.ndarray, np.ndarray]] = []
    for i, node in _needed_nodes(graph):
        where = f"node {i} {node.name!r} ({node.op_type})"
        try:
            args = [values[name] if name else None for name in node.input]
        except KeyError as e:
            raise NetworkError(f"{where}: input {e.args[0]!r} is not produced by any earlier node") from None
        data = [a for a in args if isinstance(a, _Affine)]
        if len(data) > 1:
            raise NetworkError(f"{where}: two non-constant inputs (a branching graph); minadv reads chains only")
        if data and data[0].layer != len(layers):
            raise NetworkError(f"{where}: uses a tensor from before a later Relu (a branching graph); "
                               "minadv reads chains only")
        try:
            if node.op_type == "Relu" and data:
                layers.append(_close_layer(data[0]))
                out = _identity(data[0].shape, len(layers))
            else:
                out = _apply(node, args)
        except NetworkError as e:
            raise NetworkError(f"{where}: {e}") from None
        values[node.output[0]] = out

    out = values[graph.output[0].name]
    if not isinstance(out, _Affine):
        raise NetworkError("the output does not depend on the input")
    layers.append(_close_layer(out))
    return ReluNetwork.from_layers(layers)


def _input_shape(value_info) -> tuple[int, ...]:
    """Static input shape; a symbolic batch dimension counts as 1."""
    dims = value_info.type.tensor_type.shape.dim
    shape = []
    for k, d in enumerate(dims):
        if d.HasField("dim_value"):
            shape.append(d.dim_value)
        elif k == 0:
            shape.append(1)
        else:
            raise NetworkError(f"input {value_info.name!r}: dimension {k} is symbolic ({d.dim_param!r}); "
                               "minadv needs a fixed size")
    if not shape or 0 in shape:
        raise NetworkError(f"input {value_info.name!r} has shape {tuple(shape)}; minadv needs a non-empty tensor")
    return tuple(shape)


def _needed_nodes(graph):
    """(index, node) of the nodes the output depends on, in graph order."""
    needed, want = set(), {graph.output[0].name}
    for i, node in reversed(list(enumerate(graph.node))):
        if want.intersection(node.output):
            needed.add(i)
            want.update(node.input)
    return [(i, node) for i, node in enumerate(graph.node) if i in needed]


def _close_layer(a: _Affine) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) with flat(T) = W h + b."""
    return a.cols.reshape(len(a.cols), -1).T, a.const.reshape(-1)


def _identity(shape: tuple[int, ...], layer: int) -> _Affine:
    """T = h itself, for h of the given shape."""
    m = int(np.prod(shape))
    return _Affine(np.eye(m).reshape((m, *shape)), np.zeros(shape), layer)


def _attrs(node) -> dict:
    helper = require("onnx.helper")

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _apply(node, args):
    """The node's output: a constant array or an _Affine; refuses anything not affine in the data."""
    op, at = node.op_type, _attrs(node)
    if op == "Constant":
        return _constant(at)
    if op not in SUPPORTED:
        raise NetworkError(f"unsupported operator; minadv reads {', '.join(SUPPORTED)}")
    if op == "Identity":
        return args[0]
    if op == "Relu":
        return np.maximum(args[0], 0.0)
    if op == "Flatten":
        return _reshape(args[0], lambda s: _flatten_shape(s, at.get("axis", 1)))
    if op == "Reshape":
        target = args[1] if len(args) > 1 else at.get("shape")  # opset < 5: an attribute
        return _reshape(args[0], lambda s: _reshape_shape(s, target, at.get("allowzero", 0)))
    if op == "MatMul":
        return _bilinear(args[0], args[1], np.matmul)
    if op == "Gemm":
        return _gemm(args, at)
    return _elementwise(op, args[0], args[1])


def _constant(at: dict) -> np.ndarray:
    numpy_helper = require("onnx.numpy_helper")

    if "value" in at:
        return numpy_helper.to_array(at["value"])
    for key in ("value_float", "value_floats", "value_int", "value_ints"):
        if key in at:
            return np.asarray(at[key])
    raise NetworkError(f"Constant with attribute {sorted(at)} is not supported (value, value_float(s), value_int(s))")


def _reshape(x, new_shape):
    """x reshaped to new_shape(its shape); the data order (C order) is unchanged."""
    if isinstance(x, _Affine):
        shape = new_shape(x.shape)
        return x.map(lambda t: t.reshape(shape))
    return np.reshape(x, new_shape(np.shape(x)))


def _flatten_shape(s: tuple[int, ...], axis: int) -> tuple[int, int]:
    axis = axis + len(s) if axis < 0 else axis
    return int(np.prod(s[:axis])), int(np.prod(s[axis:]))


def _reshape_shape(s: tuple[int, ...], target, allowzero: int) -> tuple[int, ...]:
    if target is None or isinstance(target, _Affine):
        raise NetworkError("the target shape must be a constant")
    shape = [int(v) for v in np.ravel(target)]
    if not allowzero:
        shape = [s[k] if v == 0 else v for k, v in enumerate(shape)]
    if shape.count(-1) == 1:
        rest = int(np.prod([v for v in shape if v != -1]))
        shape[shape.index(-1)] = int(np.prod(s)) // rest if rest else 0
    if int(np.prod(shape)) != int(np.prod(s)):
        raise NetworkError(f"cannot reshape {tuple(s)} to {tuple(np.ravel(target))}")
    return tuple(shape)


def _bilinear(a, b, f):
    """f(a, b) for f linear in each argument, with at most one of a, b non-constant."""
    if isinstance(a, _Affine):
        b = np.asarray(b, np.float64)
        return a.map(lambda t: f(t, b))
    if isinstance(b, _Affine):
        a = np.asarray(a, np.float64)
        return b.map(lambda t: f(a, t))
    return f(np.asarray(a, np.float64), np.asarray(b, np.float64))


def _gemm(args, at: dict):
    """alpha * op(A) @ op(B) + beta * C (ONNX Gemm, A and B 2-D, op = transpose if transA/transB)."""
    a, b = args[0], args[1]
    c = args[2] if len(args) > 2 and args[2] is not None else None
    if isinstance(c, _Affine):
        raise NetworkError("the bias C depends on the input")
    alpha, beta = at.get("alpha", 1.0), at.get("beta", 1.0)
    ta, tb = at.get("transA", 0), at.get("transB", 0)
    for name, x in (("A", a), ("B", b)):
        if np.ndim(x.const if isinstance(x, _Affine) else x) != 2:
            raise NetworkError(f"Gemm input {name} must be 2-D")

    def product(p, q):
        p = p.T if ta else p
        q = q.T if tb else q
        return alpha * (p @ q)

    y = _bilinear(a, b, product)
    return y if c is None else _elementwise("Add", y, beta * np.asarray(c, np.float64))


def _elementwise(op: str, x, y):
    """x op y with numpy broadcasting (Add, Sub, Mul, Div), affine in the data operand."""
    ufunc = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
    if not isinstance(x, _Affine) and not isinstance(y, _Affine):
        return ufunc(np.asarray(x, np.float64), np.asarray(y, np.float64))
    if op == "Div" and isinstance(y, _Affine):
        raise NetworkError("division by a tensor that depends on the input is not affine")
    data, c = (x, y) if isinstance(x, _Affine) else (y, x)
    c = np.asarray(c, np.float64)
    shape = np.broadcast_shapes(data.shape, c.shape)
    if op in ("Mul", "Div"):
        return data.map(lambda t: ufunc(np.broadcast_to(t, shape), c))
    if data is x:  # T + c, T - c
        return data.map(lambda t: np.broadcast_to(t, shape), lambda t: ufunc(t, c))
    sign = -1.0 if op == "Sub" else 1.0  # c + T, c - T
    return data.map(lambda t: sign * np.broadcast_to(t, shape), lambda t: ufunc(c, t))
