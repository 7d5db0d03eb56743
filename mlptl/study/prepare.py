"""Phase 1 of a study: the target data and the source model, each made once and cached by its spec.

Both run as Ray tasks (so a cluster's driver node need not have the cores), and both are cached in the
study store: a resumed or second study with the same specs reuses them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlptl.study.spec import DataSource, Study

log = logging.getLogger(__name__)

__all__ = ["resolve_data", "pretrain", "pretrain_key"]


def resolve_data(source: DataSource, cache_dir: Path) -> Path:
    if source.generate is not None:
        from mlptl.data.generate import generate

        return generate(source.generate, cache_dir, progress=False)
    return source.resolved_path()


def pretrain_key(study: Study, source: str, data_hash: str) -> str:
    """The cache key of a pretrained model: everything that determines its weights."""
    p = study.pretraining_for(source)
    spec = {
        "element": source,
        "data": data_hash,
        "model": p.model if isinstance(p.model, str) else asdict(p.model),
        "epochs": p.max_epochs,
        "lr": p.lr,
        "train_size": p.train_size,
        "val": p.val_size,
        "test": p.test_size,
        "batch": p.batch_size,
        "seed": p.seed,
        "format": 1,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def pretrain(study: Study, storage: Path, source: str) -> tuple[Path, dict[str, Any]]:
    """The model of one source element: given, or trained once per spec and cached in the storage dir."""
    p = study.pretraining_for(source)
    if p.pretrained:
        return Path(os.path.expandvars(os.path.expanduser(p.pretrained))).resolve(), {"pretrained": "given"}
    from mlptl.data.readers import data_hash
    from mlptl.train import TrainSpec, train

    data = resolve_data(p.data, storage / "data")
    key = pretrain_key(study, source, data_hash(data))
    out = storage / "pretrained" / f"{source}-{key}"
    model = out / "model.nequip.zip"
    if model.is_file() and (out / "metrics.json").is_file():
        log.info("pretrained %s model found in cache: %s", source, model)
        return model, json.loads((out / "metrics.json").read_text())
    log.info("pretraining the %s model (%d epochs) into %s", source, p.max_epochs, out)
    spec = TrainSpec(
        element=source,
        data=str(data),
        out=str(out),
        test_data=str(p.data.resolved_test_path()) if p.data.test_path else None,
        lr=p.lr,
        max_epochs=p.max_epochs,
        train_size=p.train_size,
        val_size=p.val_size,
        test_size=p.test_size,
        batch_size=p.batch_size,
        seed=p.seed,
        model=p.model,
        compile=study.compile,  # not in the cache key: compiled and eager training give the same weights
    )
    from mlptl.evaluate.forces import evaluate_test_set

    result = train(spec)
    test = evaluate_test_set(result.model_path, result.test_path, element=source, out=out)
    return result.model_path, {**result.metrics, **test}
