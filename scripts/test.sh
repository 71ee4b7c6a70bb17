#!/usr/bin/env bash
# Set up both environments and run every test: the backend environment runs the engine,
# service, shader and add-on-core tests; the bpy environment runs the Blender tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

status=0
echo "[test] backend environment: tests/"
.venv/bin/python -m pytest -p no:cacheprovider tests "$@" || status=$?
echo "[test] bpy environment: tests/addon"
.venv-blender/bin/python -m pytest -p no:cacheprovider tests/addon "$@" || status=$?
exit $status
