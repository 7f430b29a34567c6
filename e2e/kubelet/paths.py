"""kubelet's on-disk layout for CSI volumes (pkg/volume/csi), its names for them, and its `vol_data.json` files.

Under the kubelet root (`/var/lib/kubelet` on a real node, `DIR/kubelet/<node>` here):

- filesystem staging: `plugins/kubernetes.io/csi/<driver>/<sha256(volumeHandle)>/globalmount`;
- filesystem publish: `pods/<pod uid>/volumes/kubernetes.io~csi/<pv name>/mount`;
- block staging: `plugins/kubernetes.io/csi/volumeDevices/staging/<pv name>`;
- block publish: `plugins/kubernetes.io/csi/volumeDevices/publish/<pv name>/<pod uid>`, linked from the pod's
  `pods/<pod uid>/volumeDevices/kubernetes.io~csi/<pv name>`.

kubelet keeps `vol_data.json` next to each staging and publish path so that it can tear a volume down after a
restart without the API; the stand-in writes and reads the same files for the same reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

PLUGIN_NAME = "kubernetes.io/csi"
ESCAPED_PLUGIN_NAME = "kubernetes.io~csi"  # utilstrings.EscapeQualifiedName: "/" becomes "~"
VOL_DATA = "vol_data.json"
GLOBAL_MOUNT = "globalmount"


def attachment_name(volume_handle: str, driver: str, node: str) -> str:
    """The VolumeAttachment kubelet and the attach/detach controller look for: csi-<sha256(handle+driver+node)>."""
    return "csi-" + hashlib.sha256(f"{volume_handle}{driver}{node}".encode()).hexdigest()


def unique_volume_name(driver: str, volume_handle: str) -> str:
    """kubelet's UniqueVolumeName for a CSI volume, as listed in Node status.volumesInUse."""
    return f"{PLUGIN_NAME}/{driver}^{volume_handle}"


def escape(name: str) -> str:
    return name.replace("/", "~")


@dataclass(frozen=True)
class KubeletPaths:
    root: Path

    @property
    def plugin_dir(self) -> Path:
        return self.root / "plugins" / PLUGIN_NAME

    @property
    def pods_dir(self) -> Path:
        return self.root / "pods"

    def device_mount_path(self, driver: str, volume_handle: str) -> Path:
        digest = hashlib.sha256(volume_handle.encode()).hexdigest()
        return self.plugin_dir / driver / digest / GLOBAL_MOUNT

    def pod_volume_dir(self, pod_uid: str, pv_name: str) -> Path:
        """Holds the publish target `mount` and its vol_data.json."""
        return self.pods_dir / pod_uid / "volumes" / ESCAPED_PLUGIN_NAME / escape(pv_name)

    def pod_volumes(self, pod_uid: str) -> Path:
        return self.pods_dir / pod_uid / "volumes" / ESCAPED_PLUGIN_NAME

    def pod_devices(self, pod_uid: str) -> Path:
        return self.pods_dir / pod_uid / "volumeDevices" / ESCAPED_PLUGIN_NAME

    def block_staging_path(self, pv_name: str) -> Path:
        return self.plugin_dir / "volumeDevices" / "staging" / escape(pv_name)

    def block_publish_dir(self, pv_name: str) -> Path:
        return self.plugin_dir / "volumeDevices" / "publish" / escape(pv_name)

    def block_data_dir(self, pv_name: str) -> Path:
        """kubelet's `volumeDevices/<pv>/data`, where the block volume's vol_data.json lives."""
        return self.plugin_dir / "volumeDevices" / escape(pv_name) / "data"

    def pod_uids_on_disk(self) -> list[str]:
        return sorted(p.name for p in self.pods_dir.iterdir()) if self.pods_dir.is_dir() else []


def save_volume_data(directory: Path, data: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    partial = directory / f".{VOL_DATA}.partial"
    partial.write_text(json.dumps(data, sort_keys=True))
    partial.replace(directory / VOL_DATA)


def load_volume_data(directory: Path) -> dict[str, str] | None:
    try:
        raw = json.loads((directory / VOL_DATA).read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return None  # torn by a crash mid-write: as if the operation never started
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else None


def remove_empty(path: Path, up_to: Path) -> None:
    """Remove `path` and its parents while they are empty directories, stopping at `up_to`."""
    current = path
    while current != up_to and up_to in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent


def remove_volume_dir(directory: Path, up_to: Path) -> None:
    """Drop vol_data.json and the now empty directory, like kubelet's removeMountDir after a teardown."""
    (directory / VOL_DATA).unlink(missing_ok=True)
    remove_empty(directory, up_to)


def is_mount_point(path: Path) -> bool:
    try:
        return os.path.ismount(path)
    except OSError:
        return True  # a dead mount cannot be stat'ed: still a mount point as far as cleanup goes
