"""What `e2e.cluster.down` does with filesystems a stopped kubelet stand-in left mounted under the harness
directory: unmounts them (a busy one lazily) before removing the directory, so a volume's contents survive."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cluster import mounts

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices and mounts")


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A small ext4 image outside the harness directory: a parent volume's bytes."""
    image = tmp_path / "volume.img"
    with image.open("wb") as file:
        file.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    yield image
    mounts.release(tmp_path)  # whatever a failed test left


def test_release_unmounts_deepest_first_and_detaches_busy_mounts_so_removal_spares_the_volume(
    tmp_path: Path, volume: Path
) -> None:
    harness_dir = tmp_path / "harness"
    staging = harness_dir / "kubelet" / "node-a" / "plugins" / "globalmount"
    published = harness_dir / "kubelet" / "node-a" / "pods" / "uid" / "mount"
    busy = harness_dir / "kubelet" / "node-b" / "busy"
    for path in (staging, published, busy):
        path.mkdir(parents=True)
    mount("-o", "loop", str(volume), str(staging))
    mount("--bind", str(staging), str(published))  # a publish is a bind mount of the staging
    (published / "data.txt").write_text("kept")
    mount("-t", "tmpfs", "tmpfs", str(busy))
    holder = os.open(busy, os.O_RDONLY)  # an open directory keeps a plain umount from succeeding
    try:
        assert set(mounts.mounted_under(harness_dir)) == {staging, published, busy}
        released = mounts.release(harness_dir)
    finally:
        os.close(holder)

    assert set(released) == {staging, published, busy}
    assert mounts.mounted_under(harness_dir) == []
    shutil.rmtree(harness_dir)
    check = tmp_path / "check"
    check.mkdir()
    mount("-o", "loop,ro", str(volume), str(check))
    try:
        assert (check / "data.txt").read_text() == "kept"
    finally:
        subprocess.run(["umount", str(check)], check=True)
