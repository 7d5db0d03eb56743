"""Evaluation of any ASE calculator: MD stability (:mod:`.stability`), crystal properties
(:mod:`.properties`) and their plots (:mod:`.plots`). Import from the submodules; nothing heavy here."""
