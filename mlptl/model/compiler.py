"""The C++ compiler torch's Inductor will use: what ``torch.compile`` on the CPU and AOTInductor exports need.

Inductor does not search for a compiler. On Linux it runs ``$CXX`` if CXX is set (even to a compiler that
is missing), else ``g++``; on macOS ``$CXX``, else ``clang++`` (``torch._inductor.config.cpp.cxx``, read
once when torch imports that module, and ``cpp_builder.cpp_compiler_search``, which runs ``<it>
--version`` and raises ``InvalidCxxCompiler`` if that fails). So a machine with only ``clang++`` or
``c++`` on PATH has no compiler for Inductor on Linux, and checking for those would pass a check that
the compile then fails. Inductor's other source, a g++ it installs with conda when
``TORCH_INDUCTOR_INSTALL_GXX`` is set, is counted too.
"""

from __future__ import annotations

import os
import shutil
import sys

__all__ = ["cxx_compiler", "inductor_cxx_name", "MISSING_CXX"]

#: What to tell a user who has none (one line, ends without a full stop so callers can add context).
MISSING_CXX = (
    "torch's Inductor needs a C++ compiler and uses $CXX if set, else "
    + ("clang++" if sys.platform == "darwin" else "g++")
    + "; install it (e.g. apt-get install g++) or set CXX to a compiler on PATH"
)


def inductor_cxx_name() -> str:
    """The compiler command Inductor will run: ``$CXX`` if set, else g++ (clang++ on macOS)."""
    return os.environ.get("CXX", "clang++" if sys.platform == "darwin" else "g++")


def cxx_compiler() -> str | None:
    """The path of the C++ compiler Inductor will use on the CPU (or of the conda that will install one, with
    ``TORCH_INDUCTOR_INSTALL_GXX``), or None if Inductor will find none."""
    name = inductor_cxx_name()
    found = shutil.which(name) if name else None
    if found:
        return found
    if sys.platform == "linux" and os.environ.get("TORCH_INDUCTOR_INSTALL_GXX"):
        return shutil.which(os.environ.get("CONDA_EXE") or "conda")  # Inductor installs g++ with it
    return None
