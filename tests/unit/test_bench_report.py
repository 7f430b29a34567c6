"""The benchmark page is rendered from the benchmarks' own JSON lines, never from stored figures."""

from __future__ import annotations

import json

from e2e.bench.report import Machine, render, result_line

MACHINE = Machine(cpu="Test CPU 9000", cores=2, memory_gib=24.0, kernel="6.1.0", python="3.11.2")

RESULTS = {
    "informer": {
        "objects": 10000,
        "sync_seconds": 0.412,
        "create_seconds": 9.37,
        "rss_before_sync_bytes": 50 * 2**20,
        "rss_after_sync_bytes": 88 * 2**20,
        "rss_per_object_bytes": 3984,
        "updates": 5000,
        "write_seconds": 5.6,
        "watch_events_per_second": 931,
        "writes_per_second": 893,
    },
    "nodes": {
        "samples": 50,
        "init_median_seconds": 0.0471,
        "init_p90_seconds": 0.0552,
        "init_max_seconds": 0.0871,
        "nodes": 200,
        "bulk_nodes": 150,
        "bulk_seconds": 11.63,
        "ccm_rss_bytes": int(66.7 * 2**20),
    },
    "csi": {
        "volumes": 100,
        "create_p50_seconds": 0.219,
        "create_p99_seconds": 0.327,
        "publish_p50_seconds": 0.159,
        "publish_p99_seconds": 0.366,
    },
}


def test_result_line_is_the_last_benchmark_json_line() -> None:
    out = "progress\n{not json\n" + json.dumps({"benchmark": "csi", "volumes": 3}) + '\n{"other": 1}\ndone\n'
    assert result_line(out) == {"benchmark": "csi", "volumes": 3}
    assert result_line("no figures\n") is None


def test_page_carries_each_figure_and_the_machine() -> None:
    page = render({**RESULTS, "loadbalancers": None}, MACHINE, "2026-11-23", 189.6)
    assert "Run on 2026-11-23: Test CPU 9000, 2 cores, 24 GiB, Linux 6.1.0" in page
    assert "this run took 3 min 10 s with the harness" in page
    assert "| informer start-up, list (pages of 500) to synced | 0.412 s |" in page
    assert "88.0 MiB (50.0 MiB baseline" in page
    assert "≈ 4.0 KB" in page
    assert "931 events/s received, while the apiserver accepted 893 writes/s" in page
    assert "median of 50 (sequential) | 0.0471 s | < 1 s |" in page
    assert "150 more nodes added 16 at a time → all initialised | 11.6 s |" in page
    assert "| ccm RSS with 200 nodes | 66.7 MiB |" in page
    assert "| 0.159 s / 0.366 s | p50 < 0.2 s |" in page
    load_balancers = page.split("## Load balancers")[1].split("## CSI")[0]
    assert "Not measured in this run" in load_balancers
