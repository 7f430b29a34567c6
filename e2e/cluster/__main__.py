"""Shell entry point: `python -m e2e.cluster up|down|restart-apiserver|sa-kubeconfig --dir DIR ...`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from e2e import cluster as harness
from e2e.cluster.identities import service_account_kubeconfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m e2e.cluster", description=harness.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start parent and tenant control planes in DIR")
    up.add_argument("--dir", required=True, type=Path)
    up.add_argument("--cluster-name", default="demo")
    up.add_argument("--no-sims", action="store_true", help="do not start the parent simulators")

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        cluster = harness.up(args.dir, args.cluster_name, simulators=not args.no_sims)
        print(f"parent kubeconfig: {cluster.parent_kubeconfig}")
        print(f"tenant kubeconfig: {cluster.tenant_kubeconfig}")
    elif args.command == "down":
        harness.down(args.dir)
    elif args.command == "restart-apiserver":
        harness.restart_apiserver(args.dir, args.which, args.down_for)
    elif args.command == "sa-kubeconfig":
        out = service_account_kubeconfig(harness.load(args.dir), args.which, args.namespace, args.name, args.out)
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
