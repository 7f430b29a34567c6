"""Fetch or build the binaries the harness needs and cache them under ~/.cache/tenant-cloud/.

Stdlib only: the bootstrap runs this before the virtualenv exists.
    python3 -m e2e.binaries [--print-env]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

KUBERNETES_VERSION = "v1.36.3"
CSI_SPEC_VERSION = "v1.12.0"
CSI_TEST_VERSION = "v5.4.0"
HELM_VERSION = "v3.22.0"
# The CSI sidecars, at the tags the tenant chart runs (charts/tenant-cloud/values.yaml `sidecars`).
CSI_PROVISIONER_VERSION = "v6.3.0"
CSI_ATTACHER_VERSION = "v4.12.0"
CSI_RESIZER_VERSION = "v2.2.0"
CSI_SNAPSHOTTER_VERSION = "v8.6.0"
ETCD_DEBIAN_PACKAGE = "etcd-server"
KUBE_COMMANDS = ("kube-apiserver", "kubectl", "kube-controller-manager")


def cache_dir() -> Path:
    """The binary cache; TENANT_CLOUD_CACHE overrides the default."""
    override = os.environ.get("TENANT_CLOUD_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "tenant-cloud"


def log(message: str) -> None:
    print(f"[binaries] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kubectl: Path
    kube_controller_manager: Path | None
    etcd: Path
    csi_sanity: Path | None = None
    sidecars: dict[str, Path] = field(default_factory=dict)

    def as_env(self) -> dict[str, str]:
        env = {
            "TENANT_CLOUD_KUBE_APISERVER": str(self.kube_apiserver),
            "TENANT_CLOUD_KUBECTL": str(self.kubectl),
            "TENANT_CLOUD_ETCD": str(self.etcd),
        }
        if self.kube_controller_manager:
            env["TENANT_CLOUD_KUBE_CONTROLLER_MANAGER"] = str(self.kube_controller_manager)
        if self.csi_sanity:
            env["TENANT_CLOUD_CSI_SANITY"] = str(self.csi_sanity)
        for name, path in sorted(self.sidecars.items()):
            env["TENANT_CLOUD_" + name.upper().replace("-", "_")] = str(path)
        return env


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # The pinned release must build with the toolchain on this machine, never a downloaded one.
    env.update(GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-mod=mod")
    return env


def _run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr[-4000:]}")
    return result.stdout


def go_mod_download(module: str, version: str) -> dict[str, str]:
    """Download one module version through the Go module proxy; returns `go mod download -json`."""
    out = _run(["go", "mod", "download", "-json", f"{module}@{version}"], env=_go_env())
    info: dict[str, str] = json.loads(out)
    if info.get("Error"):
        raise SystemExit(f"go mod download {module}@{version}: {info['Error']}")
    return info


def staging_modules(kubernetes_gomod: Path) -> list[str]:
    """The k8s.io/* modules that k8s.io/kubernetes replaces with its own staging directories."""
    text = kubernetes_gomod.read_text()
    block = re.search(r"^replace \($(.*?)^\)$", text, re.M | re.S)
    if not block:
        raise SystemExit(f"no replace block in {kubernetes_gomod}")
    return re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", block.group(1), re.M)


def _required_modules(kubernetes_gomod: Path) -> set[str]:
    return set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+v", kubernetes_gomod.read_text(), re.M))


def _build_module(build_dir: Path, version: str) -> None:
    """Write a go.mod that requires k8s.io/kubernetes and maps each staging module to its release."""
    kube = go_mod_download("k8s.io/kubernetes", version)
    gomod = Path(kube["GoMod"])
    staging_version = "v0" + version[2:]  # v1.36.3 -> v0.36.3
    required = _required_modules(gomod)
    replaces = []
    for module in staging_modules(gomod):
        try:
            go_mod_download(module, staging_version)
        except SystemExit:
            if module in required:
                raise
            log(f"skipping {module}: not published at {staging_version} and not required")
            continue
        replaces.append(f"\t{module} => {module} {staging_version}")
    go_directive = re.search(r"^go (\S+)$", gomod.read_text(), re.M)
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / "go.mod").write_text(
        "module tenant-cloud.local/kube-build\n\n"
        f"go {go_directive.group(1) if go_directive else '1.24'}\n\n"
        f"require k8s.io/kubernetes {version}\n\n"
        "replace (\n" + "\n".join(replaces) + "\n)\n"
    )


def _version_ldflags(version: str) -> str:
    major, minor = version[1:].split(".")[:2]
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in values.items()]
    return " ".join(flags)


def _go_build_with_progress(cmd: list[str], cwd: Path, label: str) -> None:
    """Run `go build -v`, printing a heartbeat with the count of packages compiled so far."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=_go_env(), stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines: list[str] = []
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(20):
            log(f"{label}: {len(lines)} packages compiled, {time.monotonic() - started:.0f}s elapsed")

    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    for line in proc.stderr:
        lines.append(line.rstrip())
    done.set()
    if proc.wait() != 0:
        tail = "\n".join(lines[-40:])
        raise SystemExit(f"{label} failed:\n{tail}")
    log(f"{label}: done in {time.monotonic() - started:.0f}s")


def kubernetes_binaries(version: str = KUBERNETES_VERSION) -> dict[str, Path]:
    """Build kube-apiserver, kubectl and kube-controller-manager at the pinned release, once."""
    root = cache_dir() / f"kubernetes-{version}"
    bin_dir = root / "bin"
    wanted = {name: bin_dir / name for name in KUBE_COMMANDS}
    missing = [name for name, path in wanted.items() if not path.exists()]
    if not missing:
        return wanted
    build_dir = root / "build"
    if not (build_dir / "go.mod").exists():
        log(f"resolving k8s.io/kubernetes {version} and its staging modules")
        _build_module(build_dir, version)
    log(f"building {', '.join(missing)} from k8s.io/kubernetes {version} (a cold build takes many minutes)")
    tmp_bin = root / "bin.partial"
    tmp_bin.mkdir(parents=True, exist_ok=True)
    packages = [f"k8s.io/kubernetes/cmd/{name}" for name in missing]
    cmd = ["go", "build", "-v", "-trimpath", "-ldflags", _version_ldflags(version), "-o", str(tmp_bin) + "/"]
    _go_build_with_progress(cmd + packages, build_dir, "go build")
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in missing:
        (tmp_bin / name).replace(wanted[name])  # atomic: a half-written binary never looks cached
    return wanted


def csi_sanity_binary(version: str = CSI_TEST_VERSION) -> Path:
    """csi-sanity from the pinned csi-test module (`go install`; its go.mod has no replace directives)."""
    bin_dir = cache_dir() / f"csi-test-{version}" / "bin"
    target = bin_dir / "csi-sanity"
    if target.exists():
        return target
    log(f"building csi-sanity {version}")
    env = _go_env() | {"GOBIN": str(bin_dir), "GOFLAGS": ""}
    package = f"github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@{version}"
    started = time.monotonic()
    _run(["go", "install", "-trimpath", package], env=env)
    log(f"csi-sanity built in {time.monotonic() - started:.0f}s")
    return target


def helm_binary(version: str = HELM_VERSION) -> Path:
    """helm from the pinned helm.sh/helm/v3 module (`go install`; its go.mod has no replace directives)."""
    bin_dir = cache_dir() / f"helm-{version}" / "bin"
    target = bin_dir / "helm"
    if target.exists():
        return target
    log(f"building helm {version}")
    env = _go_env() | {"GOBIN": str(bin_dir), "GOFLAGS": ""}
    # As helm's Makefile does: the default Kubernetes version (for kubeVersion checks) follows its client-go.
    gomod = Path(go_mod_download("helm.sh/helm/v3", version)["GoMod"]).read_text()
    found = re.search(r"^\s*k8s\.io/client-go v0\.(\d+)\.", gomod, re.M)
    flags = [f"-X helm.sh/helm/v3/internal/version.version={version}"]
    if found:
        for package in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
            flags += [f"-X {package}.k8sVersionMajor=1", f"-X {package}.k8sVersionMinor={found.group(1)}"]
    ldflags = " ".join(["-s", "-w", *flags])
    started = time.monotonic()
    _run(["go", "install", "-trimpath", "-ldflags", ldflags, f"helm.sh/helm/v3/cmd/helm@{version}"], env=env)
    log(f"helm built in {time.monotonic() - started:.0f}s")
    return target


@dataclass(frozen=True)
class GoRelease:
    """Commands under cmd/ of one released Go module, built from its own go.mod (replace directives kept)."""

    cache_name: str
    module: str
    version: str
    commands: tuple[str, ...]


SIDECAR_RELEASES = (
    GoRelease(
        "csi-provisioner",
        "github.com/kubernetes-csi/external-provisioner/v6",
        CSI_PROVISIONER_VERSION,
        ("csi-provisioner",),
    ),
    GoRelease(
        "csi-attacher", "github.com/kubernetes-csi/external-attacher/v4", CSI_ATTACHER_VERSION, ("csi-attacher",)
    ),
    GoRelease("csi-resizer", "github.com/kubernetes-csi/external-resizer/v2", CSI_RESIZER_VERSION, ("csi-resizer",)),
    GoRelease(
        "external-snapshotter",
        "github.com/kubernetes-csi/external-snapshotter/v8",
        CSI_SNAPSHOTTER_VERSION,
        ("csi-snapshotter", "snapshot-controller"),
    ),
)


def published_replaces(gomod_text: str, release_version: str, is_published: Callable[[str, str], bool]) -> str:
    """Point `replace M => ./dir` (a nested module, left out of the module zip) at a published release of M.

    That is M at the release's own tag when M was published with it (external-snapshotter tags client/v8.6.0
    with v8.6.0: the API its code needs), else the version the release's go.mod requires. The other replace
    directives stay as they are.
    """
    required = dict(re.findall(r"^\s*(\S+)\s+(v\S+)(?:\s*//.*)?$", gomod_text, re.M))

    def published(match: re.Match[str]) -> str:
        lead, module, directory = match.groups()
        candidates = [release_version, required.get(module)]
        version = next((v for v in candidates if v and is_published(module, v)), None)
        if version is None:
            raise SystemExit(f"replace {module} => {directory}: no published {module} at {release_version} or required")
        return f"{lead}{module} => {module} {version}"

    # Both `replace M => ./dir` and the same line inside a `replace ( ... )` block.
    return re.sub(r"^(replace\s+|\s+)(\S+)\s+=>\s+(\.\.?/\S*)\s*$", published, gomod_text, flags=re.M)


def _is_published(module: str, version: str) -> bool:
    try:
        go_mod_download(module, version)
    except SystemExit:
        return False
    return True


def go_release_binaries(release: GoRelease) -> dict[str, Path]:
    """Build a release's commands once into ~/.cache/tenant-cloud/<name>-<version>/bin, as its Makefile does."""
    root = cache_dir() / f"{release.cache_name}-{release.version}"
    bin_dir = root / "bin"
    wanted = {name: bin_dir / name for name in release.commands}
    if all(path.exists() for path in wanted.values()):
        return wanted
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another bootstrap may be building the same release
        if not all(path.exists() for path in wanted.values()):
            _build_release(release, root, wanted)
    return wanted


def _writable_copy(source: Path, target: Path) -> None:
    """Copy a module out of the read-only module cache so that go.mod and go.sum can be rewritten."""
    shutil.copytree(source, target, copy_function=shutil.copyfile)
    for directory, _, _ in os.walk(target):
        Path(directory).chmod(0o755)


def _build_release(release: GoRelease, root: Path, wanted: dict[str, Path]) -> None:
    log(f"building {', '.join(release.commands)} from {release.module} {release.version}")
    source = Path(go_mod_download(release.module, release.version)["Dir"])
    build_dir = root / "src"
    shutil.rmtree(build_dir, ignore_errors=True)
    _writable_copy(source, build_dir)
    gomod = build_dir / "go.mod"
    gomod.write_text(published_replaces(gomod.read_text(), release.version, _is_published))
    tmp_bin = root / "bin.partial"
    tmp_bin.mkdir(parents=True, exist_ok=True)
    # As release-tools/build.make stamps it: `csi-attacher --version` prints the tag.
    ldflags = f"-s -w -X main.version={release.version}"
    cmd = ["go", "build", "-v", "-trimpath", "-ldflags", ldflags, "-o", str(tmp_bin) + "/"]
    _go_build_with_progress(cmd + [f"./cmd/{name}" for name in release.commands], build_dir, release.cache_name)
    (root / "bin").mkdir(exist_ok=True)
    for name, path in wanted.items():
        (tmp_bin / name).replace(path)  # atomic: a half-written binary never looks cached
    tmp_bin.rmdir()
    shutil.rmtree(build_dir, ignore_errors=True)


def sidecar_binaries() -> dict[str, Path]:
    """csi-provisioner, csi-attacher, csi-resizer, csi-snapshotter and snapshot-controller, by command name."""
    found: dict[str, Path] = {}
    for release in SIDECAR_RELEASES:
        found |= go_release_binaries(release)
    return found


def etcd_binary() -> Path:
    """Debian's etcd-server, unpacked into the cache (no system install needed)."""
    on_path = shutil.which("etcd")
    root = cache_dir() / "etcd"
    target = root / "usr" / "bin" / "etcd"
    if target.exists():
        return target
    if on_path and os.environ.get("TENANT_CLOUD_ETCD_FROM_PATH"):
        return Path(on_path)
    log(f"fetching Debian package {ETCD_DEBIAN_PACKAGE}")
    download = cache_dir() / "deb"
    download.mkdir(parents=True, exist_ok=True)
    for attempt in range(2):
        result = subprocess.run(
            ["apt-get", "download", ETCD_DEBIAN_PACKAGE], cwd=download, capture_output=True, text=True
        )
        if result.returncode == 0:
            break
        if attempt == 0:
            log("apt-get download failed; running apt-get update once")
            subprocess.run(["apt-get", "update", "-qq"], check=False)
    else:
        raise SystemExit(f"apt-get download {ETCD_DEBIAN_PACKAGE} failed:\n{result.stderr}")
    debs = sorted(download.glob(f"{ETCD_DEBIAN_PACKAGE}_*.deb"))
    partial = cache_dir() / "etcd.partial"
    shutil.rmtree(partial, ignore_errors=True)
    _run(["dpkg-deb", "-x", str(debs[-1]), str(partial)])
    shutil.rmtree(root, ignore_errors=True)
    partial.replace(root)
    return target


def ensure_all() -> Binaries:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and (Path(assets) / "kube-apiserver").exists() and (Path(assets) / "etcd").exists():
        log(f"using kube-apiserver and etcd from KUBEBUILDER_ASSETS={assets}")
        kube = kubernetes_binaries() if not (Path(assets) / "kubectl").exists() else None
        kcm = Path(assets) / "kube-controller-manager"
        return Binaries(
            kube_apiserver=Path(assets) / "kube-apiserver",
            kubectl=Path(assets) / "kubectl" if kube is None else kube["kubectl"],
            kube_controller_manager=kcm if kcm.exists() else (kube or {}).get("kube-controller-manager"),
            etcd=Path(assets) / "etcd",
            csi_sanity=csi_sanity_binary(),
            sidecars=sidecar_binaries(),
        )
    kube = kubernetes_binaries()
    return Binaries(
        kube_apiserver=kube["kube-apiserver"],
        kubectl=kube["kubectl"],
        kube_controller_manager=kube["kube-controller-manager"],
        etcd=etcd_binary(),
        csi_sanity=csi_sanity_binary(),
        sidecars=sidecar_binaries(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--print-env", action="store_true", help="print KEY=VALUE lines for the binaries")
    args = parser.parse_args()
    binaries = ensure_all()
    if args.print_env:
        for key, value in binaries.as_env().items():
            print(f"{key}={value}")


if __name__ == "__main__":
    main()
