"""ONNX import: the float64 network must equal onnxruntime's outputs; anything else is refused by name."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from minadv.verify import NetworkError, load_network, load_onnx

F = TensorProto.FLOAT


def save_model(path, nodes, inits, in_shape, out_shape, inputs=None):
    """An opset-13 model with the given nodes, float32 initializers and one input 'x' -> output 'y'."""
    inputs = inputs or [helper.make_tensor_value_info("x", F, in_shape)]
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info("y", F, out_shape)],
        [numpy_helper.from_array(np.asarray(v, np.float32), name=k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def runtime_outputs(path, X, in_shape):
    """onnxruntime's outputs for each row of X reshaped to in_shape (one thread)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.stack([sess.run(None, {name: x.reshape(in_shape).astype(np.float32)})[0].reshape(-1) for x in X])


def layer(rng, n_out, n_in):
    return rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in)), rng.normal(0, 0.3, n_out)


def torch_style(rng):
    """Flatten + Gemm(transB=1) / Relu, as torch exports Sequential(Flatten, Linear, ReLU, ...)."""
    (W1, b1), (W2, b2) = layer(rng, 7, 12), layer(rng, 3, 7)
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], name="flat", axis=1),
        helper.make_node("Gemm", ["f", "W1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="act1"),
        helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], name="fc2", transB=1),
    ]
    return nodes, {"W1": W1, "b1": b1, "W2": W2, "b2": b2}, [1, 1, 3, 4], [1, 3]


def normalised_matmul(rng):
    """(x - mean) / std, Reshape, MatMul + Add layers; mean is a Constant node, the Reshape target too."""
    (W1, b1), (W2, b2), (W3, b3) = layer(rng, 6, 12), layer(rng, 5, 6), layer(rng, 4, 5)
    mean = helper.make_tensor("mean_v", F, [1, 12], rng.uniform(0.2, 0.6, 12).astype(np.float32))
    shape = helper.make_tensor("shape_v", TensorProto.INT64, [2], [1, -1])
    nodes = [
        helper.make_node("Constant", [], ["mean"], name="mean_const", value=mean),
        helper.make_node("Sub", ["x", "mean"], ["c"], name="center"),
        helper.make_node("Div", ["c", "std"], ["z"], name="scale"),
        helper.make_node("Constant", [], ["shape"], name="shape_const", value=shape),
        helper.make_node("Reshape", ["z", "shape"], ["f"], name="reshape"),
        helper.make_node("MatMul", ["f", "W1t"], ["m1"], name="mm1"),
        helper.make_node("Add", ["m1", "b1"], ["h1"], name="add1"),
        helper.make_node("Relu", ["h1"], ["r1"], name="act1"),
        helper.make_node("MatMul", ["r1", "W2t"], ["m2"], name="mm2"),
        helper.make_node("Add", ["b2", "m2"], ["h2"], name="add2"),  # constant first
        helper.make_node("Relu", ["h2"], ["r2"], name="act2"),
        helper.make_node("Identity", ["W3t_shared"], ["W3t"], name="shared_weight"),
        helper.make_node("MatMul", ["r2", "W3t"], ["m3"], name="mm3"),
        helper.make_node("Add", ["m3", "b3"], ["y"], name="add3"),
    ]
    inits = {"std": rng.uniform(0.2, 0.5, 12), "W1t": W1.T, "b1": b1, "W2t": W2.T, "b2": b2,
             "W3t_shared": W3.T, "b3": b3}
    return nodes, inits, [1, 12], [1, 4]


def gemm_variants(rng):
    """Gemm with transA on a column input, transB=0, alpha/beta != 1; Mul by 1/std and c - x."""
    (W1, b1), (W2, b2) = layer(rng, 8, 12), layer(rng, 3, 8)
    nodes = [
        helper.make_node("Sub", ["offset", "x"], ["d"], name="flip"),  # 1 - x
        helper.make_node("Mul", ["d", "inv_std"], ["z"], name="scale"),
        helper.make_node("Gemm", ["z", "W1t", "b1"], ["h"], name="fc1", transA=1, alpha=0.5, beta=2.0),
        helper.make_node("Relu", ["h"], ["r"], name="act1"),
        helper.make_node("Gemm", ["W2", "r", "b2col"], ["y"], name="fc2", transB=1),  # constant A, data B
    ]
    inits = {"offset": np.ones((12, 1)), "inv_std": rng.uniform(2, 5, (12, 1)), "W1t": W1.T, "b1": b1,
             "W2": W2, "b2col": b2.reshape(3, 1)}
    return nodes, inits, [12, 1], [3, 1]


@pytest.mark.parametrize("build", [torch_style, normalised_matmul, gemm_variants])
def test_generated_models_match_onnxruntime(tmp_path, build):
    rng = np.random.default_rng(0)
    nodes, inits, in_shape, out_shape = build(rng)
    path = save_model(tmp_path / "m.onnx", nodes, inits, in_shape, out_shape)
    net = load_network(path)
    X = rng.random((40, int(np.prod(in_shape))))
    np.testing.assert_allclose(net.forward(X), runtime_outputs(path, X, in_shape), rtol=0, atol=1e-5)


def test_normalisation_is_folded_into_the_first_layer(tmp_path):
    nodes, inits, in_shape, out_shape = normalised_matmul(np.random.default_rng(1))
    net = load_onnx(save_model(tmp_path / "m.onnx", nodes, inits, in_shape, out_shape))
    assert net.hidden_sizes == (6, 5) and net.n_inputs == 12 and net.n_outputs == 4


def test_shared_networks_match_onnxruntime_on_mnist(mnistfc, test_split):
    X = test_split.x(slice(0, 100))
    for depth, hidden in ((2, (256,) * 2), (4, (256,) * 4), (6, (256,) * 6)):
        path = mnistfc / f"mnist-net_256x{depth}.onnx"
        net = load_network(path)
        assert net.hidden_sizes == hidden and net.n_inputs == 784 and net.n_outputs == 10
        ref = runtime_outputs(path, X, [1, 784, 1])
        out = net.forward(X)
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)
        assert np.array_equal(out.argmax(1), ref.argmax(1))


def test_shared_network_weights_are_the_file_s_exactly(mnistfc):
    path = mnistfc / "mnist-net_256x2.onnx"
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    net = load_onnx(path)
    for k, name in enumerate(("layers.0", "layers.2", "layers.4")):
        assert np.array_equal(net.weights[k], inits[f"{name}.weight"].astype(np.float64))
        assert np.array_equal(net.biases[k], inits[f"{name}.bias"].astype(np.float64))


def _one_layer_then(op_node, extra_inits=None, in_shape=(1, 4)):
    W, b = layer(np.random.default_rng(0), 3, 4)
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["h"], name="fc", transB=1), op_node]
    return nodes, {"W": W, "b": b, **(extra_inits or {})}, list(in_shape), [1, 3]


@pytest.mark.parametrize(
    "model, words",
    [
        (_one_layer_then(helper.make_node("Sigmoid", ["h"], ["y"], name="squash")),
         ["'squash'", "(Sigmoid)", "unsupported"]),
        (_one_layer_then(helper.make_node("Tanh", ["h"], ["y"], name="act")), ["'act'", "(Tanh)"]),
        (_one_layer_then(helper.make_node("LeakyRelu", ["h"], ["y"], name="leaky")), ["'leaky'", "(LeakyRelu)"]),
        (_one_layer_then(helper.make_node("Softmax", ["h"], ["y"], name="probs")), ["'probs'", "(Softmax)"]),
        (_one_layer_then(helper.make_node("Div", ["one", "h"], ["y"], name="recip"), {"one": np.ones(3)}),
         ["'recip'", "(Div)", "not affine"]),
    ],
)
def test_non_relu_and_unsupported_nodes_are_named(tmp_path, model, words):
    path = save_model(tmp_path / "bad.onnx", *model)
    with pytest.raises(NetworkError) as err:
        load_onnx(path)
    for w in words:
        assert w in str(err.value)


def test_conv_is_refused_by_name(tmp_path):
    nodes = [
        helper.make_node("Conv", ["x", "K"], ["c"], name="conv1", kernel_shape=[2, 2]),
        helper.make_node("Flatten", ["c"], ["y"], name="flat"),
    ]
    path = save_model(tmp_path / "conv.onnx", nodes, {"K": np.ones((2, 1, 2, 2))}, [1, 1, 3, 3], [1, 8])
    with pytest.raises(NetworkError, match=r"node 0 'conv1' \(Conv\): unsupported operator"):
        load_network(path)


def test_branching_graphs_are_refused(tmp_path):
    W, b = layer(np.random.default_rng(0), 4, 4)
    residual = [
        helper.make_node("Gemm", ["x", "W", "b"], ["h"], name="fc", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="act"),
        helper.make_node("Add", ["r", "x"], ["y"], name="skip"),
    ]
    path = save_model(tmp_path / "res.onnx", residual, {"W": W, "b": b}, [1, 4], [1, 4])
    with pytest.raises(NetworkError, match=r"'skip' \(Add\).*branching"):
        load_onnx(path)
    two_paths = [
        helper.make_node("Gemm", ["x", "W", "b"], ["h1"], name="left", transB=1),
        helper.make_node("Gemm", ["x", "W", "b"], ["h2"], name="right", transB=1),
        helper.make_node("Add", ["h1", "h2"], ["y"], name="merge"),
    ]
    path = save_model(tmp_path / "two.onnx", two_paths, {"W": W, "b": b}, [1, 4], [1, 4])
    with pytest.raises(NetworkError, match=r"'merge' \(Add\): two non-constant inputs"):
        load_onnx(path)


def test_bad_graphs_and_files(tmp_path):
    W, b = layer(np.random.default_rng(0), 3, 4)
    fc = [helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="fc", transB=1)]
    two_inputs = [helper.make_tensor_value_info(n, F, [1, 4]) for n in ("x", "x2")]
    path = save_model(tmp_path / "in2.onnx", fc, {"W": W, "b": b}, [1, 4], [1, 3], inputs=two_inputs)
    with pytest.raises(NetworkError, match="2 data inputs"):
        load_onnx(path)
    (tmp_path / "junk.onnx").write_bytes(b"not a model at all")
    with pytest.raises(NetworkError, match="junk.onnx"):
        load_network(tmp_path / "junk.onnx")
    with pytest.raises(FileNotFoundError):
        load_network(tmp_path / "missing.onnx")


def test_exact_command_takes_an_onnx_network(tmp_path):
    """`minadv exact --onnx`: the minimal Linf distance of a generated 784-12-10 ONNX network,
    equal to the same call on the float64 network loaded by hand."""
    import pandas as pd

    from minadv.experiments.cli import main
    from minadv.experiments.data import mnist
    from minadv.verify.exact.minimal import minimal_perturbation

    rng = np.random.default_rng(5)
    (W1, b1), (W2, b2) = layer(rng, 12, 784), layer(rng, 10, 12)
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "W1", "b1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]), helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], transB=1)]
    path = save_model(tmp_path / "n.onnx", nodes, {"W1": W1, "b1": b1, "W2": W2, "b2": b2}, [1, 1, 28, 28], [1, 10])
    out = tmp_path / "r.csv"
    assert main(["exact", "--onnx", str(path), "--images", "0", "--norm", "inf", "--out", str(out),
                 "--time-limit", "60"]) == 0
    row = pd.read_csv(out).iloc[0]
    direct = minimal_perturbation(load_onnx(path), mnist("test").x(0), "inf", time_limit=60)
    assert row.status == "optimal" and row.value == pytest.approx(direct.value, abs=1e-7)
