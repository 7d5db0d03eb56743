"""Figures for evaluations: RDF and ADF overlays, time to failure per temperature. PNG files.

Figures are built with matplotlib's object API on the Agg canvas rather than pyplot, so that plotting
never switches the backend of a process that imported us (a notebook, a Ray worker) and never leaks
open figures across a long study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "plot_rdf",
    "plot_adf",
    "plot_time_to_failure",
    "plot_properties",
    "plot_stability",
]

Curve = tuple[Sequence[float], Sequence[float]]

# Marker colours per failure criterion: the same criterion looks the same in every figure.
_CRITERION_COLOURS = {
    "non_finite": "black",
    "error": "dimgray",
    "temperature": "tab:red",
    "force": "tab:orange",
    "min_distance": "tab:purple",
    "rdf": "tab:blue",
}
_LINESTYLES = ("-", "--", "-.", ":")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    return path


def _overlay(curves: Mapping[str, Curve], path: str | Path, xlabel: str, ylabel: str, title: str | None) -> Path:
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.add_subplot()
    for i, (label, (x, y)) in enumerate(curves.items()):
        # The first curve (the model) solid, the rest (references) dashed, so overlap stays readable.
        ax.plot(np.asarray(x), np.asarray(y), label=label, lw=1.6 if i == 0 else 1.2, ls="-" if i == 0 else "--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(frameon=False)
    return _save(fig, path)


def plot_rdf(curves: Mapping[str, Curve], path: str | Path, *, title: str | None = None) -> Path:
    """Overlay of RDFs ``{label: (r, g)}``; the first is drawn solid (the model), the rest dashed."""
    return _overlay(curves, path, "r (Å)", "g(r)", title)


def plot_adf(curves: Mapping[str, Curve], path: str | Path, *, title: str | None = None) -> Path:
    """Overlay of bond-angle distributions ``{label: (theta_deg, p)}``."""
    return _overlay(curves, path, "bond angle (°)", "density (1/°)", title)


def _as_dict(result: Any) -> dict[str, Any]:
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)


def plot_time_to_failure(results: Any, path: str | Path, *, title: str | None = None) -> Path:
    """Time to failure of every run against temperature, with the median per temperature.

    ``results`` is a :class:`~mlptl.evaluate.stability.StabilityResult`, its ``to_dict()``, or a mapping
    ``{label: result}`` to compare potentials side by side (offset horizontally). Stable runs are drawn
    hollow at the run length (where they are counted in the median), failed runs filled and coloured
    by the criterion that tripped.
    """
    if hasattr(results, "to_dict") or (isinstance(results, Mapping) and "runs" in results):
        results = {"": results}
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot()
    labels = list(results)
    temps = sorted({float(r["temperature"]) for res in results.values() for r in _as_dict(res)["runs"]})
    span = (max(temps) - min(temps)) if len(temps) > 1 else max(temps[0], 1.0)
    width = 0.04 * span
    seen: set[str] = set()
    length = 0.0
    for k, label in enumerate(labels):
        d = _as_dict(results[label])
        length = max(length, float(d["config"]["steps"]) * float(d["config"]["timestep_fs"]) / 1000.0)
        offset = (k - (len(labels) - 1) / 2) * width
        for run in d["runs"]:
            x = float(run["temperature"]) + offset + (run["replica"] - 1) * width / 6
            if run["stable"]:
                lab = "stable" if "stable" not in seen else None
                seen.add("stable")
                ax.plot(x, length, "o", mfc="none", mec="tab:green", label=lab)
            else:
                crit = run["criterion"]
                lab = crit if crit not in seen else None
                seen.add(crit)
                ax.plot(x, run["time_to_failure_ps"], "o", color=_CRITERION_COLOURS.get(crit, "tab:gray"), label=lab)
        summary = d["summary"]
        xs = [float(s["temperature"]) + offset for s in summary]
        # Medians in black (criteria own the colours), one line style per potential.
        ax.plot(xs, [s["median_time_to_failure_ps"] for s in summary], color="black",
                ls=_LINESTYLES[k % len(_LINESTYLES)], marker="_", ms=14, lw=1, label=f"median {label}".strip())
    ax.axhline(length, color="0.7", ls=":", lw=1)
    ax.set_xlabel("temperature (K)")
    ax.set_ylabel("time to failure (ps)")
    ax.set_xticks(temps)
    ax.set_ylim(bottom=0, top=length * 1.08 if length > 0 else None)
    if title:
        ax.set_title(title)
    ax.legend(frameon=False, fontsize=8, loc="lower left")
    return _save(fig, path)


def plot_stability(result: Any, out_dir: str | Path, *, label: str = "model") -> list[Path]:
    """``time_to_failure.png`` and one ``rdf_<T>K.png`` (mean model RDF vs reference) per temperature; for
    several elements also one ``rdf_<T>K_<a-b>.png`` per element pair (the partial RDFs the criterion compares)."""
    d = _as_dict(result)
    out = Path(out_dir)
    paths = [plot_time_to_failure(d, out / "time_to_failure.png", title=f"MD stability, {d['element']}")]
    for entry in d.get("rdf", []):
        t = float(entry["temperature"])
        model, ref = entry.get("partials") or {}, entry.get("partials_ref") or {}
        figures = [("", entry.get("g"), entry.get("g_ref"), d["element"])]
        figures += [(f"_{p}", model.get(p), ref.get(p), f"{p} pairs of {d['element']}") for p in sorted({*model, *ref})]
        for suffix, g, g_ref, what in figures:
            curves: dict[str, Curve] = {}
            if g is not None:
                curves[label] = (entry["r"], g)
            if g_ref is not None:
                curves["reference"] = (entry["r"], g_ref)
            if curves:
                paths.append(plot_rdf(curves, out / f"rdf_{t:g}K{suffix}.png", title=f"{what} {t:g} K"))
    return paths


def plot_properties(
    model_props: Mapping[str, Any], ref_props: Mapping[str, Any], out_dir: str | Path,
    *, labels: tuple[str, str] = ("model", "reference"),
) -> list[Path]:
    """``rdf.png`` and ``adf.png`` overlays from two :func:`~mlptl.evaluate.properties.compute_properties` outputs."""
    out = Path(out_dir)
    paths = []
    t = model_props.get("temperature")
    title = f"{model_props.get('element', '')} {t:g} K" if t is not None else None
    for kind, xk, yk, plot in (("rdf", "r", "g", plot_rdf), ("adf", "theta", "p", plot_adf)):
        curves = {lab: (p[kind][xk], p[kind][yk]) for lab, p in zip(labels, (model_props, ref_props)) if p.get(kind)}
        if curves:
            paths.append(plot(curves, out / f"{kind}.png", title=title))
    return paths
