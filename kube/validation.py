"""Settings files for people: YAML read defensively, and a pydantic ValidationError as one line naming each key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import ValidationError

# Far beyond any real settings file; YAML aliases can make a few lines expand to billions of values.
MAX_VALUES = 100_000


class SettingsError(ValueError):
    """A settings document that is not a mapping of reasonable size; the caller adds which file it was."""


def yaml_mapping(text: str) -> dict[str, Any]:
    """A settings document: a YAML mapping ({} for an empty one) of at most MAX_VALUES values, aliases expanded."""
    try:
        raw = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as error:
        raise SettingsError(f"not valid YAML: {error}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SettingsError(f"expected a mapping at the top level, got {type(raw).__name__}")
    _check_size(raw)
    return raw


def _check_size(document: object) -> None:
    pending, seen = [document], 0
    while pending:
        value = pending.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise SettingsError(f"more than {MAX_VALUES} values once YAML aliases are expanded")
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


def describe(error: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """`unknown key 'a.b'; c.d: Input should be ...`; `names` renames top-level fields (e.g. to their flags)."""
    problems = []
    for item in error.errors():
        parts = [str(part) for part in item["loc"]]
        if parts and names and parts[0] in names:
            parts[0] = names[parts[0]]
        where = ".".join(parts)
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown key {where!r}")
        elif where:
            problems.append(f"{where}: {message}")
        else:
            problems.append(message)
    return "; ".join(problems)
