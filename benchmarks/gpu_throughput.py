"""GPU training and inference throughput of drml-ray's step for a BERT-family token classifier.

    python benchmarks/gpu_throughput.py [--size base|minilm] [--batch 32,128] [--seq 128] [--steps 30]
        [--precisions fp32,bf16] [--compile none|default|reduce-overhead] [--profile FILE] [--out gpu.json]

Random weights (speed does not depend on the values): ``base`` is ``BertConfig()`` (12 layers, 768
wide, 85M non-embedding weights), ``minilm`` has all-MiniLM-L6-v2's shape (6 layers, 384 wide);
9 labels, synthetic batches of ``batch`` x ``seq`` real tokens (a packed row is such a row). Training
runs drml-ray's own ``train_step`` (global-label loss normalisation, fused AdamW, gradient clipping)
in each precision (bf16 = autocast, as ``train.precision: auto`` on such a GPU); inference is the
forward pass alone. ``--compile`` wraps the model in ``torch.compile`` (one of the levers of issue
#21; ``reduce-overhead`` adds CUDA graphs). ``--profile`` writes torch.profiler's tables for a few
bf16 training steps at the first batch size: where the step's time goes, on the host and on the GPU.

Reported: tokens/s, ms/step, achieved TFLOP/s and model FLOPs utilisation (MFU) against the card's
dense bf16 peak and against a measured 8192^3 bf16 matrix product. FLOPs per token (PaLM's count):
training 6N + 12 L d T, inference 2N + 4 L d T, with N the non-embedding weights, L layers, d width,
T the sequence length. Needs only torch and transformers (no Ray), so it runs on a bare GPU machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import BertConfig, BertForTokenClassification

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from random_backbone import SIZES  # noqa: E402

from drml_ray.ner.optimization import make_optimizer, train_step  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}
"""Dense bf16 tensor-core peaks from the vendors' data sheets (SXM parts)."""


def flops_per_token(config: BertConfig, n_weights: int, seq: int, train: bool) -> float:
    attention = config.num_hidden_layers * config.hidden_size * seq
    return (6 * n_weights + 12 * attention) if train else (2 * n_weights + 4 * attention)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0


def measured_matmul_tflops(device: torch.device) -> float:
    n = 8192 if device.type == "cuda" else 512
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    sync(device)
    return 10 * 2 * n**3 / (time.perf_counter() - start) / 1e12


def synthetic_batch(config: BertConfig, batch: int, seq: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "input_ids": torch.randint(1000, config.vocab_size, (batch, seq), generator=g).to(device),
        "attention_mask": torch.ones(batch, seq, dtype=torch.long, device=device),
        "labels": torch.randint(0, 9, (batch, seq), generator=g).to(device),
    }


def make_step(mode: str, dtype: torch.dtype | None, model: torch.nn.Module, batch: dict, device: torch.device,
              compiled: torch.nn.Module) -> Callable[[], object]:  # fmt: skip
    """One training step (drml's ``train_step``) or one forward pass, as a closure."""
    if mode == "train":
        model.train()
        optimizer = make_optimizer(model, 5e-5, 0.01, fused=device.type == "cuda")
        scaler = torch.amp.GradScaler(enabled=False)
        labels_total = int((batch["labels"] != -100).sum())
        return lambda: train_step(compiled, [batch], optimizer=optimizer, scaler=scaler, global_labels=labels_total,
                                  max_grad_norm=1.0, autocast_dtype=dtype)  # fmt: skip
    model.eval()

    @torch.inference_mode()
    def forward():
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            return compiled(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    return forward


def timed(step: Callable[[], object], warmup: int, steps: int, device: torch.device) -> float:
    """Seconds per step after ``warmup`` untimed steps (compilation happens there)."""
    for _ in range(warmup):
        step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - start) / steps


def build(config: BertConfig, device: torch.device, compile_mode: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    model = BertForTokenClassification(config).to(device)
    compiled = model if compile_mode == "none" else torch.compile(model, mode=compile_mode)
    return model, compiled


def run(mode: str, dtype: torch.dtype | None, args, device, config, batch_size: int) -> dict:
    model, compiled = build(config, device, args.compile)
    n_weights = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    batch = synthetic_batch(config, batch_size, args.seq, device)
    began = time.perf_counter()
    seconds = timed(make_step(mode, dtype, model, batch, device, compiled), args.warmup, args.steps, device)
    tokens = batch_size * args.seq
    tflops = tokens * flops_per_token(config, n_weights, args.seq, mode == "train") / seconds / 1e12
    return {"size": args.size, "batch": batch_size, "seq": args.seq, "compile": args.compile, "mode": mode,
            "precision": "bf16" if dtype else "fp32", "tokens_per_s": tokens / seconds, "ms_per_step": 1000 * seconds,
            "tflops": tflops, "peak_gib": peak_gib(device), "weights": n_weights,
            "wall_s": time.perf_counter() - began}  # fmt: skip


def profile_table(args, device: torch.device, config: BertConfig, path: Path) -> None:
    """torch.profiler over 5 bf16 training steps at the first batch size: the top operators by GPU time and
    by host time, and the step's wall time against the GPU's busy time."""
    from torch.profiler import ProfilerActivity, profile

    model, compiled = build(config, device, args.compile)
    step = make_step("train", torch.bfloat16, model, synthetic_batch(config, args.batch[0], args.seq, device), device,
                     compiled)  # fmt: skip
    timed(step, args.warmup, 1, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        seconds = timed(step, 0, 5, device)
    events = prof.key_averages()
    # Kernels only, as the table's "Self CUDA time total" counts: an operator's device time repeats its kernels'.
    kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA and not e.is_user_annotation]
    gpu_us = sum(e.self_device_time_total for e in kernels) / 5
    lines = [f"{args.size}, batch {args.batch[0]} x {args.seq}, bf16 train, compile {args.compile}: "
             f"{1000 * seconds:.1f} ms per step wall, GPU busy {gpu_us / 1000:.1f} ms per step "
             f"({100 * gpu_us / 1e6 / seconds:.0f}% of the wall time)", ""]  # fmt: skip
    for key in ("self_device_time_total", "self_cpu_time_total"):
        lines += [f"sorted by {key}", events.table(sort_by=key, row_limit=25), ""]
    path.write_text("\n".join(lines))
    print(lines[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--batch", type=lambda s: [int(b) for b in s.split(",")], default=[32])
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--precisions", type=lambda s: s.split(","), default=["fp32", "bf16"])
    parser.add_argument("--compile", choices=["none", "default", "reduce-overhead"], default="none")
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--cpu-check", action="store_true", help="a tiny BERT on the CPU: checks the script only")
    args = parser.parse_args()
    if not args.cpu_check and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark is for GPUs (--cpu-check runs a tiny check on the CPU)")
    if args.cpu_check:
        args.size = "tiny"
    device = torch.device("cpu" if args.cpu_check else "cuda")
    name = "CPU check" if args.cpu_check else torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), float("nan"))
    config = BertConfig(num_labels=9, **SIZES[args.size])
    matmul = measured_matmul_tflops(device)
    print(f"{name}, torch {torch.__version__}; {args.size} BERT, seq {args.seq}, compile {args.compile}; bf16 matmul "
          f"8192^3 measured {matmul:.0f} TFLOP/s, data-sheet peak {peak:.0f}", flush=True)  # fmt: skip
    if args.profile:
        profile_table(args, device, config, args.profile)
    rows = report(args, device, config, peak, matmul)
    if args.out:
        args.out.write_text(json.dumps({"device": name, "torch": torch.__version__, "matmul_tflops": matmul,
                                        "peak_tflops": peak, "rows": rows}, indent=2))  # fmt: skip


def report(args, device: torch.device, config: BertConfig, peak: float, matmul: float) -> list[dict]:
    header = ("batch", "mode", "prec", "tokens/s", "ms/step", "TFLOP/s", "MFU", "of matmul", "GiB")
    print("{:>6} {:6} {:5} {:>10} {:>8} {:>8} {:>6} {:>9} {:>6}".format(*header), flush=True)
    dtypes = {"fp32": None, "bf16": torch.bfloat16}
    rows = []
    for batch_size in args.batch:
        for mode in ("train", "infer"):
            for precision in args.precisions:
                r = run(mode, dtypes[precision], args, device, config, batch_size)
                r["mfu"], r["of_measured_matmul"] = r["tflops"] / peak, r["tflops"] / matmul
                print(f"{batch_size:6} {r['mode']:6} {r['precision']:5} {r['tokens_per_s']:10.0f} "
                      f"{r['ms_per_step']:8.1f} {r['tflops']:8.1f} {100 * r['mfu']:5.1f}% "
                      f"{100 * r['of_measured_matmul']:8.1f}% {r['peak_gib']:6.2f}", flush=True)  # fmt: skip
                rows.append(r)
    return rows


if __name__ == "__main__":
    main()
