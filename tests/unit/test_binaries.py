"""The kube build module is derived from k8s.io/kubernetes's own go.mod; versions are stamped correctly."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e import binaries

GO_MOD = """module k8s.io/kubernetes

go 1.26.0

require (
	k8s.io/api v0.0.0
	k8s.io/client-go v0.0.0
	sigs.k8s.io/yaml v1.4.0
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	k8s.io/sample-cli-plugin => ./staging/src/k8s.io/sample-cli-plugin
)
"""


def test_staging_modules_come_from_the_replace_block(tmp_path: Path) -> None:
    gomod = tmp_path / "go.mod"
    gomod.write_text(GO_MOD)
    assert binaries.staging_modules(gomod) == ["k8s.io/api", "k8s.io/client-go", "k8s.io/sample-cli-plugin"]


def test_version_ldflags_stamp_both_version_packages() -> None:
    flags = binaries._version_ldflags("v1.36.3")
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.36.3" in flags
        assert f"-X {package}.gitMinor=36" in flags


def test_cache_dir_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TENANT_CLOUD_CACHE", str(tmp_path))
    assert binaries.cache_dir() == tmp_path
    monkeypatch.delenv("TENANT_CLOUD_CACHE")
    assert binaries.cache_dir() == Path.home() / ".cache" / "tenant-cloud"
