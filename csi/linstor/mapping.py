"""From parent Kubernetes objects to LINSTOR names: claim -> PV -> resource definition, StorageClass -> placement.

linstor-csi names the resource definition after the volume handle of the PV it provisions, and reads its
StorageClass parameters either in its own namespace (`linstor.csi.linbit.com/placementCount`) or unprefixed
(`placementCount`), matching the key case-insensitively; `autoPlace` is the older spelling of `placementCount`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DRIVER = "linstor.csi.linbit.com"
DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
_PLACEMENT_KEYS = ("placementcount", "autoplace")


class InvalidParameter(ValueError):
    """A StorageClass parameter linstor-csi itself would reject."""


@dataclass(frozen=True)
class Placement:
    """Where a parent StorageClass puts replicas; None means LINSTOR's default for the field."""

    resource_group: str | None = None
    storage_pool: str | None = None
    placement_count: int = 1
    nodes: tuple[str, ...] = ()


def _driver_parameters(parameters: Mapping[str, str]) -> dict[str, str]:
    """Lower-cased keys of linstor-csi's own parameters; the prefixed spelling wins over the bare one."""
    found: dict[str, str] = {}
    for key, value in sorted(parameters.items(), key=lambda item: "/" in item[0]):
        namespace, _, raw = key.partition("/") if "/" in key else ("", "", key)
        if namespace in ("", DRIVER):
            found[raw.lower()] = value
    return found


def placement_of(parameters: Mapping[str, str]) -> Placement:
    """linstor-csi's reading of resourceGroup, storagePool, placementCount/autoPlace and nodeList."""
    params = _driver_parameters(parameters)
    count_text = next((params[k] for k in _PLACEMENT_KEYS if k in params), "1").strip() or "1"
    try:
        count = int(count_text)
    except ValueError:
        raise InvalidParameter(f"placementCount {count_text!r} is not a number") from None
    if count < 1:
        raise InvalidParameter(f"placementCount {count} must be at least 1")
    nodes = tuple(params.get("nodelist", "").split())
    return Placement(
        resource_group=params.get("resourcegroup") or None,
        storage_pool=params.get("storagepool") or None,
        # A node list places one diskful replica on each listed node and no others.
        placement_count=len(nodes) if nodes else count,
        nodes=nodes,
    )


def linstor_class(storage_class: Mapping[str, Any]) -> bool:
    return storage_class.get("provisioner") == DRIVER


def default_class(storage_class: Mapping[str, Any]) -> bool:
    annotations = (storage_class.get("metadata") or {}).get("annotations") or {}
    return any(annotations.get(key) == "true" for key in DEFAULT_CLASS_ANNOTATIONS)


def volume_name_of(claim: Mapping[str, Any]) -> str | None:
    """The PV a parent claim is bound to, if any."""
    return (claim.get("spec") or {}).get("volumeName") or None


def resource_definition_of(volume: Mapping[str, Any]) -> str | None:
    """The LINSTOR resource definition behind a parent PV: its CSI volume handle, for linstor-csi PVs only."""
    csi = (volume.get("spec") or {}).get("csi") or {}
    if csi.get("driver") != DRIVER:
        return None
    return str(csi.get("volumeHandle") or "") or None
