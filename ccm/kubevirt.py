"""Narrow, read-only models of the KubeVirt objects the ccm reads (kubevirt.io/v1), and their parent APIs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kube.resources import Resource

VIRTUALMACHINES = Resource("kubevirt.io", "v1", "virtualmachines", "VirtualMachine")
VIRTUALMACHINEINSTANCES = Resource("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance")

INSTANCETYPE_ANNOTATION = "kubevirt.io/instancetype-name"
STOPPED_RUN_STRATEGIES = frozenset({"Halted"})
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class Meta(_Read):
    name: str = ""
    namespace: str = ""
    uid: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Interface(_Read):
    name: str = ""
    ip_address: str | None = Field(None, alias="ipAddress")
    ip_addresses: list[str] = Field(default_factory=list, alias="ipAddresses")

    @property
    def ips(self) -> list[str]:
        return self.ip_addresses or ([self.ip_address] if self.ip_address else [])


class VMISpec(_Read):
    hostname: str = ""


class VMIStatus(_Read):
    phase: str = ""
    node_name: str = Field("", alias="nodeName")
    interfaces: list[Interface] = Field(default_factory=list)


class VirtualMachineInstance(_Read):
    metadata: Meta = Meta()
    spec: VMISpec = VMISpec()
    status: VMIStatus = VMIStatus()

    @classmethod
    def read(cls, obj: dict[str, Any]) -> VirtualMachineInstance:
        return cls.model_validate(obj)

    @property
    def finished(self) -> bool:
        return self.status.phase in FINISHED_PHASES

    def interface(self, name: str) -> Interface | None:
        return next((i for i in self.status.interfaces if i.name == name), None)


class InstancetypeMatcher(_Read):
    name: str = ""
    kind: str = ""


class VMSpec(_Read):
    running: bool | None = None
    run_strategy: str | None = Field(None, alias="runStrategy")
    instancetype: InstancetypeMatcher | None = None


class VMStatus(_Read):
    printable_status: str = Field("", alias="printableStatus")
    ready: bool = False


class VirtualMachine(_Read):
    metadata: Meta = Meta()
    spec: VMSpec = VMSpec()
    status: VMStatus = VMStatus()

    @classmethod
    def read(cls, obj: dict[str, Any]) -> VirtualMachine:
        return cls.model_validate(obj)

    @property
    def stopped(self) -> bool:
        """The VM is meant to be off (running: false or a halting run strategy)."""
        if self.spec.run_strategy is not None:
            return self.spec.run_strategy in STOPPED_RUN_STRATEGIES
        return self.spec.running is False
