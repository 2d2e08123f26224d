#!/usr/bin/env bash
# #31's GPU rows, as one prepared script for a machine with a CUDA GPU: the demo student (32 px) and untrained
# MobileNetV3-L / EfficientNet-B0 at 224 px (latency depends on the architecture, not the weights), each as PyTorch
# eager fp32/fp16 and torch.compile with CUDA graphs, beside ONNX fp32/fp16 through onnxruntime's CUDA provider,
# at batch 1, 8 and 64. Needs the train extra and onnxruntime-gpu (CUDA 13 build) in place of onnxruntime.
#
#   DEVICE=cuda bash tools/gpu_inference.sh runs/gpu          # reports in runs/gpu/*/bench/report.md
#   DEVICE=cpu VARIANTS=eager,compiled SIZES=1,8 bash tools/gpu_inference.sh /tmp/dry   # the same steps on a CPU
set -euo pipefail
OUT=${1:-runs/gpu}
DEVICE=${DEVICE:-cuda}
VARIANTS=${VARIANTS:-eager,eager-fp16,cudagraphs,cudagraphs-fp16}
SIZES=${SIZES:-1,8,64}
ROUNDS=${ROUNDS:-2}  # each round starts fresh workers: a compiled variant compiles again (inductor's cache helps)
PY=${PY:-.venv/bin/python}
E="$PY -m edgedistill"
DEMO=${DEMO:-runs/demo/student}
DATA=${DATA:-.cache/data/cifar10/test}  # parity images (a class-per-folder set; 64 are used)
$PY -m edgedistill --version >/dev/null
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/card.txt" 2>/dev/null || true

student() {  # $1 architecture, $2 folder: an untrained (seed-0) student.pt at 224 px
  $PY - "$1" "$2" <<'PY'
import sys
from pathlib import Path
from distill.checkpoint import save_student
from distill.students import untrained_student
model, pre = untrained_student(sys.argv[1], 224)
Path(sys.argv[2]).mkdir(parents=True, exist_ok=True)
save_student(Path(sys.argv[2]) / "student.pt", model, pre, {"untrained": True})
PY
}

runs=()
if [ -f "$DEMO/student.pt" ]; then
  mkdir -p "$OUT/demo32" && cp "$DEMO/student.pt" "$OUT/demo32/student.pt" && runs+=("$OUT/demo32")
fi
for M in mobilenetv3_large_100 efficientnet_b0; do
  student "$M" "$OUT/$M-224" && runs+=("$OUT/$M-224")
done
for R in "${runs[@]}"; do
  $E export --model "$R" --format onnx --precision fp32,fp16 --device "$DEVICE" --timing-s 1 \
     --parity-data "$DATA" --parity-size 64 -q --json | tail -c 400
  $E bench "$R" --device "$DEVICE" --torch "$VARIANTS" --batch-sizes "$SIZES" --rounds "$ROUNDS" --min-time-s 1 \
     --data "$DATA" --val-limit 200 --out "$R/bench" -q --json | tail -c 400
done
