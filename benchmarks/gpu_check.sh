#!/usr/bin/env bash
# One prepared run for a short time on a GPU: environment, the gpu tests, then benchmarks/gpu_check.py
# (network call eager / bf16 / compiled, one 256x256 photo end to end, table1 on a few photos scaled to
# 100). Everything lands in OUT (default gpu_check/); figures.json is written after each part, so a run
# cut short still leaves what it measured.
#
#   benchmarks/gpu_check.sh [--device cuda|cpu] [--out DIR] [--data DIR] [--photos N] [--steps N]
#
# --device cpu is the smoke test (use --photos 1 --steps 2: the figures then say nothing about speed).
set -euo pipefail
device=cuda out=gpu_check data="" photos=4 steps=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --photos) photos=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    *) echo "gpu_check.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
here=$(cd "$(dirname "$0")/.." && pwd)
{
  date -u +%FT%TZ
  python -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
  if [ "$device" = cuda ]; then nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv || true; fi
} > "$out/env.txt" 2>&1
if [ "$device" = cuda ]; then
  python -m pytest -q -m gpu "$here/tests/test_gpu.py" > "$out/gpu_tests.txt" 2>&1 || echo "gpu tests failed: $out/gpu_tests.txt"
fi
args=(--device "$device" --photos "$photos" --out "$out/figures.json")
[ -n "$data" ] && args+=(--data "$data")
[ -n "$steps" ] && args+=(--steps "$steps")
python "$here/benchmarks/gpu_check.py" "${args[@]}" 2>&1 | tee "$out/gpu_check.log"
echo "figures: $out/figures.json"
