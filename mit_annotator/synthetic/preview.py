"""A picture of a conversation: a few frames with the ground truth drawn on, over a who-speaks-when timeline."""

from __future__ import annotations

import cv2
import numpy as np

from mit_annotator.synthetic.conversation import Conversation

TILE_WIDTH = 320
ROW_HEIGHT = 22
SPEAKING = (40, 200, 60)
SILENT = (150, 150, 150)


def contact_sheet(conversation: Conversation, columns: int = 3) -> np.ndarray:
    """RGB uint8 image: `columns` frames taken mid-turn, each person's face box green while speaking."""
    spec = conversation.spec
    turns = conversation.diarization.turns
    picks = [min(spec.num_frames - 1, int((t.start + t.end) / 2 * spec.fps)) for t in turns[:columns]]
    picks += [int(spec.num_frames * (k + 1) / (columns + 1)) for k in range(columns - len(picks))]
    tile_height = int(round(TILE_WIDTH * spec.height / spec.width))
    tiles = []
    for frame in picks:
        image = conversation.render_frame(frame)
        for track, row in conversation.tracks.people_at(frame):
            speaking = conversation.speaking.person(track.track_id).scores[frame] > 0
            x1, y1, x2, y2 = (int(v) for v in track.face_boxes[row])
            cv2.rectangle(image, (x1, y1), (x2, y2), SPEAKING if speaking else SILENT, max(1, spec.width // 320))
        tile = cv2.resize(image, (TILE_WIDTH, tile_height), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, f"{frame / spec.fps:.1f} s", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        tiles += [tile, np.full((tile_height, 4, 3), 250, dtype=np.uint8)]
    sheet = np.concatenate(tiles[:-1], axis=1)
    return np.concatenate([sheet, _timeline(conversation, sheet.shape[1], [p / spec.fps for p in picks])], axis=0)


def _timeline(conversation: Conversation, width: int, marks: list[float]) -> np.ndarray:
    rows = [(f"person {k}: {v}", v, f.shirt) for k, (v, f) in enumerate(zip(conversation.voices,
                                                                                conversation.figures))]
    rows += [(f"off-screen: {v}", v, (90, 90, 90)) for v in conversation.offscreen_voices]
    seconds = conversation.spec.num_frames / conversation.spec.fps
    strip = np.full((ROW_HEIGHT * len(rows) + 6, width, 3), 250, dtype=np.uint8)
    label_width = 150
    scale = (width - label_width - 6) / seconds
    for r, (label, voice, colour) in enumerate(rows):
        top = 3 + r * ROW_HEIGHT
        cv2.putText(strip, label, (4, top + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        for turn in conversation.diarization.turns:
            if turn.speaker == voice:
                x1 = label_width + int(turn.start * scale)
                x2 = label_width + max(int(turn.end * scale), int(turn.start * scale) + 1)
                cv2.rectangle(strip, (x1, top + 3), (x2, top + ROW_HEIGHT - 3), colour, -1)
    for t in marks:
        x = label_width + int(t * scale)
        cv2.line(strip, (x, 0), (x, strip.shape[0] - 1), (0, 0, 0), 1)
    return strip
