"""The architecture the README describes, enforced: one direction of imports, modules of one size,
dependencies' private APIs only behind their adapters.

Layers, left to right; a module may import from its own layer and layers to its left, never to its
right (imports inside functions count too: a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mlptl"
LAYERS = ["base", "data", "model", "train", "evaluate", "tracking", "study", "report", "cli", "api"]
BASE = {"mlptl.errors", "mlptl.metrics", "mlptl.fsutil", "mlptl.serial", "mlptl.lazy"}
#: ``mlptl`` itself: the public facade (``from mlptl import main``) that may reach every layer.
API = "mlptl"
MAX_LINES = 450


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int:
    if module == API:
        return LAYERS.index("api")
    if module in BASE:
        return 0
    parts = module.split(".")
    assert parts[0] == "mlptl", module
    return LAYERS.index(parts[1])


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Nodes under ``if TYPE_CHECKING:``: annotations only, never imported at run time."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def _imports(path: Path, *, runtime_only: bool = False) -> list[tuple[int, str]]:
    """The mlptl modules ``path`` imports (``from pkg import submodule`` names the submodule); with
    ``runtime_only``, without the imports made for type checkers only."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree) if runtime_only else set()
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("mlptl")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlptl") and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names if _is_module(f"{node.module}.{a.name}")]
            if subs:  # `from mlptl import tracking as T` imports the submodule
                out += [(node.lineno, m) for m in subs]
            if len(subs) < len(node.names):
                out.append((node.lineno, node.module))
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    for path in MODULES:
        layer_of(_module_name(path))


def test_imports_go_one_way():
    bad = []
    for path in MODULES:
        me = _module_name(path)
        for line, target in _imports(path):
            if layer_of(target) > layer_of(me):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {me} ({LAYERS[layer_of(me)]}) imports "
                           f"{target} ({LAYERS[layer_of(target)]})")
    assert not bad, "imports against the architecture's direction:\n" + "\n".join(bad)


def test_the_check_catches_a_wrong_import(tmp_path):
    # The rule must be able to fail: a data module importing the study layer is flagged.
    assert layer_of("mlptl.study.runner") > layer_of("mlptl.data.readers")
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from mlptl.study.runner import run_study\n")
    assert _imports(f) == [(2, "mlptl.study.runner")]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (module -> modules it imports), one per strongly connected set."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; the graph has a few dozen nodes
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def import_graph() -> dict[str, set[str]]:
    """Run-time imports between mlptl's modules (lazy ones included), without a module's own package."""
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        me = _module_name(path)
        graph[me] = {t for _, t in _imports(path, runtime_only=True) if t != me and _is_module(t)}
    return graph


def test_no_import_cycles():
    """Within a layer too: a cycle makes the modules one piece that can only be read and changed together."""
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_catches_a_cycle(tmp_path):
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    f = tmp_path / "x.py"
    f.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mlptl.study.spec import Study\n"
                 "def f():\n    from mlptl.study import validate\n")
    assert _imports(f, runtime_only=True) == [(5, "mlptl.study.validate")]
    assert _imports(f) == [(3, "mlptl.study.spec"), (5, "mlptl.study.validate")]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_module_size(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.name} has {n} lines; split it by job (limit {MAX_LINES})"


PRIVATE = {
    # pattern: the one module allowed to use it
    r"\._storage\b|\._trial_id\b|\._contains\(": None,  # Optuna: public API only (study.tell, set_user_attr)
    r"_from_saved_model|\"sole_model\"|'sole_model'|_SOLE_MODEL_KEY|nequip\.scripts\._|_suppress_package": "mlptl/model/_nequip.py",
    r"matscipy import ffi|matscipy\.ffi|\bmake_result\b|\bget_triplets\b": "mlptl/data/_matscipy.py",
}


def test_private_apis_only_in_adapters():
    bad = []
    for path in MODULES:
        rel = str(path.relative_to(PACKAGE.parent))
        text = path.read_text()
        for pattern, allowed in PRIVATE.items():
            for m in re.finditer(pattern, text):
                if rel != allowed:
                    bad.append(f"{rel}:{text[: m.start()].count(chr(10)) + 1}: {m.group(0)}")
    assert not bad, "dependency internals outside their adapter:\n" + "\n".join(bad)


def test_tracked_files_name_no_path_of_this_machine():
    """Users do not have this checkout's location: results and docs say `bench/work/...`, `../shared/...`."""
    import subprocess

    repo = PACKAGE.parent
    files = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    here = (f"{repo}/", f"{repo.parent}/shared")
    bad = []
    for name in files:
        try:
            text = (repo / name).read_text()
        except (UnicodeDecodeError, OSError):
            continue  # binary (figures) or gone from the working tree
        bad += [f"{name}: {p}" for p in here if p in text]
    assert not bad, bad
