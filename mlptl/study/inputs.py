"""Phase 1 of a study as futures: the target data, each source model and the reference RDF start together as
Ray tasks, and each is read when it is done, so work starts when its inputs exist, not when a phase ends.

The search starts once the target data is there: scratch cells search at once, a transfer cell as soon
as its source model is ready (:meth:`Inputs.source`), and a cell's final replicates wait for the
reference RDF (:meth:`Inputs.rdf_ready`). Nothing here blocks the Ray Tune loop except :meth:`target`
and :meth:`wait_all`; a task that failed raises its error (bad input stays one line) from the next poll.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlptl import metrics as M
from mlptl import tracking as T
from mlptl.train.spec import HISTORY_FILE

if TYPE_CHECKING:
    from mlptl.study.runner import _Run

log = logging.getLogger(__name__)

__all__ = ["Inputs"]


class Inputs:
    """The Ray tasks of phase 1 for one study run, and what each gave."""

    def __init__(self, run: _Run):
        self.run = run
        self._sources: dict[str, Any] = {}  # source element -> task, until read
        self._rdf = None
        self._target = None
        self._started = time.time()

    def start(self) -> None:
        import ray

        from mlptl.study.prepare import data_at_hand, pretrain, pretrained_at_hand, resolve_data
        from mlptl.study.tune import init_ray, run_task

        run, s = self.run, self.run.study
        init_ray()
        cpus, refs = s.resources.cpus_per_trial, run.references
        # What the store or the user cache already holds (a resumed study, data a second study shares) is
        # read here, as a finished future; a task would start a worker to find a file (seconds per study).
        data = data_at_hand(s.target_data, run.stores.data)
        if data is not None:
            self._target = ray.put(data)
        else:
            self._target = run_task(resolve_data, s.target_data, run.stores.data, num_cpus=cpus, references=refs)
            gen = s.target_data.generate
            run.progress.input(f"{s.target_element} data", f"labelling {gen.n_frames} frames" if gen else "reading")
        if "transfer" in s.inits:
            gpus = 1 if s.resources.gpus_per_trial else 0  # else it would use its node's GPUs unaccounted
            for src in s.sources:
                model = pretrained_at_hand(s, run.storage, src)
                if model is not None:
                    self._sources[src] = ray.put(model)
                    continue
                self._sources[src] = run_task(pretrain, s, run.storage, src, num_cpus=cpus, num_gpus=gpus, references=refs)
                run.progress.input(f"{src} model", "starting")
        reference, cfg = s.reference_for_target(), s.evaluation.stability()
        if cfg is not None and reference is not None and cfg.samples_rdf:  # else no run has an RDF to compare
            # The reference RDF (MD with the reference potential), cached, before any final trial needs it; for
            # several elements with partial RDFs, in the alloy the final evaluation starts from (the same
            # compositions: evaluate_model gets them from the study too).
            from mlptl.evaluate.reference_rdf import reference_rdf

            comps = s.alloy_compositions() or None
            self._rdf = run_task(reference_rdf, s.target_element, cfg.temperatures, cfg, reference=reference,
                                 cache_dir=str(run.stores.cache), num_cpus=cpus, references=refs,
                                 compositions=comps)
            run.progress.input("reference RDF", "running")

    # ------------------------------------------------------------ reading results
    def target(self) -> None:
        """Wait for the target data (every trial needs it) and record it on the study's run."""
        from mlptl.data.readers import data_hash
        from mlptl.study.tune import get

        run, s, c = self.run, self.run.study, self.run.client
        while not self._done(self._target):
            self.poll()
            time.sleep(1.0)
        run.target_data = get(self._target)
        run.target_test = s.target_data.resolved_test_path()
        run.progress.input(f"{s.target_element} data", "ready")
        c.set_tag(run.parent_id, T.TAG_TARGET_DATA, str(run.target_data))
        c.set_tag(run.parent_id, T.TAG_TARGET_DATA_SHA, data_hash(run.target_data))
        if run.target_test:
            c.set_tag(run.parent_id, T.TAG_TARGET_TEST_SHA, data_hash(run.target_test))

    def source(self, src: str) -> bool:
        """Whether the model of source element ``src`` is ready (read, and recorded, when it is). Asked for
        every cell at every suggestion of the search: a model already read is answered without polling."""
        if src not in self.run.pretrained:
            self.poll()
        return src in self.run.pretrained

    def rdf_ready(self) -> bool:
        if self._rdf is not None:
            self.poll()
        return self._rdf is None

    def wait_all(self) -> None:
        """Block until every phase-1 task has finished (a resumed study with no search left needs them)."""
        while self._sources or self._rdf is not None:
            self.poll()
            if self._sources or self._rdf is not None:
                time.sleep(1.0)

    def poll(self) -> None:
        """Read every finished task; show the running pretrainings' epochs."""
        from mlptl.study.tune import get

        run = self.run
        for src, task in list(self._sources.items()):
            if not self._done(task):
                run.progress.input(f"{src} model", self._epochs(src))
                continue
            del self._sources[src]
            self._record_source(src, *get(task))
        if self._rdf is not None and self._done(self._rdf):
            get(self._rdf)
            self._rdf = None
            run.progress.input("reference RDF", "ready")

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _done(task) -> bool:
        import ray

        ready, _ = ray.wait([task], timeout=0)
        return bool(ready)

    def _epochs(self, src: str) -> str:
        """The epoch a pretraining has reached, from its history file (training writes one row per epoch)."""
        p = self.run.study.pretraining_for(src)
        runs = sorted((f for f in self.run.stores.pretrained.glob(f"{src}-*/{HISTORY_FILE}")
                       if f.stat().st_mtime >= self._started), key=lambda f: f.stat().st_mtime)
        if not runs:
            return "labelling data" if p.data is not None and p.data.generate is not None else "starting"
        epochs = max(0, len(runs[-1].read_text().splitlines()) - 1)
        return f"epoch {epochs}/{p.max_epochs}"

    def _record_source(self, src: str, path: Path, metrics: dict[str, Any]) -> None:
        run, c = self.run, self.run.client
        run.pretrained[src] = path
        run.progress.input(f"{src} model", "ready")
        suffix = f".{src}" if len(run.study.sources) > 1 and "transfer" in run.study.inits else ""
        c.set_tag(run.parent_id, T.TAG_PRETRAINED + suffix, str(path))
        numeric = {f"{M.PRETRAIN_PREFIX}{k}{suffix}": v for k, v in metrics.items() if isinstance(v, int | float) and "." not in k}
        T.log_metrics(c, run.parent_id, numeric)
        log.info("source model %s ready: %s", src, path)
