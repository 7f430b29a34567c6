"""Command lines stay compatible with kubevirt-ccm and kubevirt-csi-driver."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from ccm.__main__ import build_parser as ccm_parser
from csi.__main__ import DEFAULT_DRIVER_NAME
from csi.__main__ import build_parser as csi_parser
from kube.flags import parse_bool, parse_duration, parse_label_list


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("False", False), ("1", True), ("off", False)])
def test_parse_bool(text: str, expected: bool) -> None:
    assert parse_bool(text) is expected


def test_parse_bool_rejects_garbage() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid boolean"):
        parse_bool("maybe")


def test_parse_label_list() -> None:
    assert parse_label_list("") == {}
    assert parse_label_list("a=b, c.io/d=,e=f=g") == {"a": "b", "c.io/d": "", "e": "f=g"}
    with pytest.raises(argparse.ArgumentTypeError, match="expected key=value"):
        parse_label_list("novalue")


def test_ccm_accepts_kubevirt_ccm_flags() -> None:
    args = ccm_parser().parse_args(
        ["--cloud-config=/etc/cloud/cloud-config", "--kubeconfig", "/k", "--cluster-name=t1", "--leader-elect=false"]
    )
    assert (args.cloud_config, args.kubeconfig, args.cluster_name, args.leader_elect) == (
        "/etc/cloud/cloud-config",
        "/k",
        "t1",
        False,
    )
    assert ccm_parser().parse_args(["--leader-elect"]).leader_elect is True
    assert ccm_parser().parse_args([]).leader_elect is True


def test_csi_accepts_kubevirt_csi_driver_flags() -> None:
    args = csi_parser().parse_args(
        [
            "--endpoint=unix:/csi/csi.sock",
            "--node-name=n1",
            "--infra-cluster-namespace=tenant-a",
            "--infra-cluster-kubeconfig=/p",
            "--infra-cluster-labels=csi-driver/cluster=t1,x=y",
            "--volume-prefix=pvc",
            "--tenant-cluster-kubeconfig=/t",
            "--run-node-service=false",
            "--run-controller-service=true",
        ]
    )
    assert args.infra_cluster_labels == {"csi-driver/cluster": "t1", "x": "y"}
    assert (args.run_node_service, args.run_controller_service) == (False, True)
    assert args.driver_name == DEFAULT_DRIVER_NAME
    assert csi_parser().parse_args(["--driver-name=csi.kubevirt.io"]).driver_name == "csi.kubevirt.io"


@pytest.mark.parametrize("module", ["ccm", "csi"])
def test_module_help(module: str) -> None:
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "--v LEVEL" in result.stdout


@pytest.mark.parametrize(
    ("text", "seconds"), [("15s", 15.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), ("3", 3.0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid duration"):
        parse_duration("soon")
