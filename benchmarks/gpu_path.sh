#!/usr/bin/env bash
# Issue #21's GPU checks in one run, for a machine with one GPU (about 13 minutes in all on an H200, measured in parts
# in session 25; steps run most valuable first, so a shorter GPU_PATH_SECONDS skips the last). From the repository
# root, with the package importable (installed, or on PYTHONPATH with its dependencies):
#
#   DRML_DATA_MIRROR=../shared/data bash benchmarks/gpu_path.sh OUT_DIR [TOKENIZER]
#
# TOKENIZER: `minilm` (the packaged one, the default) or a folder holding a BERT tokenizer. The backbones are
# random weights with MiniLM's shape and with BERT-base's (benchmarks/random_backbone.py): speed does not depend on
# the values, and a GPU machine without the packaged MiniLM can still time the real path with the real shapes.
#
# In this order:
# 1. drml finetune (Ray Train, 1 GPU worker, precision auto = bf16 autocast) on CoNLL-2003, 2 epochs, each shape at
#    batch 256 sentences, with `nvidia-smi dmon` sampling the GPU's load: tokens/s end to end;
# 2. benchmarks/gpu_throughput.py: drml's train_step alone (no Ray, no data loading), bf16 and fp32, BERT-base at
#    global batch 32/128/256 x 128 tokens and 64 x 512 (longer packed rows), MiniLM's shape at 4/40/256 x 128, and
#    torch.profiler tables of the BERT-base step at 32 x 128 and 64 x 512. Against (1) at the same tokens per step
#    (a batch of 256 CoNLL sentences packs into ~40 rows of 128): the share of the step outside the model;
# 3. drml finetune with MiniLM's shape at batch 32;
# 4. benchmarks/meta_step_time.py --device cuda: a meta-learning episode with MiniLM's shape; then drml meta-train's
#    step with four actors sharing the card against one actor holding theta there (GPU_PATH_META_SETS: more --set);
# 5. the torch.compile lever on the BERT-base step (default and reduce-overhead = CUDA graphs) at batch 256.
# Each step has its own time limit and all share GPU_PATH_SECONDS (default 540): a step that would start after it
# is skipped. OUT_DIR/steps.tsv records each step's exit status and seconds; OUT_DIR/gpu_path.tgz packs every log,
# JSON and results file under 4 MB after each step, so a run cut short still leaves what it did. GPU_PATH_SETS adds
# --set overrides to the drml runs (a plumbing check on a CPU: "--set scaling.use_gpu=false ...").
# Never run it beside another Ray on the same machine: after each drml run it kills every Ray process left.
set -uo pipefail
OUT="${1:?usage: bash benchmarks/gpu_path.sh OUT_DIR [TOKENIZER]}"
TOKENIZER="${2:-minilm}"
DEADLINE=$((SECONDS + ${GPU_PATH_SECONDS:-540}))
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 RAY_AUTH_MODE=disabled TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
DRML=(drml)  # a command, not a shell function: `timeout` runs it
command -v drml >/dev/null || DRML=(python3 -c "from drml_ray.cli import main; main()")

pack() {  # GPU_PATH_COPY_TO: a folder that gets a copy of the pack and steps.tsv after every step
  (cd "$OUT" && find . -type f -size -4M ! -name gpu_path.tgz | tar czf gpu_path.tgz -T -)
  if [[ -n "${GPU_PATH_COPY_TO:-}" ]]; then cp "$OUT/gpu_path.tgz" "$OUT/steps.tsv" "$GPU_PATH_COPY_TO/"; fi
}

step() {  # step NAME LIMIT_S COMMAND...: runs COMMAND into OUT/NAME.log unless the shared deadline is too near
  local name=$1 limit=$2 began=$SECONDS
  shift 2
  if ((SECONDS + 20 > DEADLINE)); then
    printf '%s\tskipped\t0\n' "$name" | tee -a "$OUT/steps.tsv"
    return
  fi
  ((limit > DEADLINE - SECONDS)) && limit=$((DEADLINE - SECONDS))
  timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  printf '%s\t%s\t%s\n' "$name" "$?" "$((SECONDS - began))" | tee -a "$OUT/steps.tsv"
  tail -n 4 "$OUT/$name.log"
  pack
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.csv"
step backbones 90 bash -c "python3 benchmarks/random_backbone.py --size minilm --tokenizer '$TOKENIZER' \
  '$OUT/minilm_random' && python3 benchmarks/random_backbone.py --size base --tokenizer '$TOKENIZER' '$OUT/base_random'"

GPU=(--set scaling.num_workers=1 --set scaling.use_gpu=true --set scaling.cpus_per_worker=8 --set train.epochs=2
     --set train.patience=0 --set train.log_every_steps=20 ${GPU_PATH_SETS:-})
finetune() {  # finetune NAME BACKBONE BATCH LR
  nvidia-smi dmon -s u -d 1 >"$OUT/$1.dmon" 2>&1 &
  local dmon=$!
  step "$1" 200 "${DRML[@]}" finetune configs/ner/conll2003.yaml -o "$OUT/$1" "${GPU[@]}" --set "model.backbone=$OUT/$2" \
    --set "train.batch_size=$3" --set "train.lr=$4"
  kill "$dmon" 2>/dev/null
  # A run cut by its limit leaves its Ray behind. The brackets keep the pattern from matching this very command line.
  pkill -9 -f '[r]ay/core/src/ray|[r]ay::|[d]efault_worker.py' 2>/dev/null
}
finetune ft_minilm_b256 minilm_random 256 5e-4
finetune ft_base_b256 base_random 256 2e-4
step bare_base 120 python3 benchmarks/gpu_throughput.py --size base --batch 32,128,256 --steps 20 \
  --profile "$OUT/profile_base_b32.txt" --out "$OUT/bare_base.json"
step bare_base_seq512 60 python3 benchmarks/gpu_throughput.py --size base --batch 64 --seq 512 --steps 20 \
  --precisions bf16 --profile "$OUT/profile_base_b64x512.txt" --out "$OUT/bare_base_seq512.json"
step bare_minilm 90 python3 benchmarks/gpu_throughput.py --size minilm --batch 4,40,256 --steps 20 \
  --precisions bf16 --out "$OUT/bare_minilm.json"

finetune ft_minilm_b32 minilm_random 32 1e-4

step meta_minilm 60 python3 benchmarks/meta_step_time.py --device cuda --backbone "$OUT/minilm_random" \
  --out "$OUT/meta_minilm.json"
# 4b. drml meta-train with MiniLM's shape on generated tasks, 30 Reptile meta-steps of 4 episodes (8 + 8 sentences,
#     4 inner steps): four actors sharing the card with theta broadcast each step (session 25's 1.76 s setting) and
#     one actor holding theta on the card. s_per_meta_step in OUT/meta_*/meta_train.json.
META=(--set "model.backbone=$OUT/minilm_random" --set model.max_length=128 --set 'meta.algorithms=[reptile]'
      --set meta.meta_steps=30 --set meta.eval_every=30 --set meta.inner_steps=4 --set meta.inner_lr=1e-4)
meta_train() {  # meta_train NAME WORKERS GPUS_PER_WORKER CPUS_PER_WORKER
  step "$1" 150 "${DRML[@]}" meta-train configs/meta/smoke.yaml -o "$OUT/$1" "${META[@]}" --set "meta.workers=$2" \
    --set "meta.gpus_per_worker=$3" --set "meta.cpus_per_worker=$4" ${GPU_PATH_META_SETS:-}
  pkill -9 -f '[r]ay/core/src/ray|[r]ay::|[d]efault_worker.py' 2>/dev/null
}
meta_train meta_4_actors 4 0.25 3
meta_train meta_1_holder 1 1 8
step bare_base_compile 150 python3 benchmarks/gpu_throughput.py --size base --batch 256 --steps 20 \
  --precisions bf16 --compile default --out "$OUT/bare_base_compile.json"
step bare_base_cudagraphs 120 python3 benchmarks/gpu_throughput.py --size base --batch 256 --steps 20 \
  --precisions bf16 --compile reduce-overhead --out "$OUT/bare_base_cudagraphs.json"
rm -rf "$OUT/minilm_random" "$OUT/base_random"
pack
