"""A first SIGINT/SIGTERM in the study driver raises between its store calls, never inside one. Raised inside
MLflow's sqlite write, it left that write's lock held by a connection its traceback kept alive, and the
study's own record of the interruption failed on "database is locked" after 20 s (CI, 2026-12-07)."""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from mlptl import tracking as T
from mlptl.errors import Interrupted
from mlptl.study.signals import held, stop_on_signals


def test_a_signal_during_a_store_write_raises_once_the_write_is_done(tmp_path):
    store = tmp_path / "store"
    c = T.client(T.default_tracking_uri(store), guard=held)  # the driver's client (mlptl.study.runner)
    exp = T.ensure_experiment(c, "signals", store / T.ARTIFACTS_DIR)
    run_id = c.create_run(exp, run_name="study", tags={"state": "running"}).info.run_id
    seen: list[str] = []

    def signal_inside_the_write(conn, cursor, statement, *_):
        # as in CI: the run's UPDATE has run (sqlite's write lock is taken) and the next statement of the same
        # transaction (a lazy load) is under way when the signal comes
        seen.append(statement.lstrip().split()[0].upper())
        if seen[-2:-1] == ["UPDATE"]:
            signal.raise_signal(signal.SIGTERM)  # Python runs the handler at its next bytecode, in the write

    event.listen(Engine, "after_cursor_execute", signal_inside_the_write)
    try:
        with stop_on_signals():
            with pytest.raises(Interrupted):
                c.set_terminated(run_id, "FINISHED")
            assert "UPDATE" in seen[:-1], seen
            t0 = time.monotonic()
            c.set_tag(run_id, "state", "interrupted")  # the interruption's own record, as the runner writes it
            waited = time.monotonic() - t0
    finally:
        event.remove(Engine, "after_cursor_execute", signal_inside_the_write)
    assert waited < 5, f"the record of the interruption waited {waited:.0f} s for a lock"
    assert c.get_run(run_id).data.tags["state"] == "interrupted"
