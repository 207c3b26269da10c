#!/usr/bin/env bash
# Issue #21's GPU checks in one run, for a machine with one GPU (about 10 minutes on an H200; never run yet: no GPU
# has been lent since it was written). From the repository root, with the package installed:
#
#   DRML_DATA_MIRROR=../shared/data bash benchmarks/gpu_path.sh OUT_DIR
#
# 1. benchmarks/gpu_throughput.py: drml's train_step on a random BERT-base, fp32 and bf16, global batch 32/128/256:
#    tokens/s and MFU (PaLM's count) with no Ray and no data loading;
# 2. drml finetune (Ray Train, 1 GPU worker, precision auto = bf16 autocast) on CrossNER politics, 2 epochs, MiniLM
#    and then a random BERT-base-sized backbone: tokens/s end to end, against (1) the share outside the model;
# 3. benchmarks/meta_step_time.py --device cuda: the meta-learning episode with theta kept on the GPU.
# Everything lands in OUT_DIR (JSON, logs, results.json of each run).
set -euo pipefail
OUT="${1:?usage: bash benchmarks/gpu_path.sh OUT_DIR}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 RAY_AUTH_MODE=disabled TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.csv"

for batch in 32 128 256; do
  python benchmarks/gpu_throughput.py --batch "$batch" --seq 128 --steps 30 --out "$OUT/throughput_b$batch.json" \
    2>&1 | tee "$OUT/throughput_b$batch.log"
done

# A BERT-base-sized random backbone (BertConfig(): 12 layers, 768 wide) with MiniLM's tokenizer, for drml finetune:
# the one benchmarks/meta_step_time.py builds.
python -c "import sys; from pathlib import Path; sys.path.insert(0, 'benchmarks')
from meta_step_time import bert_base_random; bert_base_random(Path(sys.argv[1]))" "$OUT/bert_base_random"

GPU=(--set scaling.num_workers=1 --set scaling.use_gpu=true --set scaling.cpus_per_worker=4 --set train.epochs=2
     --set train.patience=0)
drml finetune configs/ner/crossner_politics.yaml -o "$OUT/minilm" "${GPU[@]}" 2>&1 | tee "$OUT/minilm.log"
drml finetune configs/ner/crossner_politics.yaml -o "$OUT/bert_base" "${GPU[@]}" \
  --set "model.backbone=$OUT/bert_base_random" --set train.batch_size=64 2>&1 | tee "$OUT/bert_base.log"

python benchmarks/meta_step_time.py --device cuda --backbone minilm --out "$OUT/meta_step_minilm.json" \
  2>&1 | tee "$OUT/meta_step_minilm.log"
python benchmarks/meta_step_time.py --device cuda --backbone bert-base-random --out "$OUT/meta_step_bert.json" \
  2>&1 | tee "$OUT/meta_step_bert.log"
