"""A multi-element study end to end: a study file outside studies/, written with the public API only, extends a
one-element EMT Cu model to the Cu-Ni alloy under ``mlptl run``, to registered models and a report whose headline
gives the savings factor with its CI and the forgetting figure. Plus the chemistry's bad inputs, before Ray."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from mlptl.errors import InputError
from mlptl.study import DataSource, EvaluationSpec, MixtureSpec, Pretraining, SearchSpace, Study

STUDY_FILE = '''
from mlptl import main
from mlptl.data.generate import preset
from mlptl.study import DataSource, EvaluationSpec, MixtureSpec, Pretraining, PrunerSpec, SearchSpace, Study

STUDY = Study(
    name="cuni_extend",
    source_element="Cu",
    target_element="Cu,Ni",
    pretraining=Pretraining(
        data=DataSource(generate=preset("tiny", "Cu", reference="emt", frames_per_temperature=8,
                                        equilibration_steps=40, interval_steps=5)),
        max_epochs=3, lr=5e-3, val_size=3, test_size=4,
    ),
    target_data=DataSource(generate=MixtureSpec(
        reference="emt", compositions=("Cu0.75Ni0.25", "Cu0.5Ni0.5", "Ni"), temperatures=(300.0,),
        frames_per_condition=6, supercell=2, equilibration_steps=40, interval_steps=5,
    )),
    target_reference="emt",
    train_sizes=(2, 6),
    search=SearchSpace(lr=(2e-3, 1e-2), freeze_depth=(0,), new_element_init=("copy", "mean")),
    trials_per_cell=1,
    seeds=(0, 1),
    max_epochs=2,
    pruner=PrunerSpec(kind="none"),
    evaluation=EvaluationSpec(stability_temperatures=(), properties=True),
    val_size=3,
    test_size=4,
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
'''


@pytest.fixture(scope="module")
def extend_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi")
    path = root / "cuni_extend.py"
    path.write_text(textwrap.dedent(STUDY_FILE))
    proc = subprocess.run([sys.executable, "-m", "mlptl.cli", "run", str(path), "--storage", str(root / "st")],
                          capture_output=True, text=True, timeout=900, cwd=root)
    return root / "st", proc


def test_an_extend_study_runs_to_registered_models_and_a_report(extend_study):
    store, proc = extend_study
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (store / "reports" / "cuni_extend" / "report.md").read_text()
    headline = report.split("\n\n")[1]
    assert "savings factor 95 % CI" in headline and "Forgetting: on the source's own test frames" in headline
    metrics = json.loads((store / "reports" / "cuni_extend" / "headline.json").read_text())
    for key in ("savings_factor", "savings_factor.ci_low", "forgetting_ratio",
                "forgetting_ratio.ci_low", "source_model_forces_mae"):
        assert key in metrics, key
    assert metrics["forgetting_ratio"] > 0
    assert "Transfer started the target elements as: transfer-n2: Cu: copy of Cu; Ni:" in report
    assert "## Alloy properties against the reference" in report
    for cell in ("scratch-n2", "scratch-n6", "transfer-n2", "transfer-n6"):
        assert f"models:/cuni_extend-{cell}/1" in proc.stdout


def test_the_registered_alloy_model_speaks_both_elements_and_its_runs_record_forgetting(extend_study):
    from mlptl import tracking as T
    from mlptl.model.calculator import model_type_names
    from mlptl.tracking import resolve_model_uri

    store, proc = extend_study
    assert proc.returncode == 0
    uri = T.default_tracking_uri(store)
    assert model_type_names(resolve_model_uri("models:/cuni_extend-transfer-n2/1", uri)) == ["Cu", "Ni"]
    c = T.client(uri)  # a client, not mlflow.set_tracking_uri: that exports MLFLOW_TRACKING_URI to later tests
    final = c.search_runs([c.get_experiment_by_name("cuni_extend").experiment_id],
                          filter_string=f"tags.`{T.TAG_PHASE}` = 'final'")
    transfer = [r.data for r in final if r.data.params["init"] == "transfer"]
    assert len(final) == 8 and len(transfer) == 4
    assert all(d.metrics["source_forces_mae"] > 0 for d in transfer)
    # The source model scored on the same frames by every replicate: one number.
    assert len({d.metrics["source_model_forces_mae"] for d in transfer}) == 1
    assert {d.params["new_element_init"] for d in transfer} <= {"copy", "mean"}
    # Per element and per composition test errors, and the alloy properties against EMT, on every final run;
    # forgetting on transfer runs only.
    for r in final:
        for key in ("test_forces_mae.el_Ni", "test_forces_mae.comp_Cu0.5Ni0.5", "alloy_e_mix_mae", "alloy_a0_mae"):
            assert key in r.data.metrics, key
        assert ("source_forces_mae" in r.data.metrics) == (r.data.params["init"] == "transfer")


def _study(**kw) -> Study:
    base = dict(
        name="x", source_element="Cu", target_element="Cu,Ni",
        pretraining=Pretraining(data=DataSource(path=__file__)),
        target_data=DataSource(generate=MixtureSpec(reference="emt", compositions=("Cu0.5Ni0.5",), frames_per_condition=40)),
        evaluation=EvaluationSpec(stability_temperatures=(), properties=False),
    )
    return Study(**{**base, **kw})


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"target_element": "Cu,Qq"}, "study field target_element: unknown element 'Qq'"),
        ({"element_map": {"Au": "Cu"}}, "study field element_map: 'Au' is not a target element"),
        ({"element_map": {"Ni": "Au"}}, "study field element_map: Ni starts from 'Au', which no source has"),
    ],
)
def test_a_bad_chemistry_is_one_error_naming_the_field(kw, message):
    with pytest.raises(InputError, match=message):
        _study(**kw)
    with pytest.raises(InputError, match="study field search.new_element_init: choose from copy, mean, random"):
        SearchSpace(new_element_init=("zero",))


def test_data_of_another_chemistry_is_rejected_before_launch(tmp_path):
    study = _study(target_element="Cu,Au")
    with pytest.raises(InputError, match="study field target_data: generates Cu-Ni frames but the study element is Cu,Au"):
        study.validate(check_data=False)


def test_a_system_reference_a_study_file_registers_reaches_a_worker_process(tmp_path):
    """Ray ships a study's own references to workers pickled (cloudpickle), as a job field; a worker
    registers them before it labels, evaluates or trains anything. Here the worker is a fresh process."""
    import runpy

    import cloudpickle

    from mlptl.data import systems

    study_file = tmp_path / "my_study.py"
    study_file.write_text(textwrap.dedent('''
        from ase.calculators.emt import EMT
        from mlptl.data.systems import SystemReference, register_system_reference

        def my_emt():
            return EMT()

        register_system_reference(SystemReference("my-emt", ("Cu", "Ni"), my_emt,
                                                  crystals={"Cu": ("fcc", 3.59), "Ni": ("fcc", 3.52)}))
    '''))
    try:
        runpy.run_path(str(study_file), run_name="mlptl_study")
        shipped = [r for r in systems.shipped_references() if r.name == "my-emt"]  # other tests may register more
        assert len(shipped) == 1 and isinstance(shipped[0], systems.SystemReference)
        blob = tmp_path / "refs.pkl"
        blob.write_bytes(cloudpickle.dumps(shipped))
        worker = textwrap.dedent(f'''
            import pickle
            from ase.build import bulk
            from mlptl.data.systems import get_system_reference, register_shipped
            register_shipped(pickle.loads(open({str(blob)!r}, "rb").read()))
            atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
            atoms[0].symbol = "Ni"
            atoms.calc = get_system_reference("my-emt", ["Cu", "Ni"]).calculator()
            print(round(atoms.get_potential_energy(), 6))
        ''')
        r = subprocess.run([sys.executable, "-c", worker], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        assert abs(float(r.stdout.split()[-1])) < 10
    finally:
        systems._REGISTRY.pop(("my-emt", "Cu-Ni"), None)
