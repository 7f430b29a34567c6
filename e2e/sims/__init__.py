"""Simulators of the parent-side controllers that cannot run here (KubeVirt, CDI, Cilium LB-IPAM, snapshots).

Each simulator is a module runnable as `python -m e2e.sims.<name> --dir DIR` (see e2e.sims.common); it
reads DIR/cluster.json and acts only through the real kube-apiservers, with the same field names, phases and
conditions as the system it stands in for. `e2e.cluster up` starts every module listed in SIMULATORS and
waits for each to report ready. Product code never imports this package.
"""

SIMULATORS: tuple[str, ...] = ()
