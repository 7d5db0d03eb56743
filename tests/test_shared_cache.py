"""A study keeps the data sets and reference RDFs it used in its own store, and shares them through the user
cache (``$MLPTL_CACHE``): a second store with the same specs labels and simulates nothing again, and a user
cache that cannot be written costs only the sharing."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

from mlptl.data.generate import preset
from mlptl.evaluate import reference_rdf as rdf_module
from mlptl.evaluate.stability_config import StabilityConfig
from mlptl.study import DataSource
from mlptl.study.prepare import resolve_data

SPEC = preset("tiny", "Ge", reference="sw", frames_per_temperature=2)
RDF_CONFIG = replace(StabilityConfig(), temperatures=(300.0,), reference_steps=20, rdf_equilibration=0.01)


def _generated(caplog) -> bool:
    return any(r.getMessage().startswith("generating") for r in caplog.records)


def test_a_second_store_takes_the_data_set_the_first_one_labelled(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MLPTL_CACHE", str(tmp_path / "user"))
    caplog.set_level(logging.INFO, logger="mlptl")
    first = resolve_data(DataSource(generate=SPEC), tmp_path / "a" / "data")
    assert _generated(caplog) and first.parent == tmp_path / "a" / "data"
    assert (tmp_path / "user" / "data" / SPEC.filename()).read_bytes() == first.read_bytes()

    caplog.clear()
    second = resolve_data(DataSource(generate=SPEC), tmp_path / "b" / "data")
    assert not _generated(caplog), "the second store labelled the data set again"
    assert second == tmp_path / "b" / "data" / SPEC.filename()  # the store holds its own copy
    assert second.read_bytes() == first.read_bytes()

    other = replace(SPEC, seed=SPEC.seed + 1)  # another spec is another file: labelled, never confused
    caplog.clear()
    assert resolve_data(DataSource(generate=other), tmp_path / "b" / "data").name != second.name
    assert _generated(caplog)


def test_a_user_cache_that_cannot_be_written_costs_only_the_sharing(tmp_path, monkeypatch, caplog):
    (tmp_path / "a-file").write_text("not a directory")
    monkeypatch.setenv("MLPTL_CACHE", str(tmp_path / "a-file" / "cache"))  # mkdir below it fails, root or not
    caplog.set_level(logging.WARNING, logger="mlptl")
    path = resolve_data(DataSource(generate=SPEC), tmp_path / "store" / "data")
    assert path.is_file()
    assert any("cannot share" in r.getMessage() for r in caplog.records)
    rdf = rdf_module.reference_rdf("Ge", [300.0], RDF_CONFIG, reference="sw", cache_dir=tmp_path / "store" / "cache")
    assert set(rdf) == {300.0}


def test_a_second_store_takes_the_reference_rdf_the_first_one_computed(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPTL_CACHE", str(tmp_path / "user"))
    rdf_module.clear_memory_cache()  # an RDF this process already has is not read or written at all
    first = rdf_module.reference_rdf("Ge", [300.0], RDF_CONFIG, reference="sw", cache_dir=tmp_path / "a")
    assert len(list((tmp_path / "user" / "rdf").glob("rdf-Ge-sw-300K-*.json"))) == 1
    rdf_module.clear_memory_cache()

    def no_md(*args, **kwargs):
        pytest.fail("the reference MD ran again for a second store")

    monkeypatch.setattr(rdf_module, "_from_md", no_md)
    again = rdf_module.reference_rdf("Ge", [300.0], RDF_CONFIG, reference="sw", cache_dir=tmp_path / "b")
    np.testing.assert_array_equal(again[300.0][1], first[300.0][1])
    assert len(list((tmp_path / "b").glob("rdf-Ge-sw-300K-*.json"))) == 1  # the store holds its own copy


def test_what_a_store_or_the_user_cache_holds_is_at_hand_without_a_task(tmp_path, monkeypatch, caplog):
    """A study's driver reads the target data and a source model that need no making itself
    (``*_at_hand``), where a Ray task would start a worker process only to find a file."""
    from mlptl.study.prepare import data_at_hand, pretrain, pretrained_at_hand
    from mlptl.study.sections import Pretraining

    monkeypatch.setenv("MLPTL_CACHE", str(tmp_path / "user"))
    caplog.set_level(logging.INFO, logger="mlptl")
    source = DataSource(generate=SPEC)
    assert data_at_hand(source, tmp_path / "a" / "data") is None, "nothing labelled yet: a task's work"
    assert not _generated(caplog), "asking whether the data is at hand labelled it"
    made = resolve_data(source, tmp_path / "a" / "data")
    assert data_at_hand(source, tmp_path / "a" / "data") == made  # in the store
    assert data_at_hand(source, tmp_path / "b" / "data") == tmp_path / "b" / "data" / SPEC.filename()  # shared
    assert sum(r.getMessage().startswith("generating") for r in caplog.records) == 1, "labelled twice"
    assert data_at_hand(DataSource(path=str(made)), tmp_path / "c") == made  # a file by path

    from _studies import tiny_study

    study = replace(tiny_study(tmp_path), target_element="Ge", source_element="Si",
                    pretraining=Pretraining(data=DataSource(generate=preset("tiny", "Si", reference="sw", frames_per_temperature=3)),
                                            max_epochs=1, val_size=2, test_size=2))
    store = tmp_path / "store"
    assert pretrained_at_hand(study, store, "Si") is None, "no model yet: a task trains it"
    model, metrics = pretrain(study, store, "Si")
    assert pretrained_at_hand(study, store, "Si") == (model, metrics)
    longer = replace(study, pretraining=replace(study.pretraining_for("Si"), max_epochs=2))
    assert pretrained_at_hand(longer, store, "Si") is None, "another spec is another model"
    given = replace(study, pretraining=Pretraining(pretrained=str(model)))
    assert pretrained_at_hand(given, tmp_path / "other", "Si") == (model, {"pretrained": "given"})
