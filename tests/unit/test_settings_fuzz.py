"""Hostile settings, generated: whatever a cloud-config, an enforcement file or the --linstor-* flags hold, reading
them either succeeds or raises the one error type the mains report as a clean start-up error, quickly."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccm.config import CloudConfigError, parse_cloud_config
from csi.config import ConfigError, load_enforcement
from csi.linstor.flags import add_linstor_flags, linstor_settings_from
from kube.validation import MAX_VALUES

FUZZ = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
CLOUD_CONFIG_KEYS = [
    "kubeconfig", "namespace", "infraLabels", "loadBalancer", "instancesV2", "clusterLabel", "nodeLifecycle",
    "enabled", "creationPollInterval", "selectorless", "enableEPSController", "loadBalancerClass",
    "tenantLoadBalancerClasses", "annotationAllowList", "allowIPRequests", "allowedIPRanges", "infraAnnotations",
    "selector", "orphanSweepInterval", "zoneAndRegionEnabled", "interfaceName", "topology", "source", "zoneKey",
    "deleteGracePeriod", "loadBalancr", "",
]  # fmt: skip
ENFORCEMENT_KEYS = ["allowAll", "allowDefault", "allowList", "storageSnapshotMapping", "storageClasses",
                    "volumeSnapshotClasses", "alowAll"]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["10.0.0.0/8", "fd00::/64", "300.1.2.3/8", "vmi", "parentNode", "*", "yes", "1e309", "-1"])
)


def documents(keys: list[str]) -> st.SearchStrategy[Any]:
    named = st.sampled_from(keys) | st.text(max_size=10)
    values = st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(named, inner, max_size=4), max_leaves=12
    )
    return st.dictionaries(named, values, max_size=6) | values


def texts(keys: list[str]) -> st.SearchStrategy[str]:
    """YAML of generated documents, and raw text that is mostly not YAML at all."""
    return documents(keys).map(lambda d: yaml.safe_dump(d, allow_unicode=True)) | st.text(max_size=300)


def alias_bomb(key_path: list[str]) -> str:
    """A dozen lines whose value at `key_path` expands to 10^9 values."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    nested = "*l8"
    for key in reversed(key_path[1:]):
        nested = f"{{{key}: {nested}}}"
    return "\n".join([*lines, f"{key_path[0]}: {nested}"]) + "\n"


@FUZZ
@given(text=texts(CLOUD_CONFIG_KEYS))
def test_any_cloud_config_is_read_or_refused_cleanly(text: str) -> None:
    try:
        parse_cloud_config(text)
    except CloudConfigError as error:
        assert str(error).startswith("cloud-config: ")


@FUZZ
@given(text=texts(ENFORCEMENT_KEYS))
def test_any_enforcement_file_is_read_or_refused_cleanly(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("enforcement") / "enforcement.yaml"
    path.write_text(text)
    try:
        load_enforcement(str(path))
    except ConfigError as error:
        assert str(error).startswith(f"--storage-class-enforcement {path}: ")


flag_values = st.text(max_size=40) | st.sampled_from(["", ",", "ctrl", "https://[::1]:3371", "-5", "0", "1e400"])


@FUZZ
@given(url=flag_values, cert=flag_values, key=flag_values, ca=flag_values, timeout=st.floats() | st.integers())
def test_any_linstor_flags_are_read_or_refused_cleanly(url: str, cert: str, key: str, ca: str, timeout: float) -> None:
    parser = argparse.ArgumentParser()
    add_linstor_flags(parser)
    args = parser.parse_args([])
    args.linstor_url, args.linstor_client_cert, args.linstor_client_key, args.linstor_ca = url, cert, key, ca
    args.linstor_timeout = timeout
    try:
        linstor_settings_from(args)
    except ValueError as error:
        assert str(error).startswith("LINSTOR settings: ") and "\n" not in str(error)


@pytest.mark.parametrize(
    "key_path", [["infraLabels"], ["loadBalancer", "allowedIPRanges"], ["loadBalancer", "annotationAllowList"]]
)
def test_a_yaml_alias_bomb_is_refused_at_once(key_path: list[str]) -> None:
    started = time.monotonic()
    with pytest.raises(CloudConfigError, match=f"more than {MAX_VALUES} values"):
        parse_cloud_config(alias_bomb(key_path))
    assert time.monotonic() - started < 5


def test_an_enforcement_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "enforcement.yaml"
    path.write_text(alias_bomb(["allowList"]))
    with pytest.raises(ConfigError, match="values once YAML aliases are expanded"):
        load_enforcement(str(path))
