"""Serve's autoscaler under a load ramp: the replicas of `drml serve --autoscale 1:MAX` over time.

    DRML_DATA_MIRROR=../shared/data python benchmarks/serve_autoscale.py --model runs/conll_e8/best

Deploys `drml serve`'s own application (`drml_ray.serve.deploy.deploy`, Serve's high-throughput mode as
`drml serve` runs it) with `--autoscale 1:MAX` and `--cpus` per replica (fractional, so MAX replicas fit on a
small machine), then: idle for `--before` seconds, `--clients` closed-loop clients for `--load` seconds, idle
for `--after` seconds (Serve waits `downscale_delay_s`, 600 s by default, before it removes a replica). Every
`--every` seconds it prints the replicas by state (`serve.status()`). Last: the load phase's requests/s and
p99, and a RESULT line with the peak of running replicas, when it was reached and the count at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time

from serve_load import closed_loop, free_port, load_texts, wait_ready


def replica_states() -> dict[str, int]:
    from ray import serve

    from drml_ray.serve.deploy import APP_NAME, DEPLOYMENT

    deployment = serve.status().applications[APP_NAME].deployments[DEPLOYMENT]
    return {str(getattr(state, "value", state)): count for state, count in deployment.replica_states.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="A model folder or run directory.")
    parser.add_argument("--corpus", default="conll2003", help="Its test sentences are the requests.")
    parser.add_argument("--max-replicas", type=int, default=2)
    parser.add_argument("--cpus", type=float, default=0.5, help="CPUs per replica (its torch threads: 1).")
    parser.add_argument("--max-batch", type=int, default=8, help="Also the autoscaler's target per replica.")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--before", type=float, default=10.0)
    parser.add_argument("--load", type=float, default=90.0)
    parser.add_argument("--after", type=float, default=660.0)
    parser.add_argument("--every", type=float, default=5.0)
    args = parser.parse_args()

    from ray import serve

    from drml_ray.serve.deploy import ServeOptions, deploy
    from drml_ray.serve.models import resolve

    texts = load_texts(args.corpus, 1000)
    opts = ServeOptions(port=free_port(), autoscale=(1, args.max_replicas), cpus=args.cpus, max_batch=args.max_batch)
    url = deploy([resolve(args.model)], opts) + "/v1/predict"
    wait_ready(url, texts[0])
    load: dict = {}

    def drive() -> None:
        load.update(asyncio.run(closed_loop(url, texts, args.clients, args.load, warmup=0.0)))

    driver = threading.Thread(target=drive)
    started, timeline = time.perf_counter(), []
    try:
        while (now := time.perf_counter() - started) < args.before + args.load + args.after:
            if now >= args.before and not driver.is_alive() and not load:
                driver.start()
            states = replica_states()
            timeline.append((now, states.get("RUNNING", 0)))
            phase = "load" if driver.is_alive() else ("idle" if now < args.before + 1 else "after")
            print(f"t={now:6.1f} s  {phase:5}  replicas {states}", flush=True)
            time.sleep(args.every)
        driver.join()
    finally:
        serve.shutdown()
    peak = max(count for _, count in timeline)
    reached = next(t for t, count in timeline if count == peak) - args.before
    rps, p99, errors = load["rps"], load["p99_ms"], load["errors"]
    print(f"load: {args.clients} clients, {rps:.1f} req/s, p99 {p99:.0f} ms, errors {errors}")
    print(f"RESULT peak_replicas={peak} seconds_to_peak={reached:.0f} replicas_at_end={timeline[-1][1]}")


if __name__ == "__main__":
    main()
