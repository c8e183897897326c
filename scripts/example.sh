#!/usr/bin/env bash
# Set up (see setup.sh) and run the main job on the bundled example:
#   1. build a three-person conversation with real speech and exact ground truth in outputs/example/;
#   2. annotate it: shots, people, tracks and faces (YOLOX + YuNet; the DWPose pass needs dw-ll_ucoco_384.onnx in
#      the models directory, see README), then score the tracks against the ground truth and draw them;
#   3. a folder of conversations (synthetic ones of 2, 3 and 4 people, and the real interact_11.mp4) -> an
#      annotated dataset in the MIT layout (outputs/example/dataset), its report, and two training steps of a tiny
#      random CovOG on it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
OUT=outputs/example
$PY -m mit_annotator make-conversation --out "$OUT" --people 3 --seconds 12 --offscreen --overlap 0.2 --seed 7 "$@"

MODELS=${MIT_MODELS_DIR:-../shared/data/models}
DET=yolox_l POSE=dwpose
[ -f "$MODELS/yolox_l.onnx" ] || DET="$MODELS/yolox_nano.onnx"   # the small detector bundled for tests
[ -f "$MODELS/dw-ll_ucoco_384.onnx" ] || POSE=none
echo
echo "annotating $OUT/video.mp4 (detector: $DET, pose model: $POSE)"
$PY -m mit_annotator poses "$OUT/video.mp4" --out "$OUT/annotated_tracks.json" --models "$MODELS" \
  --det-model "$DET" --pose-model "$POSE" --faces yunet
$PY -m mit_annotator score-tracks "$OUT/annotated_tracks.json" "$OUT/tracks.json"
$PY -m mit_annotator render-poses "$OUT/video.mp4" "$OUT/annotated_tracks.json" --out "$OUT/annotated.mp4"

echo
echo "who speaks: diarizing the audio, then binding each voice to a person by their lips"
$PY -m mit_annotator diarize "$OUT/video.mp4" --out "$OUT/annotated_diarization.rttm" --max-speakers 5
$PY -m mit_annotator assign "$OUT/video.mp4" --poses "$OUT/annotated_tracks.json" \
  --diarization "$OUT/annotated_diarization.rttm" --out "$OUT/annotated_speaking.json" \
  --plot "$OUT/annotated_timeline.png"
$PY -m mit_annotator score-speaking "$OUT/annotated_speaking.json" "$OUT/speaking.json" \
  --tracks "$OUT/annotated_tracks.json" --truth-tracks "$OUT/tracks.json" \
  --diarization "$OUT/annotated_diarization.rttm" --truth-diarization "$OUT/diarization.rttm"

echo
echo "a folder of conversations -> a dataset in the MIT layout"
VIDEOS=$OUT/videos
rm -rf "$VIDEOS" && mkdir -p "$VIDEOS"
for spec in "2 21" "3 22" "4 23"; do
  set -- $spec
  $PY -m mit_annotator make-conversation --out "$OUT/talk$1" --people "$1" --seconds 10 --seed "$2" \
    --width 640 --height 360 > /dev/null
  ln -s "$(pwd)/$OUT/talk$1/video.mp4" "$VIDEOS/talk$1.mp4"
done
[ -f ../shared/data/video/interact_11.mp4 ] && ln -s "$(cd ../shared/data/video && pwd)/interact_11.mp4" "$VIDEOS/"
rm -rf "$OUT/dataset"
$PY -m mit_annotator annotate "$VIDEOS" --out "$OUT/dataset" --source example --models "$MODELS" \
  --det-model "$DET" --pose-model "$POSE"
$PY -m mit_annotator report "$OUT/dataset"

echo
echo "two training steps of a tiny random CovOG on the dataset (stage 1: single frames)"
rm -rf "$OUT/tiny_covog" "$OUT/covog_run"
$PY -c "from covog.models.model import CovOGModel; CovOGModel.random('tiny').save('$OUT/tiny_covog')"
HF_HUB_OFFLINE=1 $PY -m covog.train --stage 1 --data "$OUT/dataset" --model "$OUT/tiny_covog" --out "$OUT/covog_run" \
  --steps 2 --width 128 --height 64 --workers 0 --log-every 1
