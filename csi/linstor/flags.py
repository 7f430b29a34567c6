"""The `--linstor-*` flags of the CSI controller; no `--linstor-url` means no LINSTOR features at all."""

from __future__ import annotations

import argparse
import os
import ssl

from pydantic import ValidationError

from csi.linstor.settings import LOCALITIES, LinstorSettings, controller_url, ssl_context
from kube.validation import describe

# linstor-client and golinstor read the controller list from this variable; accept it as the flag's default.
CONTROLLERS_ENV = "LS_CONTROLLERS"


def duration(value: str) -> float:
    """`500ms`, `5s`, `2m` or plain seconds."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0}
    try:
        for suffix in ("ms", "s", "m"):
            if value.endswith(suffix):
                return float(value[: -len(suffix)]) * units[suffix]
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {value!r} (use e.g. 500ms, 5s, 2m)") from None


def add_linstor_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("LINSTOR (optional: capacity, DRBD health and data locality of parent volumes)")
    group.add_argument(
        "--linstor-url",
        default=os.environ.get(CONTROLLERS_ENV, ""),
        metavar="URL[,URL...]",
        help=f"LINSTOR controller(s), tried in order (default ${CONTROLLERS_ENV}; empty disables LINSTOR features)",
    )
    group.add_argument("--linstor-client-cert", default="", metavar="FILE", help="PEM client certificate")
    group.add_argument("--linstor-client-key", default="", metavar="FILE", help="PEM key of the client certificate")
    group.add_argument("--linstor-ca", default="", metavar="FILE", help="PEM CA bundle of the controller")
    group.add_argument(
        "--linstor-timeout", type=duration, default=5.0, metavar="DURATION", help="bound of one LINSTOR request"
    )
    group.add_argument("--linstor-connect-timeout", type=duration, default=2.0, metavar="DURATION")
    group.add_argument(
        "--linstor-cache-ttl",
        type=duration,
        default=30.0,
        metavar="DURATION",
        help="how long volume health is reused (capacity: twice that)",
    )
    group.add_argument(
        "--linstor-locality",
        choices=LOCALITIES,
        default="prefer",
        help="prefer: on ControllerPublish, ask LINSTOR for a diskful replica on the VM's parent node if it has none",
    )


# The settings' fields as users know them: by the flag that sets them.
FLAGS = {
    "urls": "--linstor-url",
    "client_cert": "--linstor-client-cert",
    "client_key": "--linstor-client-key",
    "ca": "--linstor-ca",
    "timeout": "--linstor-timeout",
    "connect_timeout": "--linstor-connect-timeout",
    "health_ttl": "--linstor-cache-ttl",
    "capacity_ttl": "--linstor-cache-ttl",
    "locality": "--linstor-locality",
}


def linstor_settings_from(args: argparse.Namespace) -> LinstorSettings | None:
    """Settings from the parsed flags; None when no controller is given. Raises ValueError naming the flag."""
    if not args.linstor_url.strip():
        return None
    tls = bool(args.linstor_client_cert or args.linstor_ca)
    for item in filter(None, (part.strip() for part in args.linstor_url.split(","))):
        try:
            controller_url(item, tls=tls)
        except ValueError as error:
            raise ValueError(f"LINSTOR settings: --linstor-url: {error}") from None
    if bool(args.linstor_client_cert) != bool(args.linstor_client_key):
        raise ValueError("LINSTOR settings: --linstor-client-cert and --linstor-client-key go together")
    try:
        return LinstorSettings(
            urls=args.linstor_url,  # the model splits and normalises the comma-separated list
            client_cert=args.linstor_client_cert or None,
            client_key=args.linstor_client_key or None,
            ca=args.linstor_ca or None,
            timeout=args.linstor_timeout,
            connect_timeout=args.linstor_connect_timeout,
            health_ttl=args.linstor_cache_ttl,
            capacity_ttl=2 * args.linstor_cache_ttl,
            locality=args.linstor_locality,
        )
    except ValidationError as error:
        raise ValueError(f"LINSTOR settings: {describe(error, FLAGS)}") from None


def check_tls_files(settings: LinstorSettings) -> None:
    """At start-up: the TLS files exist and load. The chart mounts them before the container starts, so a
    missing or broken one is a mistake to report now, not a LINSTOR outage to find later."""
    for field in ("client_cert", "client_key", "ca"):
        path = getattr(settings, field)
        if path is not None and not path.is_file():
            raise ValueError(f"LINSTOR settings: {FLAGS[field]} {path}: no such file")
    try:
        ssl_context(settings)
    except ssl.SSLError as error:
        raise ValueError(f"LINSTOR settings: the TLS files do not load: {error}") from None
