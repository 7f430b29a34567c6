"""The kind path cannot run here (no Docker), but its scripts must at least parse and pin their versions."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

KIND = Path(__file__).resolve().parents[2] / "e2e" / "kind"


@pytest.mark.parametrize("script", ["up.sh", "down.sh"])
def test_script_parses(script: str) -> None:
    result = subprocess.run(["bash", "-n", str(KIND / script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_versions_are_pinned_and_overridable() -> None:
    lines = [line for line in (KIND / "versions.env").read_text().splitlines() if line and not line.startswith("#")]
    assert lines
    for line in lines:
        name, _, value = line.partition("=")
        assert value.startswith(f'"${{{name}:-') and value.endswith('}"'), line
