"""Where simulated parent volumes keep their bytes: one sparse image file per parent PVC (and per snapshot).

The CDI and snapshot simulators create, copy and grow images; the KubeVirt simulator attaches an image as a
loop device when its volume is hot-plugged into a VM. Images outlive attachments, so data written through
one VM is there when the volume moves to another.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

DISKS = "disks"
SNAPSHOTS = "snapshots"


def volume_image(directory: Path, namespace: str, pvc: str) -> Path:
    return directory / DISKS / namespace / f"{pvc}.img"


def snapshot_image(directory: Path, namespace: str, snapshot: str) -> Path:
    return directory / SNAPSHOTS / namespace / f"{snapshot}.img"


def create(path: Path, size: int) -> None:
    """A blank (sparse) image of `size` bytes; an existing image is kept, only ever grown."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as image:
        if image.tell() < size:
            os.truncate(image.fileno(), size)


def grow(path: Path, size: int) -> bool:
    """Grow to `size` bytes; True when the image changed."""
    if path.stat().st_size >= size:
        return False
    os.truncate(path, size)
    return True


def copy(source: Path, target: Path, size: int | None = None) -> None:
    """Clone an image keeping it sparse (a 10 GiB blank volume stays a few KiB on disk), then grow it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    subprocess.run(["cp", "--sparse=always", str(source), str(partial)], check=True, capture_output=True)
    partial.replace(target)
    if size is not None:
        grow(target, size)


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
