"""Models: Allegro specs and presets, transfer between elements, freezing, and calculators."""

from mlptl.model.calculator import load_calculator, nequip_calculator
from mlptl.model.spec import MODEL_PRESETS, ModelSpec, max_freeze_depth, model_preset
from mlptl.model.transfer import SourceModel, copy_source_weights, freeze, load_source

__all__ = [
    "MODEL_PRESETS",
    "ModelSpec",
    "SourceModel",
    "copy_source_weights",
    "freeze",
    "load_calculator",
    "load_source",
    "max_freeze_depth",
    "model_preset",
    "nequip_calculator",
]
