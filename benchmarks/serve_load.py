"""Closed-loop HTTP load on loopback: `drml serve` against transformers' pipeline behind a plain HTTP server.

Each of C clients sends one sentence, waits for the answer, sends the next (closed loop), for --seconds after
a warm-up. Both servers get the same model folder and the same sentences (a corpus's test split, detokenised
by single spaces), and answer the JSON of `drml predict`. The baseline is
`transformers.pipeline("token-classification", aggregation_strategy="first")` in one process behind
`http.server.ThreadingHTTPServer` (a thread per request, one call per request: what a small hand-written
server does). drml is `drml serve`'s own deployment (`drml_ray.serve.deploy.deploy`) on a local Ray, in Serve's
high-throughput mode as `drml serve` runs it (`RAY_SERVE_ENABLE_HA_PROXY=0 RAY_SERVE_THROUGHPUT_OPTIMIZED=0`:
the classic proxy). `--dtype bfloat16` runs both in bf16; `--no-baseline` measures drml alone.

    DRML_DATA_MIRROR=../shared/data python benchmarks/serve_load.py --model runs/conll/best
    python benchmarks/serve_load.py --model runs/x/best --clients 1 8 --max-batch 8 32 --seconds 10

Prints a table per contender and client count (requests/s, p50 and p99 latency in ms, errors), a table of
drml's throughput against --max-batch at 32 clients, and a RESULT line with the 32-client speed-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp
import numpy as np


def load_texts(corpus: str, limit: int) -> list[str]:
    from drml_ray.config import DataConfig
    from drml_ray.data.load import load_corpus

    sentences = load_corpus(DataConfig(corpus=corpus), progress=False).splits["test"]
    return [" ".join(s.tokens) for s in sentences if len(s.tokens) > 2][:limit]


async def closed_loop(url: str, texts: list[str], clients: int, seconds: float, warmup: float = 2.0) -> dict:
    """``clients`` loops of request-then-wait; latencies of the requests sent after ``warmup``."""
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    stop_at = start + warmup + seconds

    async def client(index: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        i = index
        while (now := time.perf_counter()) < stop_at:
            try:
                async with session.post(url, json={"text": texts[i % len(texts)]}) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            if now - start >= warmup and ok:
                latencies.append(time.perf_counter() - now)
            elif now - start >= warmup:
                errors += 1
            i += clients

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(client(i, session) for i in range(clients)))
    ms = np.array(latencies) * 1000
    return {"clients": clients, "rps": len(latencies) / seconds, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "errors": errors, "requests": len(latencies)}  # fmt: skip


def run_baseline_server(model_dir: str, port: int, dtype: str) -> None:
    """The baseline: a pipeline call per request, in a thread per request, in this one process (its weights in
    ``dtype``: bf16 like for like with ``drml serve --dtype bfloat16``)."""
    import torch
    from transformers import pipeline

    ner = pipeline("token-classification", model=model_dir, aggregation_strategy="first", device=-1,
                   dtype=torch.bfloat16 if dtype == "bfloat16" else torch.float32)  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            text = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["text"]
            found = ner(text)
            entities = [
                {"type": e["entity_group"], "start": int(e["start"]), "end": int(e["end"]),
                 "text": text[e["start"] : e["end"]], "score": round(float(e["score"]), 4)}
                for e in found
            ]  # fmt: skip
            body = json.dumps({"text": text, "entities": entities}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer.request_queue_size = 256
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, text: str, seconds: float = 300) -> None:
    import requests

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if requests.post(url, json={"text": text}, timeout=30).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


def measure(url: str, texts: list[str], clients: list[int], seconds: float, label: str) -> list[dict]:
    rows = []
    for c in clients:
        row = {"server": label, **asyncio.run(closed_loop(url, texts, c, seconds))}
        print(f"{label:9} clients {c:4}  {row['rps']:8.1f} req/s  p50 {row['p50_ms']:8.1f} ms  "
              f"p99 {row['p99_ms']:8.1f} ms  errors {row['errors']}", flush=True)  # fmt: skip
        rows.append(row)
    return rows


def bench_baseline(args: argparse.Namespace, texts: list[str]) -> list[dict]:
    port = free_port()
    cmd = [sys.executable, __file__, "--baseline-server", "--model", args.model, "--port", str(port),
           "--dtype", args.dtype]  # fmt: skip
    server = subprocess.Popen(cmd, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    try:
        wait_ready(f"http://127.0.0.1:{port}/", texts[0])
        return measure(f"http://127.0.0.1:{port}/", texts, args.clients, args.seconds, "pipeline")
    finally:
        server.terminate()
        server.wait()


def bench_drml(args: argparse.Namespace, texts: list[str]) -> tuple[list[dict], list[dict]]:
    from ray import serve

    from drml_ray.serve.deploy import ServeOptions, deploy
    from drml_ray.serve.models import resolve

    sources, port = [resolve(args.model)], free_port()
    opts = ServeOptions(
        port=port, max_batch=args.default_batch, batch_wait_ms=args.batch_wait_ms, cpus=args.cpus, dtype=args.dtype
    )
    url = deploy(sources, opts) + "/v1/predict"
    try:
        wait_ready(url, texts[0])
        rows = measure(url, texts, args.clients, args.seconds, "drml")
        batch_rows = []
        for size in args.max_batch:
            deploy(sources, replace(opts, max_batch=size))
            batch_rows += [{"max_batch": size, **r} for r in measure(url, texts, [32], args.seconds, f"batch{size}")]
        return rows, batch_rows
    finally:
        serve.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="A model folder or run directory (the same for both).")
    parser.add_argument("--corpus", default="conll2003", help="Its test sentences are the requests.")
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--max-batch", type=int, nargs="*", default=[1, 8, 32, 64], help="The sweep at 32 clients.")
    parser.add_argument("--no-baseline", action="store_true", help="drml only (a quick look at one setting).")
    parser.add_argument("--default-batch", type=int, default=32, help="drml's --max-batch in the client sweep.")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--cpus", type=float, default=2.0, help="drml's CPUs per replica (its torch threads).")
    parser.add_argument("--dtype", default="float32", help="float32 or bfloat16: drml serve --dtype and the pipeline.")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--output", type=Path, default=None, help="Also write the rows as JSON here.")
    parser.add_argument("--baseline-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        run_baseline_server(args.model, args.port, args.dtype)
        return
    from drml_ray.serve.models import resolve

    args.model = str(resolve(args.model).model_dir)
    texts = load_texts(args.corpus, args.texts)
    print(f"{len(texts)} {args.corpus} test sentences; model {args.model}; {os.cpu_count()} CPUs; drml {args.dtype}, "
          f"{args.cpus:g} CPUs a replica", flush=True)  # fmt: skip
    base = [] if args.no_baseline else bench_baseline(args, texts)
    drml, batch = bench_drml(args, texts)
    if args.output:
        args.output.write_text(json.dumps({"pipeline": base, "drml": drml, "max_batch": batch}, indent=1))
    at = {r["server"]: r for r in base + drml if r["clients"] == 32}
    if len(at) == 2:
        print(f"RESULT speedup_at_32_clients={at['drml']['rps'] / at['pipeline']['rps']:.2f} "
              f"p99_ms_drml={at['drml']['p99_ms']:.1f} p99_ms_pipeline={at['pipeline']['p99_ms']:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
