"""Run a command and report the peak total RSS and PSS of it and every process it starts (Ray included).

    python benchmarks/peak_rss.py -- drml quickstart

Ray's raylet, GCS, dashboard and worker processes are descendants of the driver when the driver
starts a local Ray, so the process tree covers the whole job. The command's output passes through;
at every ``[drml] eval epoch`` line (one per evaluation of a fine-tuning run) the tree's RSS and
that of the Ray Train workers (processes titled ``ray::RayTrainWorker``) are recorded, so growth
across epochs shows.

Summed RSS counts a page shared by several processes (the object store, torch's and Ray's libraries)
once per process; PSS (proportional set size, from ``/proc/PID/smaps_rollup``) divides each shared
page among its sharers, so the tree's PSS is what the machine really gives the job. At the PSS peak,
each process's share is listed, with when it came and the output line before it. Ends with one machine-readable line:
``PEAK_RSS_MB=<peak> PEAK_PSS_MB=<peak> WALL_S=<seconds> RC=<exit code> EPOCH_GROWTH_MB=<last - first>``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time

import psutil

EPOCH_MARK = "[drml] eval epoch"


Sizes = list[tuple[str, int, int]]
"""(process title, RSS bytes, PSS bytes) of each process of the tree."""


def sizes_by_process(root: psutil.Process) -> Sizes:
    """RSS and PSS of ``root`` and all its descendants, one read of each process's memory."""
    sizes = []
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            memory = proc.memory_full_info()
            sizes.append((" ".join(proc.cmdline()[:2])[:70], memory.rss, memory.pss))
    return sizes


def summed(sizes: Sizes, column: int) -> int:
    return sum(size[column] for size in sizes)


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "--" or len(argv) < 2:
        print(__doc__)
        return 2
    started = time.perf_counter()
    child = subprocess.Popen(argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    root = psutil.Process(child.pid)
    peak = [0]
    pss_peak: list[Sizes] = [[]]
    last_line = [""]  # the command's latest output line, to place the PSS peak in its run
    pss_when: list[tuple[float, str]] = [(0.0, "")]
    epochs: list[tuple[str, float, float, float]] = []  # (epoch field, tree RSS MB, Train workers MB, tree PSS MB)

    def sample() -> None:
        while child.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                sizes = sizes_by_process(root)
                peak[0] = max(peak[0], summed(sizes, 1))
                if summed(sizes, 2) > summed(pss_peak[0], 2):
                    pss_peak[0] = sizes
                    pss_when[0] = (time.perf_counter() - started, last_line[0])
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert child.stdout is not None
    for line in child.stdout:
        sys.stdout.write(line)
        if line.strip():
            last_line[0] = line.strip()[:100]
        if EPOCH_MARK in line:
            sizes = sizes_by_process(root)
            epoch = line.split(EPOCH_MARK, 1)[1].split()[0]
            workers = summed([s for s in sizes if s[0].startswith("ray::RayTrainWorker")], 1)
            epochs.append((epoch, summed(sizes, 1) / 2**20, workers / 2**20, summed(sizes, 2) / 2**20))
    child.wait()
    sampler.join()
    wall = time.perf_counter() - started
    if epochs:
        print(f"\n{'epoch':>7} {'all processes MB':>17} {'Train workers MB':>17} {'all processes PSS MB':>21}")
        for epoch, total, workers, pss in epochs:
            print(f"{epoch:>7} {total:17.0f} {workers:17.0f} {pss:21.0f}")
    print(f"\nAt the PSS peak ({len(pss_peak[0])} processes), {pss_when[0][0]:.0f} s in, after: {pss_when[0][1]}")
    for title, _, size in sorted(pss_peak[0], key=lambda item: -item[2]):
        print(f"{size / 2**20:8.0f} MB  {title}")
    growth = f" EPOCH_GROWTH_MB={epochs[-1][1] - epochs[0][1]:.0f}" if len(epochs) > 1 else ""
    pss_mb = summed(pss_peak[0], 2) / 2**20
    print(f"PEAK_RSS_MB={peak[0] / 2**20:.0f} PEAK_PSS_MB={pss_mb:.0f} WALL_S={wall:.1f} RC={child.returncode}{growth}",
          flush=True)  # fmt: skip
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
