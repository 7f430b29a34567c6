"""Settings errors for people: a pydantic ValidationError as one line naming each offending key."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError


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
