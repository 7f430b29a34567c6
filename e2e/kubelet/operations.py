"""Stage, publish, unpublish and unstage one volume the way kubelet's CSI plugin does, on kubelet's paths.

Setup writes vol_data.json before each RPC, so a restarted stand-in can find and tear down what it set up
without the API; teardown reads them back. The actual state kubelet keeps in memory is rebuilt from these files
after a restart, and, like kubelet's reconstructed volumes, is treated as uncertain: the next setup calls
NodeStage/NodePublish again, which the plugin answers idempotently from its mount table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from csi._proto import csi_pb2
from e2e.kubelet.paths import (
    KubeletPaths,
    attachment_name,
    is_mount_point,
    load_volume_data,
    remove_empty,
    remove_volume_dir,
    save_volume_data,
    unique_volume_name,
)
from e2e.kubelet.plugin import NodeInfo, NodePlugin
from e2e.kubelet.spec import CSIVolume, capability
from kube.client import Object

log = logging.getLogger(__name__)

HANDLE, DRIVER, SPEC = "volumeHandle", "driverName", "specVolID"


@dataclass(frozen=True)
class Staged:
    handle: str
    pv_name: str
    block: bool


@dataclass(frozen=True)
class Published:
    """A volume published to a pod, as found on disk."""

    pv_name: str
    handle: str
    block: bool
    target: Path


class VolumeOperations:
    def __init__(self, plugin: NodePlugin, info: NodeInfo, paths: KubeletPaths, node: str, driver: str) -> None:
        self.plugin = plugin
        self.info = info
        self.paths = paths
        self.node = node
        self.driver = driver
        self._locks: dict[str, asyncio.Lock] = {}
        # What this process staged and published; anything else is uncertain and done again (idempotently).
        self._staged: set[str] = set()
        self._published: set[tuple[str, str]] = set()

    def lock(self, handle: str) -> asyncio.Lock:
        """Stage+publish and unpublish+unstage of one volume never interleave."""
        return self._locks.setdefault(handle, asyncio.Lock())

    def staging_path(self, volume: CSIVolume) -> Path:
        if volume.block:
            return self.paths.block_staging_path(volume.pv_name)
        return self.paths.device_mount_path(volume.driver, volume.handle)

    def target_path(self, volume: CSIVolume, pod_uid: str) -> Path:
        if volume.block:
            return self.paths.block_publish_dir(volume.pv_name) / pod_uid
        return self.paths.pod_volume_dir(pod_uid, volume.pv_name) / "mount"

    async def stage(self, volume: CSIVolume, publish_context: dict[str, str]) -> None:
        """MountDevice (filesystem) / SetUpDevice (block): NodeStageVolume, once per volume on this node."""
        if volume.handle in self._staged:
            return
        staging = self.staging_path(volume)
        data = {HANDLE: volume.handle, DRIVER: volume.driver}
        if volume.block:
            save_volume_data(self.paths.block_data_dir(volume.pv_name), {**data, SPEC: volume.pv_name})
        else:
            save_volume_data(staging.parent, data)
        if self.info.stage_unstage:
            staging.mkdir(parents=True, exist_ok=True, mode=0o750)
            request = csi_pb2.NodeStageVolumeRequest(
                volume_id=volume.handle,
                publish_context=publish_context,
                staging_target_path=str(staging),
                volume_capability=capability(volume, self.info.single_node_multi_writer),
                volume_context=volume.attributes,
            )
            await self.plugin.stage(request)
            log.info("staged %s at %s", volume.pv_name, staging)
        self._staged.add(volume.handle)

    async def publish(
        self, volume: CSIVolume, pod: Object, publish_context: dict[str, str], context: dict[str, str]
    ) -> Path:
        """SetUp (filesystem) / MapPodDevice (block): NodePublishVolume to this pod's target."""
        uid = str(pod["metadata"]["uid"])
        target = self.target_path(volume, uid)
        if (uid, volume.handle) in self._published:
            return target
        if volume.block:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        else:
            save_volume_data(
                target.parent,
                {
                    SPEC: volume.pv_name,
                    HANDLE: volume.handle,
                    DRIVER: volume.driver,
                    "nodeName": self.node,
                    "attachmentID": attachment_name(volume.handle, volume.driver, self.node),
                    "volumeLifecycleMode": "Persistent",
                },
            )
        request = csi_pb2.NodePublishVolumeRequest(
            volume_id=volume.handle,
            publish_context=publish_context,
            staging_target_path=str(self.staging_path(volume)) if self.info.stage_unstage else "",
            target_path=str(target),
            volume_capability=capability(volume, self.info.single_node_multi_writer),
            readonly=volume.read_only,
            volume_context=context,
        )
        await self.plugin.publish(request)
        if volume.block:
            _link(self.paths.pod_devices(uid) / volume.pv_name, target)
        self._published.add((uid, volume.handle))
        log.info("published %s to pod %s at %s", volume.pv_name, uid, target)
        return target

    async def expand(self, volume: CSIVolume, pod_uid: str, size: int) -> int:
        """NodeExpandVolume on the pod's published path, kubelet's volume_path, with the staging path."""
        request = csi_pb2.NodeExpandVolumeRequest(
            volume_id=volume.handle,
            volume_path=str(self.target_path(volume, pod_uid)),
            capacity_range=csi_pb2.CapacityRange(required_bytes=size),
            staging_target_path=str(self.staging_path(volume)) if self.info.stage_unstage else "",
            volume_capability=capability(volume, self.info.single_node_multi_writer),
        )
        return await self.plugin.expand(request)

    def published_on_disk(self, pod_uid: str) -> list[Published]:
        found = []
        volumes = self.paths.pod_volumes(pod_uid)
        for directory in sorted(volumes.iterdir()) if volumes.is_dir() else []:
            data = load_volume_data(directory)
            if data is not None and data.get(DRIVER) == self.driver:
                found.append(Published(data.get(SPEC, directory.name), data[HANDLE], False, directory / "mount"))
        devices = self.paths.pod_devices(pod_uid)
        for link in sorted(devices.iterdir()) if devices.is_dir() else []:
            data = load_volume_data(self.paths.block_data_dir(link.name))
            if data is not None and data.get(DRIVER) == self.driver:
                found.append(
                    Published(link.name, data[HANDLE], True, self.paths.block_publish_dir(link.name) / pod_uid)
                )
        return found

    def staged_on_disk(self) -> list[Staged]:
        """Every volume whose staging data is on disk (a filesystem's staging data does not name its PV)."""
        staged = []
        driver_dir = self.paths.plugin_dir / self.driver
        for directory in sorted(driver_dir.iterdir()) if driver_dir.is_dir() else []:
            data = load_volume_data(directory)
            if data is not None:
                staged.append(Staged(data[HANDLE], "", False))
        devices = self.paths.plugin_dir / "volumeDevices"
        for directory in sorted(devices.iterdir()) if devices.is_dir() else []:
            data = load_volume_data(directory / "data")
            if data is not None and data.get(DRIVER) == self.driver:
                staged.append(Staged(data[HANDLE], data.get(SPEC, directory.name), True))
        return staged

    def in_use_on_disk(self) -> set[str]:
        """What this node holds: staged volumes and volumes still published to some pod."""
        handles = {s.handle for s in self.staged_on_disk()}
        for uid in self.paths.pod_uids_on_disk():
            handles.update(p.handle for p in self.published_on_disk(uid))
        return {unique_volume_name(self.driver, handle) for handle in handles}

    def users(self, handle: str, but: str = "") -> list[str]:
        """Pods (by UID) other than `but` that have the volume published on disk."""
        return [
            uid
            for uid in self.paths.pod_uids_on_disk()
            if uid != but and any(p.handle == handle for p in self.published_on_disk(uid))
        ]

    async def unpublish(self, pod_uid: str, published: Published) -> None:
        """TearDown / UnmapPodDevice: NodeUnpublishVolume, then kubelet's own files."""
        await self.plugin.unpublish(published.handle, published.target)
        self._published.discard((pod_uid, published.handle))
        if published.block:
            (self.paths.pod_devices(pod_uid) / published.pv_name).unlink(missing_ok=True)
            remove_empty(self.paths.block_publish_dir(published.pv_name), self.paths.plugin_dir)
        else:
            _remove_unmounted_dir(published.target)
            remove_volume_dir(published.target.parent, self.paths.pods_dir)
        log.info("unpublished %s from pod %s", published.pv_name, pod_uid)

    async def unstage(self, staged: Staged) -> None:
        """UnmountDevice / TearDownDevice: NodeUnstageVolume, then remove the staging files."""
        if staged.block:
            staging = self.paths.block_staging_path(staged.pv_name)
            if self.info.stage_unstage and staging.exists():
                await self.plugin.unstage(staged.handle, staging)
            _remove_unmounted_dir(staging)
            remove_empty(self.paths.block_publish_dir(staged.pv_name), self.paths.plugin_dir)
            remove_volume_dir(self.paths.block_data_dir(staged.pv_name), self.paths.plugin_dir)
        else:
            staging = self.paths.device_mount_path(self.driver, staged.handle)
            if self.info.stage_unstage:
                await self.plugin.unstage(staged.handle, staging)
            _remove_unmounted_dir(staging)
            remove_volume_dir(staging.parent, self.paths.plugin_dir)
        self._staged.discard(staged.handle)
        log.info("unstaged %s", staged.pv_name or staged.handle)

    def forget_pod(self, pod_uid: str) -> None:
        """Remove the pod's directory tree of empty directories; nothing mounted is ever entered."""
        _remove_empty_tree(self.paths.pods_dir / pod_uid)


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    if link.is_symlink() and link.readlink() == target:
        return
    link.unlink(missing_ok=True)
    link.symlink_to(target)


def _remove_unmounted_dir(path: Path) -> None:
    """Remove what the plugin left at a target it should have cleaned up; never anything still mounted."""
    if not path.exists() or is_mount_point(path):
        return
    try:
        path.rmdir() if path.is_dir() else path.unlink()
    except OSError as error:
        log.warning("cannot remove %s after teardown: %s", path, error)


def _remove_empty_tree(path: Path) -> None:
    if not path.is_dir() or path.is_symlink() or is_mount_point(path):
        return
    for child in path.iterdir():
        _remove_empty_tree(child)
    with contextlib.suppress(OSError):
        path.rmdir()
