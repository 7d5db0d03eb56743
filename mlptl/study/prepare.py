"""Phase 1 of a study: the target data and the source model, each made once and cached by its spec.

Both run as Ray tasks (so a cluster's driver node need not have the cores), and both are cached in the
study store: a resumed or second study with the same specs reuses them, found by the driver itself
(``*_at_hand``) without starting a task.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlptl.fsutil import expand_path, fetch_shared, share
from mlptl.study.spec import DataSource, StoreLayout, Study
from mlptl.train.spec import METRICS_FILE, MODEL_FILE, TrainSpec

log = logging.getLogger(__name__)

__all__ = ["resolve_data", "data_at_hand", "pretrain", "pretrained_at_hand", "pretrain_key"]


def resolve_data(source: DataSource, cache_dir: Path) -> Path:
    """The data file of ``source``: a generated set is kept in ``cache_dir`` (the store's) and shared through
    the user cache, so that the same spec is labelled once per machine, not once per store."""
    if source.generate is not None:
        from mlptl.data.generate import DATA_CACHE, generate
        from mlptl.data.mixtures import MixtureSpec, generate_mixture

        make = generate_mixture if isinstance(source.generate, MixtureSpec) else generate
        fetch_shared(cache_dir / source.generate.filename(), DATA_CACHE)
        path = make(source.generate, cache_dir, progress=False)
        share(path, DATA_CACHE)
        return path
    return source.resolved_path()


#: Paths and switches that do not change a model's weights: left out of the cache key.
_NOT_IN_KEY = ("data", "out", "test_data", "compile")


def pretrain_key(spec: TrainSpec, data_hash: str) -> str:
    """The cache key of a pretrained model: everything of its training run that determines its weights."""
    key = {k: v for k, v in spec.to_dict().items() if k not in _NOT_IN_KEY}
    return hashlib.sha256(json.dumps({**key, "data": data_hash, "format": 2}, sort_keys=True).encode()).hexdigest()[:12]


def data_at_hand(source: DataSource, cache_dir: Path) -> Path | None:
    """The data file of ``source`` if nothing has to be made for it (a file given by path, or a generated set
    the store or the user cache holds), else None: labelling is a Ray task's work, finding a file is not."""
    from mlptl.data.generate import DATA_CACHE

    if source.generate is not None and not fetch_shared(cache_dir / source.generate.filename(), DATA_CACHE):
        return None
    return resolve_data(source, cache_dir)


def _pretraining_run(study: Study, storage: Path, source: str, data: Path) -> TrainSpec:
    """The training run of ``source``'s model on ``data``, in the store folder its cache key names."""
    from mlptl.data.readers import data_hash

    folder = StoreLayout(storage).pretrained
    spec = study.pretraining_for(source).train_spec(source, data, folder, compile=study.compile)
    return replace(spec, out=str(folder / f"{source}-{pretrain_key(spec, data_hash(data))}"))


def _cached_model(spec: TrainSpec) -> tuple[Path, dict[str, Any]] | None:
    out = Path(spec.out)
    model = out / MODEL_FILE
    if model.is_file() and (out / METRICS_FILE).is_file():
        log.info("pretrained %s model found in cache: %s", spec.element, model)
        return model, json.loads((out / METRICS_FILE).read_text())
    return None


def pretrained_at_hand(study: Study, storage: Path, source: str) -> tuple[Path, dict[str, Any]] | None:
    """The model of ``source`` (as :func:`pretrain` returns it) if nothing has to be trained: given by path,
    or in the store's cache for its spec (a resumed study, a second study in the store), else None."""
    p = study.pretraining_for(source)
    if p.pretrained:
        return expand_path(p.pretrained).resolve(), {"pretrained": "given"}
    data = data_at_hand(p.data, StoreLayout(storage).data)
    return None if data is None else _cached_model(_pretraining_run(study, storage, source, data))


def pretrain(study: Study, storage: Path, source: str) -> tuple[Path, dict[str, Any]]:
    """The model of one source element: given, or trained once per spec and cached in the storage dir."""
    p = study.pretraining_for(source)
    if p.pretrained:
        return expand_path(p.pretrained).resolve(), {"pretrained": "given"}
    spec = _pretraining_run(study, storage, source, resolve_data(p.data, StoreLayout(storage).data))
    cached = _cached_model(spec)
    if cached is not None:
        return cached
    log.info("pretraining the %s model (%d epochs) into %s", source, p.max_epochs, spec.out)
    from mlptl.evaluate.forces import evaluate_test_set
    from mlptl.train import train

    result = train(spec)
    test = evaluate_test_set(result.model_path, result.test_path, element=source, out=Path(spec.out))
    return result.model_path, {**result.metrics, **test}
