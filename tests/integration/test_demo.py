"""The README's main command, end to end: `python -m e2e.demo` on a harness of its own."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e import cluster as harness


@pytest.fixture
def directory() -> Iterator[Path]:
    """A short path: the CSI sockets under it must fit a unix socket address (108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="demo-", dir="/tmp") as parent:
        path = Path(parent) / "d"
        try:
            yield path
        finally:
            if (path / harness.STATE_FILE).exists():  # a failed demo leaves its harness up for a look
                harness.down(path)


def test_demo_tells_the_whole_story_and_cleans_up(directory: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "e2e.demo", "--dir", str(directory)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    story = result.stdout
    for step in (
        "the ccm initialised both Nodes from their VMIs",
        "zone zone-a, type u1.medium",
        "assigned in",
        "PVC bound in",
        "hot-plugged into VM worker-1",
        "pod app Running in",
        "tearing down",
    ):
        assert step in story, f"missing {step!r} in:\n{story}"
    assert not directory.exists(), "the demo left its directory behind"
    mounts = Path("/proc/self/mounts").read_text()
    assert str(directory) not in mounts
