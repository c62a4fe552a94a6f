#!/usr/bin/env bash
# The one test command (README, CI): builds a host-like .venv from scratch if needed, then runs the suite.
# Usage: bash tools/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP="$VENV/.facechain-deps"
want=$(cat tests/constraints.txt tests/requirements.txt tools/test.sh | sha256sum | cut -d' ' -f1)

if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "== building $VENV (host-like pins from tests/constraints.txt)"
  "$PY" -m venv "$VENV"
  pip() {  # quiet on success; on failure show pip's output (minus index-location noise) and stop
    if ! "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" > "$VENV/pip.log" 2>&1; then
      grep -v "^WARNING: Location" "$VENV/pip.log"; echo "pip $* failed"; exit 1
    fi
  }
  # torch first and fixed: anything that lets pip pick torch pulls GBs of CUDA wheels.
  pip install "torch==2.1.2" "setuptools==69.5.1" wheel
  pip install -c tests/constraints.txt -r tests/requirements.txt
  # insightface 2.1 wants onnx>=1.13, whose newer releases need protobuf>=4; the host pins protobuf 3.20.0.
  # onnx 1.15 runs on 3.20.0, so it goes in without its dependency check (install.py does the same in the host).
  pip install --no-deps "insightface==2.1" "onnx==1.15.0"
  # The real ldm code the host runs (UNetModel etc.); its declared pins are ancient, so no deps.
  pip install --no-deps "stable-diffusion-sdkit==2.1.5"
  "$VENV/bin/python" -c "import torch, gradio, insightface, dlib, ldm, diffusers, peft" \
    || { echo "test environment is incomplete"; exit 1; }
  echo "$want" > "$STAMP"
fi

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DIFFUSERS_OFFLINE=1
exec "$VENV/bin/python" -m pytest "$@"
