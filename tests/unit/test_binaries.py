"""The kube build module is derived from k8s.io/kubernetes's own go.mod; versions are stamped correctly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from e2e import binaries

CHART_SIDECARS = {
    "provisioner": "csi-provisioner",
    "attacher": "csi-attacher",
    "resizer": "csi-resizer",
    "snapshotter": "csi-snapshotter",
}

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


SNAPSHOTTER_GO_MOD = """module github.com/kubernetes-csi/external-snapshotter/v8

go 1.26.0

require (
	github.com/kubernetes-csi/external-snapshotter/client/v8 v8.4.0
	k8s.io/api v0.36.1 // indirect
)

replace github.com/kubernetes-csi/external-snapshotter/client/v8 => ./client

replace k8s.io/api => k8s.io/api v0.36.1

replace (
	k8s.io/api => ../api
)
"""


CLIENT = "github.com/kubernetes-csi/external-snapshotter/client/v8"


def test_nested_module_replaces_point_at_the_module_released_with_the_same_tag() -> None:
    rewritten = binaries.published_replaces(SNAPSHOTTER_GO_MOD, "v8.6.0", lambda module, version: True)
    assert f"replace {CLIENT} => {CLIENT} v8.6.0\n" in rewritten
    assert "replace k8s.io/api => k8s.io/api v0.36.1\n" in rewritten  # a published replace stays
    assert "./client" not in rewritten


def test_without_a_release_of_the_same_tag_the_required_version_is_used() -> None:
    asked: list[tuple[str, str]] = []

    def published(module: str, version: str) -> bool:
        asked.append((module, version))
        return version != "v8.6.0"

    rewritten = binaries.published_replaces(SNAPSHOTTER_GO_MOD, "v8.6.0", published)
    assert f"replace {CLIENT} => {CLIENT} v8.4.0\n" in rewritten
    assert "\tk8s.io/api => k8s.io/api v0.36.1\n)" in rewritten  # the block form, from `require`
    assert asked[:2] == [(CLIENT, "v8.6.0"), (CLIENT, "v8.4.0")]


def test_a_local_replace_with_no_published_release_is_an_error() -> None:
    with pytest.raises(SystemExit, match=r"example\.com/gone"):
        binaries.published_replaces("module m\n\nreplace example.com/gone => ./gone\n", "v1.0.0", lambda m, v: False)


def test_sidecar_releases_match_the_tenant_chart() -> None:
    """The sidecars the e2e suite builds are the ones the chart deploys (values.yaml `sidecars`)."""
    values = yaml.safe_load((Path(__file__).parents[2] / "charts/tenant-cloud/values.yaml").read_text())
    chart = {name: values["sidecars"][key]["tag"] for key, name in CHART_SIDECARS.items()}
    built = {name: r.version for r in binaries.SIDECAR_RELEASES for name in r.commands}
    assert {name: built[name] for name in chart} == chart
    assert built["snapshot-controller"] == built["csi-snapshotter"]  # one external-snapshotter release


def test_sidecar_binaries_are_cached_per_release(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Present binaries are never rebuilt: no go command runs."""
    monkeypatch.setenv("TENANT_CLOUD_CACHE", str(tmp_path))
    for release in binaries.SIDECAR_RELEASES:
        for name in release.commands:
            path = tmp_path / f"{release.cache_name}-{release.version}" / "bin" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")
    monkeypatch.setattr(binaries, "_run", lambda *a, **k: pytest.fail("go ran"))
    monkeypatch.setattr(binaries, "_go_build_with_progress", lambda *a, **k: pytest.fail("go build ran"))
    found = binaries.sidecar_binaries()
    assert set(found) == {"csi-provisioner", "csi-attacher", "csi-resizer", "csi-snapshotter", "snapshot-controller"}
    assert found["csi-attacher"] == tmp_path / "csi-attacher-v4.12.0" / "bin" / "csi-attacher"
