"""Data: reference potentials, generated and read datasets, and splits.

Every frame is an ``ase.Atoms`` whose energy, forces (and stress when known) sit in a
SinglePointCalculator, and whose ``info`` carries the keys in :mod:`mlptl.data.frames`.
"""
