#!/usr/bin/env bash
# Create both environments (idempotent): .venv = the backend (torch, OpenCV 5, numpy 2),
# .venv-blender = Blender's side (bpy 5.0.1, numpy 1.26). They cannot be one environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}

log() { printf '[setup] %s\n' "$*"; }

if ! command -v "$PYTHON" >/dev/null; then
  echo "setup: $PYTHON not found; Stillflow needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

# Headless OpenGL (Mesa llvmpipe over EGL) for the shader tests; skipped when not root or no apt.
if ! ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Mesa EGL (libegl1 libgl1-mesa-dri libegl-mesa0)"
    (apt-get install -y -q libegl1 libgl1-mesa-dri libegl-mesa0 >/dev/null 2>&1 ||
      (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libegl1 libgl1-mesa-dri libegl-mesa0 >/dev/null)) ||
      log "could not install Mesa EGL; shader tests will be skipped"
  else
    log "Mesa EGL not found and cannot install it here; shader tests will be skipped"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  log "creating .venv (backend)"
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch: keep a user's own (CUDA) build; otherwise take the CPU build 2.13.0.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  log "installing torch 2.13.0 (CPU build)"
  .venv/bin/python -m pip install -q "torch==2.13.0"
fi
log "installing stillflow (backend) with the test and ray extras"
# ray: `stillflow batch --executor ray` and `serve --ray` are tested against a real local Ray runtime
.venv/bin/python -m pip install -q -e ".[test,ray]"
# numba compiles the engine's CPU kernels once into its cache (stages/__pycache__ here): the first render
# then starts at full speed instead of spending a minute compiling
log "preparing the engine (compiling its CPU kernels once, about a minute)"
.venv/bin/python -m stillflow -q prepare-engine

if [ ! -x .venv-blender/bin/python ]; then
  log "creating .venv-blender (bpy 5.0.1 for the add-on tests and the extension build)"
  "$PYTHON" -m venv .venv-blender
fi
.venv-blender/bin/python -m pip install -q --upgrade pip
.venv-blender/bin/python -m pip install -q "bpy==5.0.1" "pyzmq>=26" "msgpack>=1.0" "pytest>=8"
log "environments ready"
