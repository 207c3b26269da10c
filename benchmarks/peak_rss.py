"""Run a command and report the peak total RSS of it and every process it starts (Ray included).

    python benchmarks/peak_rss.py -- drml quickstart

Ray's raylet, GCS, dashboard and worker processes are descendants of the driver when the driver
starts a local Ray, so the process tree covers the whole job. Prints one machine-readable line at
the end: ``PEAK_RSS_MB=<peak> WALL_S=<seconds> RC=<exit code>``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

import psutil


def tree_rss(root: psutil.Process) -> int:
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += proc.memory_info().rss
    return total


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "--" or len(argv) < 2:
        print(__doc__)
        return 2
    started = time.perf_counter()
    child = subprocess.Popen(argv[1:])
    root = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        try:
            peak = max(peak, tree_rss(root))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.5)
    wall = time.perf_counter() - started
    print(f"PEAK_RSS_MB={peak / 2**20:.0f} WALL_S={wall:.1f} RC={child.returncode}", flush=True)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
