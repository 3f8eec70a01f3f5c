"""Generic parsing behind twotower/config.py: YAML values checked against dataclass field
annotations (bool, int, float, str, Literal, Optional, Union, tuple, dict), and `section.field=value`
overrides. Every problem raises ConfigError naming the field."""
from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any, Literal, Mapping

import yaml

from twotower.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """YAML without timestamps (`start_date: 2026-01-01` stays the string the field wants),
    with YAML 1.2's floats: `1e-9` is a number, as users write it (YAML 1.1 needs `1.0e-9`)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))


def load_yaml(text: str) -> Any:
    """Parses YAML text with _Loader.

    Raises:
      yaml.YAMLError: if the text is not YAML.
    """
    return yaml.load(text, Loader=_Loader)  # nosec B506: a SafeLoader subclass


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Checks `value` against a field annotation and converts lists to tuples."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [arg for arg in args if arg is not type(None)]
        for arg in inner[:-1]:
            try:
                return _coerce(name, value, arg)
            except ConfigError:
                continue
        return _coerce(name, value, inner[-1])
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name}: got {value!r}; expected one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: got {value!r}; expected a list")
        return tuple(_coerce(f"{name}[{i}]", item, args[0]) for i, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}: got {value!r}; expected a mapping")
        return {_coerce(f"{name} key", key, args[0]): _coerce(f"{name}.{key}", item, args[1])
                for key, item in value.items()}
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: got {value!r}; expected true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: got {value!r}; expected an integer")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: got {value!r}; expected a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: got {value!r}; expected a string")
        return value
    raise TypeError(f"{name}: unsupported annotation {annotation!r}")


def build(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    """Builds dataclass `cls` from nested mappings, checking every field (unknown fields,
    types, nested sections); `prefix` is the dotted path used in error messages."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of fields, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown field {where}{unknown[0]}; known fields: {sorted(known)}")
    kwargs = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else key
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = build(hint, value or {}, name)
        else:
            kwargs[key] = _coerce(name, value, hint)
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parses `section.field=value` (value in YAML syntax) into a path and a value."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected section.field=value")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    if len(path) != 2 or not all(path):
        raise ConfigError(f"override {text!r}: expected section.field=value")
    try:
        return path, load_yaml(raw)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: the value is not YAML: {e}") from e
