"""Run a command and report the peak total RSS of it and every process it starts (Ray included).

    python benchmarks/peak_rss.py -- drml quickstart

Ray's raylet, GCS, dashboard and worker processes are descendants of the driver when the driver
starts a local Ray, so the process tree covers the whole job. The command's output passes through;
at every ``[drml] eval epoch`` line (one per evaluation of a fine-tuning run) the tree's RSS and
that of the Ray Train workers (processes titled ``ray::RayTrainWorker``) are recorded, so growth
across epochs shows. Ends with a table of those samples and one machine-readable line:
``PEAK_RSS_MB=<peak> WALL_S=<seconds> RC=<exit code> EPOCH_GROWTH_MB=<last - first evaluation>``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time

import psutil

EPOCH_MARK = "[drml] eval epoch"


def rss_by_process(root: psutil.Process) -> list[tuple[str, int]]:
    """(process title, RSS bytes) of ``root`` and all its descendants."""
    sizes = []
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            sizes.append((" ".join(proc.cmdline()[:1]), proc.memory_info().rss))
    return sizes


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "--" or len(argv) < 2:
        print(__doc__)
        return 2
    started = time.perf_counter()
    child = subprocess.Popen(argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    root = psutil.Process(child.pid)
    peak = [0]
    epochs: list[tuple[str, float, float]] = []  # (the line's epoch field, tree MB, Train workers MB)

    def sample() -> None:
        while child.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                peak[0] = max(peak[0], sum(rss for _, rss in rss_by_process(root)))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert child.stdout is not None
    for line in child.stdout:
        sys.stdout.write(line)
        if EPOCH_MARK in line:
            sizes = rss_by_process(root)
            epoch = line.split(EPOCH_MARK, 1)[1].split()[0]
            workers = sum(rss for title, rss in sizes if title.startswith("ray::RayTrainWorker"))
            epochs.append((epoch, sum(rss for _, rss in sizes) / 2**20, workers / 2**20))
    child.wait()
    sampler.join()
    wall = time.perf_counter() - started
    if epochs:
        print(f"\n{'epoch':>7} {'all processes MB':>17} {'Train workers MB':>17}")
        for epoch, total, workers in epochs:
            print(f"{epoch:>7} {total:17.0f} {workers:17.0f}")
    growth = f" EPOCH_GROWTH_MB={epochs[-1][1] - epochs[0][1]:.0f}" if len(epochs) > 1 else ""
    print(f"PEAK_RSS_MB={peak[0] / 2**20:.0f} WALL_S={wall:.1f} RC={child.returncode}{growth}", flush=True)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
