"""`python -m csi` / `tenant-cloud-csi`: flags compatible with kubevirt-csi-driver."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kube.flags import add_bool_flag, add_logging_flags, parse_label_list

DEFAULT_DRIVER_NAME = "csi.tenant-cloud.io"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tenant-cloud-csi",
        description="CSI driver that provisions tenant volumes in the parent cluster and hot-plugs them into VMs.",
    )
    parser.add_argument("--endpoint", default="unix:/csi/csi.sock", help="CSI endpoint (unix:PATH or tcp:HOST:PORT)")
    parser.add_argument("--node-name", default="", help="tenant Node this node service runs on")
    parser.add_argument("--driver-name", default=DEFAULT_DRIVER_NAME, help="CSI driver name (csi.kubevirt.io works)")
    parser.add_argument("--infra-cluster-namespace", default="", help="parent namespace holding the VMs and volumes")
    parser.add_argument("--infra-cluster-kubeconfig", default="", help="parent kubeconfig; empty = in-cluster")
    parser.add_argument(
        "--infra-cluster-labels",
        type=parse_label_list,
        default={},
        metavar="K=V,...",
        help="labels that mark this cluster's parent objects",
    )
    parser.add_argument("--volume-prefix", default="pvc", help="prefix of parent volume names")
    parser.add_argument("--tenant-cluster-kubeconfig", default="", help="tenant kubeconfig; empty = in-cluster")
    add_bool_flag(parser, "--run-node-service", default=True, help="serve the CSI node service")
    add_bool_flag(parser, "--run-controller-service", default=True, help="serve the CSI controller service")
    add_logging_flags(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    parser.parse_args(argv)
    print("tenant-cloud-csi: services are not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
