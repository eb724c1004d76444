#!/usr/bin/env bash
# Set up (idempotent), then run the main job on the bundled model and sample bag: three camera
# nodes (ROS 2, DDS kept on the loopback) detect objects in the bundled rosbag, and the
# annotated frames and the evaluation summary are written to an output folder.
#
#   bash scripts/demo.sh [--output DIR] [extra yolox_demo options]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "${YOLOX_VENV:-$ROOT/.venv}/bin/python" -m tensorrt_yolox_py.tools.demo "$@"
