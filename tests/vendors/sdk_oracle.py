"""The official Tencent Cloud SDKs (test-only dependencies) as oracles.

- :func:`error_codes`: every code an installed SDK's ``errorcodes.py`` lists, with the
  description written above it (the SDK's only word on what the code means).
- :func:`problems`: what the SDK's request model refuses in a JSON body: a field the
  model lacks, or a value whose JSON type is not the one of the model's ``:type`` line
  (``int``, ``float``, ``str``, ``bool``, ``list of T``, or a nested model), and
  anything its own ``_deserialize`` warns about or loses on the way back.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import warnings
from types import ModuleType
from typing import Any

PACKAGES = {"soe": "tencentcloud.soe.v20180724", "gme": "tencentcloud.gme.v20180711"}
_DESCRIBED = re.compile(r"^# (?P<text>.*)\n(?P<name>[A-Z0-9_]+) = '", re.MULTILINE)
_TYPE_LINE = re.compile(r":type (\w+): (.+)")


def module(service: str, name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGES[service]}.{name}")


@functools.cache
def error_codes(service: str) -> dict[str, str]:
    """``{code: description}`` for every string constant of the SDK's errorcodes module."""
    codes = module(service, "errorcodes")
    described = {m["name"]: m["text"].strip() for m in _DESCRIBED.finditer(inspect.getsource(codes))}
    return {
        value: described.get(name, "")
        for name, value in vars(codes).items()
        if name.isupper() and isinstance(value, str)
    }


@functools.cache
def field_types(service: str, model: str) -> dict[str, str]:
    """``{field: type}`` of an SDK model, from its ``:type`` lines; every attribute has one."""
    cls = getattr(module(service, "models"), model)
    types = dict(_TYPE_LINE.findall(cls.__init__.__doc__ or ""))
    attributes = {name[1:] for name in vars(cls()) if name.startswith("_")}
    assert attributes == set(types), f"{model}: attributes without a :type line"
    return {name: kind.strip() for name, kind in types.items()}  # callers must not change it


def _is_model(service: str, kind: str) -> bool:
    return inspect.isclass(getattr(module(service, "models"), kind, None))


def problems(service: str, model: str, body: Any, path: str = "") -> list[str]:
    """Everything model ``model`` refuses in ``body`` (an empty list: the SDK agrees)."""
    if not isinstance(body, dict):
        return [f"{path or model}: not an object"]
    types = field_types(service, model)
    found = []
    for name, value in body.items():
        where = f"{path}.{name}" if path else name
        if name not in types:
            found.append(f"{where}: {model} has no such field")
        else:
            found += _value_problems(service, types[name], value, where)
    return found or _sdk_round_trip(service, model, body, path)


def _value_problems(service: str, kind: str, value: Any, where: str) -> list[str]:
    if value is None:
        return [f"{where}: null (the SDK leaves unset fields out)"]
    if kind.startswith("list of "):
        if not isinstance(value, list):
            return [f"{where}: {kind}, got {type(value).__name__}"]
        inner = kind.removeprefix("list of ")
        return [p for i, item in enumerate(value) for p in _value_problems(service, inner, item, f"{where}.{i}")]
    if _is_model(service, kind):
        return problems(service, kind, value, where)
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
    }
    if kind not in ok:
        return [f"{where}: the SDK type {kind!r} is unknown to this oracle"]
    return [] if ok[kind] else [f"{where}: {kind}, got {type(value).__name__} {value!r:.40}"]


def _sdk_round_trip(service: str, model: str, body: dict, path: str) -> list[str]:
    """The SDK's own reading: ``_deserialize`` warns on unknown fields at any depth."""
    if path:  # nested models are read by their parent's _deserialize
        return []
    instance = getattr(module(service, "models"), model)()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        instance._deserialize(body)
    found = [f"{model}: the SDK warns {w.message}" for w in caught]
    if instance._serialize() != body:
        found.append(f"{model}: the SDK does not give the body back unchanged")
    return found
