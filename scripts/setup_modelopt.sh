#!/usr/bin/env bash
# Optional: NVIDIA ModelOpt (nvidia-modelopt[onnx]) in its OWN environment, ./.venv-modelopt.
# Idempotent: a second run only checks and returns.
#
#   bash scripts/setup_modelopt.sh        # or: YOLOX_WITH_MODELOPT=1 bash scripts/setup.sh
#
# Why a second environment: ModelOpt pins onnxruntime-gpu~=1.24 on x86 Linux, the package needs
# onnxruntime>=1.32, and both distributions install the same `onnxruntime` import package, so
# one overwrites the other. tensorrt_yolox_py.quantization.strongly_typed drives ModelOpt here
# through a subprocess (quantization/modelopt_worker.py); without this environment it uses the
# ONNX Runtime quantizer + onnxconverter-common instead. About 2 GB and 2-3 minutes.
#
# Environment: PYTHON (default python3), YOLOX_MODELOPT_VENV (default ./.venv-modelopt),
# MODELOPT_VERSION (default 0.47.0, the version tested), TORCH_VERSION (default 2.13.0).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${YOLOX_MODELOPT_VENV:-$ROOT/.venv-modelopt}"
PYTHON="${PYTHON:-python3}"
MODELOPT_VERSION="${MODELOPT_VERSION:-0.47.0}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
WORKER="$ROOT/tensorrt_yolox_py/quantization/modelopt_worker.py"

say() { printf '[setup-modelopt] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
STAMP="$VENV/.modelopt-setup"
WANT="modelopt=$MODELOPT_VERSION torch=$TORCH_VERSION $(sha256sum "$0" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  say "installing nvidia-modelopt[onnx]==$MODELOPT_VERSION into $VENV (a few minutes)"
  "${PIP[@]}" install --upgrade pip 2>&1 | grep -v 'is ignored' || true
  # torch first: ModelOpt needs torch>=2.8, and a CPU build is enough for ONNX quantization.
  "${PIP[@]}" install "torch==$TORCH_VERSION" 2>&1 | grep -v 'is ignored' || true
  "${PIP[@]}" install "nvidia-modelopt[onnx]==$MODELOPT_VERSION" 2>&1 | grep -v 'is ignored' || true
fi
request="$(mktemp)"; response="$(mktemp)"
trap 'rm -f "$request" "$response"' EXIT
echo '{"op": "probe"}' > "$request"
if "$VENV/bin/python" "$WORKER" "$request" "$response" >/dev/null 2>&1 \
   && grep -q '"ok": true' "$response"; then
  echo "$WANT" > "$STAMP"
  say "ready: $(cat "$response")"
  say "used automatically from $VENV; elsewhere set YOLOX_MODELOPT_PYTHON=$VENV/bin/python"
else
  rm -f "$STAMP"
  say "ModelOpt does not import in $VENV ($(cat "$response" 2>/dev/null)); the package falls back to the ONNX Runtime quantizer"
  exit 1
fi
