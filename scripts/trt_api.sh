#!/usr/bin/env bash
# Make the REAL TensorRT Python bindings of every supported version importable for
# introspection (stub libraries; nothing can be built or run), for the conformance tests.
#
#   bash scripts/trt_api.sh               # fetch the wheels, build the stubs (idempotent)
#   bash scripts/trt_api.sh --manifests   # also regenerate test/trt_api/manifests/*.json
#
# Needs pip access to PyPI (the bindings wheels are 1-1.4 MB each), gcc and binutils.
# Environment: YOLOX_VENV (default ./.venv; its Python picks the wheels' Python tag),
# TRT_API_WORK (default ./build/trt_api). Exits 0 with a message when a version cannot be
# prepared: the tests that need it skip with the reason.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${YOLOX_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
[ -x "$PY" ] || PY=python3
WORK="${TRT_API_WORK:-$ROOT/build/trt_api}"
TOOLS="$ROOT/third_party/trt_api"
# version -> PyPI package (keep in sync with VERSIONS in test/trt_api/api.py)
VERSIONS="8.6.1:tensorrt-bindings 10.3.0:tensorrt-cu12-bindings 10.13.3.9:tensorrt-cu12-bindings
10.16.1.11:tensorrt-cu12-bindings 11.4.0.106:tensorrt-cu12-bindings"

say() { printf '[trt_api] %s\n' "$*"; }
for tool in gcc nm readelf; do
  command -v "$tool" >/dev/null 2>&1 || { say "no $tool: real-binding tests will skip"; exit 0; }
done
mkdir -p "$WORK/wheels" "$WORK/ready"
ready=()
for entry in $VERSIONS; do
  ver="${entry%%:*}"; pkg="${entry#*:}"
  dir="$WORK/ready/$ver"
  if [ -f "$dir/py/tensorrt/__init__.py" ] && [ -f "$dir/stub_info.json" ]; then
    ready+=("$dir"); continue
  fi
  rm -rf "$dir"
  wheel="$(ls "$WORK/wheels/"*"-$ver-"*.whl 2>/dev/null | head -1)"
  if [ -z "$wheel" ]; then
    if ! "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
         -d "$WORK/wheels" "$pkg==$ver" >"$WORK/pip-$ver.log" 2>&1; then
      say "cannot download $pkg==$ver for $("$PY" -V 2>&1) (see $WORK/pip-$ver.log): skipped"
      continue
    fi
    wheel="$(ls "$WORK/wheels/"*"-$ver-"*.whl 2>/dev/null | head -1)"
  fi
  if "$PY" "$TOOLS/make_stub_trt.py" "$wheel" --out "$dir" >"$WORK/stub-$ver.log" 2>&1; then
    say "ready: TensorRT $ver bindings ($dir/py)"; ready+=("$dir")
  else
    say "cannot build stubs for $ver (see $WORK/stub-$ver.log): skipped"; rm -rf "$dir"
  fi
done
if [ "${1:-}" = "--manifests" ] && [ "${#ready[@]}" -gt 0 ]; then
  TRT_API_WORK="$WORK" "$PY" "$TOOLS/dump_api.py" --no-docs "${ready[@]}" || exit 1
  mkdir -p "$ROOT/test/trt_api/manifests"
  cp "$WORK"/manifests/tensorrt-*.json "$ROOT/test/trt_api/manifests/"
  say "manifests written to test/trt_api/manifests/"
fi
exit 0
