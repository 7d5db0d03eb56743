"""Every shell block of the documentation runs as written, so that the README cannot drift from the code.

Scanned: README.md, docs/*.md and clusters/README.md; a block is a fenced block whose info string is
``bash`` (or ``sh``, ``shell``, ``console``). The blocks of one file run in order, in one temporary
directory of their own, each with ``bash -euo pipefail``: a later block may use what an earlier one made
(a data file, a study store). The directory holds links to the repository's files (``studies/``,
``clusters/``, ...), so commands run as from the repository root; outputs stay in the temporary
directory, and mlptl's data cache is a fresh one inside it.

Markers, HTML comments on the lines just above a block's opening fence (invisible on GitHub):

- ``<!-- not-run: REASON -->``: the block is not run (a cloud or SLURM cluster, a GPU, a server that runs
  until stopped, an install into a new venv, hours of study); REASON says why, and where the same thing is
  tested instead. A block without this marker runs.
- ``<!-- setup: COMMAND -->``: COMMAND runs first, in the same directory, standing in for the output of a
  not-run block before it (e.g. a smoke-sized study in place of the 9-minute quick start).

A block that fails shows its command output; a failing earlier block fails every later block of its file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "clusters" / "README.md"]
SHELLS = {"bash", "sh", "shell", "console"}
NOT_LINKED = {"mlptl-store", "runs", "test-artifacts", "mlptl.egg-info", "build", "dist"}  # outputs
BLOCK_TIMEOUT = 3600

_MARKER = re.compile(r"^\s*<!--\s*(not-run|setup)\s*:\s*(.*?)\s*-->\s*$")
_FENCE = re.compile(r"^\s*```\s*([^\s`]*)")


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    body: str
    not_run: str | None = None
    setup: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def parse(path: Path) -> list[Block]:
    """The shell blocks of a Markdown file with their markers."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith("```"):
            end += 1
        lang = m.group(1).lower()
        if lang in SHELLS:
            b = Block(path, i + 1, lang, "\n".join(lines[i + 1 : end]))
            k = i - 1
            while k >= 0 and (lines[k].strip() == "" or _MARKER.match(lines[k])):
                mk = _MARKER.match(lines[k])
                if mk and mk.group(1) == "not-run":
                    b.not_run = mk.group(2)
                elif mk:
                    b.setup.insert(0, mk.group(2))
                k -= 1
            blocks.append(b)
        i = end + 1
    return blocks


ALL = [b for p in DOCS if p.is_file() for b in parse(p)]
RUNNABLE = [b for b in ALL if b.not_run is None]


def test_every_block_is_marked_or_runnable():
    """Markers are well formed, and what the test runs is what the README's reader is told to run."""
    assert any(b.path.name == "README.md" and b.path.parent == REPO for b in RUNNABLE), "no runnable README block"
    for b in ALL:
        if b.not_run is not None:
            assert len(b.not_run) > 10, f"{b.id}: a not-run block needs its reason"
            assert not b.setup, f"{b.id}: a setup on a block that does not run"
        assert b.body.strip(), f"{b.id}: empty block"
        # Placeholders a shell would take literally (`[--json]`, `<file>`) cannot be run as written.
        if b.not_run is None:
            assert not re.search(r"\s\[--?[\w-]+\]|<[a-z][\w -]*>", b.body), f"{b.id}: placeholder in a runnable block"
    for p in DOCS:
        if not p.is_file():
            continue
        text = p.read_text()
        for n, line in enumerate(text.splitlines(), 1):
            if "<!--" in line and ("not-run" in line or "setup" in line):
                assert _MARKER.match(line), f"{p.relative_to(REPO)}:{n}: malformed marker {line!r}"


class _Workdirs:
    """One directory per Markdown file; blocks run once each, in file order."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: dict[str, bool] = {}  # block id -> passed

    def dir_for(self, path: Path) -> Path:
        d = self.root / str(path.relative_to(REPO)).replace("/", "__")
        if not d.exists():
            d.mkdir(parents=True)
            for entry in REPO.iterdir():
                if not entry.name.startswith(".") and entry.name not in NOT_LINKED:
                    (d / entry.name).symlink_to(entry)
        return d

    def env(self, d: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLPTL_", "RAY_ADDRESS"))}
        env["MLPTL_CACHE"] = str(d / ".mlptl-cache")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `mlptl` of this venv
        for k in ("MLPTL_MLEARN_DIR",):  # data that lives outside the repository
            if k in os.environ:
                env[k] = os.environ[k]
        return env

    def run(self, block: Block) -> None:
        for earlier in RUNNABLE:
            if earlier.path != block.path or earlier.line >= block.line:
                continue
            if earlier.id not in self.done:
                self._run_one(earlier)
            if not self.done[earlier.id]:
                pytest.fail(f"an earlier block of {block.path.name} failed: {earlier.id}")
        self._run_one(block)
        assert self.done[block.id]

    def _run_one(self, block: Block) -> None:
        d = self.dir_for(block.path)
        self.done[block.id] = False
        log = d / f".block-{block.line}.log"
        with log.open("w") as out:
            for script in [*block.setup, block.body]:
                out.write(f"$ {script}\n")
                out.flush()
                r = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", script],
                    cwd=d,
                    env=self.env(d),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=BLOCK_TIMEOUT,
                )
                if r.returncode != 0:
                    out.close()
                    tail = log.read_text()[-6000:]
                    pytest.fail(f"{block.id} exited with {r.returncode} in {d}:\n{tail}")
        self.done[block.id] = True


@pytest.fixture(scope="session")
def workdirs(tmp_path_factory) -> _Workdirs:
    return _Workdirs(tmp_path_factory.mktemp("docs"))


@pytest.mark.slow  # the README's blocks train models and run a smoke-sized study: minutes
@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_block_runs_as_written(block: Block, workdirs: _Workdirs):
    workdirs.run(block)
