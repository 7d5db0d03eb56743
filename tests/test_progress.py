"""One progress display for a study: live on a terminal, plain rate-limited lines in a pipe."""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlptl.study.progress import StudyProgress

REPO = Path(__file__).resolve().parents[1]

TINY = """
from mlptl import main
from mlptl.data.generate import preset
from mlptl.study import DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace, Study

STUDY = Study(
    name="progress",
    source_element="Si",
    target_element="Ge",
    pretraining=Pretraining(data=DataSource(generate=preset("tiny", "Si", reference="sw", frames_per_temperature=8)),
                            max_epochs=2, val_size=4, test_size=4),
    target_data=DataSource(generate=preset("tiny", "Ge", reference="sw", frames_per_temperature=10)),
    train_sizes=(4,),
    search=SearchSpace(lr=(1e-3, 1e-2), freeze_depth=(0, 1)),
    trials_per_cell=2,
    seeds=(0, 1),
    max_epochs=2,
    pruner=PrunerSpec(kind="none"),
    evaluation=EvaluationSpec(stability_temperatures=(), properties=False),
    resources=Resources(cpus_per_trial=1, max_failures=0),
    val_size=4,
    test_size=6,
    storage={storage!r},
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
"""


def _events(p: StudyProgress) -> None:
    p.plan("scratch-n4", search=2, final=2)
    p.plan("transfer-n4", search=2, final=2)
    p.input("Si model", "epoch 1/2")
    p.input("Si model", "epoch 1/2")  # unchanged: nothing new to say
    p.phase("scratch-n4", "search")
    p.search_trial("scratch-n4", "finished", 0.5)
    p.search_trial("scratch-n4", "pruned", 0.5)
    p.input("Si model", "ready")
    p.phase("transfer-n4", "search")
    p.search_trial("transfer-n4", "finished", 0.25)
    p.search_trial("transfer-n4", "failed", 0.25)
    for cell in ("scratch-n4", "transfer-n4"):
        p.phase(cell, "final")
        p.final_trial(cell, "finished")
        p.final_trial(cell, "finished")


def test_plain_lines_count_finals_and_never_repeat(caplog):
    with caplog.at_level("INFO", logger="mlptl.study.progress"):
        with StudyProgress("t", ["scratch-n4", "transfer-n4"], stream=io.StringIO(), min_interval=0) as p:
            _events(p)
    lines = [r.getMessage().split("] ", 1)[1] for r in caplog.records]
    assert len(lines) == len(set(lines)), "a line repeated unchanged counts"
    assert "final replicates 4/4 (0 failed)" in lines[-1]
    assert "search 4/4 (1 pruned, 1 failed)" in lines[-1]
    assert "scratch-n4 (done)" in lines[-1] and "transfer-n4 (done)" in lines[-1]
    assert "best val 0.2500 eV/A" in lines[-1]


def test_phase_one_lines_do_not_show_counts_that_are_not_made_yet():
    """Before the runner counts a cell's trials (phase 1), the display says so instead of 'search 0/0'."""
    p = StudyProgress("t", ["scratch-n4", "transfer-n4"], stream=io.StringIO(), tty=False)
    p.input("Ge data", "labelling 20 frames")
    assert p.line() == "Ge data: labelling 20 frames | trials not counted yet | scratch-n4 (waiting); transfer-n4 (waiting)"
    p.plan("scratch-n4", search=2, final=1)
    assert "search 0/2 (0 pruned, 0 failed)" in p.line() and "scratch-n4 (waiting) search 0/2, final 0/1" in p.line()


def test_plain_lines_are_rate_limited_and_the_last_state_is_written(caplog):
    with caplog.at_level("INFO", logger="mlptl.study.progress"):
        with StudyProgress("t", ["scratch-n4", "transfer-n4"], stream=io.StringIO(), min_interval=3600) as p:
            _events(p)
            assert len(caplog.records) == 1  # the first change; the rest waits for the interval
            p.tick()
            assert len(caplog.records) == 1
    assert len(caplog.records) == 2 and "final replicates 4/4" in caplog.records[-1].getMessage()


def test_copies_made_by_ray_tune_are_the_live_display():
    """Ray Tune pickles and deep-copies its searcher and callbacks: the copies must update the one display."""
    import copy
    import pickle

    with StudyProgress("t", ["a"], stream=io.StringIO(), tty=False) as p:
        assert copy.deepcopy(p) is p and pickle.loads(pickle.dumps(p)) is p
    orphan = pickle.loads(pickle.dumps(p))  # after the study, or in another process: an inert stand-in
    assert orphan is not p and list(orphan.cells) == ["a"]


def _read_all(fd: int, proc: subprocess.Popen, timeout: float) -> str:
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 1.0)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk and proc.poll() is not None:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out.decode(errors="replace")


@pytest.mark.slow
def test_a_study_in_a_pipe_and_on_a_terminal(tmp_path):
    """The same tiny study twice (the second resumes nothing: a new store): plain lines in a pipe, the live
    display on a pseudo-terminal; both count the final replicates. The two run at the same time (each
    study's start-up and phase 1 leave a core idle): the piped one is read by a thread."""
    piped = tmp_path / "piped.py"
    piped.write_text(TINY.format(storage=str(tmp_path / "s1")))
    # its own empty user cache: it labels its data (the first line says so) rather than finding it at hand
    pipe_proc = subprocess.Popen([sys.executable, str(piped)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env={**os.environ, "MLPTL_CACHE": str(tmp_path / "cache")})
    piped_out: dict[str, str] = {}

    def communicate() -> None:
        try:
            piped_out["stdout"], piped_out["stderr"] = pipe_proc.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            pipe_proc.kill()
            piped_out["stdout"], piped_out["stderr"] = pipe_proc.communicate()
            piped_out["timeout"] = "yes"

    reader = threading.Thread(target=communicate, daemon=True)
    reader.start()
    try:
        live = tmp_path / "live.py"
        live.write_text(TINY.format(storage=str(tmp_path / "s2")))
        master, slave = os.openpty()
        proc = subprocess.Popen([sys.executable, str(live)], stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        try:
            text = _read_all(master, proc, 900)
            live_code = proc.wait(timeout=60)
        finally:
            os.close(master)
            if proc.poll() is None:
                proc.kill()
        reader.join(timeout=960)
    finally:
        if pipe_proc.poll() is None:
            pipe_proc.kill()
        reader.join(timeout=60)

    stderr = piped_out.get("stderr", "")
    assert "timeout" not in piped_out and pipe_proc.returncode == 0, stderr[-3000:]
    lines = [ln.split("] ", 1)[1] for ln in stderr.splitlines() if "mlptl.study.progress:" in ln]
    assert lines, stderr[-3000:]
    assert len(lines) == len(set(lines)), "a progress line repeated unchanged counts"
    assert "final replicates 4/4 (0 failed)" in lines[-1] and "search 4/4" in lines[-1], lines[-1]
    assert lines[0].startswith("Ge data: labelling 20 frames") and "Si model: ready" in lines[-1]
    assert "\r" not in stderr  # no terminal control in a pipe

    assert live_code == 0, text[-3000:]
    assert "\r" in text, "no live display on a terminal"
    assert re.search(r"study progress: 100%\|[^|]*\| 8/8", text), text[-3000:]
    assert "transfer-n4" in text and "final 2/2" in text and "Si model: ready" in text
    assert "mlptl.study.progress:" not in text  # the live display instead of the plain lines
