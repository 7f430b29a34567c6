"""Where a simulated guest's disks show up: DIR/nodes/<vmi-name>/by-id stands in for the guest's /dev/disk/by-id.

The KubeVirt simulator links `<by-id name> -> /dev/loopN` there when a hot-plugged volume becomes Ready, with the
names the guest's udev derives from the disk's serial; the CSI node code under test looks disks up in it.
"""

from __future__ import annotations

from pathlib import Path

NODES = "nodes"
BY_ID = "by-id"
# What the device reports as serial: QEMU's SCSI disks carry up to 36 characters, virtio-blk 20, ATA 20.
SCSI_SERIAL_LIMIT = 36
VIRTIO_SERIAL_LIMIT = 20
ATA_SERIAL_LIMIT = 20


def node_root(directory: Path, vmi_name: str) -> Path:
    return Path(directory) / NODES / vmi_name


def by_id_root(directory: Path, vmi_name: str) -> Path:
    """The guest's /dev/disk/by-id for the VMI named `vmi_name`."""
    return node_root(directory, vmi_name) / BY_ID


def by_id_name(bus: str, serial: str) -> str:
    """The by-id link udev creates for a QEMU disk with this serial on this bus."""
    if bus == "virtio":
        return f"virtio-{serial[:VIRTIO_SERIAL_LIMIT]}"
    if bus == "sata":
        return f"ata-QEMU_HARDDISK_{serial[:ATA_SERIAL_LIMIT]}"
    return f"scsi-0QEMU_QEMU_HARDDISK_{serial[:SCSI_SERIAL_LIMIT]}"


def by_id_path(directory: Path, vmi_name: str, bus: str, serial: str) -> Path:
    return by_id_root(directory, vmi_name) / by_id_name(bus, serial)
