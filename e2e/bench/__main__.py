"""Run every benchmark in turn on one shared harness: `python -m e2e.bench [--dir HARNESS_DIR]`."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from e2e.bench.common import harness_for

BENCHMARKS = ("e2e.bench.informer", "e2e.bench.nodes", "e2e.bench.loadbalancers", "e2e.bench.csi")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.bench", description=__doc__)
    parser.add_argument("--dir", type=Path, help="reuse a running harness")
    args = parser.parse_args()
    failed = 0
    with harness_for(args.dir) as running:
        for module in BENCHMARKS:
            print(f"== {module}", flush=True)
            failed += (
                subprocess.run([sys.executable, "-m", module, "--dir", str(running.dir)], check=False).returncode != 0
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
