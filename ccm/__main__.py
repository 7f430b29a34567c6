"""`python -m ccm` / `tenant-cloud-ccm`: flags compatible with kubevirt-cloud-controller-manager."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from ccm.app import CloudControllerManager, Options, StartupError
from ccm.config import CloudConfigError, load_cloud_config
from kube.controller import install_signal_handlers
from kube.flags import add_bool_flag, add_logging_flags, parse_duration
from kube.leaderelection import LeaderElectionSettings
from kube.logging import configure_logging

log = logging.getLogger("ccm")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tenant-cloud-ccm",
        description="Cloud controller manager for tenant clusters whose nodes are KubeVirt VMs in a parent cluster.",
    )
    parser.add_argument("--cloud-config", metavar="FILE", help="cloud-config YAML (kubevirt-ccm format accepted)")
    parser.add_argument("--kubeconfig", default="", metavar="FILE", help="tenant kubeconfig; empty = in-cluster")
    parser.add_argument("--cluster-name", default="kubernetes", help="tenant cluster name, used in parent labels")
    parser.add_argument(
        "--controllers",
        default="*",
        help="comma list of controllers: '*' for all, 'name' to enable, '-name' to disable "
        "(cloud-node, cloud-node-lifecycle)",
    )
    parser.add_argument("--metrics-bind-address", default=":10258", help="address for /metrics ('0' disables)")
    parser.add_argument("--health-bind-address", default=":10259", help="address for /healthz, /readyz ('0' disables)")
    election = parser.add_argument_group("leader election")
    add_bool_flag(election, "--leader-elect", default=True, help="elect a leader before running controllers")
    election.add_argument("--leader-elect-lease-duration", type=parse_duration, default=15.0, metavar="DURATION")
    election.add_argument("--leader-elect-renew-deadline", type=parse_duration, default=10.0, metavar="DURATION")
    election.add_argument("--leader-elect-retry-period", type=parse_duration, default=2.0, metavar="DURATION")
    election.add_argument("--leader-elect-resource-name", default="cloud-controller-manager")
    election.add_argument("--leader-elect-resource-namespace", default="kube-system")
    compat = parser.add_argument_group("accepted for compatibility with upstream manifests, no effect")
    compat.add_argument("--cloud-provider", default="kubevirt")
    add_bool_flag(compat, "--authentication-skip-lookup", default=False, help="ignored")
    add_bool_flag(compat, "--use-service-account-credentials", default=False, help="ignored")
    compat.add_argument("--bind-address", default="", help="ignored: see --health-bind-address")
    compat.add_argument("--secure-port", default="", help="ignored: see --health-bind-address")
    add_logging_flags(parser)
    return parser


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        cloud_config=load_cloud_config(args.cloud_config),
        tenant_kubeconfig=args.kubeconfig,
        cluster_name=args.cluster_name,
        controllers=args.controllers,
        leader_elect=args.leader_elect,
        leader_election=LeaderElectionSettings(
            lease_duration=args.leader_elect_lease_duration,
            renew_deadline=args.leader_elect_renew_deadline,
            retry_period=args.leader_elect_retry_period,
        ),
        lease_name=args.leader_elect_resource_name,
        lease_namespace=args.leader_elect_resource_namespace,
        health_bind=args.health_bind_address,
        metrics_bind=args.metrics_bind_address,
    )


async def _serve(options: Options) -> None:
    stop = asyncio.Event()
    install_signal_handlers(stop)
    await CloudControllerManager(options).run(stop)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.v, args.log_format)
    try:
        options = options_from(args)
        asyncio.run(_serve(options))
    except (CloudConfigError, StartupError, ValueError, OSError) as error:
        log.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
