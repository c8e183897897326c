"""Drawn people for synthetic conversations: a 133-keypoint pose per frame, and the figure painted from it.

Each person is a clothed figure built on a COCO-WholeBody skeleton: torso, arms and legs as thick strokes, a head
with hair, eyes, brows, nose and a mouth whose inner lips part by `mouth_open` (0..1). Motion is a sum of slow
sines with per-person phases (sway, breathing, head bobbing, hand gestures that grow while the person speaks), so a
pose is a pure function of the person, the time and the speaking state.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mit_annotator.core import keypoints as kp

# Face template: iBUG-68 points in head units (x by the head's half-width, y by its half-height, origin at the
# head's centre, y down), with the mouth closed.
_JAW_ANGLES = np.linspace(np.pi, 0.0, 17)
_FACE_TEMPLATE = np.concatenate([
    np.stack([0.93 * np.cos(_JAW_ANGLES), -0.1 + np.sin(_JAW_ANGLES)], axis=1),  # jaw 0-16
    np.stack([np.linspace(-0.75, -0.15, 5), [-0.40, -0.46, -0.48, -0.46, -0.42]], axis=1),  # brow 17-21
    np.stack([np.linspace(0.15, 0.75, 5), [-0.42, -0.46, -0.48, -0.46, -0.40]], axis=1),  # brow 22-26
    np.stack([np.zeros(4), np.linspace(-0.30, 0.12, 4)], axis=1),  # nose bridge 27-30
    np.stack([np.linspace(-0.18, 0.18, 5), [0.22, 0.25, 0.27, 0.25, 0.22]], axis=1),  # nostrils 31-35
    [[-0.54, -0.18], [-0.44, -0.23], [-0.32, -0.23], [-0.22, -0.18], [-0.32, -0.13], [-0.44, -0.13]],  # eye 36-41
    [[0.22, -0.18], [0.32, -0.23], [0.44, -0.23], [0.54, -0.18], [0.44, -0.13], [0.32, -0.13]],  # eye 42-47
    [[-0.32, 0.50], [-0.21, 0.45], [-0.09, 0.42], [0.0, 0.43], [0.09, 0.42], [0.21, 0.45],  # outer lips 48-53
     [0.32, 0.50], [0.21, 0.56], [0.09, 0.59], [0.0, 0.59], [-0.09, 0.59], [-0.21, 0.56]],  # 54-59
    [[-0.24, 0.50], [-0.10, 0.485], [0.0, 0.485], [0.10, 0.485],  # inner lips 60-63
     [0.24, 0.50], [0.10, 0.515], [0.0, 0.515], [-0.10, 0.515]],  # 64-67
]).astype(np.float64)
_INNER_LIP_BOTTOM = [65, 66, 67]
_OUTER_LIP_BOTTOM = [55, 56, 57, 58, 59]
MOUTH_GAP = 0.30  # widest inner-lip opening, in head half-heights


@dataclass(frozen=True)
class Figure:
    """Where one person stands and how they look."""

    centre_x: float
    shoulder_y: float
    unit: float  # shoulder half-width in pixels; every length is a multiple of it
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    phases: tuple[float, ...]  # motion phases
    rates: tuple[float, ...]  # motion frequencies in Hz

    @property
    def head_half_size(self) -> tuple[float, float]:
        return 0.55 * self.unit, 0.72 * self.unit


@dataclass
class PoseFrame:
    """One person's drawn state in one frame."""

    keypoints: np.ndarray  # (133, 2)
    head_centre: np.ndarray  # (2,)
    head_angle: float  # degrees
    mouth_open: float


SKINS = ((241, 194, 167), (224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 219, 172), (170, 110, 70))
HAIRS = ((40, 30, 20), (90, 60, 30), (20, 20, 20), (150, 110, 60), (110, 110, 115), (60, 35, 25))
SHIRTS = ((200, 40, 40), (40, 90, 200), (40, 160, 80), (230, 170, 30), (140, 60, 170), (30, 150, 160),
          (220, 100, 150), (90, 90, 90))
TROUSERS = ((40, 40, 60), (60, 50, 40), (30, 60, 90), (70, 70, 70))


FRAMINGS = ("body", "face")


def place_figures(num_people: int, width: int, height: int, rng: np.random.Generator,
                  framing: str = "body") -> list[Figure]:
    """Side by side, each in its own slot. `body`: heads in the upper part of the frame, legs running off the bottom;
    `face`: close-ups, each head filling most of the frame's height and its slot, shoulders at the bottom edge."""
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {FRAMINGS}, got {framing!r}")
    slot = width / num_people
    shirts = rng.permutation(len(SHIRTS))
    skins = rng.permutation(len(SKINS))
    figures = []
    for i in range(num_people):
        if framing == "body":
            unit = min(0.2 * slot, 0.13 * height) * rng.uniform(0.92, 1.05)
            shoulder_y = height * rng.uniform(0.07, 0.13) + 1.8 * unit
        else:  # the head (hair to chin about 1.65 units) fills the height; the shoulders 1.07 units below its centre
            unit = min(0.57 * slot, 0.57 * height) * rng.uniform(0.96, 1.04)
            shoulder_y = height * rng.uniform(0.48, 0.52) + 1.07 * unit
        figures.append(Figure(
            centre_x=slot * (i + 0.5) + rng.uniform(-0.05, 0.05) * slot,
            shoulder_y=shoulder_y,
            unit=unit,
            skin=SKINS[skins[i % len(SKINS)]],
            hair=HAIRS[int(rng.integers(len(HAIRS)))],
            shirt=SHIRTS[shirts[i % len(SHIRTS)]],
            trousers=TROUSERS[int(rng.integers(len(TROUSERS)))],
            phases=tuple(rng.uniform(0, 2 * np.pi, 12)),
            rates=tuple(rng.uniform(0.15, 0.6, 12)),
        ))
    return figures


def pose_at(figure: Figure, t: float, mouth_open: float, gesture: float) -> PoseFrame:
    """The figure's pose at time `t` s; `gesture` (0..1) is how animated the person is (more while speaking)."""
    u = figure.unit
    wave = [np.sin(2 * np.pi * r * t + p) for r, p in zip(figure.rates, figure.phases)]
    sway = 0.06 * u * wave[0]
    breathe = 0.025 * u * wave[1]
    centre_x = figure.centre_x + sway
    shoulder_y = figure.shoulder_y - breathe
    points = np.zeros((kp.NUM_KEYPOINTS, 2))

    points[kp.LEFT_SHOULDER] = (centre_x + u, shoulder_y + 0.03 * u * wave[2])
    points[kp.RIGHT_SHOULDER] = (centre_x - u, shoulder_y - 0.03 * u * wave[2])
    hip_y = figure.shoulder_y + 2.8 * u
    points[kp.LEFT_HIP] = (figure.centre_x + 0.68 * u, hip_y)
    points[kp.RIGHT_HIP] = (figure.centre_x - 0.68 * u, hip_y)
    points[kp.LEFT_KNEE] = (figure.centre_x + 0.75 * u, hip_y + 1.5 * u)
    points[kp.RIGHT_KNEE] = (figure.centre_x - 0.75 * u, hip_y + 1.5 * u)
    points[kp.LEFT_ANKLE] = (figure.centre_x + 0.8 * u, hip_y + 3.0 * u)
    points[kp.RIGHT_ANKLE] = (figure.centre_x - 0.8 * u, hip_y + 3.0 * u)
    for ankle, toes, side in ((kp.LEFT_ANKLE, (kp.LEFT_BIG_TOE, kp.LEFT_SMALL_TOE, kp.LEFT_HEEL), 1),
                              (kp.RIGHT_ANKLE, (kp.RIGHT_BIG_TOE, kp.RIGHT_SMALL_TOE, kp.RIGHT_HEEL), -1)):
        ax, ay = points[ankle]
        points[toes[0]] = (ax - side * 0.15 * u, ay + 0.35 * u)
        points[toes[1]] = (ax + side * 0.2 * u, ay + 0.3 * u)
        points[toes[2]] = (ax, ay + 0.15 * u)

    # Hands rest in front of the belly and rise into gestures while the person is animated.
    for side, (shoulder, elbow, wrist, root, k) in ((1, (kp.LEFT_SHOULDER, kp.LEFT_ELBOW, kp.LEFT_WRIST,
                                                         kp.LEFT_HAND_ROOT, 3)),
                                                    (-1, (kp.RIGHT_SHOULDER, kp.RIGHT_ELBOW, kp.RIGHT_WRIST,
                                                          kp.RIGHT_HAND_ROOT, 6))):
        lift = 0.15 + 0.85 * gesture * (0.5 + 0.5 * wave[k])
        rest = np.array([centre_x + side * 0.55 * u, shoulder_y + 2.2 * u])
        raised = np.array([centre_x + side * (1.3 + 0.3 * wave[k + 1]) * u, shoulder_y + (0.9 + 0.3 * wave[k + 2]) * u])
        points[wrist] = rest + lift * (raised - rest)
        points[elbow] = _elbow(points[shoulder], points[wrist], 1.35 * u, 1.2 * u, side)
        points[root:root + 21] = _hand(points[elbow], points[wrist], 0.7 * u, side, 0.5 + 0.5 * wave[k + 2])

    # Head: bobs and tilts a little, more while animated.
    half_w, half_h = figure.head_half_size
    head_centre = np.array([centre_x + 0.05 * u * wave[9] * (1 + gesture),
                            shoulder_y - 0.35 * u - half_h + 0.04 * u * wave[10] * (1 + 2 * gesture)])
    head_angle = 4.0 * wave[11] * (1 + gesture)
    points[kp.FACE] = face_points(figure, head_centre, head_angle, mouth_open)
    head_points = _head_to_image(np.array([[0.0, 0.2], [0.38, -0.18], [-0.38, -0.18], [1.0, -0.05], [-1.0, -0.05]]),
                                 head_centre, half_w, half_h, head_angle)
    points[[kp.NOSE, kp.LEFT_EYE, kp.RIGHT_EYE, kp.LEFT_EAR, kp.RIGHT_EAR]] = head_points
    return PoseFrame(points.astype(np.float32), head_centre, head_angle, float(np.clip(mouth_open, 0.0, 1.0)))


def face_points(figure: Figure, head_centre: np.ndarray, head_angle: float, mouth_open: float) -> np.ndarray:
    """The 68 face points of a head at `head_centre`, turned by `head_angle` degrees, its mouth open by
    `mouth_open` (0..1)."""
    half_w, half_h = figure.head_half_size
    face = _FACE_TEMPLATE.copy()
    gap = MOUTH_GAP * float(np.clip(mouth_open, 0.0, 1.0))
    face[_INNER_LIP_BOTTOM, 1] += gap
    face[_OUTER_LIP_BOTTOM, 1] += 0.85 * gap
    face[5:12, 1] += 0.4 * gap * np.sin(np.linspace(0.3, np.pi - 0.3, 7))  # the chin drops with the jaw
    return _head_to_image(face, head_centre, half_w, half_h, head_angle)


def _head_to_image(points: np.ndarray, centre: np.ndarray, half_w: float, half_h: float, angle: float) -> np.ndarray:
    scaled = points * (half_w, half_h)
    a = np.deg2rad(angle)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return scaled @ rotation.T + centre


def _elbow(shoulder: np.ndarray, wrist: np.ndarray, upper: float, fore: float, side: int) -> np.ndarray:
    """Two-link arm: the elbow that joins the bones, bent outwards."""
    reach = wrist - shoulder
    distance = float(np.clip(np.linalg.norm(reach), 1e-6, upper + fore - 1e-6))
    along = (upper ** 2 - fore ** 2 + distance ** 2) / (2 * distance)
    across = np.sqrt(max(upper ** 2 - along ** 2, 0.0))
    direction = reach / (np.linalg.norm(reach) + 1e-9)
    normal = np.array([-direction[1], direction[0]])
    if normal[0] * side < 0:
        normal = -normal
    return shoulder + direction * along + normal * across


def _hand(elbow: np.ndarray, wrist: np.ndarray, size: float, side: int, curl: float) -> np.ndarray:
    """21 hand points: the root at the wrist, then five fingers of four points fanning along the forearm."""
    forward = (wrist - elbow) / (np.linalg.norm(wrist - elbow) + 1e-9)
    across = np.array([-forward[1], forward[0]]) * side
    points = [wrist]
    for finger, (spread, length) in enumerate(((-0.55, 0.55), (-0.22, 0.8), (0.0, 0.85), (0.2, 0.8), (0.38, 0.65))):
        base = wrist + forward * size * (0.25 if finger == 0 else 0.45) + across * size * spread * 0.5
        direction = forward + across * spread * (0.6 + 0.4 * curl)
        direction /= np.linalg.norm(direction)
        bend = across * (0.15 * curl) * (-1 if finger == 0 else 1)
        for joint in range(1, 5):
            step = length * size * 0.17 * joint
            points.append(base + direction * step + bend * step * joint / 4)
    return np.asarray(points)


# ---------------------------------------------------------------------------------------------------------------------
# Painting


def background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A studio-like set: a wall with a soft gradient, a floor band and faint texture."""
    wall = np.array(rng.uniform(150, 225, 3))
    floor = wall * rng.uniform(0.45, 0.6)
    rows = np.linspace(0, 1, height)[:, None]
    image = np.where(rows[..., None] < 0.8, wall * (1.05 - 0.2 * rows[..., None]), floor[None, None])
    image = np.broadcast_to(image, (height, width, 3)).copy()
    image += rng.normal(0, 3, (height, width, 1))
    return np.clip(image, 0, 255).astype(np.uint8)


def draw_figure(canvas: np.ndarray, figure: Figure, pose: PoseFrame) -> None:
    """Paint one person onto `canvas` (RGB uint8, in place)."""
    points = pose.keypoints
    u = figure.unit
    p = {i: _pt(points[i]) for i in range(kp.NUM_KEYPOINTS)}
    limb = max(2, int(round(0.42 * u)))
    for hip, knee, ankle in ((kp.LEFT_HIP, kp.LEFT_KNEE, kp.LEFT_ANKLE), (kp.RIGHT_HIP, kp.RIGHT_KNEE, kp.RIGHT_ANKLE)):
        _stroke(canvas, [p[hip], p[knee], p[ankle]], figure.trousers, int(limb * 1.3))
    torso = np.array([p[kp.LEFT_SHOULDER], p[kp.RIGHT_SHOULDER], p[kp.RIGHT_HIP], p[kp.LEFT_HIP]], dtype=np.int32)
    cv2.fillConvexPoly(canvas, torso, figure.shirt, cv2.LINE_AA)
    _stroke(canvas, [p[kp.LEFT_SHOULDER], p[kp.RIGHT_SHOULDER]], figure.shirt, limb)
    neck_base = ((points[kp.LEFT_SHOULDER] + points[kp.RIGHT_SHOULDER]) / 2)
    _stroke(canvas, [_pt(neck_base), _pt(pose.head_centre)], figure.skin, int(limb * 1.2))
    for shoulder, elbow, wrist, root in ((kp.LEFT_SHOULDER, kp.LEFT_ELBOW, kp.LEFT_WRIST, kp.LEFT_HAND_ROOT),
                                         (kp.RIGHT_SHOULDER, kp.RIGHT_ELBOW, kp.RIGHT_WRIST, kp.RIGHT_HAND_ROOT)):
        _stroke(canvas, [p[shoulder], p[elbow], p[wrist]], _shade(figure.shirt, 0.85), limb)
        cv2.circle(canvas, p[root], max(2, int(0.2 * u)), figure.skin, -1, cv2.LINE_AA)
        for a, b in kp.hand_bones(root):
            cv2.line(canvas, p[a], p[b], figure.skin, max(1, int(0.07 * u)), cv2.LINE_AA)
    _draw_head(canvas, figure, pose)


def _draw_head(canvas: np.ndarray, figure: Figure, pose: PoseFrame) -> None:
    points = pose.keypoints
    half_w, half_h = figure.head_half_size
    centre, angle = _pt(pose.head_centre), pose.head_angle
    axes = (int(round(half_w)), int(round(half_h)))
    for ear in (kp.LEFT_EAR, kp.RIGHT_EAR):
        cv2.ellipse(canvas, _pt(points[ear]), (max(1, axes[0] // 5), max(1, axes[1] // 4)), angle, 0, 360,
                    _shade(figure.skin, 0.9), -1, cv2.LINE_AA)
    cv2.ellipse(canvas, centre, axes, angle, 0, 360, figure.skin, -1, cv2.LINE_AA)
    cv2.ellipse(canvas, centre, (axes[0] + 1, axes[1] + 1), angle, 190, 350, figure.hair, max(2, axes[1] // 3),
                cv2.LINE_AA)
    face = points[kp.FACE]
    thin = max(1, int(round(0.06 * half_w)))
    for brow in (face[17:22], face[22:27]):
        cv2.polylines(canvas, [_poly(brow)], False, figure.hair, max(1, 2 * thin), cv2.LINE_AA)
    for eye in (face[36:42], face[42:48]):
        cv2.fillPoly(canvas, [_poly(eye)], (250, 250, 250), cv2.LINE_AA)
        cv2.circle(canvas, _pt(eye.mean(axis=0)), max(1, int(0.07 * half_w)), (30, 25, 20), -1, cv2.LINE_AA)
    cv2.polylines(canvas, [_poly(face[27:31]), _poly(face[31:36])], False, _shade(figure.skin, 0.7), thin,
                  cv2.LINE_AA)
    lips = _shade(figure.skin, 0.65, (150, 40, 50))
    cv2.fillPoly(canvas, [_poly(face[48:60])], lips, cv2.LINE_AA)
    if pose.mouth_open > 0.02:
        cv2.fillPoly(canvas, [_poly(face[60:68])], MOUTH_INSIDE, cv2.LINE_AA)


MOUTH_INSIDE = (35, 8, 12)


def _stroke(canvas: np.ndarray, points: list, colour, thickness: int) -> None:
    for a, b in zip(points[:-1], points[1:]):
        cv2.line(canvas, a, b, colour, thickness, cv2.LINE_AA)
    for point in points:
        cv2.circle(canvas, point, thickness // 2, colour, -1, cv2.LINE_AA)


def _pt(xy) -> tuple[int, int]:
    return int(round(float(xy[0]))), int(round(float(xy[1])))


def _poly(points: np.ndarray) -> np.ndarray:
    return np.round(points).astype(np.int32).reshape(-1, 1, 2)


def _shade(colour, factor: float, tint=None) -> tuple[int, int, int]:
    base = np.asarray(colour, dtype=np.float64) * factor
    if tint is not None:
        base = 0.5 * base + 0.5 * np.asarray(tint)
    return tuple(int(v) for v in np.clip(base, 0, 255))


def drawn_extent(figure: Figure, pose: PoseFrame) -> np.ndarray:
    """The box (x1, y1, x2, y2) around what `draw_figure` paints, before clipping to the frame."""
    half_w, half_h = figure.head_half_size
    pad = 0.3 * figure.unit
    points = np.concatenate([pose.keypoints, [pose.head_centre - (half_w, half_h), pose.head_centre + (half_w, half_h)]])
    return np.concatenate([points.min(axis=0) - pad, points.max(axis=0) + pad]).astype(np.float32)


def head_box(figure: Figure, pose: PoseFrame) -> np.ndarray:
    """The box around the painted head (hair included), the face box of the ground truth."""
    half_w, half_h = figure.head_half_size
    a = np.deg2rad(pose.head_angle)
    extent = np.array([np.hypot(half_w * np.cos(a), half_h * np.sin(a)),
                       np.hypot(half_w * np.sin(a), half_h * np.cos(a))]) + 1
    return np.concatenate([pose.head_centre - extent, pose.head_centre + extent]).astype(np.float32)
