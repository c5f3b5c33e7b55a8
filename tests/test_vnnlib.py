"""VNN-LIB properties (box, label, centre, eps) and VNN-COMP counterexample files."""

import re

import numpy as np
import pytest

from minadv.verify import (
    InputError,
    Property,
    ReluNetwork,
    VnnlibError,
    check_counterexample,
    check_image,
    format_counterexample,
    format_vnnlib,
    load_network,
    parse_counterexample,
    parse_vnnlib,
    read_counterexample,
    read_vnnlib,
    write_counterexample,
    write_vnnlib,
)


def small_image(rng, d=20):
    """Pixels at 0, at 1, near the edges and in between."""
    x = rng.random(d)
    x[:4] = [0.0, 1.0, 0.01, 0.995]
    return x


def test_property_round_trips_through_a_file(tmp_path):
    x0 = small_image(np.random.default_rng(0))
    prop = Property.ball(x0, 0.03, label=2, n_outputs=5)
    write_vnnlib(prop, tmp_path / "p.vnnlib")
    back = read_vnnlib(tmp_path / "p.vnnlib")
    assert np.array_equal(back.lower, prop.lower) and np.array_equal(back.upper, prop.upper)
    assert (back.label, back.targets, back.n_outputs, back.n_inputs) == (2, (0, 1, 3, 4), 5, 20)
    np.testing.assert_allclose(back.center, x0, rtol=0, atol=1e-12)
    assert back.eps == pytest.approx(0.03, abs=1e-12)
    assert back.eps_inside <= back.eps <= back.eps_outside
    assert back.eps_outside - back.eps_inside < 1e-12


def header(n_in=2, n_out=3):
    return "".join(f"(declare-const X_{i} Real)\n" for i in range(n_in)) + \
        "".join(f"(declare-const Y_{j} Real)\n" for j in range(n_out))


BOX = "(assert (<= X_0 0.5))\n(assert (>= X_0 0.25))\n(assert (<= X_1 1))\n(assert (>= X_1 0.75))\n"


@pytest.mark.parametrize(
    "inputs, outputs",
    [
        (BOX, "(assert (or (and (>= Y_0 Y_1)) (and (>= Y_2 Y_1))))"),
        (BOX, "(assert (or (>= Y_0 Y_1) (<= Y_1 Y_2)))"),
        ("(assert (and (<= X_0 0.5) (<= 0.25 X_0) (>= 1.0 X_1) (>= X_1 0.75) (<= X_1 2)))",
         "(assert (or (and (>= Y_2 Y_1))\n  (and (>= Y_0 Y_1))))"),
        (BOX + "(assert (>= X_0 -1e-3))", "; comment\n(assert (or (and (>= Y_0 Y_1)) (and (>= Y_2 Y_1))))"),
    ],
)
def test_equivalent_forms_give_the_same_property(inputs, outputs):
    prop = parse_vnnlib(header() + inputs + "\n" + outputs)
    assert prop.lower.tolist() == [0.25, 0.75] and prop.upper.tolist() == [0.5, 1.0]
    assert (prop.label, prop.targets) == (1, (0, 2))


def test_single_target_property():
    prop = parse_vnnlib(header() + BOX + "(assert (<= Y_1 Y_0))")
    assert (prop.label, prop.targets) == (1, (0,))


def test_centre_and_eps_recovery():
    x0 = np.array([0.0, 0.02, 0.5, 0.97, 1.0, 0.3])
    prop = Property.ball(x0, 0.05, label=0, n_outputs=2)
    np.testing.assert_allclose(prop.center, x0, atol=1e-15)
    assert prop.eps == pytest.approx(0.05)
    # every pixel clipped on one side: eps and x0 still follow from the pixels at 0 and 1
    edge = Property.ball(np.array([0.0, 1.0, 0.01, 0.99]), 0.1, label=0, n_outputs=2)
    np.testing.assert_allclose(edge.center, [0.0, 1.0, 0.01, 0.99], atol=1e-15)
    assert edge.eps == pytest.approx(0.1)
    # clipped on both sides: any x0 in [1 - eps, eps] fits; 1/2 is returned (the black pixel fixes eps)
    wide = Property.ball(np.array([0.45, 0.0, 0.2]), 0.6, label=0, n_outputs=2)
    np.testing.assert_allclose(wide.center, [0.5, 0.0, 0.2], atol=1e-15)
    assert wide.eps == pytest.approx(0.6)
    # no pixel pins eps down (hi = x0 + eps, x0 in [0, eps]): the largest eps the box allows
    vague = Property.ball(np.array([0.2]), 0.3, label=0, n_outputs=2)
    assert vague.eps == pytest.approx(0.5) and vague.center == pytest.approx([0.0])
    # not a clipped ball: two different half-widths
    box = Property(np.array([0.1, 0.2]), np.array([0.2, 0.5]), 0, (1,), 2)
    assert box.center is None and box.eps is None and box.eps_inside is None and box.eps_outside is None


@pytest.mark.parametrize(
    "body, line, words",
    [
        (BOX + "(assert (or (and (>= Y_0 Y_1))", 10, "never closed"),
        (BOX + "(assert (>= X_0 0.1)))", 10, "unbalanced"),
        (BOX + "(check-sat)", 10, "expected (declare-const"),
        (BOX + "(assert (>= Y_0 Y_7))", 10, "Y_7 is used before its declare-const"),
        (BOX + "(assert (>= X_0 abc))\n(assert (>= Y_0 Y_1))", 10, "'abc' is not a number"),
        (BOX + "(assert (>= X_0 0.9))\n(assert (>= Y_0 Y_1))", 10, "lower bound 0.9 > upper bound 0.5"),
        (BOX + "(assert (>= Y_0 Y_1))\n(assert (>= Y_2 Y_1))", 11, "second output constraint"),
        (BOX + "(assert (or (>= Y_0 Y_1) (>= Y_0 Y_2)))", 10, "different outputs"),
        (BOX + "(assert (>= Y_0 0.5))", 10, "unsupported comparison"),
        (BOX + "(assert (or (and (>= Y_0 Y_1) (>= Y_2 Y_1))))", 10, "expected Y_j >= Y_label"),
        (BOX + "(assert (>= Y_1 Y_1))", 10, "holds everywhere"),
        ("(assert (<= X_0 0.5))\n(assert (>= X_0 0.25))\n(assert (>= Y_0 Y_1))", 2, "X_1 has no lower bound"),
        (BOX.replace("(assert (<= X_1 1))\n", "") + "(assert (>= Y_0 Y_1))", 2, "X_1 has no upper bound"),
        (BOX + "(declare-const X_0 Real)", 10, "already declared at line 1"),
        (BOX, 1, "no output constraint"),
    ],
)
def test_malformed_files_name_the_line(body, line, words):
    with pytest.raises(VnnlibError) as err:
        parse_vnnlib(header() + body, source="bad.vnnlib")
    msg = str(err.value)
    assert msg.startswith(f"bad.vnnlib:{line}:") and words in msg, msg


def test_gaps_in_variable_names_are_refused():
    text = "(declare-const X_0 Real)\n(declare-const X_2 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
    with pytest.raises(VnnlibError, match=r":2: X_2 is declared but X_1 is not"):
        parse_vnnlib(text + "(assert (>= Y_0 Y_1))")


def test_shared_properties(mnistfc, test_split):
    """All 30: the label is the property's (its comment and its output constraint), the centre is
    the MNIST test image of that label, every network classifies it so, and eps is the file's."""
    nets = [load_network(mnistfc / f"mnist-net_256x{d}.onnx") for d in (2, 4, 6)]
    files = sorted(mnistfc.glob("prop_*.vnnlib"))
    assert len(files) == 30
    for path in files:
        prop = read_vnnlib(path)
        comment = int(re.search(r"label: (\d+)", path.read_text().splitlines()[0]).group(1))
        assert prop.label == comment
        assert prop.targets == tuple(j for j in range(10) if j != prop.label) and prop.n_inputs == 784
        assert prop.eps == pytest.approx(float(path.stem.split("_")[2]), abs=1e-6)
        assert prop.eps_inside <= prop.eps <= prop.eps_outside and prop.eps_outside - prop.eps_inside < 1e-6
        check_image(nets[0], prop.center)  # in [0, 1]: upper - eps of a black pixel is about -1e-8
        pixels = np.rint(prop.center * 255)
        assert np.abs(prop.center * 255 - pixels).max() < 1e-4
        match = np.flatnonzero((test_split.images == pixels.astype(np.uint8)).all(axis=1))
        assert len(match) == 1 and test_split.labels[match[0]] == prop.label, path.name
        for net in nets:
            assert net.predict(prop.center) == prop.label
            assert not check_counterexample(net, prop, prop.center).valid


def identity_net():
    """y = x on two inputs: easy to reason about."""
    return ReluNetwork.from_layers([(np.eye(2), np.zeros(2))])


def test_counterexample_check():
    net = identity_net()
    prop = Property(np.zeros(2), np.ones(2), label=0, targets=(1,), n_outputs=2)
    for x, in_box, margin, valid in [
        ([0.2, 0.5], True, 0.3, True),
        ([0.5, 0.5], True, 0.0, True),  # the boundary counts: Y_1 >= Y_0
        ([0.6, 0.5], True, -0.1, False),
        ([0.2, 1.5], False, 1.3, False),
        ([-0.1, 0.5], False, 0.6, False),
        ([np.nan, 0.5], False, np.nan, False),
    ]:
        v = check_counterexample(net, prop, np.array(x))
        assert v.in_box == in_box and v.valid == valid and v.target == 1
        np.testing.assert_allclose(v.margin, margin, atol=1e-15)
    with pytest.raises(InputError, match="do not fit"):
        check_counterexample(net, prop, np.zeros(3))


def test_counterexample_file_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random(784), rng.normal(size=10) * 1e3
    x[:3] = [0.0, 1.0, 1e-9]
    write_counterexample(tmp_path / "cex.txt", x, y)
    text = (tmp_path / "cex.txt").read_text()
    assert text.startswith("sat\n((X_0 0.0)\n (X_1 1.0)\n (X_2 0.000000001)\n") and text.endswith(")\n")
    x2, y2 = read_counterexample(tmp_path / "cex.txt")
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    # other tools' layout: no leading space, two spaces after the name, negative numbers
    parsed = parse_counterexample("sat\n((X_0  0.5)\n(X_1  -0.25)\n(Y_0 -1.5))")
    assert [a.tolist() for a in parsed] == [[0.5, -0.25], [-1.5]]


@pytest.mark.parametrize(
    "text, words",
    [
        ("unsat\n", "the verdict is 'unsat'"),
        ("sat\n((X_0 0.5)\n (Y_0 abc))", ":3: 'abc' is not a number"),
        ("sat\n((X_0 0.5)\n (X_0 0.5)\n (Y_0 1))", ":3: X_0 is assigned twice"),
        ("sat\n((X_1 0.5)\n (Y_0 1))", "X_0 .. X_n"),
        ("sat\n((X_0 0.5)\n (Z_0 1))", ":3: expected an assignment"),
        ("sat\n((X_0 0.5)\n (Y_0 1)", "never closed"),
    ],
)
def test_bad_counterexample_files(text, words):
    with pytest.raises(VnnlibError, match=re.escape(words)):
        parse_counterexample(text)


def test_counterexample_written_by_format_is_checked_against_the_network():
    net = identity_net()
    prop = parse_vnnlib(format_vnnlib(Property.ball([0.4, 0.45], 0.05, label=0, n_outputs=2)))
    x = np.array([0.4, 0.45]) + [-0.05, 0.0]
    xr, yr = parse_counterexample(format_counterexample(x, net.forward(x)))
    assert np.array_equal(yr, net.forward(xr)) and check_counterexample(net, prop, xr).valid


# --- files that are not text, and inputs meant to break the reader ------------------------


def test_a_binary_file_or_a_folder_is_a_vnnlib_error(tmp_path):
    binary = tmp_path / "model.vnnlib"
    binary.write_bytes(b"(declare-const X_0 Real)\n\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(VnnlibError, match=r"model.vnnlib:2: not a VNN-LIB file: byte 0x89 at offset 25"):
        read_vnnlib(binary)
    with pytest.raises(VnnlibError, match=r"not a counterexample file: byte 0x89"):
        read_counterexample(binary)
    with pytest.raises(VnnlibError, match="is a folder, not a VNN-LIB file"):
        read_vnnlib(tmp_path)
    with pytest.raises(FileNotFoundError, match="no counterexample file at"):
        read_counterexample(tmp_path / "missing.txt")


def test_deep_nesting_and_huge_indices_are_read_or_refused_plainly():
    deep = "(assert " + "(and " * 5000 + "(<= X_0 0.5) (>= X_0 0.25) (<= X_1 1) (>= X_1 0.75)" + ")" * 5001
    prop = parse_vnnlib(header() + deep + "\n(assert (>= Y_0 Y_1))")
    assert prop.lower.tolist() == [0.25, 0.75] and prop.upper.tolist() == [0.5, 1.0]
    with pytest.raises(VnnlibError, match="minadv reads inputs X_i"):
        parse_vnnlib(f"(declare-const X_{'9' * 5000} Real)")
    with pytest.raises(VnnlibError, match="expected an assignment"):
        parse_counterexample(f"sat\n((X_{'1' * 5000} 0.5))")
