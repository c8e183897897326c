"""Faces per tracked person: from the face keypoints by the paper's rule, or from a face detector matched to the
tracks. YuNet (OpenCV, light, 5 landmarks with the mouth corners) is the default detector; insightface's SCRFD is
the alternative when insightface is installed, and its ArcFace model gives each face an identity embedding."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from mit_annotator.core.keypoints import face_box_from_keypoints
from mit_annotator.core.models import resolve_model
from mit_annotator.core.onnx_session import open_session
from mit_annotator.core.records import PersonTrack
from mit_annotator.vision.tracking import box_iou

# YuNet's landmarks, in its order (image left/right for a person facing the camera)
LANDMARKS = ("right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left")


@dataclass(eq=False)
class Face:
    box: np.ndarray  # (4,) x1 y1 x2 y2
    landmarks: np.ndarray  # (5, 2), see LANDMARKS
    score: float
    embedding: np.ndarray | None = None  # identity (unit length), from FaceIdentity


def self_contained_onnx(path: str | os.PathLike) -> bytes:
    """The bytes of an ONNX model that holds all its weights. OpenCV follows a model's external-data references
    anywhere (`../`, links), so a model that has any is refused before OpenCV sees it."""
    import onnx

    data = Path(path).read_bytes()
    try:
        model = onnx.load_model_from_string(data)
    except Exception as error:  # noqa: BLE001 -- protobuf's DecodeError and others: not an ONNX file
        raise ValueError(f"{path}: not an ONNX model ({type(error).__name__})") from None
    external = [t.name for t in _onnx_tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise ValueError(f"{path}: its weights ({external[0]}, ...) are in external files; a face model must be one "
                         "self-contained .onnx file")
    return data


def _onnx_tensors(graph) -> Iterator:
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for subgraph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _onnx_tensors(subgraph)


class YuNetFaceDetector:
    def __init__(self, model: str | os.PathLike = "yunet", score_threshold: float = 0.6,
                 nms_threshold: float = 0.3, models_dir: str | os.PathLike | None = None):
        path = resolve_model(model, models_dir)
        quiet = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # OpenCV warns about its DNN targets
        model_bytes = np.frombuffer(self_contained_onnx(path), np.uint8)
        try:  # from memory: OpenCV then has no folder to read external data from
            self.detector = cv2.FaceDetectorYN.create("onnx", model_bytes, np.empty(0, np.uint8), (320, 320),
                                                      score_threshold, nms_threshold)
        except cv2.error as error:
            raise ValueError(f"{path}: not a YuNet face model OpenCV can load ({error.err})") from None
        finally:
            cv2.utils.logging.setLogLevel(quiet)
        self.size = (320, 320)

    def __call__(self, frame: np.ndarray) -> list[Face]:
        """Faces in an RGB frame, best first."""
        size = (frame.shape[1], frame.shape[0])
        if size != self.size:
            self.detector.setInputSize(size)
            self.size = size
        _, found = self.detector.detect(np.ascontiguousarray(frame[..., ::-1]))
        faces = []
        for row in (found if found is not None else []):
            x, y, w, h = row[:4]
            faces.append(Face(np.array([x, y, x + w, y + h], np.float32),
                              row[4:14].reshape(5, 2).astype(np.float32), float(row[14])))
        return sorted(faces, key=lambda f: -f.score)


class ScrfdFaceDetector:
    """insightface's SCRFD detector (e.g. det_10g.onnx of its buffalo_l pack): faces with 5 landmarks."""

    def __init__(self, model: str | os.PathLike = "scrfd", score_threshold: float = 0.5, input_size: int = 640,
                 device: str = "auto", models_dir: str | os.PathLike | None = None):
        SCRFD = _insightface("scrfd", "SCRFD")
        path = resolve_model(model, models_dir)
        self.model = SCRFD(model_file=str(path), session=open_session(path, device))
        self.model.prepare(ctx_id=0, input_size=(input_size, input_size), det_thresh=score_threshold)

    def __call__(self, frame: np.ndarray) -> list[Face]:
        """Faces in an RGB frame, best first."""
        boxes, landmarks = self.model.detect(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        faces = [Face(box[:4].astype(np.float32), points.astype(np.float32), float(box[4]))
                 for box, points in zip(boxes, landmarks if landmarks is not None else [None] * len(boxes))
                 if points is not None]
        return sorted(faces, key=lambda f: -f.score)


class FaceIdentity:
    """insightface's ArcFace recogniser (e.g. w600k_r50.onnx): a unit-length identity embedding per face, aligned
    by its 5 landmarks. Two faces of one person have a high cosine similarity (about 0.4 and above)."""

    def __init__(self, model: str | os.PathLike = "arcface", device: str = "auto",
                 models_dir: str | os.PathLike | None = None):
        ArcFaceONNX = _insightface("arcface_onnx", "ArcFaceONNX")
        from insightface.utils import face_align

        path = resolve_model(model, models_dir)
        self.model = ArcFaceONNX(model_file=str(path), session=open_session(path, device))
        self.align = face_align.norm_crop

    def embed(self, frame: np.ndarray, face: Face) -> np.ndarray:
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        crop = self.align(bgr, landmark=face.landmarks, image_size=self.model.input_size[0])
        vector = self.model.get_feat(crop).reshape(-1).astype(np.float32)
        return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _insightface(module: str, name: str):
    try:
        return getattr(__import__(f"insightface.model_zoo.{module}", fromlist=[name]), name)
    except ImportError as error:
        raise RuntimeError(f"this face model needs insightface ({error}): pip install \"mit-covog[faces]\" "
                           "&& pip install --no-deps insightface") from None


def face_boxes_from_keypoints(track: PersonTrack) -> np.ndarray:
    """(N, 4) face boxes by the paper's rule (jaw, chin, nose; x1.4 wide, x1.6 high); NaN rows where unseen."""
    if track.keypoints is None:
        return np.full((len(track), 4), np.nan, np.float32)
    return np.stack([face_box_from_keypoints(k, s) for k, s in zip(track.keypoints, track.keypoint_scores)])


def match_faces(person_boxes: np.ndarray, face_hints: np.ndarray, faces: list[Face],
                min_score: float = 0.3) -> list[Face | None]:
    """For each person in one frame, the detected face that belongs to them (or None).

    A face belongs to a person when it lies inside the upper part of their box; where a keypoint face box is
    known (`face_hints`, NaN rows otherwise), overlap with it counts most.
    """
    if len(person_boxes) == 0 or not faces:
        return [None] * len(person_boxes)
    score = np.zeros((len(person_boxes), len(faces)))
    for i, (person, hint) in enumerate(zip(person_boxes, face_hints)):
        upper = person.copy()
        upper[3] = person[1] + 0.5 * (person[3] - person[1])
        for j, face in enumerate(faces):
            inside = _share_inside(face.box, upper)
            score[i, j] = inside if np.isnan(hint).any() else 0.3 * inside + 0.7 * box_iou(face.box, hint)
    rows, cols = linear_sum_assignment(-score)
    matched: list[Face | None] = [None] * len(person_boxes)
    for r, c in zip(rows, cols):
        if score[r, c] >= min_score:
            matched[r] = faces[c]
    return matched


def _share_inside(box: np.ndarray, region: np.ndarray) -> float:
    width = max(0.0, min(box[2], region[2]) - max(box[0], region[0]))
    height = max(0.0, min(box[3], region[3]) - max(box[1], region[1]))
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-6)
    return float(width * height / area)


class FacesAtScale:
    """A face detector run on frames scaled down so that the smallest face a clip may have (the selection's minimum,
    at the frame's scale) is about FACE_PIXELS wide: large frames cost a fraction, and no face that matters is lost.
    Boxes and landmarks come back in source pixels.

    `in_regions` looks only inside given parts of the frame (people's heads): a region around a face already seen is
    searched at the scale that makes that face KNOWN_FACE_PIXELS wide (a large face costs no more than a small one),
    any other at the whole frame's scale.
    """

    FACE_PIXELS = 24.0  # YuNet and SCRFD find faces down to about 10-16 px
    KNOWN_FACE_PIXELS = 40.0  # a face seen in the frame before is looked for at this width: its landmarks stay sharp
    MIN_REGION = 32  # px at the detection scale: YuNet's coarsest anchors need some context around a face
    MOST_OF_A_FRAME = 0.6  # regions costing more than this share of a whole-frame search: one whole-frame search

    def __init__(self, detector, min_face_px_1080p: float):
        self.detector, self.min_face = detector, min_face_px_1080p

    def scale(self, frame_height: int) -> float:
        return min(1.0, self.FACE_PIXELS / max(self.min_face * frame_height / 1080.0, 1e-6))

    def __call__(self, frame: np.ndarray) -> list[Face]:
        return self._detect(frame, self.scale(frame.shape[0]), np.zeros(2, np.float32))

    def in_regions(self, frame: np.ndarray, regions: np.ndarray, face_widths: np.ndarray | None = None) -> list[Face]:
        """Faces inside `regions` ((R, 4) x1 y1 x2 y2, source pixels; `face_widths` (R,): the width of the face
        expected in each, NaN where unknown), best first; one face seen from two overlapping regions is kept once."""
        regions = np.asarray(regions, np.float32).reshape(-1, 4)
        widths = np.full(len(regions), np.nan) if face_widths is None else np.asarray(face_widths, np.float64)
        whole = self.scale(frame.shape[0])
        scales = np.where(np.isnan(widths), whole, np.minimum(whole, self.KNOWN_FACE_PIXELS / np.maximum(widths, 1.0)))
        crops = [(crop, scale) for region, scale in zip(regions, scales)
                 if (crop := self._crop(frame.shape[:2], region, self.MIN_REGION / scale)) is not None]
        cost = sum((r - le) * (b - t) * scale ** 2 for (le, t, r, b), scale in crops)
        if cost > self.MOST_OF_A_FRAME * frame.shape[0] * frame.shape[1] * whole ** 2:
            return self(frame)  # the heads fill the frame: one search costs less than several
        faces: list[Face] = []
        for (left, top, right, bottom), scale in crops:
            faces += self._detect(frame[top:bottom, left:right], scale, np.array([left, top], np.float32))
        return _distinct(sorted(faces, key=lambda f: -f.score))

    @staticmethod
    def _crop(frame_hw: tuple[int, int], region: np.ndarray, least: float) -> tuple[int, int, int, int] | None:
        """The region as whole pixels inside the frame, at least `least` source pixels a side (None: nothing left)."""
        height, width = frame_hw
        x1, y1, x2, y2 = region
        grow_x, grow_y = max(0.0, least - (x2 - x1)) / 2, max(0.0, least - (y2 - y1)) / 2
        left, top = int(max(0, np.floor(x1 - grow_x))), int(max(0, np.floor(y1 - grow_y)))
        right, bottom = int(min(width, np.ceil(x2 + grow_x))), int(min(height, np.ceil(y2 + grow_y)))
        return (left, top, right, bottom) if right - left >= 2 and bottom - top >= 2 else None

    def _detect(self, image: np.ndarray, scale: float, offset: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        if scale > 0.9:
            small, factor = image, np.ones(2, np.float32)
        else:
            small = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                               interpolation=cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR)
            factor = np.array([width / small.shape[1], height / small.shape[0]], np.float32)
        faces = self.detector(np.ascontiguousarray(small))
        for face in faces:
            face.box = face.box * np.tile(factor, 2) + np.tile(offset, 2)
            face.landmarks = face.landmarks * factor + offset
        return faces


def head_regions(person_boxes: np.ndarray, previous_faces: list[Face]) -> tuple[np.ndarray, np.ndarray]:
    """Where the faces of a frame can be, (R, 4) in source pixels, and the width of the face expected in each (R,),
    NaN where unknown:
    - around each face of the frame before, three times its size (a head moves little in 40 ms, and the detector
      needs the face's surroundings to find it);
    - for each person none of those faces belongs to, the person box's upper three quarters (`match_faces` gives a
      person a face in the box's upper half; a close-up's face reaches below the half, and a face cut by the
      region's edge would be found cut)."""
    regions, widths = [], []
    for face in previous_faces:
        centre, size = (face.box[:2] + face.box[2:]) / 2, face.box[2:] - face.box[:2]
        regions.append(np.concatenate([centre - 1.5 * size, centre + 1.5 * size]))
        widths.append(float(size[0]))
    for person in np.asarray(person_boxes, np.float32).reshape(-1, 4):
        margin = 0.1 * (person[2] - person[0])  # a face at the box's edge, or above its top
        region = person + np.array([-margin, -margin, margin, 0], np.float32)
        region[3] = person[1] + 0.75 * (person[3] - person[1])
        if not any(_share_inside(face.box, region) > 0.5 for face in previous_faces):
            regions.append(region)
            widths.append(np.nan)
    return np.array(regions, np.float32).reshape(-1, 4), np.array(widths, np.float64)


def _distinct(faces: list[Face], overlap: float = 0.5) -> list[Face]:
    kept: list[Face] = []
    for face in faces:
        if all(box_iou(face.box, other.box) < overlap for other in kept):
            kept.append(face)
    return kept
