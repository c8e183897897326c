"""Measure the int8 calibration of LR-ASD's released weights: the largest value of each ReLU output of the visual
encoder on real faces. The model registry (mit_annotator/core/models.py, `int8_maxima`) holds what this prints.

    python scripts/calibrate_lr_asd_int8.py [--shared ../shared/data]

The faces: the two people of video/interact_11.mp4, tracked by YuNet (213 frames each), and the still faces of
generator/anytalker_2p-0/2p-0.png and images/rtmlib_demo.jpg, each held for one second; all cropped as the scoring
crops them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mit_annotator.core import media  # noqa: E402
from mit_annotator.core.models import KNOWN_MODELS  # noqa: E402
from mit_annotator.speakers.active_speaker import calibrate_int8, crops_by_frame, load_lr_asd  # noqa: E402
from mit_annotator.speakers.asd_inputs import MIN_FACE, SCORE_FPS, crop_face, face_clips  # noqa: E402
from mit_annotator.speakers.who_speaks import track_faces  # noqa: E402
from mit_annotator.vision.faces import YuNetFaceDetector  # noqa: E402

WEIGHTS = ("lr_asd", "lr_asd_talkset")
STILL_PHOTOS = (("generator", "anytalker_2p-0", "2p-0.png"), ("images", "rtmlib_demo.jpg"))


def calibration_clips(shared: Path) -> list[np.ndarray]:
    """(T, 112, 112) uint8 face clips: the video's tracked faces and the photos' still faces."""
    detector = YuNetFaceDetector(shared / "models" / "face_detection_yunet.onnx")
    video = shared / "video" / "interact_11.mp4"
    tracks = track_faces(video, detector, fps=SCORE_FPS)
    clips = face_clips(tracks)
    for _ in crops_by_frame(media.iter_frames(video, fps=SCORE_FPS, end=tracks.num_frames), clips,
                             tracks.num_frames):
        pass
    faces = [np.stack(clip.faces) for clip in clips]
    for parts in STILL_PHOTOS:
        photo = cv2.cvtColor(cv2.imread(str(shared.joinpath(*parts))), cv2.COLOR_BGR2RGB)
        grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
        for face in detector(photo):
            x1, y1, x2, y2 = face.box
            size = max(x2 - x1, y2 - y1) / 2
            if 2 * size >= MIN_FACE:
                crop = crop_face(grey, np.array([(x1 + x2) / 2, (y1 + y2) / 2]), size)
                faces.append(np.repeat(crop[None], int(SCORE_FPS), axis=0))
    return faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    clips = calibration_clips(args.shared)
    print(f"{len(clips)} face clips, {sum(len(c) for c in clips)} frames")
    for name in WEIGHTS:
        path = args.shared / "models" / "lr_asd" / KNOWN_MODELS[name].filename
        maxima = calibrate_int8(load_lr_asd(path), clips)
        print(f"{name}: int8_maxima=({', '.join(f'{m:.4g}' for m in maxima)})")


if __name__ == "__main__":
    main()
