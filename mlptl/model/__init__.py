"""Models: Allegro specs and presets, transfer between elements, freezing, and calculators.

The names below load their module on first use (PEP 562): a study's driver and the ``mlptl`` command
read model specs without importing torch, which only the processes that train or evaluate need."""

from __future__ import annotations

from mlptl.lazy import lazy_names

_MODULE_OF = {
    "load_calculator": "calculator",
    "nequip_calculator": "calculator",
    "MODEL_PRESETS": "spec",
    "ModelSpec": "spec",
    "max_freeze_depth": "spec",
    "model_preset": "spec",
    "SourceModel": "transfer",
    "copy_source_weights": "transfer",
    "freeze": "transfer",
    "load_source": "transfer",
}

__all__ = sorted(_MODULE_OF)


__getattr__ = lazy_names(__name__, _MODULE_OF)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
