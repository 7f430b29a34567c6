"""Filesystems left mounted under a harness directory, released before the directory goes.

A kubelet stand-in (e2e.kubelet) that stops leaves its volumes mounted, as kubelet does; removing the harness
directory with them in place would delete the volumes' contents through their mount points.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from csi.node.mountinfo import MountTable


def mounted_under(root: Path) -> list[Path]:
    """Mount points strictly below `root`, deepest first (the order to unmount them in)."""
    root = root.resolve()
    found = {e.mount_point for e in MountTable().entries() if root in e.mount_point.parents}
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def release(root: Path, rounds: int = 3) -> list[Path]:
    """Unmount everything below `root`, deepest first; a busy mount is detached lazily (`umount -l`), so it is
    out of the tree at once and the kernel frees it when its last user goes. Returns what was mounted."""
    released: list[Path] = []
    for _ in range(rounds):  # mounts stacked on one point come off one per round
        if not (mounted := mounted_under(root)):
            break
        for path in mounted:
            if subprocess.run(["umount", str(path)], check=False, capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)
        released += [path for path in mounted if path not in released]
    return released
