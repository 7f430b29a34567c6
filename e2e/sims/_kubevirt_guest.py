"""virt-handler and the guest, for disks: a Ready hot-plugged volume's image attached as a loop device and linked
where the guest's udev would link it (see e2e.sims._kubevirt_disks); resized, unplugged, and all released on
shutdown so no loop device outlives the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from e2e.sims import _disks
from e2e.sims._kubevirt_disks import by_id_path, by_id_root

log = logging.getLogger(__name__)


class LoopError(RuntimeError):
    pass


async def losetup(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "losetup", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise LoopError(f"losetup {' '.join(args)}: {err.decode(errors='replace').strip()}")
    return out.decode().strip()


def backing_file(device: str) -> Path | None:
    """The image a loop device reads from, or None when it is free."""
    try:
        return Path((Path("/sys/block") / Path(device).name / "loop" / "backing_file").read_text().strip())
    except OSError:
        return None


def _link(link: Path, device: str) -> None:
    """Point `link` at `device` atomically, as udev does."""
    link.parent.mkdir(parents=True, exist_ok=True)
    staged = link.with_name(f".{link.name}.new")
    staged.unlink(missing_ok=True)
    staged.symlink_to(device)
    staged.replace(link)


def _unlink(link: Path, device: str) -> None:
    if link.is_symlink() and str(link.readlink()) == device:
        link.unlink()


def _prune(by_id: Path) -> None:
    """Remove the guest's by-id directory (and its node directory) once nothing is left in them."""
    for directory in (by_id, by_id.parent):
        with contextlib.suppress(OSError):
            directory.rmdir()


def _size(image: Path) -> int:
    return image.stat().st_size


@dataclass
class Plugged:
    device: str
    link: Path
    image: Path
    size: int


class GuestDisks:
    """Loop devices this simulator attached, per VMI (namespace, name) and volume."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._plugged: dict[tuple[str, str], dict[str, Plugged]] = {}

    def plugged(self, namespace: str, vmi: str) -> dict[str, Plugged]:
        return dict(self._plugged.get((namespace, vmi), {}))

    async def plug(
        self, namespace: str, vmi: str, volume: str, *, bus: str, serial: str, image: Path, size: int
    ) -> Plugged:
        """Attach `image` (created blank at `size` bytes if missing) and link it by serial; idempotent."""
        current = self._plugged.get((namespace, vmi), {}).get(volume)
        if current is not None:
            return current
        _disks.create(image, size)
        link = by_id_path(self.directory, vmi, bus, serial)
        device = self._adoptable(link, image) or await losetup("--find", "--show", str(image))
        _link(link, device)
        plugged = Plugged(device, link, image, _size(image))
        self._plugged.setdefault((namespace, vmi), {})[volume] = plugged
        log.info("plugged %s into %s/%s as %s (%s)", image.name, namespace, vmi, device, link.name)
        return plugged

    @staticmethod
    def _adoptable(link: Path, image: Path) -> str | None:
        """A device a previous run of the simulator left attached to this image under this link."""
        if not link.is_symlink():
            return None
        device = str(link.readlink())
        return device if backing_file(device) == image.resolve() else None

    async def resize(self, namespace: str, vmi: str, volume: str, size: int) -> bool:
        """Grow the image and make the loop device (the guest's disk) see the new size."""
        plugged = self._plugged.get((namespace, vmi), {}).get(volume)
        if plugged is None or size <= plugged.size:
            return False
        _disks.grow(plugged.image, size)
        await losetup("-c", plugged.device)
        plugged.size = _size(plugged.image)
        log.info("resized %s in %s/%s to %d bytes", plugged.device, namespace, vmi, plugged.size)
        return True

    async def unplug(self, namespace: str, vmi: str, volume: str) -> None:
        plugged = self._plugged.get((namespace, vmi), {}).pop(volume, None)
        if plugged is None:
            return
        _unlink(plugged.link, plugged.device)
        # A device still mounted by the node under test is released by the kernel once unmounted (autoclear).
        with contextlib.suppress(LoopError):
            await losetup("-d", plugged.device)
        log.info("unplugged %s from %s/%s", plugged.device, namespace, vmi)

    async def unplug_vmi(self, namespace: str, vmi: str) -> None:
        if (namespace, vmi) not in self._plugged:
            return
        for volume in list(self._plugged[(namespace, vmi)]):
            await self.unplug(namespace, vmi, volume)
        del self._plugged[(namespace, vmi)]
        _prune(by_id_root(self.directory, vmi))

    async def unplug_all(self) -> None:
        for namespace, vmi in list(self._plugged):
            await self.unplug_vmi(namespace, vmi)
