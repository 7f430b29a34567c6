"""Shell entry point: `python -m e2e.cluster up|down|restart-apiserver|sa-kubeconfig --dir DIR ...`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from e2e import cluster as harness
from e2e.cluster import nodes, workloads
from e2e.cluster.identities import service_account_kubeconfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m e2e.cluster", description=harness.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start parent and tenant control planes in DIR")
    up.add_argument("--dir", required=True, type=Path)
    up.add_argument("--cluster-name", default="demo")
    up.add_argument("--no-sims", action="store_true", help="do not start the parent simulators")
    up.add_argument(
        "--with-controller-manager",
        action="store_true",
        help="run kube-controller-manager for the tenant (PV binding, attach/detach, GC, namespaces)",
    )

    deploy = commands.add_parser(
        "deploy",
        help="deploy tenant-cloud as the charts do: parent chart, tenant chart, and its pods (ccm, CSI controller "
        "with the real sidecars) plus the tenant snapshot-controller as local processes",
    )
    deploy.add_argument("--dir", required=True, type=Path)
    deploy.add_argument("--no-ccm", action="store_true", help="run only the CSI controller side")

    down = commands.add_parser("down", help="stop what `up` started in DIR and remove its data")
    down.add_argument("--dir", required=True, type=Path)

    restart = commands.add_parser("restart-apiserver", help="stop and start one kube-apiserver")
    restart.add_argument("--dir", required=True, type=Path)
    restart.add_argument("--which", required=True, choices=("parent", "tenant"))
    restart.add_argument("--down-for", type=float, default=0.0, metavar="SECONDS")

    sa = commands.add_parser("sa-kubeconfig", help="write a kubeconfig for a ServiceAccount (bound token)")
    sa.add_argument("--dir", required=True, type=Path)
    sa.add_argument("--which", required=True, choices=("parent", "tenant"))
    sa.add_argument("--namespace", required=True)
    sa.add_argument("--name", required=True)
    sa.add_argument("--out", required=True, type=Path)

    def node_command(name: str, help: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help)
        command.add_argument("--dir", required=True, type=Path)
        command.add_argument("--name", required=True)
        return command

    add = node_command("add-node", help="a running VM + VMI in the parent and the Node its kubelet registers")
    add.add_argument("--zone", default="zone-a")
    add.add_argument("--region", default="region-1")
    add.add_argument("--ips", default="10.0.0.5", help="comma list, e.g. 10.0.0.5,fd00::5")
    add.add_argument("--parent-node", help="parent Node the VMI runs on (created with --zone/--region)")
    add.add_argument("--instance-type")
    node_command("remove-node", help="delete the VM and VMI (the tenant Node stays)")
    node_command("stop-node", help="stop the VM: running=false, VMI Succeeded")
    node_command("start-node", help="start the VM again")
    migrate = node_command("migrate-node", help="complete a live migration to another parent Node")
    migrate.add_argument("--to", required=True)
    migrate.add_argument("--zone")
    migrate.add_argument("--region")
    set_ips = node_command("set-ips", help="change the IPs the VMI reports (empty = none)")
    set_ips.add_argument("--ips", required=True)
    return parser


def _ips(value: str) -> list[str]:
    return [ip.strip() for ip in value.split(",") if ip.strip()]


async def _node_command(args: argparse.Namespace) -> None:
    async with nodes.clients(harness.load(args.dir)) as c:
        if args.command == "add-node":
            await nodes.add_node(
                c,
                args.name,
                ips=_ips(args.ips),
                zone=args.zone,
                region=args.region,
                parent_node=args.parent_node,
                instance_type=args.instance_type,
            )
        elif args.command == "remove-node":
            await nodes.remove_node(c, args.name)
        elif args.command == "stop-node":
            await nodes.stop_node(c, args.name)
        elif args.command == "start-node":
            await nodes.start_node(c, args.name)
        elif args.command == "migrate-node":
            await nodes.migrate_node(c, args.name, args.to, args.zone, args.region)
        elif args.command == "set-ips":
            await nodes.set_vmi_status(c, args.name, ips=_ips(args.ips))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        cluster = harness.up(
            args.dir,
            args.cluster_name,
            simulators=not args.no_sims,
            controller_manager=args.with_controller_manager,
        )
        print(f"parent kubeconfig: {cluster.parent_kubeconfig}")
        print(f"tenant kubeconfig: {cluster.tenant_kubeconfig}")
    elif args.command == "deploy":
        stack = workloads.start(harness.load(args.dir), ccm=not args.no_ccm)
        for process in stack.processes:
            print(f"{process.name}: pid {process.pid}, log {args.dir / 'logs' / process.name}.log")
    elif args.command == "down":
        harness.down(args.dir)
    elif args.command == "restart-apiserver":
        harness.restart_apiserver(args.dir, args.which, args.down_for)
    elif args.command.endswith(("-node", "-ips")):
        asyncio.run(_node_command(args))
    elif args.command == "sa-kubeconfig":
        out = service_account_kubeconfig(harness.load(args.dir), args.which, args.namespace, args.name, args.out)
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
