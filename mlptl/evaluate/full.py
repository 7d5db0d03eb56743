"""The full evaluation of a trained model, as a study's final phase runs it: stability and properties.

Returns flat metrics for MLflow (``stability_stable_fraction.T900``, ``prop_C11`` ...) and writes the
JSON details and plots into a directory that the trial logs as artifacts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["evaluate_model", "stability_config"]


def stability_config(evaluation: dict[str, Any]):
    from mlptl.evaluate.stability import StabilityConfig

    return StabilityConfig(
        temperatures=tuple(float(t) for t in evaluation.get("stability_temperatures", (300.0,))),
        replicas=int(evaluation.get("stability_replicas", 1)),
        steps=int(evaluation.get("stability_steps", 500)),
        timestep_fs=float(evaluation.get("stability_timestep_fs", 1.0)),
        reference_steps=int(evaluation.get("reference_steps", 1000)),
    )


def _t(t: float) -> str:
    return f"T{int(round(t))}"


def evaluate_model(model_path: str | Path, element: str, evaluation: dict[str, Any], out_dir: str | Path) -> dict[str, float]:
    from mlptl.evaluate.plots import plot_stability
    from mlptl.evaluate.stability import run_stability
    from mlptl.model.calculator import load_calculator

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, float] = {}
    cache = evaluation.get("cache_dir")
    if evaluation.get("stability_temperatures"):
        cfg = stability_config(evaluation)
        calc = load_calculator(model_path, element)  # loaded once (seconds), reset for each MD run

        def factory():
            calc.reset()
            return calc

        res = run_stability(factory, element, cfg, progress=False, cache_dir=cache)
        for t, s in res.by_temperature().items():
            metrics[f"stability_stable_fraction.{_t(t)}"] = float(s["stable_fraction"])
            metrics[f"stability_median_ttf_ps.{_t(t)}"] = float(s["median_time_to_failure_ps"])
        metrics["stability_stable_fraction"] = float(res.stable_fraction)
        (out / "stability.json").write_text(json.dumps(res.to_dict(), indent=1, default=str))
        try:
            plot_stability(res, out)
        except Exception:  # a plot must never fail an evaluation
            log.exception("stability plots failed")
    if evaluation.get("properties"):
        from mlptl.data.references import known_references
        from mlptl.evaluate.properties import PropertyConfig, compare_properties, compute_properties

        cfg = PropertyConfig(md_steps=int(evaluation.get("property_md_steps", 0)))
        props = compute_properties(load_calculator(model_path, element), element, config=cfg, compare_structure=False)
        for k, v in props.items():
            if isinstance(v, int | float) and v is not None:
                metrics[f"prop_{k}"] = float(v)
        if (element, "sw") in known_references():
            ref = compute_properties(load_calculator("sw", element), element, config=cfg, compare_structure=False)
            for k, d in compare_properties(props, ref).items():
                if isinstance(d, dict) and d.get("abs_error") is not None:
                    metrics[f"prop_{k}_abs_error"] = float(d["abs_error"])
        (out / "properties.json").write_text(json.dumps(props, indent=1, default=str))
    return metrics
