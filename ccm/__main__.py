"""`python -m ccm` / `tenant-cloud-ccm`: flags compatible with kubevirt-cloud-controller-manager."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kube.flags import add_bool_flag, add_logging_flags


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tenant-cloud-ccm",
        description="Cloud controller manager for tenant clusters whose nodes are KubeVirt VMs in a parent cluster.",
    )
    parser.add_argument("--cloud-config", metavar="FILE", help="cloud-config YAML (kubevirt-ccm format accepted)")
    parser.add_argument("--kubeconfig", default="", metavar="FILE", help="tenant kubeconfig; empty = in-cluster")
    parser.add_argument("--cluster-name", default="kubernetes", help="tenant cluster name, used in parent labels")
    add_bool_flag(parser, "--leader-elect", default=True, help="elect a leader before running controllers")
    parser.add_argument(
        "--controllers",
        default="*",
        help="comma list of controllers to run; '*' for all, '-name' disables one",
    )
    parser.add_argument("--metrics-bind-address", default=":10258", help="address for /metrics")
    parser.add_argument("--health-bind-address", default=":10259", help="address for /healthz and /readyz")
    add_logging_flags(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    parser.parse_args(argv)
    print("tenant-cloud-ccm: controllers are not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
