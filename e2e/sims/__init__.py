"""Simulators of the parent-side controllers that cannot run here (KubeVirt, CDI, Cilium LB-IPAM, snapshots).

Each simulator is a module of this package runnable as `python -m e2e.sims.<name> --dir DIR` (see
e2e.sims.common); it reads DIR/cluster.json and acts only through the real kube-apiservers, with the same
field names, phases and conditions as the system it stands in for. `e2e.cluster up` starts every module
here (all but `common` and private ones) and waits for each to report ready. Product code never imports
this package.
"""

from __future__ import annotations

import pkgutil

_NOT_SIMULATORS = {"common"}


def simulators() -> tuple[str, ...]:
    """Module names of every simulator in this package."""
    return tuple(
        f"{__name__}.{info.name}"
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_") and info.name not in _NOT_SIMULATORS
    )
