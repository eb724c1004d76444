#!/usr/bin/env bash
# Issue 12 on the lent GPU machine (device tool), one step per call (each < 10 minutes).
#
# Prepare on the development machine first (main, after the merge):
#   .venv/bin/pip download --no-deps onnx2torch==1.5.15 -d .whl_gpu   # pure Python, 90 kB
#   .venv/bin/python benchmarks/bag_frames.py                          # bag_frames.npz, 20 MB
# .whl_gpu/ is untracked and travels with the working tree; bag_frames.npz is git-ignored
# (too big to commit by accident): pass it in the run's carry list, carry=["bag_frames.npz"].
#
# Then on the device:  bash benchmarks/gpu_end_to_end_device.sh tests|splus|demo|graph
#   tests  GPU tests (torch backend, device-buffer handoff, batching, bag equality) -> log
#   splus  bench_gpu_end_to_end.py, YOLOX-S+-Opt 960x960 (exported at run time)    ~5 min
#   demo   bench_gpu_end_to_end.py, the demo model 960x640                          ~4 min
#   graph  the same with the torch backend's CUDA graphs, GPU-resident path only    ~5 min
set -o pipefail
STEP=${1:-tests}
OUT=${OUT:-out/gpu_end_to_end}
mkdir -p "$OUT"
if ls .whl_gpu/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl_gpu/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "from tensorrt_yolox_py.backends.torch_backend import import_onnx2torch as i; i()
import torch, onnx, onnxruntime
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available(),
      'onnx', onnx.__version__, 'ort', onnxruntime.__version__)" | tee -a "$OUT/gpu.txt"
case "$STEP" in
  tests)
    timeout 570 python3 -m pytest -q -rs -p no:cacheprovider test/test_gpu_torch.py \
      test/test_gpu_pipeline.py test/test_torch_backend.py test/test_batching.py \
      test/test_batch_groups.py test/test_tensorrt_batch.py 2>&1 | tee "$OUT/gpu_tests_torch_h100.log" ;;
  splus)
    timeout 580 python3 benchmarks/bench_gpu_end_to_end.py --models splus --tag h100_splus \
      --out "$OUT" 2>&1 | tee "$OUT/bench_splus.log" ;;
  demo)
    timeout 580 python3 benchmarks/bench_gpu_end_to_end.py --models demo --tag h100_demo \
      --out "$OUT" 2>&1 | tee "$OUT/bench_demo.log" ;;
  graph)
    timeout 580 python3 benchmarks/bench_gpu_end_to_end.py --cuda-graph on --paths device \
      --tag h100_graph --out "$OUT" 2>&1 | tee "$OUT/bench_graph.log" ;;
  *) echo "unknown step $STEP (tests|splus|demo|graph)"; exit 2 ;;
esac
echo "exit $?"
ls -la "$OUT"
