"""`mlptl export`'s checks before compiling, without a trained model: a file that is not a package (or a
damaged one) and a machine without the C++ compiler torch's Inductor will use are one line and exit 2.

The compiler rule is torch's, not a guess: Inductor runs ``$CXX`` if set, else ``g++`` (``clang++`` on
macOS), and nothing else (``torch._inductor.config.cpp.cxx``, ``cpp_builder.get_cpp_compiler``); a test
asks torch itself, in a process with the same PATH, and compares.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mlptl.errors import InputError
from mlptl.model.compiler import cxx_compiler
from mlptl.model.export import export_model

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the PATH set-ups are Linux's")


def _fake_compilers(tmp_path: Path, *names: str) -> Path:
    """A directory holding only scripts named ``names`` that answer ``--version`` like a compiler."""
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    for n in names:
        (d / n).write_text("#!/bin/sh\necho 'fake compiler 1.0'\n")
        (d / n).chmod(0o755)
    return d


def _package(tmp_path: Path) -> Path:
    """A well-formed zip named like a package (the compiler check comes after the archive check)."""
    p = tmp_path / "model.nequip.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("model/.data/version", "6\n")
    return p


def _cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlptl.cli", "export", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=env if env is not None else dict(os.environ))


def _assert_one_line(r: subprocess.CompletedProcess, *needles: str) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stderr[-3000:])
    assert lines[0].startswith("mlptl: error: ") and all(n in lines[0] for n in needles), lines[0]
    return lines[0]


# ---------------------------------------------------------------- (b) not a package, or a damaged one
def test_garbage_and_damaged_packages_are_refused_naming_the_file(tmp_path):
    garbage = tmp_path / "garbage.nequip.zip"
    garbage.write_bytes(b"garbage\n")
    with pytest.raises(InputError, match=r"garbage.nequip.zip: not a readable nequip package"):
        export_model(garbage, tmp_path / "x.nequip.pt2", "lammps")
    torn = _package(tmp_path)
    torn.write_bytes(torn.read_bytes()[:-30])  # cut inside the central directory: a truncated download
    with pytest.raises(InputError, match=r"model.nequip.zip: not a readable nequip package"):
        export_model(torn, tmp_path / "x.nequip.pt2", "lammps")
    flipped = tmp_path / "flipped.nequip.zip"
    with zipfile.ZipFile(flipped, "w", zipfile.ZIP_STORED) as z:
        z.writestr("model/weights.pt", b"A" * 4096)
    data = bytearray(flipped.read_bytes())
    data[data.index(b"A" * 64) + 100] ^= 0xFF  # one flipped bit in a member: its CRC no longer matches
    flipped.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"flipped.nequip.zip: the package is damaged \(member model/weights.pt"):
        export_model(flipped, tmp_path / "x.nequip.pt2", "lammps")
    assert not (tmp_path / "x.nequip.pt2").exists()


def test_cli_export_of_a_garbage_file_is_one_line(tmp_path):
    (tmp_path / "garbage.nequip.zip").write_bytes(b"garbage\n")
    _assert_one_line(_cli(tmp_path, "garbage.nequip.zip", "--format", "lammps"), "garbage.nequip.zip", "not a readable")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.nequip.zip"]


# ---------------------------------------------------------------- (c) the compiler Inductor will use
@pytest.mark.parametrize(
    "on_path, cxx, expect",
    [
        (("clang++", "c++"), None, None),  # Linux Inductor never tries clang++ or c++ by itself
        (("g++",), None, "g++"),
        (("clang++",), "clang++", "clang++"),  # ... but takes them through CXX
        (("g++",), "missing-compiler", None),  # a CXX that is not there: Inductor does not fall back to g++
    ],
)
def test_the_compiler_check_agrees_with_torch_inductor(tmp_path, monkeypatch, on_path, cxx, expect):
    fake = _fake_compilers(tmp_path, *on_path)
    monkeypatch.setenv("PATH", str(fake))
    monkeypatch.delenv("TORCH_INDUCTOR_INSTALL_GXX", raising=False)
    if cxx is None:
        monkeypatch.delenv("CXX", raising=False)
    else:
        monkeypatch.setenv("CXX", cxx)
    ours = cxx_compiler()
    assert (None if ours is None else Path(ours).name) == expect
    # torch's own choice, in a process that imports Inductor's config under this environment
    probe = (
        "from torch._inductor import cpp_builder, exc\n"
        "try:\n    print(cpp_builder.get_cpp_compiler())\n"
        "except exc.InvalidCxxCompiler:\n    print('NONE')\n"
    )
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-2000:]
    torch_says = r.stdout.strip().splitlines()[-1]
    assert (None if torch_says == "NONE" else Path(torch_says).name) == expect, r.stdout


def test_export_without_inductors_compiler_is_one_line_before_compiling(tmp_path):
    """Only clang++ on PATH and CXX unset: the check used to pass and nequip's compile failed with a traceback."""
    fake = _fake_compilers(tmp_path, "clang++")
    pkg = _package(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("CXX", "TORCH_INDUCTOR_INSTALL_GXX")}
    env["PATH"] = str(fake)
    _assert_one_line(_cli(tmp_path, pkg.name, "--format", "lammps", env=env), "C++ compiler", "g++", "CXX")
    assert not list(tmp_path.glob("*.pt2"))
