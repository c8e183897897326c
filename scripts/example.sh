#!/usr/bin/env bash
# Set up (see setup.sh) and run the main job on the bundled example: build a three-person conversation with real
# speech and exact ground truth in outputs/example/, and show what it contains.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m mit_annotator make-conversation --out outputs/example --people 3 --seconds 12 --offscreen \
  --overlap 0.2 --seed 7 "$@"
