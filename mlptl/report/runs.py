"""A study's runs read back from MLflow, and the tidy frame of final runs the statistics work on.

Reading from the tracking store (not from the driver's memory) means ``mlptl report STUDY`` can rebuild
the report at any time, from any machine that reaches the store, for a study still running.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlptl import tracking as T
from mlptl.errors import InputError

log = logging.getLogger(__name__)

__all__ = ["load_runs", "final_frame", "Replicates", "replicate_info", "sources", "for_source"]

TAG_REPLICATE = T.TAG_REPLICATE
#: Where a run records which training subset it used (the study logs param ``subset_seed``); absent in older stores.
SUBSET_COLUMNS = ("subset_seed",)


def load_runs(tracking_uri: str, study: str) -> pd.DataFrame:
    """All trial runs of a study, one row each, with tidy column names (no ``metrics.``/``params.``)."""
    c = T.client(tracking_uri)
    exp = c.get_experiment_by_name(study)
    if exp is None:
        raise InputError(f"no study named {study!r} in the tracking store {tracking_uri}")
    runs = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'trial'", max_results=50000)
    df = pd.DataFrame(
        [
            {
                "run_id": r.info.run_id,
                "status_mlflow": r.info.status,
                "start_time": r.info.start_time,
                "end_time": r.info.end_time,
                **{f"metrics.{k}": v for k, v in r.data.metrics.items()},
                **{f"params.{k}": v for k, v in r.data.params.items()},
                **{f"tags.{k}": v for k, v in r.data.tags.items()},
            }
            for r in runs
        ]
    )
    if df.empty:
        return df
    params = {c.split(".", 1)[1] for c in df.columns if c.startswith("params.")}

    def tidy(col: str) -> str:
        if col.startswith("params."):
            return col.split(".", 1)[1]
        if col.startswith("metrics."):
            name = col.split(".", 1)[1]
            # a per-epoch metric named like a parameter (the scheduled lr) keeps its last value apart
            return f"last_{name}" if name in params else name
        return col

    df = df.rename(columns=tidy)
    df["cell"] = df[f"tags.{T.TAG_CELL}"]
    df["phase"] = df[f"tags.{T.TAG_PHASE}"]
    df["status"] = df[f"tags.{T.TAG_STATUS}"]
    df["trial_key"] = df[f"tags.{T.TAG_TRIAL_KEY}"]
    df["epochs_run"] = pd.to_numeric(df.get("tags.mlptl.epochs_run"), errors="coerce")
    if "replicate" not in df and f"tags.{TAG_REPLICATE}" in df:
        df["replicate"] = df[f"tags.{TAG_REPLICATE}"]
    for col in ("train_size", "lr", "freeze_depth", "seed", "max_epochs", "replicate"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    if "source_element" in df:
        df["source"] = df["source_element"]
    return df


def final_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The finished final-phase runs, one per (source, init, size, replicate), with a ``replicate`` column.

    A store written before replicates resampled the data has no ``replicate``: the seed stands in for it
    (the runs of one seed still pair, scratch with transfer, on the one shared subset). A run repeated
    under the same key (a re-run) counts once, the newest.
    """
    if df.empty or "phase" not in df:
        return pd.DataFrame(columns=["init", "train_size", "replicate"])
    f = df[(df["phase"] == "final") & (df["status"] == "finished")].copy()
    if "replicate" not in f or f["replicate"].isna().all():
        f["replicate"] = f["seed"] if "seed" in f else np.arange(len(f))
        f.attrs["replicate_from_seed"] = True
    else:
        f.attrs["replicate_from_seed"] = False
    f = f[f["train_size"].notna() & f["replicate"].notna()]
    f["train_size"] = f["train_size"].astype(int)
    f["replicate"] = f["replicate"].astype(int)
    if "source" in f and f["source"].isna().all():
        f = f.drop(columns="source")
    key = [c for c in ("source", "init", "train_size", "replicate") if c in f]
    attrs = dict(f.attrs)
    if "start_time" in f:
        f = f.sort_values("start_time").drop_duplicates(key, keep="last")
    f = f.sort_values(key, na_position="first").reset_index(drop=True)
    f.attrs.update(attrs)
    return f


@dataclass
class Replicates:
    """What the replicates of the final runs are, for the report to say."""

    from_seed: bool  # no replicate id recorded: the seed stands in
    shared_subset: bool  # replicates of a cell trained on one data subset
    per_cell_min: int
    per_cell_max: int

    def note(self) -> str:
        if self.shared_subset:
            why = (
                "this store records no replicate id, so replicates are the seeds, and they all share one training "
                "subset" if self.from_seed else "the replicates of a cell share one training subset"
            )
            return (
                f"{why[0].upper()}{why[1:]}: they differ only by weight initialisation, so the intervals show training "
                "noise, not the variation over data sets of this size, and are not valid uncertainty for a "
                "different data set."
            )
        return "Each replicate trained on its own training subset; scratch and transfer share it, so they pair."


def replicate_info(final: pd.DataFrame) -> Replicates:
    """Whether the replicates resample the data: known from a recorded subset id, else from the store's age."""
    cell = [c for c in ("source", "init", "train_size") if c in final]
    counts = final.groupby(cell, dropna=False).size() if len(final) else pd.Series([0])
    from_seed = bool(final.attrs.get("replicate_from_seed", "replicate" not in final))
    shared = from_seed
    col = next((c for c in SUBSET_COLUMNS if c in final and final[c].notna().any()), None)
    if col is not None:
        per = final.groupby(cell, dropna=False)[col].nunique()
        multi = counts[counts > 1].index
        shared = bool(len(multi)) and bool((per.loc[multi] <= 1).all())
    return Replicates(from_seed, shared, int(counts.min()), int(counts.max()))


def sources(final: pd.DataFrame) -> list[str | None]:
    """The source elements of the transfer runs; ``[None]`` when the store records none (one source)."""
    if "source" not in final:
        return [None]
    s = final.loc[final["init"] != "scratch", "source"].dropna().unique()
    return sorted(map(str, s)) or [None]


def for_source(final: pd.DataFrame, source: str | None) -> pd.DataFrame:
    """The runs one source is judged on: its transfer runs, and scratch (its own if any, else the shared)."""
    if source is None or "source" not in final:
        return final
    transfer = final[(final["init"] != "scratch") & (final["source"] == source)]
    scratch = final[final["init"] == "scratch"]
    own = scratch[scratch["source"] == source]
    return pd.concat([own if len(own) else scratch, transfer], ignore_index=True)
