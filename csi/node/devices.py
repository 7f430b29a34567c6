"""Find the block device a hot-plugged volume became inside the VM, by the disk serial the controller set.

First the udev links in /dev/disk/by-id (`scsi-0QEMU_QEMU_HARDDISK_<serial>`, `virtio-<serial>`), then
`lsblk`'s SERIAL column for nodes without udev. Serial limits: SCSI disks carry up to 36 characters and
virtio-blk only 20, and QEMU cuts longer serials to that length, so a device whose serial is the requested one
cut at exactly one of those limits matches too. Cutting at another length never matches, so short serials that
merely share a prefix stay apart.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from csi.node.commands import CommandRunner
from csi.node.errors import AmbiguousDevice, DeviceNotFound

DEFAULT_BY_ID_ROOT = Path("/dev/disk/by-id")
VIRTIO_SERIAL_LIMIT = 20
SCSI_SERIAL_LIMIT = 36
SERIAL_LIMITS = (VIRTIO_SERIAL_LIMIT, SCSI_SERIAL_LIMIT)


class DeviceFinder(Protocol):
    async def find_by_serial(self, serial: str) -> Path:
        """The block device carrying `serial`; DeviceNotFound while it has not shown up."""
        ...


def serial_candidates(serial: str) -> list[str]:
    """The serial as a device may report it: whole, then cut at each hardware limit it exceeds."""
    return [serial] + [serial[:limit] for limit in SERIAL_LIMITS if len(serial) > limit]


def by_id_name_matches(name: str, device_serial: str) -> bool:
    """A /dev/disk/by-id name for the whole disk with this serial (partition links end in `-partN`)."""
    return name.endswith("_" + device_serial) or name == "virtio-" + device_serial


def parse_lsblk_serials(output: str) -> dict[Path, str]:
    """Device path -> serial from `lsblk -J -d -o NAME,SERIAL,TYPE` (with or without -p); disks only."""
    serials: dict[Path, str] = {}
    for device in json.loads(output).get("blockdevices") or []:
        name, serial, kind = device.get("name"), device.get("serial"), device.get("type")
        if not name or not serial or kind != "disk":
            continue
        path = Path(name) if name.startswith("/") else Path("/dev") / name
        serials[path] = serial.strip()
    return serials


def _block_device(link: Path) -> Path | None:
    """Where a by-id link points, if that is a block device that still exists."""
    target = link.resolve()
    try:
        return target if stat.S_ISBLK(target.stat().st_mode) else None
    except FileNotFoundError:
        return None


def _pick(serial: str, matches: Sequence[tuple[str, Path]]) -> Path | None:
    """The one device for the best (longest) serial candidate that matched; ambiguity is an error."""
    for candidate in serial_candidates(serial):
        devices = sorted({device for matched, device in matches if matched == candidate})
        if len(devices) > 1:
            raise AmbiguousDevice(serial, devices)
        if devices:
            return devices[0]
    return None


class SerialDeviceFinder:
    """Looks in a by-id directory (configurable, so tests and simulators bring their own), then asks lsblk."""

    def __init__(self, runner: CommandRunner, by_id_root: Path = DEFAULT_BY_ID_ROOT) -> None:
        self._runner = runner
        self._by_id_root = by_id_root

    async def find_by_serial(self, serial: str) -> Path:
        device = self._find_by_id(serial)
        if device is None:
            device = await self._find_by_lsblk(serial)
        if device is None:
            raise DeviceNotFound(serial)
        return device

    def _find_by_id(self, serial: str) -> Path | None:
        if not self._by_id_root.is_dir():
            return None
        matches: list[tuple[str, Path]] = []
        for link in self._by_id_root.iterdir():
            for candidate in serial_candidates(serial):
                if by_id_name_matches(link.name, candidate) and (device := _block_device(link)) is not None:
                    matches.append((candidate, device))
        return _pick(serial, matches)

    async def _find_by_lsblk(self, serial: str) -> Path | None:
        result = await self._runner.run("lsblk", "-J", "-d", "-p", "-o", "NAME,SERIAL,TYPE")
        serials = parse_lsblk_serials(result.stdout)
        return _pick(serial, [(found, device) for device, found in serials.items()])
