"""`python -m csi` / `tenant-cloud-csi`: flags compatible with kubevirt-csi-driver, plus ours."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from csi.app import Driver, Options, StartupError
from csi.config import ConfigError, DriverConfig, load_enforcement
from csi.linstor.flags import add_linstor_flags, check_tls_files, linstor_settings_from
from kube.controller import install_signal_handlers
from kube.flags import add_bool_flag, add_logging_flags, parse_duration, parse_label_list
from kube.logging import configure_logging

DEFAULT_DRIVER_NAME = "csi.tenant-cloud.io"
log = logging.getLogger("csi")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tenant-cloud-csi",
        description="CSI driver that provisions tenant volumes in the parent cluster and hot-plugs them into VMs.",
    )
    parser.add_argument("--endpoint", default="unix:/csi/csi.sock", help="CSI endpoint (unix:PATH or tcp://HOST:PORT)")
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
    ours = parser.add_argument_group("tenant-cloud additions")
    ours.add_argument(
        "--storage-class-enforcement",
        metavar="FILE",
        help="YAML {allowAll, allowDefault, allowList, storageSnapshotMapping}",
    )
    ours.add_argument(
        "--parent-volume-kind",
        choices=("DataVolume", "PersistentVolumeClaim"),
        default="DataVolume",
        help="PersistentVolumeClaim for parents without CDI",
    )
    ours.add_argument(
        "--vm-labels",
        type=parse_label_list,
        default=None,
        metavar="K=V,...",
        help="labels this cluster's VMs carry (default: --infra-cluster-labels)",
    )
    ours.add_argument(
        "--attach-timeout",
        type=parse_duration,
        default=60.0,
        metavar="DURATION",
        help="how long ControllerPublish/Unpublish wait before returning UNAVAILABLE for a retry",
    )
    ours.add_argument("--provision-timeout", type=parse_duration, default=30.0, metavar="DURATION")
    ours.add_argument("--max-volumes-per-node", type=int, default=0, help="reported by NodeGetInfo (0 = unset)")
    ours.add_argument("--by-id-root", type=Path, default=Path("/dev/disk/by-id"), help=argparse.SUPPRESS)
    ours.add_argument("--node-id", default="", help=argparse.SUPPRESS)
    ours.add_argument("--health-bind-address", default=":9808", help="/healthz and /readyz ('0' disables)")
    ours.add_argument("--metrics-bind-address", default=":9809", help="/metrics ('0' disables)")
    add_linstor_flags(parser)
    add_logging_flags(parser)
    return parser


def options_from(args: argparse.Namespace) -> Options:
    if not args.infra_cluster_namespace:
        raise StartupError("--infra-cluster-namespace is required")
    config = DriverConfig(
        driver_name=args.driver_name,
        namespace=args.infra_cluster_namespace,
        labels=args.infra_cluster_labels,
        volume_prefix=args.volume_prefix,
        enforcement=load_enforcement(args.storage_class_enforcement),
        volume_kind=args.parent_volume_kind,
        attach_timeout=args.attach_timeout,
        provision_timeout=args.provision_timeout,
        vm_labels=args.vm_labels,
    )
    linstor = linstor_settings_from(args)
    if linstor is not None:
        check_tls_files(linstor)
    return Options(
        config=config,
        endpoint=args.endpoint,
        parent_kubeconfig=args.infra_cluster_kubeconfig,
        tenant_kubeconfig=args.tenant_cluster_kubeconfig,
        node_name=args.node_name,
        run_controller=args.run_controller_service,
        run_node=args.run_node_service,
        node_id=args.node_id,
        max_volumes_per_node=args.max_volumes_per_node,
        by_id_root=args.by_id_root,
        health_bind=args.health_bind_address,
        metrics_bind=args.metrics_bind_address,
        linstor=linstor,
    )


async def _serve(options: Options) -> None:
    stop = asyncio.Event()
    install_signal_handlers(stop)
    await Driver(options).run(stop)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.v, args.log_format)
    try:
        asyncio.run(_serve(options_from(args)))
    except (StartupError, ConfigError, ValueError, OSError) as error:
        log.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
