"""Transfer across chemistries: the extend, map and subset studies of studies/, at 5 replicates, plus the
new-element initialisations compared.

The cases are the study files in studies/ (one fact, one place), each with 5 replicates (seeds 0-4: replicate r
on its own nested draw of the target training frames, the test set fixed):

- ``extend``: ``studies/cu_to_cuni.py``, a Cu model extended to Cu-Ni alloys (EMT);
- ``map``: ``studies/cupt_to_cuau.py``, a Cu-Pt model mapped onto Cu3Au/CuAu with Au from Pt (EMT);
- ``subset``: ``studies/aucuni_to_cuau.py``, an Au-Cu-Ni model narrowed to Cu-Au (EMT);
- ``init_copy``, ``init_random``: the extend case's transfer cells with Ni's start fixed (a copy of Cu's rows;
  random), instead of searched. ``mean`` is not a case: for a one-element source it is the copy.

``STUDIES`` holds them; the first argument picks one for ``python bench/studies/chemistry.py KEY``, and
``python bench/chemistry.py`` runs all and writes bench/results/chemistry.*. Stores: bench/work/chemistry/<key>/.
"""

import runpy
import sys
from dataclasses import replace
from pathlib import Path

from mlptl import main

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "bench" / "work" / "chemistry"
SEEDS = (0, 1, 2, 3, 4)
#: key -> (study file in studies/, transfer mode)
CASES = {"extend": ("cu_to_cuni", "extend"), "map": ("cupt_to_cuau", "map"), "subset": ("aucuni_to_cuau", "subset")}


def _case(key: str, file: str, **changes):
    study = runpy.run_path(str(ROOT / "studies" / f"{file}.py"), run_name="mlptl_study")["STUDY"]
    return replace(study, name=f"chemistry-{key}", seeds=SEEDS, storage=str(WORK / key), **changes)


STUDIES = {key: _case(key, file) for key, (file, _) in CASES.items()}
for _init in ("copy", "random"):
    _base = STUDIES["extend"]
    STUDIES[f"init_{_init}"] = _case(f"init_{_init}", CASES["extend"][0], inits=("transfer",),
                                     search=replace(_base.search, new_element_init=(_init,)))
STUDY = STUDIES["extend"]

if __name__ == "__main__":
    key = sys.argv.pop(1) if len(sys.argv) > 1 and sys.argv[1] in STUDIES else "extend"
    raise SystemExit(main(STUDIES[key]))
