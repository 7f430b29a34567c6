"""Driver settings: kubevirt-csi-driver's flags and storage-class enforcement YAML, plus our additions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kube.validation import SettingsError, describe, yaml_mapping


class SnapshotMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    storage_classes: list[str] = Field(default_factory=list, alias="storageClasses")
    volume_snapshot_classes: list[str] = Field(default_factory=list, alias="volumeSnapshotClasses")


class Enforcement(BaseModel):
    """Which parent StorageClasses tenants may use (kubevirt-csi-driver's enforcement config)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    allow_all: bool = Field(True, alias="allowAll")
    allow_default: bool = Field(True, alias="allowDefault")
    allow_list: list[str] = Field(default_factory=list, alias="allowList")
    storage_snapshot_mapping: list[SnapshotMapping] = Field(default_factory=list, alias="storageSnapshotMapping")

    def allows(self, storage_class: str) -> bool:
        """'' is the parent's default class."""
        if not storage_class:
            return self.allow_all or self.allow_default
        return self.allow_all or storage_class in self.allow_list

    def snapshot_class_for(self, storage_class: str) -> str | None:
        for mapping in self.storage_snapshot_mapping:
            if storage_class in mapping.storage_classes and mapping.volume_snapshot_classes:
                return mapping.volume_snapshot_classes[0]
        return None


class ConfigError(ValueError):
    pass


ENFORCEMENT_FLAG = "--storage-class-enforcement"


def load_enforcement(path: str | None) -> Enforcement:
    """The enforcement YAML; every problem is a ConfigError that names the flag, the file and the key."""
    if not path:
        return Enforcement()
    where = f"{ENFORCEMENT_FLAG} {path}"
    try:
        raw = yaml_mapping(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f"{where}: {error.strerror or error}") from None
    except SettingsError as error:
        raise ConfigError(f"{where}: {error}") from None
    try:
        return Enforcement.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{where}: {describe(error)}") from None


@dataclass(frozen=True)
class DriverConfig:
    driver_name: str
    namespace: str
    labels: dict[str, str]
    volume_prefix: str = "pvc"
    enforcement: Enforcement = field(default_factory=Enforcement)
    # Ours:
    volume_kind: Literal["DataVolume", "PersistentVolumeClaim"] = "DataVolume"
    attach_timeout: float = 60.0
    provision_timeout: float = 30.0
    default_size: int = 1 << 30
    vm_labels: dict[str, str] | None = None
    version: str = "0.1.0"

    @property
    def label_selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))

    @property
    def vm_selector(self) -> dict[str, str]:
        return self.labels if self.vm_labels is None else self.vm_labels
