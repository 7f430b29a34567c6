"""Run every benchmark in turn on one shared harness and rewrite docs/benchmarks.md with the figures.

python -m e2e.bench [--dir HARNESS_DIR] [--output docs/benchmarks.md | --no-write] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from e2e.bench.common import harness_for
from e2e.bench.report import SECTIONS, Machine, render, result_line

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def run(module: str, harness_dir: Path) -> dict[str, Any] | None:
    """Run one benchmark, echoing its output as it goes; its JSON result line, or None if it failed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--dir", str(harness_dir)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    if proc.wait() != 0:
        print(f"{module} failed with exit code {proc.returncode}", file=sys.stderr)
        return None
    return result_line("".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.bench", description=__doc__)
    parser.add_argument("--dir", type=Path, help="reuse a running harness")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="page to rewrite")
    parser.add_argument("--no-write", action="store_true", help="print figures only")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="run only these benchmarks")
    args = parser.parse_args()
    names = args.only or list(SECTIONS)
    results: dict[str, dict[str, Any] | None] = {}
    started = time.monotonic()
    with harness_for(args.dir) as running:
        for name in names:
            print(f"== e2e.bench.{name}", flush=True)
            results[name] = run(f"e2e.bench.{name}", running.dir)
    failed = sorted(name for name, result in results.items() if result is None)
    if not args.no_write:
        if args.only:
            print("--only: not rewriting the page (it must come from one complete run)", file=sys.stderr)
        else:
            today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
            args.output.write_text(render(results, Machine.here(), today, time.monotonic() - started))
            print(f"wrote {args.output}", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
