#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite: unit, ROS (real rclpy + DDS on the
# loopback), GPU (skipped without a GPU) and end-to-end tests, plus flake8 and pep257.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "${YOLOX_VENV:-$ROOT/.venv}/bin/python" -m pytest -q -ra test "$@"
