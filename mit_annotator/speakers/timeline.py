"""A who-speaks-when picture: one row per person, speaking time shaded, the assigned voice named."""

from __future__ import annotations

import cv2
import numpy as np

from mit_annotator.core.records import SpeakingActivity

ROW = 28
LABEL = 230
COLOURS = ((40, 90, 200), (200, 60, 40), (40, 160, 80), (200, 150, 30), (140, 60, 170), (30, 150, 160))


def speaking_timeline(speaking: SpeakingActivity, width: int = 1000) -> np.ndarray:
    """RGB image: a row per person (and one listing the unassigned voices), shaded where the score is positive."""
    rows = len(speaking.people) + (1 if speaking.unassigned_voices else 0)
    image = np.full((ROW * rows + 30, width, 3), 250, dtype=np.uint8)
    scale = (width - LABEL - 10) / max(speaking.num_frames, 1)
    for r, person in enumerate(speaking.people):
        top = 5 + r * ROW
        label = f"person {person.track_id}: {person.voice or 'listener'}"
        cv2.putText(image, label[:34], (5, top + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        colour = COLOURS[r % len(COLOURS)]
        for start, end in person.speak:
            cv2.rectangle(image, (LABEL + int(start * scale), top + 4),
                          (LABEL + max(int(end * scale), int(start * scale) + 1), top + ROW - 4), colour, -1)
    if speaking.unassigned_voices:
        top = 5 + len(speaking.people) * ROW
        text = "voices on no one's lips (off screen, or unmatched): " + ", ".join(speaking.unassigned_voices)
        cv2.putText(image, text[:120], (5, top + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (90, 90, 90), 1, cv2.LINE_AA)
    seconds = speaking.num_frames / speaking.fps
    for second in range(0, int(seconds) + 1, max(1, int(seconds // 10) or 1)):
        x = LABEL + int(second * speaking.fps * scale)
        cv2.line(image, (x, image.shape[0] - 25), (x, image.shape[0] - 20), (0, 0, 0), 1)
        cv2.putText(image, f"{second}s", (x - 6, image.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return image
