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
LAYERS = ["base", "data", "model", "train", "evaluate", "tracking", "study", "report", "cli"]
BASE = {"mlptl", "mlptl.errors", "mlptl.metrics", "mlptl.fsutil"}
MAX_LINES = 450


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int:
    if module in BASE:
        return 0
    parts = module.split(".")
    assert parts[0] == "mlptl", module
    return LAYERS.index(parts[1])


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("mlptl")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlptl") and node.level == 0:
            if node.module == "mlptl":  # `from mlptl import tracking as T` imports the submodule
                out += [(node.lineno, f"mlptl.{a.name}") for a in node.names]
            else:
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


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_module_size(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.name} has {n} lines; split it by job (limit {MAX_LINES})"


PRIVATE = {
    # pattern: the one module allowed to use it
    r"\._storage\b|\._trial_id\b|\._contains\(": None,  # Optuna: public API only (study.tell, set_user_attr)
    r"_from_saved_model|\"sole_model\"|'sole_model'|_SOLE_MODEL_KEY|nequip\.scripts\._|_suppress_package": "mlptl/model/_nequip.py",
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
