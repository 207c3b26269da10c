"""Time meta-learning's unit of work on one device: an episode (Reptile, FOMAML) and an adaptation cell.

    python benchmarks/meta_step_time.py [--backbone minilm] [--device cpu|cuda] [--task crossner_science]

One :class:`~drml_ray.meta.learner.NerLearner` (what each Ray actor holds) adapts ``--episodes``
episodes of ``--task`` (``--shots`` support + ``--query`` query sentences, ``--inner-steps`` inner
steps) per algorithm after one warm-up episode, then runs one adaptation cell (``--cell-shots``
shots, the default budget) scored on 200 test sentences. A meta-step costs about
``meta_batch / workers`` episodes plus the broadcast. ``--backbone bert-base-random`` builds a
random BERT-base (``BertConfig()``) with MiniLM's tokenizer, for GPU sizing without downloads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from random_backbone import random_backbone  # noqa: E402

from drml_ray.config import ModelConfig, TaskData  # noqa: E402
from drml_ray.meta.config import AdaptSettings, MetaSettings
from drml_ray.meta.learner import NerLearner  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--task", default="generated:PER,ORG,LOC,MISC")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--query", type=int, default=8)
    parser.add_argument("--inner-steps", type=int, default=4)
    parser.add_argument("--cell-shots", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backbone = args.backbone
    if backbone == "bert-base-random":
        backbone = random_backbone(Path(tempfile.mkdtemp()) / "bert-base-random")
    learner = NerLearner(ModelConfig(backbone=backbone, max_length=128), TaskData(), seed=0, device=args.device)
    task = learner.task(args.task)
    theta = learner.meta_state()
    settings = MetaSettings(shots=args.shots, query=args.query, inner_steps=args.inner_steps)
    result = {"backbone": args.backbone, "device": args.device, "task": args.task, "threads": args.threads,
              "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}  # fmt: skip
    for algorithm in ("reptile", "fomaml"):
        learner.episode_gradient(theta, task, 0, settings, algorithm)  # warm-up
        times = []
        for seed in range(1, args.episodes + 1):
            start = time.perf_counter()
            grad, _ = learner.episode_gradient(theta, task, seed, settings, algorithm)
            if args.device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            assert all(torch.isfinite(g).all() for g in grad.values())
        result[f"{algorithm}_s_per_episode"] = statistics.fmean(times)
    cell = learner.adapt_and_score(theta, task, args.cell_shots, 1, AdaptSettings(test_sentences=200))
    result["cell"] = cell
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
