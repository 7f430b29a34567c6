"""Simulators of the parent-side controllers that cannot run here (KubeVirt, CDI, Cilium LB-IPAM, snapshots).

Each simulator is a module runnable as `python -m e2e.sims.<name> --dir DIR`; it reads DIR/cluster.json and
acts only through the real parent kube-apiserver. `e2e.cluster up` starts every module listed in SIMULATORS.
"""

SIMULATORS: tuple[str, ...] = ()
