#!/usr/bin/env bash
# Set up everything tensorrt_yolox_py needs in ./.venv, on a fresh Debian/Ubuntu machine with
# Python >= 3.10. Idempotent: a second run only checks and returns.
#
#   bash scripts/setup.sh            # runtime, ROS 2 (PyPI wheels), vision_msgs, tools, tests
#   YOLOX_WITH_MODELOPT=1 bash scripts/setup.sh   # + NVIDIA ModelOpt in ./.venv-modelopt
#
# Environment: PYTHON (default python3), YOLOX_VENV (default ./.venv),
# YOLOX_ROS2_LAUNCH_WHEELHOUSE: a folder of wheels of the ROS 2 launch system (launch, launch_ros,
# ros2cli, ros2launch; not on PyPI), e.g. ../shared/vendor/ros2_launch. When set, `ros2 launch`,
# `ros2 run` and the verbs topic, node, param, service and interface are installed from it
# (offline) and the launch tests run; when not, they skip.
# YOLOX_WITH_MODELOPT (default 0: the optional ModelOpt environment, scripts/setup_modelopt.sh,
# about 2 GB).
# YOLOX_CUDA (default: from the driver): 12 or 13 installs requirements-cuda12.txt / -cuda13.txt
# (cuda-bindings + NVRTC of that major; a 13.x binding needs driver 580+), none installs neither.
# The default asks the driver (tensorrt_yolox_py/cuda/driver.py): CUDA 12 -> 12; 13 or no
# driver at all (CI: NVRTC compiles the kernels without a GPU) -> 13.
# Where a system TensorRT exists (JetPack: apt's python3-libnvinfer in the system Python), the
# venv is made with --system-site-packages so that `import tensorrt` works in it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${YOLOX_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"
ONNX2TORCH_VERSION="1.5.15"
ROS_WHEELS="ros-rclpy ros-std-msgs ros-sensor-msgs ros-geometry-msgs ros-diagnostic-msgs ros-rmw-fastrtps-cpp"
# ros2 launch, run, pkg and the everyday verbs (+ launch, launch_ros, ros2cli as dependencies)
LAUNCH_WHEELS="ros-ros2launch ros-ros2run ros-ros2topic ros-ros2node ros-ros2param ros-ros2service ros-ros2interface"

say() { printf '[setup] %s\n' "$*"; }

apt_install() {
  # Install Debian/Ubuntu packages when we are root and apt-get exists; otherwise explain.
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    say "installing system packages: $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    say "missing system packages: $*; install them (sudo apt-get install $*) and re-run"
    exit 1
  fi
}

# 1. Prerequisites: Python >= 3.10 with venv, and a C/C++ compiler (the vision_msgs build).
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  say "$PYTHON not found: install Python >= 3.10"; exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  say "Python >= 3.10 is needed, found $("$PYTHON" --version 2>&1)"; exit 1
fi
PYVER="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  apt_install "python${PYVER}-venv"
fi
missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
if [ ! -f "/usr/include/python${PYVER}/Python.h" ] && \
   ! "$PYTHON" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
  missing+=("python${PYVER}-dev")
fi
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi

# 2. The virtual environment and Python packages (skipped when nothing changed).
SYSTEM_TRT=0
if "$PYTHON" -c 'import tensorrt' >/dev/null 2>&1; then
  SYSTEM_TRT=1
elif [ -f /etc/nv_tegra_release ]; then
  say "WARNING: Jetson ($(head -n1 /etc/nv_tegra_release | cut -c1-40)) but 'import tensorrt'" \
      "fails in $PYTHON: sudo apt-get install python3-libnvinfer (JetPack's TensorRT), then" \
      "re-create the venv (rm -rf $VENV); until then backend auto falls back to ONNX Runtime"
fi
if [ ! -x "$VENV/bin/python" ]; then
  if [ "$SYSTEM_TRT" = "1" ]; then
    say "creating $VENV with --system-site-packages (the system TensorRT stays importable)"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
elif [ "$SYSTEM_TRT" = "1" ] && ! "$VENV/bin/python" -c 'import tensorrt' >/dev/null 2>&1; then
  say "WARNING: $PYTHON has TensorRT but $VENV does not see it (made without" \
      "--system-site-packages): rm -rf $VENV and re-run"
fi
# The CUDA bindings + NVRTC for this driver (docs/platforms.md, "CUDA 12 or 13").
CUDA_CHOICE="${YOLOX_CUDA:-}"
if [ -z "$CUDA_CHOICE" ]; then
  CUDA_REQ="$("$PYTHON" "$ROOT/tensorrt_yolox_py/cuda/driver.py")" \
    || { say "this driver is too old for the CUDA preprocessing; set YOLOX_CUDA=none"; exit 1; }
else
  case "$CUDA_CHOICE" in
    12|13) CUDA_REQ="requirements-cuda$CUDA_CHOICE.txt" ;;
    none) CUDA_REQ="" ;;
    *) say "YOLOX_CUDA must be 12, 13 or none, got '$CUDA_CHOICE'"; exit 1 ;;
  esac
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
STAMP="$VENV/.tensorrt_yolox_py-setup"
WANT="$( { echo "cuda=$CUDA_REQ"; cat "$ROOT"/requirements*.txt "$ROOT/setup.py" \
           "$ROOT/scripts/setup.sh" "$ROOT/scripts/build_vision_msgs.sh" 2>/dev/null; } \
         | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  say "installing Python packages into $VENV (first run: a few minutes)"
  "${PIP[@]}" install --upgrade pip wheel setuptools 2>&1 | grep -v 'is ignored' || true
  "${PIP[@]}" install -r "$ROOT/requirements-dev.txt" ${CUDA_REQ:+-r "$ROOT/$CUDA_REQ"} 2>&1 \
    | grep -v 'is ignored' || true
  [ -n "$CUDA_REQ" ] && say "CUDA bindings: $CUDA_REQ"
  "${PIP[@]}" install "torch==$TORCH_VERSION" 2>&1 | grep -v 'is ignored' || true
  # onnx2torch (the torch backend) without its torchvision requirement: the CPU torch wheel's
  # torchvision does not import, and YOLOX needs none of the converters that use it.
  "${PIP[@]}" install --no-deps "onnx2torch==$ONNX2TORCH_VERSION" 2>&1 | grep -v 'is ignored' || true
  # shellcheck disable=SC2086
  "${PIP[@]}" install $ROS_WHEELS 2>&1 | grep -v 'is ignored' || true
  "${PIP[@]}" install --no-deps -e "$ROOT" 2>&1 | grep -v 'is ignored' || true
  "$VENV/bin/python" -c 'import numpy, cv2, onnxruntime, torch, rclpy, yaml
from tensorrt_yolox_py.backends.torch_backend import import_onnx2torch; import_onnx2torch()' \
    || { say "a Python package failed to install (see above)"; exit 1; }
  # 3. vision_msgs is not on PyPI: build it from its interface definitions into the venv.
  bash "$ROOT/scripts/build_vision_msgs.sh" "$VENV"
  echo "$WANT" > "$STAMP"
  say "done: $VENV"
else
  say "up to date: $VENV"
fi

# 4. The venv as an ament prefix of this package (index marker, share/, lib/<package>/), as
#    colcon would install it, so `ros2 launch tensorrt_yolox_py ...` finds it (links; quick).
"$VENV/bin/python" "$ROOT/scripts/ament_layout.py" "$VENV"

# 5. The ROS 2 launch system, from a wheelhouse when one is named (not on PyPI).
WHEELHOUSE="${YOLOX_ROS2_LAUNCH_WHEELHOUSE:-}"
if [ -n "$WHEELHOUSE" ]; then
  [ -d "$WHEELHOUSE" ] || { say "YOLOX_ROS2_LAUNCH_WHEELHOUSE=$WHEELHOUSE is not a folder"; exit 1; }
  WHEELHOUSE="$(cd "$WHEELHOUSE" && pwd)"
  LAUNCH_STAMP="$VENV/.tensorrt_yolox_py-launch"
  LAUNCH_WANT="$( { echo "$LAUNCH_WHEELS"; cat "$STAMP";
                    (cd "$WHEELHOUSE" && sha256sum -- *.whl); } | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$LAUNCH_STAMP" 2>/dev/null)" != "$LAUNCH_WANT" ]; then
    say "installing the ROS 2 launch system from $WHEELHOUSE"
    # shellcheck disable=SC2086
    "${PIP[@]}" install --no-index --find-links "$WHEELHOUSE" $LAUNCH_WHEELS 2>&1 \
      | grep -v 'is ignored' || true
    AMENT_PREFIX_PATH="$VENV" "$VENV/bin/ros2" launch tensorrt_yolox_py yolox.launch.py \
        --show-args >/dev/null \
      || { say "ros2 launch does not find tensorrt_yolox_py (see above)"; exit 1; }
    for verb in topic node param service interface; do
      "$VENV/bin/ros2" "$verb" --help >/dev/null \
        || { say "ros2 $verb does not start (see above)"; exit 1; }
    done
    echo "$LAUNCH_WANT" > "$LAUNCH_STAMP"
    say "ros2 launch, run, topic, node, param, service, interface installed: run them with" \
        "AMENT_PREFIX_PATH=$VENV (docs/ros_interface.md, \"Installing for ros2 launch\")"
  fi
elif ! "$VENV/bin/python" -c 'import ros2launch' >/dev/null 2>&1; then
  say "ros2 launch not installed (not on PyPI): set YOLOX_ROS2_LAUNCH_WHEELHOUSE to a" \
      "wheelhouse of it to install it; the launch tests skip"
fi

# 6. The real TensorRT Python bindings of every supported version, importable with stub
#    libraries for the API conformance tests (no TensorRT library is installed; skipped with a
#    message where PyPI or gcc is missing, and those tests then skip with the reason).
YOLOX_VENV="$VENV" bash "$ROOT/scripts/trt_api.sh" || say "TensorRT API bindings not prepared"

# 7. Optional: NVIDIA ModelOpt for the strongly typed (TensorRT 11) models, in its own venv.
if [ "${YOLOX_WITH_MODELOPT:-0}" = "1" ]; then
  bash "$ROOT/scripts/setup_modelopt.sh"
fi
