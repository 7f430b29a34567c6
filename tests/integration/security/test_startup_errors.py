"""Malformed cloud-config, kubeconfigs, enforcement files and flags: `python -m ccm` and `python -m csi` exit
non-zero at once with one line that names the bad key or flag, and never a traceback."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
STARTUP_TIMEOUT = 60.0
# Nothing here may get as far as serving: every endpoint is off or on a port nobody listens to.
CCM_BASE = ["--health-bind-address=0", "--metrics-bind-address=0"]
CSI_BASE = [
    "--endpoint=tcp://127.0.0.1:0",
    "--health-bind-address=0",
    "--metrics-bind-address=0",
    "--run-node-service=false",
    "--infra-cluster-namespace=tenant-x",
]


def valid_kubeconfig(path: Path) -> Path:
    """A kubeconfig that loads (nothing here connects), so start-up reaches the setting under test."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "not-a-real-token-just-a-placeholder"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "tenant-x"}}],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def run(module: str, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), STARTUP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"python -m {module} {' '.join(args)} kept running: it should refuse to start") from None
    return process.returncode or 0, output.decode()


def assert_clear_refusal(code: int, output: str, fragment: str) -> None:
    assert code != 0, output
    assert "Traceback" not in output and 'File "' not in output, output
    assert fragment in output, output
    errors = [line for line in output.splitlines() if "level=error" in line or ": error:" in line]
    assert len(errors) == 1, output  # one line that says it all, not a cascade


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    garbage = tmp_path / "garbage.kubeconfig"
    garbage.write_text("clusters: [unclosed\n")
    shapeless = tmp_path / "shapeless.kubeconfig"
    shapeless.write_text("users: 5\n")
    return {"good": valid_kubeconfig(tmp_path / "good.kubeconfig"), "garbage": garbage, "shapeless": shapeless}


def filled(text: str, files: dict[str, Path]) -> str:
    """`@good@`, `@garbage@`, `@shapeless@` replaced by those files' paths."""
    for name, path in files.items():
        text = text.replace(f"@{name}@", str(path))
    return text


PARENT = "kubeconfig: @good@\nnamespace: tenant-x\n"
CLOUD_CONFIGS = [
    ("unknown-key", PARENT + "loadBalancer: {enabeld: true}", "unknown key 'loadBalancer.enabeld'"),
    ("wrong-type", PARENT + "loadBalancer: {allowedIPRanges: [300.1.2.3/8]}", "loadBalancer.allowedIPRanges.0: "),
    ("not-yaml", PARENT + "loadBalancer: [unclosed", "not valid YAML"),
    ("list", "- kubeconfig", "expected a mapping at the top level, got list"),
    ("missing-kubeconfig", "kubeconfig: /nonexistent/k", "cloud-config kubeconfig: kubeconfig /nonexistent/k: no such"),
    ("garbage-kubeconfig", "kubeconfig: @garbage@", "cloud-config kubeconfig: kubeconfig @garbage@: while parsing"),
    ("shapeless-kubeconfig", "kubeconfig: @shapeless@", "@shapeless@: not a valid kubeconfig"),
    ("in-cluster-outside", "namespace: tenant-x", "cloud-config kubeconfig: no kubeconfig given and not in a cluster"),
]


CCM_FLAGS = [
    ("tenant-kubeconfig-garbage", ["--kubeconfig=@garbage@"], "--kubeconfig: kubeconfig @garbage@: while parsing"),
    ("tenant-kubeconfig-missing", ["--kubeconfig=/nonexistent/k"], "--kubeconfig: kubeconfig /nonexistent/k: no such"),
    ("cloud-config-missing", ["--cloud-config=/nonexistent/cc"], "/nonexistent/cc"),
    ("controllers", ["--controllers=cloud-node,route"], "--controllers: unknown controller 'route'"),
    ("bind-address", ["--health-bind-address=localhost"], "invalid bind address 'localhost'"),
    ("duration", ["--leader-elect-lease-duration=soon"], "--leader-elect-lease-duration: invalid duration 'soon'"),
]


ENFORCEMENTS = [
    ("unknown-key", "allowAll: false\nalowDefault: true\n", "unknown key 'alowDefault'"),
    ("wrong-type", "allowAll: maybe\n", "allowAll: Input should be a valid boolean"),
    ("list", "- allowAll\n", "expected a mapping at the top level, got list"),
    ("not-yaml", "allowList: [unclosed\n", "not valid YAML"),
]


CSI_FLAGS = [
    ("linstor-scheme", ["--linstor-url=ftp://ctrl"], "--linstor-url: LINSTOR controller 'ftp://ctrl': scheme"),
    ("linstor-timeout", ["--linstor-url=ctrl", "--linstor-timeout=-5"], "--linstor-timeout: Input should be greater"),
    ("linstor-key-alone", ["--linstor-url=ctrl", "--linstor-client-key=@good@"], "--linstor-client-cert and --li"),
    ("linstor-ca-missing", ["--linstor-url=ctrl", "--linstor-ca=/nonexistent/ca.crt"], "--linstor-ca /nonexistent"),
    ("linstor-ca-garbage", ["--linstor-url=https://ctrl", "--linstor-ca=@garbage@"], "the TLS files do not load"),
    ("parent-kubeconfig-missing", ["--infra-cluster-kubeconfig=/nonexistent/k"], "--infra-cluster-kubeconfig: kub"),
    ("parent-kubeconfig-garbage", ["--infra-cluster-kubeconfig=@shapeless@"], "not a valid kubeconfig"),
    ("parent-in-cluster-outside", ["--infra-cluster-kubeconfig="], "--infra-cluster-kubeconfig: no kubeconfig given"),
    ("labels", ["--infra-cluster-labels=cluster"], "--infra-cluster-labels: invalid label 'cluster'"),
    ("endpoint", ["--endpoint=http://127.0.0.1:1"], "unsupported endpoint 'http://127.0.0.1:1'"),
    ("node-without-name", ["--run-node-service=true", "--run-controller-service=false"], "--node-name is required"),
]


async def refusals(cases: list[tuple[str, list[str], str]], module: str) -> list[str]:
    """Run every case (a few at a time: each is a whole interpreter start); what did not refuse cleanly."""
    gate = asyncio.Semaphore(3)

    async def one(name: str, argv: list[str], fragment: str) -> str | None:
        async with gate:
            code, output = await run(module, *argv)
        try:
            assert_clear_refusal(code, output, fragment)
        except AssertionError:
            return f"{name}: exit {code}, expected {fragment!r} in:\n{output}"
        return None

    return [p for p in await asyncio.gather(*(one(*case) for case in cases)) if p is not None]


async def test_ccm_refuses_to_start_on_malformed_settings(tmp_path: Path, files: dict[str, Path]) -> None:
    cases = []
    for name, text, fragment in CLOUD_CONFIGS:
        cloud_config = tmp_path / f"{name}.cloud-config"
        cloud_config.write_text(filled(text, files))
        argv = [*CCM_BASE, f"--cloud-config={cloud_config}", f"--kubeconfig={files['good']}"]
        cases.append((f"cloud-config {name}", argv, filled(fragment, files)))
    good = tmp_path / "good.cloud-config"
    good.write_text(filled(PARENT, files))
    for name, args, fragment in CCM_FLAGS:
        argv = [*CCM_BASE, f"--cloud-config={good}", f"--kubeconfig={files['good']}", *(filled(a, files) for a in args)]
        cases.append((f"flag {name}", argv, filled(fragment, files)))
    assert await refusals(cases, "ccm") == []


async def test_csi_refuses_to_start_on_malformed_settings(tmp_path: Path, files: dict[str, Path]) -> None:
    parent = f"--infra-cluster-kubeconfig={files['good']}"
    cases = []
    for name, text, fragment in ENFORCEMENTS:
        enforcement = tmp_path / f"{name}.enforcement.yaml"
        enforcement.write_text(text)
        argv = [*CSI_BASE, parent, f"--storage-class-enforcement={enforcement}"]
        cases.append((f"enforcement {name}", argv, f"--storage-class-enforcement {enforcement}: {fragment}"))
    for name, args, fragment in CSI_FLAGS:
        cases.append((f"flag {name}", [*CSI_BASE, parent, *(filled(a, files) for a in args)], filled(fragment, files)))
    no_namespace = [a for a in CSI_BASE if not a.startswith("--infra-cluster-namespace")]
    cases.append(("no namespace", [*no_namespace, parent], "--infra-cluster-namespace is required"))
    assert await refusals(cases, "csi") == []
