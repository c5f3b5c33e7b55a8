"""Property-based tests (hypothesis) of the VNN-LIB and counterexample readers.

Well-formed files, written from random Property objects / points in random equivalent forms
(operand order, conjunctions, disjunct shapes, number spellings, whitespace, comments), read
back to the same content; malformed ones (random bytes, truncations, token mutations) give a
VnnlibError or a parse that satisfies the reader's guarantees, never another exception.
"""

import re
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minadv.verify import (
    Property,
    VnnlibError,
    format_counterexample,
    format_vnnlib,
    parse_counterexample,
    parse_vnnlib,
    read_counterexample,
    read_vnnlib,
)
from minadv.verify.io.vnnlib import format_number

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
TOKEN = re.compile(r";[^\n]*|\(|\)|[^\s();]+")  # the reader's tokens, comments kept


@st.composite
def properties(draw) -> Property:
    n_in, n_out = draw(st.integers(1, 5)), draw(st.integers(2, 5))
    bounds = [sorted(draw(st.tuples(FLOATS, FLOATS))) for _ in range(n_in)]
    label = draw(st.integers(0, n_out - 1))
    others = [j for j in range(n_out) if j != label]
    targets = tuple(sorted(draw(st.sets(st.sampled_from(others), min_size=1))))
    lower, upper = (np.array([b[k] for b in bounds], dtype=np.float64) for k in (0, 1))
    return Property(lower, upper, label, targets, n_out)


def number(draw, v: float) -> str:
    """v spelled so that float() gives it back exactly: shortest positional, or repr (maybe with an exponent)."""
    return draw(st.sampled_from([format_number(v), repr(float(v))]))


def render(draw, expr) -> str:
    """Nested lists as s-expression text, with random (possibly empty around parentheses)
    whitespace and comments between the tokens."""
    tokens = []

    def walk(e):
        if isinstance(e, str):
            tokens.append(e)
        else:
            tokens.append("(")
            for sub in e:
                walk(sub)
            tokens.append(")")

    for form in expr:
        walk(form)
    comment = st.text(st.characters(blacklist_characters="\n", blacklist_categories=["Cs"]), max_size=12)
    gaps = st.one_of(st.sampled_from([" ", "\n", "\t", "  \n  ", "\r\n"]), comment.map(lambda c: f" ;{c}\n"))
    out = [tokens[0]]
    for a, b in pairwise(tokens):
        optional = a in "()" or b in "()"
        out.append(draw(st.one_of(st.just(""), gaps)) if optional else draw(gaps))
        out.append(b)
    return "".join(out)


@st.composite
def vnnlib_texts(draw) -> tuple[Property, str]:
    """A property and VNN-LIB text of it in one of many equivalent forms."""
    prop = draw(properties())
    decls = [f"X_{i}" for i in range(prop.n_inputs)] + [f"Y_{j}" for j in range(prop.n_outputs)]
    forms = [["declare-const", v, "Real"] for v in draw(st.permutations(decls))]
    bounds = []
    for i, (lo, hi) in enumerate(zip(prop.lower, prop.upper, strict=True)):
        x = f"X_{i}"
        bounds.append(draw(st.sampled_from([["<=", x, number(draw, hi)], [">=", number(draw, hi), x]])))
        bounds.append(draw(st.sampled_from([[">=", x, number(draw, lo)], ["<=", number(draw, lo), x]])))
        loose = lo - abs(draw(FLOATS))
        if draw(st.booleans()) and np.isfinite(loose):  # a looser lower bound changes nothing
            bounds.append([">=", x, number(draw, loose)])
    bounds = draw(st.permutations(bounds))
    asserts, k = [], 0
    while k < len(bounds):  # group consecutive bounds into conjunctions of random size
        n = draw(st.integers(1, 3))
        group = bounds[k:k + n]
        asserts.append(["assert", group[0] if len(group) == 1 and draw(st.booleans()) else ["and", *group]])
        k += n
    l = f"Y_{prop.label}"
    targets = list(prop.targets) + draw(st.lists(st.sampled_from(prop.targets), max_size=2))  # repeats too
    shapes = [lambda y: ["and", [">=", y, l]], lambda y: [">=", y, l], lambda y: ["<=", l, y]]
    disjuncts = [draw(st.sampled_from(shapes))(f"Y_{j}") for j in draw(st.permutations(targets))]
    bare = len(disjuncts) == 1 and draw(st.booleans()) and disjuncts[0][0] != "and"
    out = disjuncts[0] if bare else ["or", *disjuncts]
    asserts.insert(draw(st.integers(0, len(asserts))), ["assert", out])
    return prop, render(draw, forms + asserts)


def same_property(a: Property, b: Property) -> bool:
    return (np.array_equal(a.lower, b.lower) and np.array_equal(a.upper, b.upper)
            and (a.label, a.targets, a.n_outputs) == (b.label, b.targets, b.n_outputs))


def assert_sound(prop: Property) -> None:
    """What parse_vnnlib guarantees of any property it returns."""
    assert prop.n_inputs >= 1 and prop.lower.shape == prop.upper.shape == (prop.n_inputs,)
    assert np.all(np.isfinite(prop.lower)) and np.all(np.isfinite(prop.upper)) and np.all(prop.lower <= prop.upper)
    assert 0 <= prop.label < prop.n_outputs and prop.targets and prop.label not in prop.targets
    assert list(prop.targets) == sorted(set(prop.targets)) and set(prop.targets) <= set(range(prop.n_outputs))
    prop.center, prop.eps, prop.eps_inside, prop.eps_outside  # noqa: B018 - computed without an exception


MUTANTS = ["(", ")", "X_0", "X_1", "Y_0", "Y_1", "Y_99", "and", "or", "assert", "declare-const", "Real", "0.5",
           "-1", "nan", "inf", "1e999", "abc", ">=", "<=", "=", "check-sat", "sat", "X_1234567890", ";", "\x00"]


def mutate(draw, text: str) -> str:
    """1 to 3 token edits: delete, duplicate, swap, or replace by a token from MUTANTS."""
    tokens = TOKEN.findall(text) or [""]
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(0, len(tokens) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "replace"]))
        if op == "delete" and len(tokens) > 1:
            del tokens[k]
        elif op == "duplicate":
            tokens.insert(k, tokens[k])
        elif op == "swap":
            m = draw(st.integers(0, len(tokens) - 1))
            tokens[k], tokens[m] = tokens[m], tokens[k]
        else:
            tokens[k] = draw(st.sampled_from(MUTANTS))
    return "\n".join(tokens)  # one token a line: a comment ends at its line


# --- VNN-LIB ------------------------------------------------------------------------------


@SETTINGS
@given(properties())
def test_format_vnnlib_reads_back(prop):
    assert same_property(parse_vnnlib(format_vnnlib(prop)), prop)


@pytest.mark.slow
@SETTINGS
@given(vnnlib_texts())
def test_equivalent_forms_read_back(case):
    prop, text = case
    assert same_property(parse_vnnlib(text), prop), text


@SETTINGS
@given(properties(), st.data())
def test_a_truncated_file_is_refused_or_complete(prop, data):
    text = format_vnnlib(prop)
    cut = text[: data.draw(st.integers(0, len(text)))]
    try:
        back = parse_vnnlib(cut)
    except VnnlibError:
        return
    assert same_property(back, prop)  # only a cut after the last ')' still reads


@pytest.mark.slow
@SETTINGS
@given(vnnlib_texts(), st.data())
def test_a_mutated_file_is_refused_or_sound(case, data):
    try:
        prop = parse_vnnlib(mutate(data.draw, case[1]))
    except VnnlibError:
        return
    assert_sound(prop)


@SETTINGS
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_random_bytes_are_refused_or_sound(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("v") / "p.vnnlib"
    path.write_bytes(raw)
    try:
        assert_sound(read_vnnlib(path))
    except VnnlibError:
        pass
    try:
        x, y = read_counterexample(path)
        assert x.ndim == y.ndim == 1 and x.size and y.size and np.all(np.isfinite(x)) and np.all(np.isfinite(y))
    except VnnlibError:
        pass


# --- counterexamples ----------------------------------------------------------------------

POINTS = st.tuples(st.lists(FLOATS, min_size=1, max_size=8), st.lists(FLOATS, min_size=1, max_size=5))


@SETTINGS
@given(POINTS, st.data())
def test_counterexample_files_read_back(point, data):
    x, y = (np.array(v, dtype=np.float64) for v in point)
    parsed = parse_counterexample(format_counterexample(x, y))
    assert all(np.array_equal(a, b) for a, b in zip(parsed, (x, y), strict=True))
    pairs = [[f"X_{i}", number(data.draw, v)] for i, v in enumerate(x)] + \
            [[f"Y_{j}", number(data.draw, v)] for j, v in enumerate(y)]
    text = render(data.draw, ["sat", data.draw(st.permutations(pairs))])  # any order, spacing and comments
    back = parse_counterexample(text)
    assert np.array_equal(back[0], x) and np.array_equal(back[1], y), text


@SETTINGS
@given(POINTS, st.data())
def test_a_truncated_or_mutated_counterexample_is_refused_or_sound(point, data):
    x, y = (np.array(v, dtype=np.float64) for v in point)
    text = format_counterexample(x, y)
    cut = text[: data.draw(st.integers(0, len(text)))]
    try:
        back = parse_counterexample(cut)
        assert np.array_equal(back[0], x) and np.array_equal(back[1], y)
    except VnnlibError:
        pass
    try:
        xm, ym = parse_counterexample(mutate(data.draw, text))
        assert xm.ndim == ym.ndim == 1 and xm.size and ym.size and np.all(np.isfinite(np.r_[xm, ym]))
    except VnnlibError:
        pass
