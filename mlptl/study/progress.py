"""One progress display for a whole study: phase 1's inputs, then every cell's search and final replicates.

On a terminal it is a live tqdm display (an overall bar with its ETA, a line per input and per cell); log
records go above it. Elsewhere (CI, ``ray submit`` logs, a pipe) it is plain log lines, at most one per
``min_interval`` seconds, and never the same counts twice: a line is written when something changed.
"""

from __future__ import annotations

import io
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import IO

log = logging.getLogger(__name__)

__all__ = ["StudyProgress"]

#: Cell phases, in order: no input yet (a transfer cell before its source model), searching, re-training
#: its best as replicates, done.
PHASES = ("waiting", "search", "final", "done")


@dataclass
class _Cell:
    phase: str = "waiting"
    search_total: int = 0
    final_total: int = 0
    search: dict[str, int] = field(default_factory=lambda: {"finished": 0, "pruned": 0, "failed": 0})
    final: dict[str, int] = field(default_factory=lambda: {"finished": 0, "failed": 0})
    best: float | None = None
    planned: bool = False  # the runner has counted its work (after phase 1's inputs are known)

    def text(self) -> str:
        if not self.planned:
            return f"({self.phase})"
        s, f = self.search, self.final
        out = f"({self.phase}) search {sum(s.values())}/{self.search_total}"
        if s["pruned"] or s["failed"]:
            out += f" ({s['pruned']} pruned, {s['failed']} failed)"
        out += f", final {sum(f.values())}/{self.final_total}"
        if f["failed"]:
            out += f" ({f['failed']} failed)"
        if self.best is not None and math.isfinite(self.best):
            out += f", best val {self.best:.4f} eV/A"
        return out


class StudyProgress:
    """Counts and renders a study's progress; the runner calls it, it never calls back."""

    def __init__(self, name: str, cells: list[str], *, stream: IO[str] | None = None, tty: bool | None = None,
                 min_interval: float = 15.0):
        self.name = name
        self.cells = {c: _Cell() for c in cells}
        self.inputs: dict[str, str] = {}
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.min_interval = min_interval
        self.started = time.monotonic()
        self._last_line = ""
        self._last_emit = -math.inf
        self._pending = False
        self._bars: list = []
        self._redirect = None

    # ------------------------------------------------------------ what the runner reports
    def plan(self, cell: str, *, search: int | None = None, final: int | None = None) -> None:
        """The work still to do in ``cell`` in this run (a resumed study counts only what is left)."""
        c = self.cells[cell]
        c.planned = True
        if search is not None:
            c.search_total = search
        if final is not None:
            c.final_total = final
        self._changed()

    def input(self, name: str, state: str) -> None:
        """Phase 1: an input's state, e.g. ``Si model`` -> ``epoch 5/15``."""
        if self.inputs.get(name) != state:
            self.inputs[name] = state
            self._changed()

    def phase(self, cell: str, phase: str) -> None:
        c = self.cells[cell]
        if PHASES.index(phase) > PHASES.index(c.phase):
            c.phase = phase
            self._changed()

    def search_trial(self, cell: str, outcome: str, best: float | None) -> None:
        c = self.cells[cell]
        c.search[outcome] = c.search.get(outcome, 0) + 1
        c.best = best
        self._changed()

    def final_trial(self, cell: str, outcome: str) -> None:
        c = self.cells[cell]
        c.final["finished" if outcome == "finished" else "failed"] += 1
        if sum(c.final.values()) >= c.final_total and c.phase != "waiting":
            c.phase = "done"
        self._changed()

    def tick(self) -> None:
        """Called often (each Ray Tune step): writes a line held back by the rate limit."""
        if self.tty:
            self._render()
        elif self._pending and time.monotonic() - self._last_emit >= self.min_interval:
            self._emit()

    # ------------------------------------------------------------ totals and rendering
    def totals(self) -> tuple[int, int]:
        """(work units done, work units planned): search trials and final replicates."""
        done = sum(sum(c.search.values()) + sum(c.final.values()) for c in self.cells.values())
        total = sum(c.search_total + c.final_total for c in self.cells.values())
        return done, max(total, done)

    def eta_s(self) -> float | None:
        done, total = self.totals()
        if done == 0:
            return None
        return (time.monotonic() - self.started) / done * (total - done)

    def line(self) -> str:
        """The whole study in one line (what a non-terminal gets)."""
        s = {k: sum(c.search.get(k, 0) for c in self.cells.values()) for k in ("finished", "pruned", "failed")}
        fin = {k: sum(c.final[k] for c in self.cells.values()) for k in ("finished", "failed")}
        s_total = sum(c.search_total for c in self.cells.values())
        f_total = sum(c.final_total for c in self.cells.values())
        if any(c.planned for c in self.cells.values()):
            parts = [f"search {sum(s.values())}/{s_total} ({s['pruned']} pruned, {s['failed']} failed)",
                     f"final replicates {sum(fin.values())}/{f_total} ({fin['failed']} failed)"]
        else:  # phase 1: the trials are counted once the study's stores and inputs are known
            parts = ["trials not counted yet"]
        if self.inputs:
            parts.insert(0, ", ".join(f"{k}: {v}" for k, v in self.inputs.items()))
        cells = "; ".join(f"{k} {c.text()}" for k, c in self.cells.items())
        return " | ".join(parts) + " | " + cells

    def _changed(self) -> None:
        self._pending = True
        if self.tty:
            self._render()
        elif time.monotonic() - self._last_emit >= self.min_interval:
            self._emit()

    def _emit(self) -> None:
        text = self.line()
        self._pending = False
        if text == self._last_line:
            return
        self._last_line, self._last_emit = text, time.monotonic()
        eta = self.eta_s()
        log.info("[%5.0f s%s] %s", time.monotonic() - self.started,
                 f", ETA {eta / 60:.0f} min" if eta is not None else "", text)

    def _render(self) -> None:
        if not self._bars:
            return
        done, total = self.totals()
        bar = self._bars[0]
        bar.total = total
        bar.n = done
        bar.set_postfix_str(", ".join(f"{k}: {v}" for k, v in self.inputs.items()), refresh=False)
        for row, (name, c) in zip(self._bars[1:], self.cells.items()):
            row.set_description_str(f"  {name:<20} {c.text()}", refresh=False)
        for b in self._bars:
            b.refresh()

    # ------------------------------------------------------------ lifetime
    def __reduce__(self):
        # Ray Tune pickles and copies its searcher and callbacks (and so this): every copy made in this
        # process is this same object, so there is one display; elsewhere a copy is an inert stand-in.
        return _live, (id(self), self.name, tuple(self.cells))

    def __enter__(self) -> StudyProgress:
        _LIVE[id(self)] = self
        log.debug("progress of study %s: %s", self.name, "a live display" if self.tty else "plain lines")
        if self.tty:
            from tqdm.auto import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            # A terminal that reports no size (a bare pseudo-terminal) would get no bars: assume 100 x 50.
            width = {} if _columns(self.stream) > 0 else {"ncols": 100, "nrows": 50}
            self._bars = [tqdm(total=0, desc=f"study {self.name}", unit="trial", file=self.stream, position=0,
                               dynamic_ncols=not width, leave=True, **width)]
            self._bars += [tqdm(total=0, bar_format="{desc}", file=self.stream, position=i + 1, leave=True, **width)
                           for i in range(len(self.cells))]
            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
            self._render()
        return self

    def __exit__(self, *exc) -> None:
        if self.tty:
            self._render()
            for b in reversed(self._bars):
                b.close()
            if self._redirect is not None:
                self._redirect.__exit__(*exc)
        elif self._pending:
            self._emit()
        _LIVE.pop(id(self), None)


_LIVE: dict[int, StudyProgress] = {}


def _columns(stream: IO[str]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return 0


def _live(key: int, name: str, cells: tuple[str, ...]) -> StudyProgress:
    live = _LIVE.get(key)
    return live if live is not None else StudyProgress(name, list(cells), stream=io.StringIO(), tty=False)
