#!/usr/bin/env bash
# Train the bundled demo model on the lent H100 (device tool), within one 10-minute command.
# Usage there: bash benchmarks/train_demo_device.sh [minutes]   (writes under $OUT)
set -o pipefail
MIN=${1:-7.3}
OUT=${OUT:-out/train_demo}
mkdir -p "$OUT"
if ls .whl_train/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl_train/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi --query-gpu=name,memory.used,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, cv2, numpy, pycocotools; print('torch', torch.__version__, 'cv2', cv2.__version__, 'numpy', numpy.__version__)"
PYTHONUNBUFFERED=1 timeout 565 python3 -m tensorrt_yolox_py.devkit.tools.train_demo --out "$OUT/run" \
  --variant yolox-s+-opt --width 0.25 --input-size 640 960 --minutes "$MIN" --batch 64 --lr 2e-3 \
  --train-frames 12000 --start-frames 1000 --val-frames 300 --save-every 60 --log-every 20 \
  2>&1 | tee "$OUT/train.log"
echo "exit $?"
ls -la "$OUT" "$OUT/run"
