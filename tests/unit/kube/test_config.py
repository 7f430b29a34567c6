"""Cluster access that cannot work is one clear error naming the file (and the flag that gave it), never a
traceback from the kubernetes package and never the credentials in it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kube.config import KubeconfigError, from_kubeconfig, in_cluster, load

TOKEN = "s3cr3t-token-value-that-must-not-show"


def kubeconfig(user: dict[str, object], **cluster: object) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "tenant-a"}}],
        "current-context": "c",
    }


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "parent.kubeconfig"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def test_a_good_kubeconfig_loads(tmp_path: Path) -> None:
    config = from_kubeconfig(write(tmp_path, kubeconfig({"token": TOKEN}, **{"insecure-skip-tls-verify": True})))
    assert (config.server, config.namespace) == ("https://127.0.0.1:6443", "tenant-a")
    assert TOKEN not in repr(config)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("clusters: [unclosed\n", "while parsing"),
        ("users: 5\n", "not a valid kubeconfig"),
        ('"just a string"\n', "not a valid kubeconfig"),
        ("apiVersion: v1\nkind: Config\n", "current-context"),
        (kubeconfig({"token": TOKEN}, **{"certificate-authority": "/nonexistent/ca.crt"}), "/nonexistent/ca.crt"),
        (kubeconfig({"token": TOKEN, "client-certificate": "/nonexistent/tls.crt"}), "/nonexistent/tls.crt"),
        (kubeconfig({"token": TOKEN}, **{"certificate-authority-data": "bm90IGEgY2VydA=="}), "certificate"),
    ],
    ids=["yaml", "users-not-a-list", "not-a-mapping", "no-context", "missing-ca", "missing-client-cert", "bad-ca"],
)
def test_a_broken_kubeconfig_is_one_clear_error(tmp_path: Path, content: object, fragment: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(KubeconfigError) as failed:
        from_kubeconfig(path)
    message = str(failed.value)
    assert message.startswith(f"kubeconfig {path}: ") and fragment.lower() in message.lower(), message
    assert TOKEN not in message


def test_a_missing_kubeconfig_says_so_and_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match=r"^--kubeconfig: kubeconfig /nonexistent/kc: no such file$"):
        load("/nonexistent/kc", "--kubeconfig")


def test_outside_a_cluster_an_empty_path_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeconfigError, match=r"^cloud-config kubeconfig: no kubeconfig given and not in a cluster"):
        load("", "cloud-config kubeconfig")


def test_in_cluster_without_the_mounted_files_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(KubeconfigError, match=f"in-cluster config from {tmp_path}"):
        in_cluster(tmp_path)
