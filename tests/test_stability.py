"""MD stability: the SW references pass every criterion, and each criterion can trip on a broken potential.

Fast tests use short runs with a strong thermostat (friction 0.05/fs, so the crystal equilibrates in
~0.06 ps instead of ~0.3 ps) but the default thresholds; the slow test runs the default protocol for
longer. Broken potentials: SW without its three-body term (the diamond structure is unstable and
collapses, releasing heat), a short-bond Morse potential (atoms pull together), wrappers that scale
forces, return NaN or raise.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.morse import MorsePotential
from ase.geometry.rdf import get_rdf
from matscipy.calculators.manybody.explicit_forms.stillinger_weber import Stillinger_Weber_PRB_31_5262_Si

from mlptl.data.references import get_reference, stillinger_weber
from mlptl.errors import InputError
from mlptl.evaluate.rdf import rdf
from mlptl.evaluate.reference_rdf import clear_memory_cache, reference_rdf
from mlptl.evaluate.stability import RunResult, StabilityConfig, StabilityResult, run_stability

# Short protocol for fast tests; thresholds stay at their defaults.
FAST = StabilityConfig(
    temperatures=(300.0, 1500.0),
    replicas=1,
    steps=100,
    friction=0.05,
    rdf_window=0.04,
    rdf_equilibration=0.05,
    reference_steps=40,
)
# 8-atom cell for the criteria that do not need a converged RDF.
TINY = replace(FAST, temperatures=(300.0,), supercell=1, criteria=())


class Wrapped(Calculator):
    """Another calculator's energy and forces, deliberately broken: scaled, NaN or raising after n calls."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, inner: Calculator, *, force_scale: float = 1.0, nan_after: int | None = None,
                 raise_after: int | None = None):
        super().__init__()
        self.inner = inner
        self.force_scale = force_scale
        self.nan_after = nan_after
        self.raise_after = raise_after
        self.calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        if self.raise_after is not None and self.calls > self.raise_after:
            raise RuntimeError("model blew up")
        a = self.atoms.copy()
        a.calc = self.inner
        energy, forces = a.get_potential_energy(), a.get_forces() * self.force_scale
        if self.nan_after is not None and self.calls > self.nan_after:
            energy, forces = float("nan"), forces * np.nan
        self.results = {"energy": energy, "forces": forces}


def sw_si():
    return get_reference("Si", "sw").calculator()


def sw_si_without_three_body():
    return stillinger_weber({**Stillinger_Weber_PRB_31_5262_Si, "lambda1": 0.0})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("rdf-cache")


@pytest.fixture(scope="module")
def si_reference_rdf(cache):
    return reference_rdf("Si", FAST.temperatures, FAST, reference="sw", cache_dir=cache)


# ------------------------------------------------------------------ the references are stable
def test_sw_si_stable_by_every_criterion(si_reference_rdf, cache):
    res = run_stability(sw_si, "Si", FAST, reference="sw", reference_rdf=si_reference_rdf, progress=False,
                        cache_dir=cache)
    assert [r.criterion for r in res.runs] == [None, None], res.table()
    for s in res.by_temperature().values():
        assert s["stable_fraction"] == 1.0
        assert s["median_time_to_failure_ps"] == pytest.approx(FAST.duration_ps)
    for run in res.runs:  # margins, not just a pass: the run came nowhere near a threshold
        ex = run.extremes
        assert ex["max_rdf_deviation"] is not None and ex["max_rdf_deviation"] < 0.6 * res.thresholds["rdf_threshold"]
        assert ex["max_force"] < 0.6 * FAST.max_force
        assert ex["min_distance"] > 1.15 * res.thresholds["min_distance"]
        assert ex["max_temperature_ratio"] < 0.85 * FAST.max_temperature_factor


def test_sw_ge_stable_by_every_criterion(cache):
    res = run_stability(get_reference("Ge", "sw").calculator, "Ge", FAST, reference="sw", progress=False,
                        cache_dir=cache)
    assert res.stable_fraction == 1.0, res.table()
    assert all(r.extremes["max_rdf_deviation"] is not None for r in res.runs)  # the RDF was checked
    nn = 5.654 * math.sqrt(3) / 4
    assert res.thresholds["min_distance"] == pytest.approx(0.7 * nn, rel=1e-3)
    # lengths follow the crystal: Ge's RDF range and threshold are Si's calibrated 5.0 A and 1.0 A, scaled
    assert res.thresholds["rdf_rmax"] == pytest.approx(5.0 * nn / (5.431 * math.sqrt(3) / 4), rel=2e-3)
    assert res.thresholds["rdf_threshold"] == pytest.approx(1.0 * nn / (5.431 * math.sqrt(3) / 4), rel=2e-3)
    assert res.thresholds["n_atoms"] == 64 and res.reference == "sw" and res.notes == ()


@pytest.mark.slow
@pytest.mark.calibration  # ~20 min per element on 2 cores: run with `pytest -m calibration`, not in CI
@pytest.mark.parametrize("element", ["Si", "Ge"])
def test_sw_stable_default_protocol(element, cache):
    """Default protocol (thermostat, windows, thresholds), 2 replicas of 2 ps at 300/900/1500 K."""
    config = replace(StabilityConfig(), replicas=2, steps=2000, reference_steps=2000)
    res = run_stability(get_reference(element, "sw").calculator, element, config, reference="sw", progress=False,
                        cache_dir=cache)
    assert res.stable_fraction == 1.0, res.table()
    assert max(r.extremes["max_rdf_deviation"] for r in res.runs) < 0.5 * res.thresholds["rdf_threshold"]


# ------------------------------------------------------------------ each criterion can trip
def test_non_finite_trips_and_records_time():
    config = replace(TINY, check_every=5)
    res = run_stability(lambda: Wrapped(sw_si(), nan_after=13), "Si", config, reference="sw", progress=False)
    (run,) = res.runs
    assert run.criterion == "non_finite"
    # call 1 is the pre-run check of the crystal, call k + 1 is MD step k: NaN from step 13 on, caught
    # at once although the next regular check is at step 15
    assert run.time_to_failure_ps == pytest.approx(13 * config.timestep_fs / 1000)
    assert res.by_temperature()[300.0]["stable_fraction"] == 0.0


def test_force_trips_on_scaled_forces():
    # x1000 makes the dynamics far too stiff for a 1 fs step: forces explode within steps.
    config = replace(TINY, criteria=("force",))
    res = run_stability(lambda: Wrapped(sw_si(), force_scale=1000.0), "Si", config, reference="sw", progress=False)
    (run,) = res.runs
    assert run.criterion == "force"
    assert 0 < run.time_to_failure_ps < config.duration_ps
    assert "eV/A" in run.detail


def test_temperature_trips_when_the_crystal_collapses():
    # Without the three-body term the diamond structure is unstable; its collapse heats the cell.
    config = replace(TINY, criteria=("temperature",), max_temperature_factor=3.0, steps=400, friction=0.01)
    res = run_stability(sw_si_without_three_body, "Si", config, reference="sw", progress=False)
    (run,) = res.runs
    assert run.criterion == "temperature", run
    assert run.extremes["max_temperature_ratio"] > 3.0


def test_min_distance_trips_on_short_bonds():
    # A Morse potential with a 1.2 A bond pulls neighbours together far below the crystal's 2.35 A.
    def morse():
        return MorsePotential(epsilon=1.0, r0=1.2, rho0=2.0, rcut1=3.0, rcut2=3.5)

    config = replace(TINY, criteria=("min_distance",), steps=400)
    res = run_stability(morse, "Si", config, reference="sw", progress=False)
    (run,) = res.runs
    assert run.criterion == "min_distance", run
    assert run.extremes["min_distance"] < res.thresholds["min_distance"]


def test_rdf_trips_when_the_crystal_collapses(si_reference_rdf, cache):
    # Twice the default threshold: the collapse must be unmistakable, not a noisy short window.
    config = replace(FAST, temperatures=(1500.0,), criteria=("rdf",), steps=250, rdf_threshold=2.0)
    res = run_stability(sw_si_without_three_body, "Si", config, reference="sw", reference_rdf=si_reference_rdf,
                        progress=False, cache_dir=cache)
    (run,) = res.runs
    assert run.criterion == "rdf", run
    # no verdict before the first full window after equilibration (its first frame is at equilibration)
    first_verdict = config.rdf_equilibration + config.rdf_window - config.check_every * config.timestep_fs / 1000
    assert run.time_to_failure_ps >= first_verdict - 1e-9


def test_rdf_trips_against_another_elements_reference(si_reference_rdf):
    """The Si crystal against a 5%-expanded reference RDF: the first full window must trip."""
    r, g = si_reference_rdf[300.0]
    shifted = {300.0: (np.asarray(r) * 1.05, g)}
    config = replace(FAST, temperatures=(300.0,), criteria=("rdf",))
    res = run_stability(sw_si, "Si", config, reference="sw", reference_rdf=shifted, progress=False)
    (run,) = res.runs
    assert run.criterion == "rdf"
    first_verdict = config.rdf_equilibration + config.rdf_window - config.check_every * config.timestep_fs / 1000
    assert run.time_to_failure_ps == pytest.approx(first_verdict)


def test_calculator_error_mid_run_is_a_failure_but_a_broken_setup_raises():
    res = run_stability(lambda: Wrapped(sw_si(), raise_after=20), "Si", TINY, reference="sw", progress=False)
    assert res.runs[0].criterion == "error"
    assert "model blew up" in res.runs[0].detail
    with pytest.raises(RuntimeError, match="model blew up"):
        run_stability(lambda: Wrapped(sw_si(), raise_after=0), "Si", TINY, reference="sw", progress=False)


# ------------------------------------------------------------------ results, RDFs, config
def test_summary_counts_stable_runs_at_full_length_and_is_json():
    config = replace(StabilityConfig(), temperatures=(300.0, 900.0), replicas=3, steps=1000)
    runs = (
        RunResult(300.0, 0, (0, 300000, 0), None, None),
        RunResult(300.0, 1, (0, 300000, 1), 0.2, "force", "x"),
        RunResult(300.0, 2, (0, 300000, 2), None, None),
        RunResult(900.0, 0, (0, 900000, 0), 0.1, "rdf", "y"),
        RunResult(900.0, 1, (0, 900000, 1), 0.3, "rdf", "y"),
        RunResult(900.0, 2, (0, 900000, 2), 0.5, "temperature", "z"),
    )
    res = StabilityResult("Si", config, runs, thresholds={})
    s = res.by_temperature()
    assert s[300.0]["stable_fraction"] == pytest.approx(2 / 3)
    assert s[300.0]["median_time_to_failure_ps"] == pytest.approx(1.0)  # stable runs count as 1 ps
    assert s[900.0]["median_time_to_failure_ps"] == pytest.approx(0.3)
    assert s[900.0]["criteria"] == {"rdf": 2, "temperature": 1}
    d = json.loads(json.dumps(res.to_dict()))
    assert [x["temperature"] for x in d["summary"]] == [300.0, 900.0]
    assert len(res.table()) == 6 and {"temperature", "stable", "criterion"} <= set(res.table()[0])
    assert [row["temperature"] for row in res.summary_table()] == [300.0, 900.0]


def test_rdf_matches_ase():
    atoms = bulk("Si", "diamond", 5.431, cubic=True) * (2, 2, 2)
    atoms.rattle(0.05, seed=1)
    r, g = rdf(atoms, 5.0, 50)
    g_ase, r_ase = get_rdf(atoms, 5.0, 50)
    np.testing.assert_allclose(r, r_ase)
    np.testing.assert_allclose(g, g_ase, atol=1e-10)
    r2, g2 = rdf([atoms, atoms], 5.0, 50)
    np.testing.assert_allclose(g2, g)
    with pytest.raises(InputError, match="no frames"):
        rdf([], 5.0, 50)


def test_runs_that_end_within_their_equilibration_need_no_reference_rdf(tmp_path, monkeypatch):
    """A run samples RDF frames from the first checked step past the equilibration; one that ends before it has
    no RDF to compare, so no reference MD is run for it, and the result says the criterion was off."""
    config = StabilityConfig(temperatures=(300.0,), replicas=1, steps=40)  # 500 steps of equilibration at 1 fs
    assert config.equilibration_steps == 500 and not config.samples_rdf
    assert replace(config, steps=500).samples_rdf and not replace(config, steps=499).samples_rdf
    assert not replace(config, steps=509, rdf_equilibration=0.505).samples_rdf  # checked every 10: first at 510
    assert replace(config, steps=510, rdf_equilibration=0.505).samples_rdf

    def no_reference_md(*args, **kwargs):
        pytest.fail("a reference RDF was computed for runs that sample no RDF")

    monkeypatch.setattr("mlptl.evaluate.stability.compute_reference_rdf", no_reference_md)
    res = run_stability(sw_si, "Si", replace(config, supercell=1), reference="sw", progress=False,
                        cache_dir=tmp_path)
    assert res.stable_fraction == 1.0 and res.thresholds["rdf_threshold"] is None
    assert res.notes == ("rdf criterion off: runs of 40 steps end within their 500 steps of equilibration, "
                         "before any RDF frame",)
    assert not list(tmp_path.iterdir())


def test_reference_rdf_is_cached_on_disk(tmp_path):
    config = replace(TINY, temperatures=(300.0,), reference_steps=20, rdf_equilibration=0.01)
    first = reference_rdf("Si", [300.0], config, reference="sw", cache_dir=tmp_path)
    files = list(tmp_path.glob("rdf-Si-sw-300K-*.json"))
    assert len(files) == 1
    clear_memory_cache()
    again = reference_rdf("Si", [300.0], config, reference="sw", cache_dir=tmp_path)
    np.testing.assert_array_equal(first[300.0][1], again[300.0][1])
    other = reference_rdf("Si", [300.0], replace(config, seed=1), reference="sw", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("rdf-Si-sw-300K-*.json"))) == 2
    assert not np.array_equal(other[300.0][1], first[300.0][1])


def test_reference_rdf_from_frames_by_temperature():
    frames = []
    for t, a in ((300.0, 5.431), (900.0, 5.45)):
        atoms = bulk("Si", "diamond", a, cubic=True) * (2, 2, 2)
        atoms.info["temperature"] = t
        frames.append(atoms)
    out = reference_rdf("Si", [300.0, 900.0], TINY, reference=None, frames=frames)
    assert set(out) == {300.0, 900.0}
    assert not np.allclose(out[300.0][1], out[900.0][1])
    # without a crystal the range comes from the frames' own nearest-neighbour distance: 2.125 x 2.352 A
    (r, _), = reference_rdf("Si", [300.0], TINY, reference=None, frames=frames[:1]).values()
    assert r[-1] == pytest.approx(2.125 * 5.431 * math.sqrt(3) / 4 * (1 - 0.5 / TINY.rdf_nbins))
    with pytest.raises(InputError, match="no frames at 1500 K"):
        reference_rdf("Si", [1500.0], TINY, reference=None, frames=frames)
    with pytest.raises(InputError, match="no reference potential named"):
        reference_rdf("Si", [300.0], TINY, reference=None)


def test_bad_input():
    with pytest.raises(InputError):
        StabilityConfig(thermostat="berendsen")
    with pytest.raises(InputError):
        StabilityConfig(criteria=("energy_drift",))
    with pytest.raises(InputError):
        StabilityConfig(temperatures=())
    with pytest.raises(InputError, match="Xx"):
        run_stability(sw_si, "Xx", TINY, reference="sw", progress=False)
    with pytest.raises(InputError, match="no reference potential named for Si"):
        run_stability(sw_si, "Si", TINY, reference=None, progress=False)
    with pytest.raises(TypeError):  # the reference is never assumed
        run_stability(sw_si, "Si", TINY, progress=False)


def test_without_a_reference_the_rdf_criterion_is_off_and_said_so():
    """DFT-like case: no reference potential, a given crystal; the RDF criterion cannot run and the result says so."""
    crystal = bulk("Si", "diamond", 5.431, cubic=True)
    config = replace(FAST, temperatures=(300.0,), steps=60)
    res = run_stability(sw_si, "Si", config, reference=None, initial=crystal, progress=False)
    assert res.runs[0].stable and res.reference is None
    assert res.thresholds["rdf_threshold"] is None and res.thresholds["n_atoms"] == 64
    assert any("rdf criterion off" in n for n in res.notes)
    assert res.runs[0].extremes["max_rdf_deviation"] is None
    assert res.to_dict()["notes"] == list(res.notes)


def test_without_a_reference_an_rdf_from_frames_is_the_reference():
    """The frames' RDF (here: a 5 %-expanded crystal) is what the run is compared with, and it trips."""
    crystal = bulk("Si", "diamond", 5.431, cubic=True)
    frames = [bulk("Si", "diamond", 5.431 * 1.05, cubic=True) * (2, 2, 2)]
    frames[0].info["temperature"] = 300.0
    config = replace(FAST, temperatures=(300.0,), criteria=("rdf",))
    g_ref = reference_rdf("Si", config.temperatures, config, reference=None, frames=frames, initial=crystal)
    res = run_stability(sw_si, "Si", config, reference=None, initial=crystal, reference_rdf=g_ref, progress=False)
    assert res.runs[0].criterion == "rdf", res.table()
    assert res.notes == ()
    # a temperature the frames do not cover: off there, and noted
    res = run_stability(sw_si, "Si", replace(config, temperatures=(900.0,), steps=20), reference=None,
                        initial=crystal, reference_rdf=g_ref, progress=False)
    assert res.runs[0].stable and any("900 K" in n for n in res.notes)


def test_nose_hoover_runs():
    res = run_stability(sw_si, "Si", replace(TINY, thermostat="nose-hoover", steps=40,
                                             criteria=("temperature", "force", "min_distance")),
                        reference="sw", progress=False)
    assert res.runs[0].stable


def test_cli_stability_json(tmp_path, monkeypatch, capsys):
    from mlptl.cli import main

    monkeypatch.setenv("MLPTL_CACHE", str(tmp_path / "cache"))
    rc = main(["evaluate", "stability", "sw", "--element", "Si", "--temperatures", "300", "--replicas", "1",
               "--steps", "30", "--supercell", "1", "--criteria", "temperature,force,min_distance", "--json",
               "--no-progress", "--out", str(tmp_path / "out")])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["summary"][0]["temperature"] == 300.0 and d["summary"][0]["stable_fraction"] == 1.0
    assert (tmp_path / "out" / "time_to_failure.png").stat().st_size > 0
    assert (tmp_path / "out" / "stability.json").is_file()
    assert main(["evaluate", "stability", "sw", "--element", "Xx", "--steps", "10"]) == 2
    assert main(["evaluate", "stability", str(tmp_path / "missing.nequip.zip"), "--element", "Si"]) == 2
