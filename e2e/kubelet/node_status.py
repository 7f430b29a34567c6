"""Node status.volumesInUse, kubelet's promise to the attach/detach controller not to let a volume go.

kubelet lists a volume there before it stages it (a volume is only mounted once the list says so) and drops it
after the last unmount. The list is applied server-side on the status subresource under our own field manager,
so the ccm's addresses and everything else in the status stay untouched; it is written only when it changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from kube.client import Client
from kube.resources import NODES

log = logging.getLogger(__name__)


class VolumesInUse:
    """`desired()` computes the list from the current state; `sync()` writes it when it differs."""

    def __init__(
        self, tenant: Client, node: str, desired: Callable[[], Iterable[str]], reported: Callable[[], Iterable[str]]
    ) -> None:
        self._tenant = tenant
        self._node = node
        self._desired = desired
        self._lock = asyncio.Lock()
        self._written: list[str] = sorted(reported())  # what the Node says, e.g. from before a restart

    @property
    def reported(self) -> frozenset[str]:
        return frozenset(self._written)

    async def sync(self) -> None:
        async with self._lock:
            wanted = sorted(set(self._desired()))
            if wanted == self._written:
                return
            body = {"metadata": {"name": self._node}, "status": {"volumesInUse": wanted}}
            await self._tenant.apply(NODES, body, subresource="status", force=True)
            added = sorted(set(wanted) - set(self._written))
            removed = sorted(set(self._written) - set(wanted))
            if added or removed:
                log.info("node %s volumesInUse: added %s, removed %s", self._node, added, removed)
            self._written = wanted
