"""mlptl: studies of transfer learning for machine-learning interatomic potentials across elements.

The pipeline runs one way: data -> model -> train -> evaluate -> study -> tracking -> report.
Each stage is a module (or package) named for its job; later stages import earlier ones only.
"""

__version__ = "0.1.0"
