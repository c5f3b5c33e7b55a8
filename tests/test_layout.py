"""The package layout as rules that can fail: one direction of imports (testing -> experiments ->
attacks -> verify; inside verify: the core modules, then io -> qp -> bounds -> splits -> exact -> decide), no import
cycles, and attacks / experiments use only the public names of the packages below them."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"verify": "minadv.verify", "attacks": "minadv.attacks", "experiments": "minadv.experiments",
            "testing": "minadv.testing"}
# sub-packages of verify, lowest first: each may import only the core and those before it
VERIFY_ORDER = ["io", "qp", "bounds", "splits", "exact", "decide"]
LAYERS = ["verify", "attacks", "experiments", "testing"]
# the library packages: a layer above imports them only by package and only names in their __all__;
# experiments is the application (commands, data, models): above it, only its non-private names
LIBRARIES = {"verify", "attacks"}


def _modules() -> dict[str, Path]:
    """Dotted name (minadv.verify.exact.bnb, minadv.verify.exact for its __init__) -> file."""
    out = {}
    for folder, dotted in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([dotted, *parts])] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names) for every `import` / `from ... import` in the file, at any depth,
    relative ones resolved; `from pkg import sub` counts as importing pkg.sub when sub is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names = [a.name for a in node.names]
            subs = [n for n in names if f"{module}.{n}" in MODULES]
            out += [(f"{module}.{n}", []) for n in subs]
            out.append((module, [n for n in names if n not in subs]))
    return [(m, n) for m, n in out if m.startswith("minadv.")]


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        targets = set()
        for module, _ in _imports(name, path):
            # importing a.b.c runs a and a.b first: count the deepest module of ours it names
            while module not in MODULES and "." in module:
                module = module.rpartition(".")[0]
            if module in MODULES and module != name:
                targets.add(module)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _rank(module: str) -> tuple[int, int]:
    """(layer, level inside verify): imports may only go to a rank <= the importer's."""
    parts = module.split(".")
    layer = LAYERS.index(parts[1])
    if parts[1] != "verify" or len(parts) < 3 or parts[2] not in VERIFY_ORDER:
        return layer, 0
    return layer, 1 + VERIFY_ORDER.index(parts[2])


def test_the_checker_sees_every_package_and_a_cycle():
    """The walk must cover the packages, resolve relative imports, and find a cycle it is shown."""
    graph = _graph()
    assert {"minadv.verify.exact.bnb", "minadv.attacks.rlrqp", "minadv.experiments.cli"} <= set(graph)
    assert "minadv.verify.qp" in graph["minadv.verify.exact.bnb"]  # `from ..qp import ...`
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_imports_go_one_way():
    """A package's __init__ may import from its own sub-packages (it re-exports their API)."""
    wrong = [f"{src} -> {dst}" for src, dsts in _graph().items() for dst in dsts
             if _rank(dst) > _rank(src) and not dst.startswith(src + ".")]
    assert wrong == []


@pytest.mark.parametrize("layer", ["attacks", "experiments", "testing"])
def test_upper_layers_use_only_public_names_of_the_packages_below(layer):
    """attacks, experiments and testing import from minadv.verify, its sub-packages and
    minadv.attacks only by package (never a module inside one) and only names in that package's
    __all__; from experiments, no private names."""
    wrong = []
    for name, path in MODULES.items():
        if not name.startswith(f"minadv.{layer}"):
            continue
        for module, names in _imports(name, path):
            below = module.split(".")[1]
            if below == layer:
                continue
            if below not in LIBRARIES:
                wrong += [f"{name} imports {module}.{n} (private)" for n in names if n.startswith("_")]
                continue
            if module not in MODULES or MODULES[module].name != "__init__.py":
                wrong.append(f"{name} imports module {module}")
                continue
            public = set(importlib.import_module(module).__all__)
            wrong += [f"{name} imports {module}.{n} (not public)" for n in names if n not in public]
    assert wrong == []


@pytest.mark.parametrize("package", sorted(n for n, p in MODULES.items() if p.name == "__init__.py"))
def test_every_public_name_exists(package):
    module = importlib.import_module(package)
    assert all(hasattr(module, n) for n in getattr(module, "__all__", []))


def test_pyproject_ships_every_package():
    """A sub-package missing from pyproject's list works in an editable install and is absent
    from a wheel: every folder with an __init__ must be listed."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert listed == {n for n, p in MODULES.items() if p.name == "__init__.py"}
