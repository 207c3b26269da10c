"""GPU training and inference throughput of drml-ray's step for a BERT-base-sized token classifier.

    python benchmarks/gpu_throughput.py [--batch 32] [--seq 128] [--steps 30] [--out gpu.json]

Random weights from ``BertConfig()`` (12 layers, 768 wide, 110M weights; speed does not depend on
the values), 9 labels, synthetic batches of ``batch`` x ``seq`` real tokens. Training runs
drml-ray's own ``train_step`` (global-label loss normalisation, fused AdamW, gradient clipping) in
fp32 and under bf16 autocast; inference is the forward pass alone. Reported: tokens/s, ms/step,
achieved TFLOP/s and model FLOPs utilisation (MFU) against the card's dense bf16 peak and against
a measured 8192^3 bf16 matrix product. FLOPs per token (PaLM's count): training 6N + 12 L d T,
inference 2N + 4 L d T, with N the non-embedding weights, L layers, d width, T the sequence length.
Needs only torch and transformers (no Ray), so it runs on a bare GPU machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertForTokenClassification

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
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


def run(mode: str, dtype: torch.dtype | None, args, device, config, batch) -> dict:
    torch.manual_seed(0)
    model = BertForTokenClassification(config).to(device)
    n_weights = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    labels_total = int((batch["labels"] != -100).sum())
    if mode == "train":
        model.train()
        optimizer = make_optimizer(model, 5e-5, 0.01, fused=True)
        scaler = torch.amp.GradScaler(enabled=False)
        step = lambda: train_step(model, [batch], optimizer=optimizer, scaler=scaler, global_labels=labels_total,
                                  max_grad_norm=1.0, autocast_dtype=dtype)  # fmt: skip
    else:
        model.eval()

        @torch.inference_mode()
        def step():
            with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    for _ in range(args.warmup):
        step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(device)
    seconds = (time.perf_counter() - start) / args.steps
    tokens = args.batch * args.seq
    tflops = tokens * flops_per_token(config, n_weights, args.seq, mode == "train") / seconds / 1e12
    return {"mode": mode, "precision": "bf16" if dtype else "fp32", "tokens_per_s": tokens / seconds,
            "ms_per_step": 1000 * seconds, "tflops": tflops, "peak_gib": peak_gib(device),
            "weights": n_weights}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--cpu-check", action="store_true", help="a tiny BERT on the CPU: checks the script only")
    args = parser.parse_args()
    if not args.cpu_check and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark is for GPUs (--cpu-check runs a tiny check on the CPU)")
    device = torch.device("cpu" if args.cpu_check else "cuda")
    name = "CPU check" if args.cpu_check else torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), float("nan"))
    matmul = measured_matmul_tflops(device)
    config = BertConfig(num_labels=9)
    if args.cpu_check:
        config = BertConfig(num_labels=9, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=128)  # fmt: skip
    g = torch.Generator().manual_seed(0)
    batch = {
        "input_ids": torch.randint(1000, config.vocab_size, (args.batch, args.seq), generator=g).to(device),
        "attention_mask": torch.ones(args.batch, args.seq, dtype=torch.long, device=device),
        "labels": torch.randint(0, 9, (args.batch, args.seq), generator=g).to(device),
    }
    rows = [run(mode, dtype, args, device, config, batch)
            for mode in ("train", "infer") for dtype in (None, torch.bfloat16)]  # fmt: skip
    print(f"{name}, torch {torch.__version__}; BERT-base ({rows[0]['weights'] / 1e6:.1f}M non-embedding weights), "
          f"batch {args.batch} x {args.seq} tokens; bf16 matmul 8192^3 measured {matmul:.0f} TFLOP/s, "
          f"data-sheet peak {peak:.0f}")  # fmt: skip
    header = ("mode", "prec", "tokens/s", "ms/step", "TFLOP/s", "MFU", "of matmul", "GiB")
    print("{:6} {:5} {:>10} {:>8} {:>8} {:>6} {:>9} {:>6}".format(*header))
    for r in rows:
        r["mfu"], r["of_measured_matmul"] = r["tflops"] / peak, r["tflops"] / matmul
        print(f"{r['mode']:6} {r['precision']:5} {r['tokens_per_s']:10.0f} {r['ms_per_step']:8.1f} {r['tflops']:8.1f} "
              f"{100 * r['mfu']:5.1f}% {100 * r['of_measured_matmul']:8.1f}% {r['peak_gib']:6.2f}")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps({"device": name, "torch": torch.__version__, "matmul_tflops": matmul,
                                        "peak_tflops": peak, "batch": args.batch, "seq": args.seq, "rows": rows},
                                       indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
