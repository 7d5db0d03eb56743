"""The report, built from a real (small, synthetic) MLflow store: its first paragraph, HTML and plots.

The runs are created with ``MlflowClient`` in a temporary sqlite store with the tags, params and metrics a
study writes; the numbers in the report's first paragraph must be those the statistics functions give.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from mlptl import metrics as M
from mlptl import tracking as T
from mlptl.report import answer_text, build_report, final_frame, headline_metrics, load_runs
from mlptl.report import statistics as S
from mlptl.report.plots import learning_curve_figure
from mlptl.report.runs import replicate_info
from mlptl.report.tables import analyse, fmt, fmt_ci, fmt_p, sources_table

N_BOOT = 1000  # the report's CIs with fewer resamples: fast, and the same function either way


def make_study(uri, path, study="synth", sizes=(4, 8, 16), reps=5, factor=0.5, with_replicate=True,
               sources=(None,), sigma=0.08, seed=0, selection=None, final_inits=("scratch", "transfer")):
    """A study's runs: scratch err = 0.6 n^-0.5, transfer = factor x that, log-normal replicate noise
    shared in part by the scratch and transfer runs of one replicate (they share a data subset)."""
    rng = np.random.default_rng(seed)
    c = MlflowClient(tracking_uri=uri)
    exp = c.create_experiment(study, artifact_location=(path / "artifacts").as_uri())
    parent = c.create_run(exp, tags={T.TAG_ROLE: "study", T.TAG_STUDY: study}).info.run_id

    def run(cell, phase, key, params, metrics, status="finished", extra_tags=None):
        tags = {T.TAG_ROLE: "trial", T.TAG_STUDY: study, T.TAG_TRIAL_KEY: key, T.TAG_CELL: cell, T.TAG_PHASE: phase,
                T.TAG_STATUS: status, T.TAG_PARENT: parent, "mlptl.epochs_run": "4", **(extra_tags or {})}
        r = c.create_run(exp, run_name=key, tags=tags).info.run_id
        c.log_batch(r, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()],
                    params=[Param(k, str(v)) for k, v in params.items()])

    for n in sizes:
        for rep in range(reps):
            shared = rng.normal(0, sigma)
            for src in sources:
                for init in ("scratch", "transfer"):
                    if (init == "scratch" and src != sources[0]) or init not in final_inits:
                        continue
                    f = factor if init == "transfer" else 1.0
                    if src == "C" and init == "transfer":
                        f = 0.9  # a worse source, for the ranking
                    err = 0.6 * f * n**-0.5 * np.exp(0.7 * shared + rng.normal(0, sigma * 0.7))
                    cell = f"{init}-n{n}" if src is None or init == "scratch" else f"{src}-{init}-n{n}"
                    params = dict(init=init, train_size=n, seed=rep, element="Ge", lr=1e-3, max_epochs=4,
                                  freeze_depth=0, cell=cell, phase="final")
                    if with_replicate:
                        params["replicate"] = rep
                    if src is not None and init == "transfer":
                        params["source_element"] = src
                    metrics = {M.TEST_FORCES_MAE: err, f"{M.TEST_FORCES_MAE}.T300": err * 0.8,
                               f"{M.TEST_FORCES_MAE}.T900": err * 1.2, M.TEST_ENERGY_PER_ATOM_MAE: err / 20,
                               "best_val_forces_mae": err * 1.05, "stability_stable_fraction.T300": 1.0,
                               "stability_stable_fraction.T900": float(rng.random() < 0.5 + 0.4 * (f < 1)),
                               "stability_median_ttf_ps.T900": 0.5}
                    tags = {"mlptl.selection_metric": selection} if selection else {}
                    run(cell, "final", f"{cell}-final-r{rep}", params, metrics, extra_tags=tags)
        for init in ("scratch", "transfer"):
            for i, status in enumerate(("finished", "pruned") if init in final_inits else ("failed", "failed")):
                cell = f"{init}-n{n}"
                run(cell, "search", f"{cell}-t{i}", dict(init=init, train_size=n, seed=0, lr=10 ** -(2 + i),
                                                         max_epochs=4, freeze_depth=0, element="Ge"),
                    {"best_val_forces_mae": 0.3 / n**0.5 * (1 + i)} if status != "failed" else {}, status=status)
    return study


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """One sqlite store for the module (creating one costs seconds); each test writes its own study."""
    path = tmp_path_factory.mktemp("mlflow")
    return path, f"sqlite:///{path / 'mlflow.db'}"


@pytest.fixture(scope="module")
def store(db):
    path, uri = db
    make_study(uri, path, factor=0.6, selection="best_val_forces_mae")
    return path, uri


@pytest.fixture(scope="module")
def report(store):
    path, uri = store
    return build_report(uri, "synth", path / "report", n_boot=N_BOOT)


def first_paragraph(report_dir) -> str:
    md = (report_dir / "report.md").read_text()
    return [b for b in md.split("\n\n") if b.strip() and not b.startswith("#")][0]


def test_first_paragraph_states_the_numbers_the_statistics_give(store, report):
    _, uri = store
    final = final_frame(load_runs(uri, "synth"))
    cells = S.cell_stats(final, M.TEST_FORCES_MAE, n_boot=N_BOOT).set_index(["init", "train_size"])
    paired = S.paired_tests(final, M.TEST_FORCES_MAE, n_boot=N_BOOT).set_index("train_size")
    savings = S.savings_factors(final, M.TEST_FORCES_MAE, n_boot=N_BOOT).set_index("train_size")
    text = first_paragraph(report)
    t, s, p, sv = cells.loc[("transfer", 4)], cells.loc[("scratch", 4)], paired.loc[4], savings.loc[4]
    assert text.startswith("Transfer is more accurate than scratch at 4 Ge frames")
    for number in (fmt(t["mean"]), fmt_ci(t.ci_low, t.ci_high), fmt(s["mean"]), fmt_ci(s.ci_low, s.ci_high),
                   fmt(p.ratio), fmt_ci(p.ratio_ci_low, p.ratio_ci_high), fmt_p(p.t_p),
                   fmt(sv.savings, 2), fmt_ci(sv.ci_low, sv.ci_high, 2)):
        assert number in text, (number, text)
    # the truth: ratio 0.6, savings (1/0.6)^(1/0.5) = 2.8 (11 scratch frames: inside the measured 4-16)
    assert 0.5 < p.ratio < 0.72 and 2 < sv.savings < 3.7 and sv.extrapolated == ""
    assert "5 replicates per cell" in text and "own training subset" in text
    assert "selected on validation error (`best_val_forces_mae`, as recorded on the runs)" in text
    # the headline pair: transfer at 4 beats scratch at 8 (true ratio 0.85), not at 16 (true ratio 1.2)
    assert "also more accurate than scratch at 8 frames" in text


def test_headline_metrics_match_the_report_and_are_finite(store, report):
    _, uri = store
    saved = json.loads((report / "headline.json").read_text())
    again = headline_metrics(load_runs(uri, "synth"), n_boot=N_BOOT)
    assert saved == pytest.approx(again)
    assert saved["headline_train_size"] == 4
    assert saved["savings_factor"] == saved["savings_factor.n4"]
    assert saved["savings_factor.ci_low"] < saved["savings_factor"] < saved["savings_factor.ci_high"]
    assert saved["mae_ratio.n4.ci_low"] < saved["mae_ratio.n4"] < saved["mae_ratio.n4.ci_high"] < 1
    assert saved["replicates.n16"] == 5 and saved["savings_factor.n16.extrapolated"] == 1.0
    assert saved["savings_factor.n4.extrapolated"] == 0.0
    assert all(np.isfinite(v) for v in saved.values())


def test_html_is_self_contained_with_the_same_answer(report):
    page = (report / "report.html").read_text()
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(imgs) >= 4 and all(src.startswith("data:image/png;base64,") for src in imgs)
    assert "learning_curve.png" in page  # as the alt text
    answer = first_paragraph(report).split(":")[0]
    assert answer in page
    for png in ("learning_curve.png", "savings.png", "stability.png", "pruning.png"):
        assert (report / png).is_file()
    md = (report / "report.md").read_text()
    assert "scratch-n4" in md and "![learning_curve.png](learning_curve.png)" in md


def test_learning_curve_has_tick_labels_on_both_log_axes(store):
    _, uri = store
    fig = learning_curve_figure(analyse(final_frame(load_runs(uri, "synth")), n_boot=200))
    fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    xlabels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    ylabels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert xlabels == ["4", "8", "16"]
    assert len(ylabels) >= 2 and all(re.fullmatch(r"[0-9.e-]+", y) for y in ylabels), ylabels
    lo, hi = ax.get_ylim()
    assert all(lo <= float(y) <= hi for y in ylabels)
    assert "eV/Å" in ax.get_ylabel()


def test_old_store_without_replicates_says_they_share_a_subset(db):
    path, uri = db
    runs = load_runs(uri, make_study(uri, path, "old", sizes=(4, 8), reps=3, with_replicate=False))
    final = final_frame(runs)
    assert replicate_info(final).shared_subset and (final.replicate == final.seed).all()
    text = answer_text(runs, n_boot=200)
    assert "share one training subset" in text and "not valid uncertainty" in text
    assert "fewer than 5 replicates" in text
    assert f"validation error (`{M.OBJECTIVE}`)" in text and "does not record which metric chose" in text


def test_no_effect_is_reported_as_no_significant_difference(db):
    path, uri = db
    runs = load_runs(uri, make_study(uri, path, "null", sizes=(4, 8), reps=4, factor=1.0, seed=3))
    text = answer_text(runs, n_boot=200)
    assert "do not differ significantly" in text or "less accurate" in text, text
    assert "more accurate than scratch at 4" not in text


def test_transfer_that_loses_is_called_a_loss(db):
    path, uri = db
    runs = load_runs(uri, make_study(uri, path, "loss", sizes=(4, 8), reps=5, factor=1.6, seed=4))
    text = answer_text(runs, n_boot=200)
    assert text.startswith("Transfer is less accurate than scratch at 4 Ge frames"), text
    assert "below 1" in text  # the savings factor, and what it means


def test_several_sources_are_ranked_by_savings(db):
    path, uri = db
    runs = load_runs(uri, make_study(uri, path, "sources", sizes=(4, 8, 16), reps=3, sources=("C", "Si")))
    text = answer_text(runs, n_boot=200)
    assert text.startswith("Of 2 source elements, Si saves the most data")
    assert "Transfer from Si is more accurate" in text and "Transfer from C" in text
    assert "3 replicates per cell" in text  # per (source, init, size), not pooled over sources
    ranked = sources_table(analyse(final_frame(runs), n_boot=200))
    assert list(ranked.source) == ["Si", "C"]
    saved = headline_metrics(runs, n_boot=200)
    assert saved["Si.savings_factor"] > saved["C.savings_factor"] > 1


def test_a_study_where_only_scratch_finished_still_gets_a_report(db):
    """As in the end-to-end study test: every transfer trial failed, scratch cells finished."""
    path, uri = db
    make_study(uri, path, "scratch-only", sizes=(4, 10), reps=2, final_inits=("scratch",))
    out = build_report(uri, "scratch-only", path / "scratch-only", n_boot=200)
    text = first_paragraph(out)
    assert text.startswith("Only scratch final runs have finished, so transfer cannot be compared with scratch")
    assert (out / "learning_curve.png").is_file() and "scratch-n4" in (out / "report.md").read_text()
    assert json.loads((out / "headline.json").read_text()) == {"learning_curve_exponent.scratch": pytest.approx(0.5, abs=0.2)}
