"""Command-line conventions shared by our binaries, matching the Go (pflag/klog) style users already script."""

from __future__ import annotations

import argparse

_TRUE = {"1", "t", "true", "yes", "on"}
_FALSE = {"0", "f", "false", "no", "off"}


def parse_bool(value: str) -> bool:
    """Parse a pflag-style boolean (`--flag=false`)."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {value!r} (use true or false)")


def add_bool_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, *, default: bool, help: str
) -> None:
    """A boolean flag usable as `--name`, `--name=true` or `--name=false`."""
    parser.add_argument(name, type=parse_bool, nargs="?", const=True, default=default, metavar="BOOL", help=help)


def parse_duration(value: str) -> float:
    """A Go-style duration (`15s`, `1m`, `500ms`, `1h`) or plain seconds, in seconds."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if value.endswith(suffix):
            try:
                return float(value[: -len(suffix)]) * units[suffix]
            except ValueError:
                break
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {value!r} (e.g. 15s, 500ms, 2m)") from None


def parse_label_list(value: str) -> dict[str, str]:
    """Parse `k=v,k2=v2` (kubevirt-csi-driver's --infra-cluster-labels) into a dict; empty gives {}."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"invalid label {item!r}: expected key=value")
        labels[key] = val
    return labels


def add_logging_flags(parser: argparse.ArgumentParser) -> None:
    """klog-compatible verbosity plus a selectable structured format."""
    group = parser.add_argument_group("logging")
    group.add_argument("--v", "-v", type=int, default=2, metavar="LEVEL", help="log verbosity (klog levels, 0-10)")
    group.add_argument("--log-format", choices=("text", "json", "logfmt"), default="logfmt", help="log line format")
