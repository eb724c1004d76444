#!/usr/bin/env bash
# Issue 20 (the typed path) on the lent GPU machine: GPU tests and the host-path benchmark,
# with main's host-path numbers as the baseline measured in the same call.
#
# Prepare on the development machine (from the wt-typed worktree, after merging main):
#   .venv/bin/python benchmarks/bag_frames.py                 # bag_frames.npz (git-ignored)
#   bash /work/tools/device_overlay.sh typed                  # the branch as an overlay
#   mkdir -p /work/main/.device/typed/extra/site
#   cp bag_frames.npz /work/main/.device/typed/extra/
#   cp -r <venv>/site-packages/onnx2torch /work/main/.device/typed/extra/site/   # pure Python
# Then one device call, carry [".device/typed"] (about 3-4 minutes):
#   O=$OUT; export PYTHONPATH=$PWD/.device/typed/extra/site:$PWD;
#   timeout 80 python3 benchmarks/bench_host_path.py --iters 100 --out $O \
#     --name host_path_before > $O/bench_before.log 2>&1;           # main's tree: baseline
#   rm -f $(cat .device/typed/deleted.txt); cp -a .device/typed/tree/. . ;
#   cp .device/typed/extra/bag_frames.npz . ; bash benchmarks/typed_path_device.sh
# Writes under $OUT: gpu.txt (card, versions), gpu_tests.log, host_path_{before,after}.{json,md}.
set -o pipefail
O=${OUT:-out/typed_path}
mkdir -p "$O"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$O/gpu.txt"
python3 -c "import sys, torch, numpy, cuda.core, cuda.bindings
print(sys.version.split()[0], 'torch', torch.__version__, 'numpy', numpy.__version__,
      'cuda.core', cuda.core.__version__, 'cuda.bindings', cuda.bindings.__version__)" \
  >> "$O/gpu.txt" 2>&1
timeout 170 python3 -m pytest -q -rs -p no:cacheprovider test/test_tensors.py \
  test/test_cuda_kernels.py test/test_cuda_preprocess.py test/test_gpu_pipeline.py \
  test/test_tensorrt_cuda.py test/test_tensorrt_runtime.py test/test_preprocess.py \
  test/test_image.py test/test_postprocess.py test/test_detector.py test/test_gpu_torch.py \
  test/test_torch_backend.py test/test_batching.py test/test_batch_groups.py \
  test/test_tensorrt_batch.py test/test_tensorrt_builder.py > "$O/gpu_tests.log" 2>&1
echo "rc=$?" >> "$O/gpu_tests.log"
timeout 80 python3 benchmarks/bench_host_path.py --iters 100 --out "$O" \
  --name host_path_after > "$O/bench_after.log" 2>&1
echo "rc=$?" >> "$O/bench_after.log"
tail -3 "$O/gpu_tests.log"
grep -E "^\| (direct|runtime_run|pinned_h2d_kernel|single) " "$O"/host_path_*.md
