"""Render and lint the charts in charts/ with the pinned helm (built once by e2e.binaries.helm_binary)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from e2e.binaries import helm_binary

CHARTS = Path(__file__).resolve().parents[1] / "charts"
TENANT_CHART = CHARTS / "tenant-cloud"
PARENT_CHART = CHARTS / "tenant-cloud-parent"

Manifest = dict[str, Any]


class HelmError(RuntimeError):
    """helm exited non-zero; the message is its stderr."""


def helm(*args: str) -> str:
    result = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HelmError(result.stderr.strip() or result.stdout.strip())
    return result.stdout


def _value_args(values: Mapping[str, Any] | None, value_files: Iterable[Path], tmp: Path) -> list[str]:
    args: list[str] = []
    for path in value_files:
        args += ["--values", str(path)]
    if values:
        inline = tmp / "values.json"  # JSON is YAML; keeps types exact, unlike --set
        inline.write_text(json.dumps(values))
        args += ["--values", str(inline)]
    return args


def template_text(
    chart: Path,
    *,
    namespace: str,
    release: str = "tenant-cloud",
    values: Mapping[str, Any] | None = None,
    value_files: Iterable[Path] = (),
) -> str:
    """`helm template` output: the manifests as one YAML stream."""
    with tempfile.TemporaryDirectory() as tmp:
        args = _value_args(values, value_files, Path(tmp))
        return helm("template", release, str(chart), "--namespace", namespace, *args)


def template(
    chart: Path,
    *,
    namespace: str,
    release: str = "tenant-cloud",
    values: Mapping[str, Any] | None = None,
    value_files: Iterable[Path] = (),
) -> list[Manifest]:
    """The rendered manifests, parsed."""
    text = template_text(chart, namespace=namespace, release=release, values=values, value_files=value_files)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def lint(chart: Path, *, values: Mapping[str, Any] | None = None, value_files: Iterable[Path] = ()) -> str:
    """`helm lint --strict`: warnings fail too."""
    with tempfile.TemporaryDirectory() as tmp:
        return helm("lint", "--strict", str(chart), *_value_args(values, value_files, Path(tmp)))


def example_values(chart: Path) -> list[Path]:
    """The chart's realistic values files (charts/<chart>/ci/*-values.yaml, chart-testing's convention)."""
    return sorted((chart / "ci").glob("*-values.yaml"))


def find(manifests: Iterable[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [m for m in manifests if m.get("kind") == kind and (name is None or m["metadata"]["name"] == name)]


def one(manifests: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = find(manifests, kind, name)
    if len(found) != 1:
        raise LookupError(f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def merge_values(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, maps merged key by key as helm merges values files."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged
