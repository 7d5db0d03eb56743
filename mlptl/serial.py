"""Specs as plain data and back: the one serialiser of mlptl's frozen dataclasses.

Specs travel as plain data (Ray Tune configs, JSON files, MLflow params). :func:`to_plain` turns a
dataclass into dicts, lists and scalars; :func:`from_plain` reads it back through the dataclass's own
type hints, so nested specs come back typed and an unknown key is an error (a typo would otherwise be
dropped silently). Written here rather than taken from a library (dacite, cattrs) because mlptl's specs
need only this much and every layer uses it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from mlptl.errors import InputError

__all__ = ["to_plain", "from_plain", "check_keys", "OPAQUE"]

T = TypeVar("T")

#: Field metadata for a value that travels as it is (e.g. objects Ray pickles), never converted.
OPAQUE = {"mlptl.opaque": True}


def to_plain(obj: Any) -> Any:
    """Dataclasses as dicts (field by field), tuples as lists; everything else as it is."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: getattr(obj, f.name) if f.metadata.get("mlptl.opaque") else to_plain(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
        }
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj


def check_keys(cls: type, data: Mapping[str, Any], what: str) -> None:
    """An unknown key names itself and the fields there are."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(
            f"unknown {what} field(s) {', '.join(map(repr, unknown))}; {cls.__name__} has {', '.join(sorted(known))}"
        )


def from_plain(cls: type[T], data: Mapping[str, Any], what: str | None = None) -> T:
    """The dataclass ``cls`` from :func:`to_plain`'s output (or hand-written plain data)."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise InputError(f"expected the fields of {cls.__name__} as a mapping, got {type(data).__name__}")
    check_keys(cls, data, what or cls.__name__)
    hints = get_type_hints(cls)
    opaque = {f.name for f in dataclasses.fields(cls) if f.metadata.get("mlptl.opaque")}
    return cls(**{k: v if k in opaque else _convert(hints[k], v) for k, v in data.items()})


def _convert(tp: Any, value: Any) -> Any:
    if value is None or tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_plain(tp, value) if isinstance(value, Mapping) else value
    origin, args = get_origin(tp), get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if isinstance(value, Mapping):  # the dataclass member whose fields the keys are, else a mapping
            for a in args:
                if dataclasses.is_dataclass(a) and set(value) <= {f.name for f in dataclasses.fields(a)}:
                    return _convert(a, value)
            for a in args:
                if dataclasses.is_dataclass(a) or get_origin(a) in (dict, Mapping):
                    return _convert(a, value)
        if isinstance(value, list | tuple):
            for a in args:
                if get_origin(a) is tuple:
                    return _convert(a, value)
        return value
    if origin is tuple and isinstance(value, list | tuple):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v) for v in value)
        return tuple(_convert(a, v) for a, v in zip(args, value)) if args else tuple(value)
    if origin in (dict, Mapping) and isinstance(value, Mapping):
        vt = args[1] if len(args) == 2 else Any
        return {k: _convert(vt, v) for k, v in value.items()}
    return value
