"""Drawing tracked people on frames: skeletons, hands, face points, face boxes and ids."""

from __future__ import annotations

import cv2
import numpy as np

from mit_annotator.core import keypoints as kp
from mit_annotator.core.records import VideoTracks

SEEN = 0.3


def id_colour(track_id: int) -> tuple[int, int, int]:
    hue = (track_id * 47) % 180
    rgb = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2RGB)[0, 0]
    return tuple(int(v) for v in rgb)


def draw_people(frame: np.ndarray, tracks: VideoTracks, index: int) -> np.ndarray:
    """A copy of RGB `frame` with everyone tracked in frame `index` drawn on it."""
    canvas = frame.copy()
    thickness = max(1, round(min(frame.shape[:2]) / 300))
    for track, row in tracks.people_at(index):
        colour = id_colour(track.track_id)
        x1, y1, x2, y2 = (int(v) for v in track.boxes[row])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        cv2.putText(canvas, f"#{track.track_id}", (x1 + 3, max(y1 - 5, 12)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thickness + 0.2, colour, thickness, cv2.LINE_AA)
        if track.keypoints is not None:
            points, scores = track.keypoints[row], track.keypoint_scores[row]
            for a, b in kp.BODY_LIMBS + kp.HAND_BONES:
                if scores[a] >= SEEN and scores[b] >= SEEN:
                    cv2.line(canvas, _pt(points[a]), _pt(points[b]), colour, thickness, cv2.LINE_AA)
            for i in range(kp.FACE.start, kp.FACE.stop):
                if scores[i] >= SEEN:
                    cv2.circle(canvas, _pt(points[i]), max(1, thickness - 1), (255, 255, 255), -1)
        if track.face_boxes is not None and not np.isnan(track.face_boxes[row]).any():
            fx1, fy1, fx2, fy2 = (int(v) for v in track.face_boxes[row])
            cv2.rectangle(canvas, (fx1, fy1), (fx2, fy2), (255, 255, 255), 1)
    return canvas


def _pt(xy) -> tuple[int, int]:
    return int(round(float(xy[0]))), int(round(float(xy[1])))
