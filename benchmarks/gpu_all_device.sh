#!/usr/bin/env bash
# Every GPU check of the package in ONE call of the lent GPU machine (device tool), for a
# session's final state. Prepare on the development machine (all git-ignored, carried):
#   mkdir -p .device/final && cp bag_frames.npz .device/final/     # benchmarks/bag_frames.py
#   pip download --no-deps onnx2torch==1.5.15 -d .device/final      # foreign-model fallback
#   # optional baseline: an older tree's code (no model data) for the host-path benchmark
#   git archive REV tensorrt_yolox_py benchmarks | tar -x -C .device/final/before
# Then there, carry [".device/final"]:  bash benchmarks/gpu_all_device.sh
# Writes /tmp/gpu_all/: gpu.txt, gpu_tests.log, installed_wheel_gpu.{log,json},
# host_path_{before,after}.{json,md,log}, the captured-path benchmark's JSON / md / log; all of
# it comes back as $OUT/gpu_all.tgz (the tool returns at most 8 files).
set -o pipefail
O=/tmp/gpu_all
F=.device/final
mkdir -p "$O"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$F"/*.whl
cp "$F/bag_frames.npz" . 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  cat "$F/COMMIT" 2>/dev/null     # written by the preparing session: git rev-parse HEAD
  python3 -c "import sys, torch, numpy, cuda.core, cuda.bindings, onnx
print(sys.version.split()[0], 'torch', torch.__version__, 'numpy', numpy.__version__,
      'cuda.core', cuda.core.__version__, 'cuda.bindings', cuda.bindings.__version__,
      'onnx', onnx.__version__)"; } > "$O/gpu.txt" 2>&1
timeout ${TESTS_S:-200} python3 -X faulthandler -m pytest -q -rs -p no:cacheprovider \
  test/test_tensors.py test/test_cuda_kernels.py test/test_cuda_preprocess.py \
  test/test_cuda_preprocess_double.py test/test_gpu_pipeline.py test/test_gpu_torch.py \
  test/test_torch_backend.py test/test_torch_static.py test/test_tensorrt_cuda.py \
  test/test_tensorrt_runtime.py test/test_preprocess.py test/test_image.py \
  test/test_postprocess.py test/test_detector.py test/test_batching.py \
  test/test_batch_groups.py test/test_tensorrt_batch.py > "$O/gpu_tests.log" 2>&1
echo "rc=$?" >> "$O/gpu_tests.log"
YOLOX_GPU_LOG=$O/installed_wheel_gpu.json timeout ${WHEEL_S:-120} python3 -m pytest -q -rA \
  -p no:cacheprovider test/platforms/test_platform_installed_wheel.py -k gpu \
  > "$O/installed_wheel_gpu.log" 2>&1
echo "rc=$?" >> "$O/installed_wheel_gpu.log"
if [ -d "$F/before/benchmarks" ]; then
  (cd "$F/before" && PYTHONPATH=/tmp/site:$PWD timeout ${HOST_S:-80} python3 benchmarks/bench_host_path.py \
     --iters 100 --out "$O" --name host_path_before > "$O/host_path_before.log" 2>&1)
fi
timeout ${HOST_S:-80} python3 benchmarks/bench_host_path.py --iters 100 --out "$O" \
  --name host_path_after > "$O/host_path_after.log" 2>&1
timeout ${BENCH_S:-200} python3 benchmarks/bench_gpu_captured.py --tag ${TAG:-final} --out "$O" \
  --cache-dir /tmp/tyx_cache $BENCH_ARGS > "$O/bench_captured.log" 2>&1
echo "rc=$?" >> "$O/bench_captured.log"
tail -2 "$O/gpu_tests.log" "$O/installed_wheel_gpu.log" "$O/bench_captured.log"
grep -h -E "^\| " "$O"/host_path_*.md | head -30
ls -la "$O"
[ -n "${OUT:-}" ] && tar -czf "$OUT/gpu_all.tgz" -C "$O" .
