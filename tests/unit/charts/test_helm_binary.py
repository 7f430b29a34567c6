"""helm is built once from the pinned module, stamped like helm's own Makefile does, and reused from the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e import binaries

HELM_GO_MOD = """module helm.sh/helm/v3

go 1.26.0

require (
	k8s.io/api v0.37.0
	k8s.io/client-go v0.37.0
)
"""


def test_a_cached_helm_is_never_rebuilt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TENANT_CLOUD_CACHE", str(tmp_path))
    cached = tmp_path / f"helm-{binaries.HELM_VERSION}" / "bin" / "helm"
    cached.parent.mkdir(parents=True)
    cached.write_text("#!/bin/sh\n")

    def no_build(*args: object, **kwargs: object) -> str:
        raise AssertionError("rebuilt a cached helm")

    monkeypatch.setattr(binaries, "_run", no_build)
    assert binaries.helm_binary() == cached


def test_the_build_stamps_the_kubernetes_version_of_helm_s_client_go(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TENANT_CLOUD_CACHE", str(tmp_path))
    gomod = tmp_path / "helm.mod"
    gomod.write_text(HELM_GO_MOD)
    monkeypatch.setattr(binaries, "go_mod_download", lambda module, version: {"GoMod": str(gomod)})
    commands: list[list[str]] = []

    def run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
        commands.append(cmd)
        assert env is not None and env["GOBIN"] == str(tmp_path / "helm-v9.9.9" / "bin")
        return ""

    monkeypatch.setattr(binaries, "_run", run)
    assert binaries.helm_binary("v9.9.9") == tmp_path / "helm-v9.9.9" / "bin" / "helm"
    [command] = commands
    assert command[-1] == "helm.sh/helm/v3/cmd/helm@v9.9.9"
    ldflags = command[command.index("-ldflags") + 1]
    assert "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37" in ldflags
    assert "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1" in ldflags
    assert "-X helm.sh/helm/v3/internal/version.version=v9.9.9" in ldflags
