#!/usr/bin/env bash
# Issue 19 on the lent GPU machine (device tool). Prepare on the development machine:
#   pip download --no-deps onnx2torch==1.5.15 -d .whl_gpu    # foreign-model fallback, 90 kB
#   python benchmarks/bag_frames.py                          # bag_frames.npz (GPU bag tests)
# Then there:  bash benchmarks/gpu_captured_device.sh STEPS
#   (STEPS: tests,bench,compile,compile_e2e; WHEELS=folder of wheels, default .whl_gpu)
#   tests    GPU tests (capture success, GPU decode = CPU postprocess, bag fp32/fp16) -> log
#   bench    bench_gpu_captured.py: anchor + backend variants, end to end, profiler
#   compile  the torch.compile rows (anchor and backend, batch 1 and 8) and a warm start
#   compile_e2e  compiled anchor + backend rows and the end-to-end rows compiled (every batch
#            size 1..8 is compiled for them: minutes on a cold cache)
set -o pipefail
STEPS=${1:-tests,bench}
OUT=${OUT:-out/gpu_captured}
TAG=${TAG:-h100}
mkdir -p "$OUT"
WHEELS=${WHEELS:-.whl_gpu}
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$WHEELS"/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, onnx, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda,
      'onnx', onnx.__version__, 'triton', triton.__version__)" | tee -a "$OUT/gpu.txt"
for STEP in ${STEPS//,/ }; do
  case "$STEP" in
    tests)
      timeout ${TESTS_S:-300} python3 -X faulthandler -m pytest -q -rs -p no:cacheprovider test/test_gpu_torch.py \
        test/test_gpu_pipeline.py test/test_torch_backend.py test/test_torch_static.py \
        test/test_detector_device_decode.py \
        2>&1 | tee "$OUT/gpu_tests_captured_$TAG.log" ;;
    bench)
      timeout ${BENCH_S:-330} python3 benchmarks/bench_gpu_captured.py --tag "$TAG" --out "$OUT" $BENCH_ARGS \
        --cache-dir /tmp/tyx_cache 2>&1 | tee "$OUT/bench_$TAG.log" | grep -v "^20..-" | tail -40 ;;
    compile)
      # backend first (batch 1, then 8), then the anchor; each under its own limit
      timeout ${COMPILE_S:-240} python3 benchmarks/bench_gpu_captured.py --tag "${TAG}_compile" \
        --out "$OUT" --batches ${COMPILE_BATCHES:-1,8} --variants compile_nhwc_fp16 \
        --anchor-modes '' --e2e '' --warm-start compile_nhwc_fp16 --cache-dir /tmp/tyx_cache 2>&1 \
        | tee "$OUT/bench_${TAG}_compile.log" | grep -v "^20..-..-.. " | tail -30
      timeout ${COMPILE_S:-240} python3 benchmarks/bench_gpu_captured.py --tag "${TAG}_compile_anchor" \
        --out "$OUT" --batches ${COMPILE_BATCHES:-1,8} --variants '' --anchor-modes compile \
        --e2e '' --cache-dir /tmp/tyx_cache 2>&1 \
        | tee "$OUT/bench_${TAG}_compile_anchor.log" | grep -v "^20..-..-.. " | tail -30 ;;
    compile_e2e)
      timeout ${COMPILE_S:-330} python3 benchmarks/bench_gpu_captured.py \
        --tag "${TAG}_compile_e2e" --out "$OUT" --batches ${COMPILE_BATCHES:-1,8} \
        --variants compile_nhwc_fp16 --anchor-modes compile --e2e compile_nhwc_fp16 \
        --seconds ${E2E_S:-2} --cache-dir /tmp/tyx_cache 2>&1 \
        | tee "$OUT/bench_${TAG}_compile_e2e.log" | grep -v "^20..-..-.. " | tail -40 ;;
    *) echo "unknown step $STEP"; exit 2 ;;
  esac
done
ls -la "$OUT"
