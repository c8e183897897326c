"""Camera motion: how far the background moves from frame to frame, outside the people.

A fixed grid of points is followed from each frame to the next with pyramidal Lucas-Kanade optical flow (OpenCV) on
a small greyscale copy of the frame; points on flat areas (no texture to follow) are marked lost. Once the people
are tracked, a frame's background motion is the median displacement of the points that lie outside every person's
box: a still camera gives about zero whatever the people do, a pan, a zoom or a shaking camera moves them all.
"""

from __future__ import annotations

import cv2
import numpy as np

from mit_annotator.core.records import VideoTracks

GRID = (16, 9)  # points across and down
FLOW_WIDTH = 320  # the flow runs on frames scaled to this width (never enlarged)
WINDOW = 15  # Lucas-Kanade window, pixels of the scaled frame
MIN_EIGEN = 1e-3  # points whose window has less texture than this are lost (OpenCV's minEigThreshold)
BOX_MARGIN = 0.1  # person boxes are widened by this share on each side before points inside them are left out
MIN_POINTS = 6  # fewer background points than this: the frame's motion is unknown (NaN)


class BackgroundFlow:
    """Feed RGB frames in order with `add`; `flows` holds, per frame, each grid point's displacement from the
    previous frame in source pixels ((num_frames, points, 2), NaN where lost and for frame 0)."""

    def __init__(self, grid: tuple[int, int] = GRID):
        self.grid_shape = grid
        self.points: np.ndarray | None = None  # (P, 2) grid in source pixels
        self._scaled: np.ndarray | None = None  # (P, 1, 2) grid in the scaled frame
        self._scale = 1.0
        self._previous: np.ndarray | None = None
        self._flows: list[np.ndarray] = []

    def add(self, frame: np.ndarray) -> None:
        height, width = frame.shape[:2]
        if self.points is None:
            self._scale = min(1.0, FLOW_WIDTH / width)
            xs = (np.arange(self.grid_shape[0]) + 0.5) / self.grid_shape[0] * width
            ys = (np.arange(self.grid_shape[1]) + 0.5) / self.grid_shape[1] * height
            self.points = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype(np.float32)
            self._scaled = (self.points * self._scale).reshape(-1, 1, 2)
        size = (max(1, round(width * self._scale)), max(1, round(height * self._scale)))
        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA) if self._scale < 1 else frame
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        flow = np.full((len(self.points), 2), np.nan, np.float32)
        if self._previous is not None and self._previous.shape == grey.shape:
            moved, status, _ = cv2.calcOpticalFlowPyrLK(self._previous, grey, self._scaled, None,
                                                        winSize=(WINDOW, WINDOW), maxLevel=2,
                                                        minEigThreshold=MIN_EIGEN)
            found = status.reshape(-1) == 1
            flow[found] = (moved.reshape(-1, 2)[found] - self._scaled.reshape(-1, 2)[found]) / self._scale
        self._previous = grey
        self._flows.append(flow)

    @property
    def flows(self) -> np.ndarray:
        points = 0 if self.points is None else len(self.points)
        return np.stack(self._flows) if self._flows else np.zeros((0, points, 2), np.float32)


def background_motion(flows: np.ndarray, points: np.ndarray, tracks: VideoTracks) -> np.ndarray:
    """(num_frames,) median displacement in source pixels per frame of the grid points outside every tracked
    person's box (widened by BOX_MARGIN); NaN where fewer than MIN_POINTS such points were followed."""
    motion = np.full(len(flows), np.nan, np.float32)
    for frame in range(len(flows)):
        keep = ~np.isnan(flows[frame, :, 0])
        for track, row in tracks.people_at(frame):
            x1, y1, x2, y2 = track.boxes[row]
            dx, dy = (x2 - x1) * BOX_MARGIN, (y2 - y1) * BOX_MARGIN
            inside = ((points[:, 0] >= x1 - dx) & (points[:, 0] <= x2 + dx) &
                      (points[:, 1] >= y1 - dy) & (points[:, 1] <= y2 + dy))
            keep &= ~inside
        if keep.sum() >= MIN_POINTS:
            motion[frame] = float(np.median(np.linalg.norm(flows[frame, keep], axis=1)))
    return motion
