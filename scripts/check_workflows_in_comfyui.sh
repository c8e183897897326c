#!/usr/bin/env bash
# The pack in a real ComfyUI, as a user meets it: the import check, ComfyUI's own prompt validation of every
# workflow, every workflow loaded in the real editor (headless Chromium), and every workflow run through POST /prompt
# on the CPU with tiny or bundled models (plus one interrupted run). Not run in CI: it needs a ComfyUI checkout and
# two virtualenvs outside the repository, and takes 6-9 minutes on 2 shared cores (BENCHMARKS.md).
#
# Layout (COMFY_DIR, default /work/comfy), set up once:
#   $COMFY_DIR/ComfyUI   ComfyUI's source (0.8.0: the pollockjj/ComfyUI fork; `git checkout HEAD -- .` restores
#                        the work tree of a bare copy). Never commit any of it.
#   $COMFY_DIR/venv      python3 -m venv; pip install torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0, then
#                        -c a constraints file pinning those three: -r ComfyUI/requirements.txt requests pytest, this
#                        pack's requirements.txt, opencv-python-headless onnxruntime, and
#                        --no-deps rtmlib==0.0.16 scenedetect resemblyzer==0.1.4
#   $COMFY_DIR/pwvenv    python3 -m venv; pip install playwright (its browser download is not needed)
#   /usr/bin/chromium    apt-get install chromium
# Outputs (screenshots, reports, the runs' images) go to OUT (default $COMFY_DIR/check).
set -euo pipefail
PACK="$(cd "$(dirname "$0")/.." && pwd)"
COMFY_DIR="${COMFY_DIR:-/work/comfy}"
COMFY="$COMFY_DIR/ComfyUI"
PY="$COMFY_DIR/venv/bin/python"
OUT="${OUT:-$COMFY_DIR/check}"
PORT="${PORT:-8188}"
SHARED="${MIT_SHARED_DATA:-$PACK/../shared/data}"
mkdir -p "$OUT"
for need in "$COMFY/main.py" "$PY" "$COMFY_DIR/pwvenv/bin/python" /usr/bin/chromium "$PACK/.venv/bin/python"; do
    [ -e "$need" ] || { echo "missing $need (see the layout at the top of $0)"; exit 2; }
done

step() { echo; echo "== $1 ($(date +%T))"; }

step "the pack in custom_nodes, the small models and the inputs in place"
ln -sfn "$PACK" "$COMFY/custom_nodes/ComfyUI-MIT-CovOG"
mkdir -p "$COMFY/models/dwpose" "$COMFY/models/active_speaker" "$COMFY/models/speaker_segmentation" \
    "$COMFY/models/covog" "$COMFY/input"
cp -f "$SHARED/models/yolox_nano.onnx" "$SHARED/models/face_detection_yunet.onnx" "$COMFY/models/dwpose/"
cp -f "$SHARED/models/lr_asd/pretrain_AVA.model" "$COMFY/models/active_speaker/"
cp -f "$SHARED/models/pyannote_segmentation/pytorch_model.bin" "$COMFY/models/speaker_segmentation/"
# the big models the workflows list for the editor's download dialog (Wan 2.1, wav2vec2) stand in as empty files, so
# the editor finds every model in place; the runs below leave the nodes that read them out
"$PACK/.venv/bin/python" - "$COMFY" "$PACK/workflows" <<'EOF'
import json
import sys
from pathlib import Path

comfy, workflows = Path(sys.argv[1]), Path(sys.argv[2])
for workflow in workflows.glob("*.json"):
    for model in json.loads(workflow.read_text()).get("models", []):
        target = comfy / "models" / model["directory"] / model["name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
EOF
cp -f "$SHARED/video/interact_11.mp4" "$COMFY/input/"
(cd "$PACK" && HF_HUB_OFFLINE=1 CUDA_VISIBLE_DEVICES="" .venv/bin/python - "$COMFY" <<'EOF'
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, "tests")
from tiny_onnx import export_pose

from covog.models.model import CovOGModel
from mit_annotator.core import media

comfy = Path(sys.argv[1])
if not (comfy / "models/dwpose/tiny_pose.onnx").is_file():
    export_pose(comfy / "models/dwpose/tiny_pose.onnx")
if not (comfy / "models/covog/tiny/model_index.json").is_file():
    CovOGModel.random("tiny").save(comfy / "models/covog/tiny")
# a 1.2 s driving video (the first 30 frames of interact_11 at 25 fps) and its first frame as the reference
video = "../shared/data/video/interact_11.mp4"
frames, audio = media.read_frames(video, end=30, fps=25), media.read_audio(video, 16000)[:19200]
media.write_video(comfy / "input/driving_video.mp4", frames, 25.0, audio, 16000)
import cv2
cv2.imwrite(str(comfy / "input/reference.png"), frames[0][..., ::-1])
print("tiny_pose.onnx, covog/tiny, driving_video.mp4 (30 frames), reference.png ready")
EOF
)

step "import check: main.py --cpu --quick-test-for-ci"
start=$(date +%s)
(cd "$COMFY" && "$PY" main.py --cpu --quick-test-for-ci) > "$OUT/quick_test.log" 2>&1
grep -E "ComfyUI-MIT-CovOG|IMPORT FAILED" "$OUT/quick_test.log" || true
! grep -q "IMPORT FAILED" "$OUT/quick_test.log"
echo "quick test: $(( $(date +%s) - start )) s"

step "ComfyUI's own validate_prompt on every workflow (tests/pack/test_workflows.py)"
(cd "$PACK" && COMFYUI_PATH="$COMFY" COMFYUI_PYTHON="$PY" HF_HUB_OFFLINE=1 CUDA_VISIBLE_DEVICES="" \
    .venv/bin/python -m pytest -q tests/pack/test_workflows.py -k own_prompt)

step "the server"
(cd "$COMFY" && exec "$PY" main.py --cpu --listen 127.0.0.1 --port "$PORT") > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$PORT/object_info/LoadVideo" > /dev/null && break; sleep 1; done
echo "server $SERVER up"

step "every workflow in the real editor (headless Chromium)"
git -C "$PACK" show 74bf8cf:workflows/generate_conversation.json > "$OUT/generate_conversation_before_fix.json"
"$COMFY_DIR/pwvenv/bin/python" "$PACK/scripts/comfyui_editor_check.py" --url "http://127.0.0.1:$PORT" \
    --out "$OUT" "$PACK"/workflows/*.json --control "$OUT/generate_conversation_before_fix.json"

step "every workflow through POST /prompt on the CPU, and an interrupted run"
HF_HUB_OFFLINE=1 "$PY" "$PACK/scripts/comfyui_run_workflows.py" --url "http://127.0.0.1:$PORT" --out "$OUT"

step "done: screenshots and reports in $OUT"
