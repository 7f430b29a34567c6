"""Render docs/benchmarks.md from the JSON result line each benchmark prints last."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.binaries import KUBERNETES_VERSION

Results = Mapping[str, Any]


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    memory_gib: float
    kernel: str
    python: str

    @classmethod
    def here(cls) -> Machine:
        return cls(
            cpu=_cpu_model(),
            cores=os.cpu_count() or 0,
            memory_gib=_memory_gib(),
            kernel=platform.release(),
            python=platform.python_version(),
        )


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def result_line(stdout: str) -> dict[str, Any] | None:
    """The last `{"benchmark": ...}` line a benchmark printed, if it got that far."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(parsed, dict) and "benchmark" in parsed:
                return parsed
    return None


def _s(value: float) -> str:
    return f"{value:.3g} s" if value < 1 else f"{value:.1f} s"


def _mib(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def _n(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


def _table(rows: list[tuple[str, str, str]]) -> str:
    lines = ["| figure | value | target |", "| --- | --- | --- |"]
    lines += [f"| {figure} | {value} | {target} |" for figure, value, target in rows]
    return "\n".join(lines)


def _informer(r: Results) -> str:
    per_object = r["rss_per_object_bytes"] / 1000
    table = _table(
        [
            ("informer start-up, list (pages of 500) to synced", _s(r["sync_seconds"]), ""),
            (
                "RSS after sync",
                f"{_mib(r['rss_after_sync_bytes'])} ({_mib(r['rss_before_sync_bytes'])} baseline for the "
                "interpreter and imports)",
                "",
            ),
            ("RSS per cached object", f"≈ {per_object:.1f} KB (default transform: `managedFields` dropped)", ""),
            (
                "watch throughput",
                f"{_n(r['watch_events_per_second'])} events/s received, while the apiserver accepted "
                f"{_n(r['writes_per_second'])} writes/s",
                "",
            ),
        ]
    )
    return f"""{_n(r["objects"])} ConfigMaps (two labels, ~250 bytes of data each) in one namespace of the parent. The
informer runs in a child process so its memory is measured alone; the parent process creates and then patches
the objects with 64 concurrent requests.

{table}

The watch figure is bounded by the apiserver's write rate on this machine, not by the informer: it counts the
{_n(r["updates"])} updates received while they were being written. Creating the {_n(r["objects"])} objects took
{_s(r["create_seconds"])}."""


def _nodes(r: Results) -> str:
    table = _table(
        [
            (
                f"add-node → fully initialised Node, median of {r['samples']} (sequential)",
                _s(r["init_median_seconds"]),
                "< 1 s",
            ),
            ("same, p90 / max", f"{_s(r['init_p90_seconds'])} / {_s(r['init_max_seconds'])}", ""),
            (f"{r['bulk_nodes']} more nodes added 16 at a time → all initialised", _s(r["bulk_seconds"]), ""),
            (f"ccm RSS with {r['nodes']} nodes", _mib(r["ccm_rss_bytes"]), ""),
        ]
    )
    return f"""The ccm runs as its own process (`python -m ccm`, leader election on, default settings). The benchmark
adds nodes the way the platform does — parent Node (for zone/region), VM, VMI with status, then the tenant Node
as kubelet registers it — and watches tenant Nodes until each has providerID, addresses and no
uninitialized taint. One warm-up node (Lease won, caches synced) is not counted.

{table}

The median includes the harness's own API calls that create the node. By design, kubevirt-ccm initialises
a Node when it appears with live GETs of the VMI and refreshes it only on the cloud-node controller's
periodic resync (zone never after a live migration); we react to watch events on both clusters."""


def _loadbalancers(r: Results) -> str:
    table = _table(
        [
            (
                f"tenant Service → IP in tenant status, p50 / p99 over {r['samples']} (sequential)",
                f"{_s(r['ip_p50_seconds'])} / {_s(r['ip_p99_seconds'])}",
                "p50 < 0.3 s",
            ),
            (
                f"{_n(r['burst'])} Services created at once (64 concurrent creates) → all have IPs",
                _s(r["burst_all_ips_seconds"]),
                "< 60 s",
            ),
            (
                f"writes by a restarted ccm re-reconciling {_n(r['services'])} unchanged Services",
                _n(r["resync_writes"]),
                "0",
            ),
            (f"ccm RSS with {_n(r['services'])} Services", _mib(r["ccm_rss_bytes"]), ""),
        ]
    )
    return f"""The ccm runs as its own process (selector mode, default settings); the Cilium LB-IPAM simulator allocates
from a /16 pool as soon as it sees a parent Service. Latency is measured from the tenant `create` call until
the tenant Service's watch shows `status.loadBalancer.ingress`.

{table}

kubevirt-ccm polls the parent every 5 s for the IP, so its floor is several seconds per Service. The burst
figure is bound by the two kube-apiservers sharing the machine's cores with the ccm and the simulator: each
Service costs the finalizer patch, the parent create, the simulator's status write and the tenant status write."""


def _csi(r: Results) -> str:
    table = _table(
        [
            (
                "CreateVolume p50 / p99 (until the DataVolume is Succeeded)",
                f"{_s(r['create_p50_seconds'])} / {_s(r['create_p99_seconds'])}",
                "",
            ),
            (
                "ControllerPublishVolume p50 / p99 (until `Ready` in the VMI's volumeStatus)",
                f"{_s(r['publish_p50_seconds'])} / {_s(r['publish_p99_seconds'])}",
                "p50 < 0.2 s",
            ),
        ]
    )
    return f"""The driver runs as its own process (controller service, TCP endpoint); the CDI and KubeVirt simulators
answer at once (the KubeVirt simulator still walks the volume through its phases and attaches a real loop
device). {r["volumes"]} volumes, published round-robin to the test VMs.

{table}

kubevirt-csi-driver polls the VMI every second inside ControllerPublishVolume, so its floor is 1 s."""


# Title and renderer per benchmark module, in the order they run.
SECTIONS: dict[str, tuple[str, Callable[[Results], str]]] = {
    "informer": ("Informer", _informer),
    "nodes": ("Nodes", _nodes),
    "loadbalancers": ("Load balancers", _loadbalancers),
    "csi": ("CSI", _csi),
}


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def render(results: Mapping[str, Results | None], machine: Machine, date: str, took_seconds: float) -> str:
    """The whole page; a benchmark without a result is listed as failed rather than left with stale figures."""
    parts = [
        "# Benchmarks",
        "",
        "<!-- Generated by `make bench` (python -m e2e.bench); edit e2e/bench/report.py, not this file. -->",
        "",
        "Benchmarks live in `e2e/bench/` and run against the real harness. They are not tests: they print figures",
        "and one JSON line each, and `make bench` runs them all on one harness and rewrites this page.",
        "",
        f"Run on {date}: {machine.cpu}, {machine.cores} cores, {machine.memory_gib:.0f} GiB, Linux {machine.kernel},",
        f"Python {machine.python}, kube-apiserver {KUBERNETES_VERSION}. Parent and tenant control planes, the",
        "simulators, the component under test and the load generator all share this one machine.",
        "",
        f"Reproduce: `make bench` (all of them; this run took {_duration(took_seconds)} with the harness), or one",
        "benchmark with `.venv/bin/python -m e2e.bench.<name> [--dir HARNESS_DIR]` (without `--dir` it starts a",
        "throwaway harness).",
    ]
    for name, (title, section) in SECTIONS.items():
        parts += ["", f"## {title} (`python -m e2e.bench.{name}`)", ""]
        result = results.get(name)
        parts.append(section(result) if result else "Not measured in this run: the benchmark failed (see its output).")
    return "\n".join(parts) + "\n"
