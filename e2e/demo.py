"""`make demo`: bring up a local parent + tenant and show how to look around.

For now it stops at the control planes; the ccm, load balancer and CSI parts join as they land.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from e2e import cluster as harness


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.demo", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path(".demo"))
    parser.add_argument("--cluster-name", default="demo")
    args = parser.parse_args(argv)
    cluster = harness.up(args.dir, args.cluster_name)
    parent, tenant = cluster.parent_kubeconfig, cluster.tenant_kubeconfig
    print(
        f"""
tenant-cloud demo: cluster {cluster.cluster_name!r} up in {cluster.started_in:.1f}s

  parent kubeconfig: {parent}
  tenant kubeconfig: {tenant}
  parent namespace:  {cluster.parent_namespace}

Try (kubectl is in .venv/bin):
  .venv/bin/kubectl --kubeconfig {parent} version
  .venv/bin/kubectl --kubeconfig {parent} get crd
  .venv/bin/kubectl --kubeconfig {parent} -n {cluster.parent_namespace} get vm,vmi,dv
  .venv/bin/kubectl --kubeconfig {tenant} get nodes,ns

Stop it with: make demo-down   (or: python -m e2e.cluster down --dir {cluster.dir})"""
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
