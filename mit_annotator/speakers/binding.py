"""Speaker binding: who is speaker 1, 2, ..., their masks and their voices, for the multi-speaker talking-video
models creators run (ComfyUI core's WanInfiniteTalkToVideo: `mask_1`, `mask_2` + one audio encoding per speaker;
WanVideoWrapper's MultiTalk: `audio_1..4` + `ref_target_masks`), made from the annotator's tracks and its
who-speaks assignment instead of masks painted by hand and stems cut in an audio editor.

- `speaker_order`: the people in slot order. By default the order of the assignment in time (the first to speak is
  speaker 1; people who never speak come last), not their place on screen.
- `speaker_masks`: per person, a mask of their face, head or body region, per frame or over one (reference) frame,
  grown and feathered in pixels.
- `split_voices`: per person, the mixed recording gated to that person's speaking segments (short fades at the
  edges, silence elsewhere), same length, rate and channels as the mix.
- Pictures that show who is who: `masks_preview` (the masks over the reference frame, numbered by slot),
  `speaking_timeline_with_faces` (a row per person with their face), `diarization_timeline` (a row per voice).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mit_annotator.core.records import Diarization, PersonTrack, SpeakingActivity, VideoTracks

ORDERS = ("first_to_speak", "track_id", "left_to_right")
REGIONS = ("face", "head", "body")
FADE_SECONDS = 0.02  # each edge of a speaking segment ramps over 20 ms: no click, nothing audible lost
HEAD_SCALE = (1.5, 1.6)  # the face box (jaw, chin, nose: the paper's rule) widened and heightened to the head ...
HEAD_RISE = 0.25  # ... and moved up by this share of the face height: hair and forehead
SLOT_COLOURS = ((230, 60, 60), (60, 120, 230), (60, 190, 90), (230, 170, 40), (170, 80, 200), (40, 180, 190))


class BindingError(ValueError):
    """Input that cannot be bound (a person the tracks do not hold, a region no track has), said plainly."""


# ---------------------------------------------------------------------------------------------------------------------
# Who is speaker 1, 2, ...


def speaker_order(speaking: SpeakingActivity, tracks: VideoTracks | None = None,
                  order: str = "first_to_speak") -> list[int]:
    """Track ids of `speaking`'s people in slot order: `first_to_speak` (the assignment's order in time: by the
    first frame of each person's first speak segment; people who never speak after them, by id), `track_id`, or
    `left_to_right` (by the middle of each person's box over the video; needs `tracks`)."""
    if order not in ORDERS:
        raise BindingError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    ids = [p.track_id for p in speaking.people]
    if tracks is not None:
        _check_people(ids, tracks)
    if order == "track_id":
        return sorted(ids)
    if order == "left_to_right":
        if tracks is None:
            raise BindingError("left_to_right order needs the tracks")
        return sorted(ids, key=lambda t: (float(np.mean(tracks.track(t).boxes[:, 0::2])), t))
    first = {p.track_id: (p.speak[0][0] if p.speak else np.inf) for p in speaking.people}
    return sorted(ids, key=lambda t: (first[t], t))


def _check_people(ids: Sequence[int], tracks: VideoTracks) -> None:
    known = [t.track_id for t in tracks.tracks]
    missing = [t for t in ids if t not in known]
    if missing:
        raise BindingError(f"the assignment names person {', '.join(map(str, missing))}, whom the tracks do not hold "
                           f"(their people: {known or 'none'}); give the tracks the assignment was made from")


# ---------------------------------------------------------------------------------------------------------------------
# Masks


def region_boxes(track: PersonTrack, region: str) -> np.ndarray:
    """(N, 4) boxes of `region` for each of the track's rows; NaN rows where it is unknown."""
    if region not in REGIONS:
        raise BindingError(f"region must be one of {', '.join(REGIONS)}, got {region!r}")
    if region == "body":
        return track.boxes.astype(np.float32)
    faces = track.face_boxes if track.face_boxes is not None else np.full((len(track), 4), np.nan, np.float32)
    if region == "face":
        return faces.astype(np.float32)
    centre_x, centre_y = (faces[:, 0] + faces[:, 2]) / 2, (faces[:, 1] + faces[:, 3]) / 2
    half_w = (faces[:, 2] - faces[:, 0]) / 2 * HEAD_SCALE[0]
    half_h = (faces[:, 3] - faces[:, 1]) / 2 * HEAD_SCALE[1]
    centre_y = centre_y - HEAD_RISE * (faces[:, 3] - faces[:, 1])
    return np.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], 1).astype(np.float32)


def boxes_by_frame(track: PersonTrack, region: str, num_frames: int) -> np.ndarray:
    """(num_frames, 4) region boxes: where the track knows the region, that box; between two frames where it does,
    the box interpolated; before the first and after the last, NaN (the person is not there)."""
    boxes = region_boxes(track, region)
    known = ~np.isnan(boxes).any(axis=1)
    out = np.full((num_frames, 4), np.nan, np.float32)
    if not known.any():
        return out
    frames = track.frames[known]
    span = np.arange(frames[0], frames[-1] + 1)
    for k in range(4):
        out[span, k] = np.interp(span, frames, boxes[known, k])
    return out


def speaker_masks(tracks: VideoTracks, track_ids: Sequence[int], region: str = "face",
                  frames: Sequence[int] | None = None, grow: int = 0, feather: int = 0) -> np.ndarray:
    """(people, frames, height, width) float32 masks in 0..1 at the tracks' frame size, in `track_ids`' order: each
    person's `region` box in each of `frames` (default: every frame), grown by `grow` pixels on every side and
    feathered over `feather` pixels (a blur that keeps the grown box at 1 inside and reaches 0 `feather` pixels
    outside it). A frame where the person is not there has an empty mask."""
    _check_people(track_ids, tracks)
    if grow < 0 or feather < 0:
        raise BindingError(f"grow and feather are pixels, at least 0; got {grow} and {feather}")
    frames = list(range(tracks.num_frames)) if frames is None else [int(f) for f in frames]
    out = np.zeros((len(track_ids), len(frames), tracks.height, tracks.width), np.float32)
    for p, track_id in enumerate(track_ids):
        track = tracks.track(track_id)
        boxes = boxes_by_frame(track, region, tracks.num_frames)
        if np.isnan(boxes).all():
            raise BindingError(_no_region(track_id, region))
        for t, frame in enumerate(frames):
            if not 0 <= frame < tracks.num_frames:
                raise BindingError(f"frame {frame} is outside the tracks' {tracks.num_frames} frames")
            if not np.isnan(boxes[frame]).any():
                out[p, t] = _box_mask(boxes[frame], tracks.width, tracks.height, grow, feather)
    return out


def nearest_seen_frame(tracks: VideoTracks, track_id: int, frame: int, region: str = "face") -> int:
    """The frame closest to `frame` in which the person's `region` is known."""
    boxes = boxes_by_frame(tracks.track(track_id), region, tracks.num_frames)
    seen = np.flatnonzero(~np.isnan(boxes).any(axis=1))
    if len(seen) == 0:
        raise BindingError(_no_region(track_id, region))
    return int(seen[np.argmin(np.abs(seen - frame))])


def _no_region(track_id: int, region: str) -> str:
    return (f"person {track_id} has no {region} box in any frame"
            + (": detect their faces (Detect Faces), or use the body region" if region != "body" else ""))


def _box_mask(box: np.ndarray, width: int, height: int, grow: int, feather: int) -> np.ndarray:
    x1, y1, x2, y2 = box
    x1, y1, x2, y2 = x1 - grow, y1 - grow, x2 + grow, y2 + grow
    mask = np.zeros((height, width), np.float32)
    left, top = int(np.clip(np.floor(x1), 0, width)), int(np.clip(np.floor(y1), 0, height))
    right, bottom = int(np.clip(np.ceil(x2), 0, width)), int(np.clip(np.ceil(y2), 0, height))
    if right <= left or bottom <= top:
        return mask
    if not feather:
        mask[top:bottom, left:right] = 1.0
        return mask
    # distance outside the box, in pixels: 1 inside, falling linearly to 0 `feather` pixels away
    ys, xs = np.arange(height, dtype=np.float32)[:, None], np.arange(width, dtype=np.float32)[None]
    dx = np.maximum(np.maximum(x1 - xs - 0.5, xs + 0.5 - x2), 0)
    dy = np.maximum(np.maximum(y1 - ys - 0.5, ys + 0.5 - y2), 0)
    return np.clip(1.0 - np.hypot(dx, dy) / feather, 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------------
# Voices


def speaking_gate(speaking: SpeakingActivity, track_id: int, num_samples: int, sample_rate: int,
                  fade: float = FADE_SECONDS) -> np.ndarray:
    """(num_samples,) float32 in 0..1: 1 while the person speaks (their speak segments, frames at the speaking
    activity's rate), 0 elsewhere, ramping linearly over `fade` seconds inside each segment's edges."""
    gate = np.zeros(num_samples, np.float32)
    ramp = max(int(round(fade * sample_rate)), 0)
    for start, end in speaking.person(track_id).speak:
        a = int(round(start / speaking.fps * sample_rate))
        b = min(int(round(end / speaking.fps * sample_rate)), num_samples)
        if b <= a:
            continue
        gate[a:b] = 1.0
        edge = min(ramp, (b - a) // 2)
        if edge:
            gate[a:a + edge] = np.linspace(0, 1, edge + 2, dtype=np.float32)[1:-1]
            gate[b - edge:b] = np.linspace(1, 0, edge + 2, dtype=np.float32)[1:-1]
    return gate


def split_voices(samples: np.ndarray, sample_rate: int, speaking: SpeakingActivity, track_ids: Sequence[int],
                 fade: float = FADE_SECONDS) -> list[np.ndarray]:
    """One track per person in `track_ids`' order: `samples` ((channels, T) or (T,), the mixed recording, starting
    where the speaking activity's frame 0 starts) gated to that person's speak segments, silent elsewhere, with the
    shape, rate and channels of the mix."""
    samples = np.asarray(samples, np.float32)
    known = [p.track_id for p in speaking.people]
    missing = [t for t in track_ids if t not in known]
    if missing:
        raise BindingError(f"the assignment has no person {', '.join(map(str, missing))} (its people: {known})")
    return [samples * speaking_gate(speaking, t, samples.shape[-1], sample_rate, fade) for t in track_ids]


# ---------------------------------------------------------------------------------------------------------------------
# Pictures of who is who


def slot_colour(slot: int) -> tuple[int, int, int]:
    return SLOT_COLOURS[slot % len(SLOT_COLOURS)]


def masks_preview(frame: np.ndarray, masks: np.ndarray, labels: Sequence[str] | None = None) -> np.ndarray:
    """The frame (H, W, 3 uint8) with each (H, W) mask of `masks` tinted in its slot's colour and numbered."""
    out = frame.astype(np.float32)
    for slot, mask in enumerate(masks):
        colour = np.array(slot_colour(slot), np.float32)
        alpha = 0.55 * mask[..., None]
        out = out * (1 - alpha) + colour * alpha
    out = out.clip(0, 255).astype(np.uint8)
    for slot, mask in enumerate(masks):
        ys, xs = np.nonzero(mask > 0.5)
        if len(xs) == 0:
            continue
        text = labels[slot] if labels else str(slot + 1)
        x, y = int(xs.min()) + 3, max(int(ys.min()) + 18, 16)
        cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def face_thumbnail(frame: np.ndarray, box: np.ndarray, size: int = 64) -> np.ndarray:
    """A square (size, size, 3) crop around `box` (x1 y1 x2 y2), grey where it leaves the frame."""
    x1, y1, x2, y2 = (float(v) for v in box)
    half = max(x2 - x1, y2 - y1) * 0.6 + 1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = int(round(2 * half))
    crop = np.full((side, side, 3), 128, np.uint8)
    left, top = int(round(cx - half)), int(round(cy - half))
    a, b = max(top, 0), min(top + side, frame.shape[0])
    c, d = max(left, 0), min(left + side, frame.shape[1])
    if b > a and d > c:
        crop[a - top:b - top, c - left:d - left] = frame[a:b, c:d]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def person_thumbnail(frames: Sequence[np.ndarray] | np.ndarray, tracks: VideoTracks, track_id: int,
                     size: int = 64) -> np.ndarray | None:
    """The person's face (else their box) from the frame where it is largest, or None when they have neither."""
    track = tracks.track(track_id)
    for region in ("face", "body"):
        boxes = region_boxes(track, region)
        known = ~np.isnan(boxes).any(axis=1) & (track.frames < len(frames))
        if known.any():
            areas = np.where(known, (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), -1)
            row = int(np.argmax(areas))
            return face_thumbnail(np.asarray(frames[int(track.frames[row])]), boxes[row], size)
    return None


def speaking_timeline_with_faces(speaking: SpeakingActivity, faces: dict[int, np.ndarray | None],
                                 order: Sequence[int] | None = None, width: int = 1000, row: int = 72) -> np.ndarray:
    """RGB image: one row per person (in `order`, default the assignment's), each starting with that person's face
    (`faces[track_id]`, square, or a grey square), the slot number, id and voice, then their speaking time shaded;
    a last line lists the voices on no one's lips."""
    order = list(order) if order is not None else [p.track_id for p in speaking.people]
    label = row + 170
    rows = len(order) + (1 if speaking.unassigned_voices else 0)
    image = np.full((row * rows + 30, width, 3), 250, np.uint8)
    scale = (width - label - 10) / max(speaking.num_frames, 1)
    for slot, track_id in enumerate(order):
        person = speaking.person(track_id)
        top = slot * row
        face = faces.get(track_id)
        thumb = (np.full((row - 8, row - 8, 3), 200, np.uint8) if face is None
                 else cv2.resize(face, (row - 8, row - 8), interpolation=cv2.INTER_AREA))
        image[top + 4:top + row - 4, 4:row - 4] = thumb
        colour = slot_colour(slot)
        cv2.rectangle(image, (3, top + 3), (row - 4, top + row - 4), colour, 2)
        cv2.putText(image, f"{slot + 1}: person {track_id}", (row + 4, top + row // 2 - 4), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(image, (person.voice or "listener")[:22], (row + 4, top + row // 2 + 14),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (70, 70, 70), 1, cv2.LINE_AA)
        cv2.line(image, (label, top + row // 2), (width - 10, top + row // 2), (215, 215, 215), 1)
        for start, end in person.speak:
            cv2.rectangle(image, (label + int(start * scale), top + 14),
                          (label + max(int(end * scale), int(start * scale) + 1), top + row - 14), colour, -1)
    if speaking.unassigned_voices:
        text = "voices on no one's lips (off screen, or unmatched): " + ", ".join(speaking.unassigned_voices)
        cv2.putText(image, text[:120], (5, len(order) * row + row // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (90, 90, 90), 1, cv2.LINE_AA)
    _seconds_axis(image, label, scale, speaking.fps, speaking.num_frames)
    return image


def diarization_timeline(diarization: Diarization, seconds: float, width: int = 1000, row: int = 28) -> np.ndarray:
    """RGB image: one row per voice of the diarization, shaded where it speaks, over `seconds` of recording."""
    speakers = diarization.speakers
    label = 150
    image = np.full((row * max(len(speakers), 1) + 30, width, 3), 250, np.uint8)
    scale = (width - label - 10) / max(seconds, 1e-6)
    if not speakers:
        cv2.putText(image, "no speech found", (5, row // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (90, 90, 90), 1,
                    cv2.LINE_AA)
    for r, speaker in enumerate(speakers):
        top = r * row
        cv2.putText(image, speaker[:18], (5, top + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for turn in diarization.turns:
            if turn.speaker == speaker:
                cv2.rectangle(image, (label + int(turn.start * scale), top + 4),
                              (label + max(int(turn.end * scale), int(turn.start * scale) + 1), top + row - 4),
                              slot_colour(r), -1)
    _seconds_axis(image, label, scale, 1.0, seconds)
    return image


def _seconds_axis(image: np.ndarray, left: int, scale: float, rate: float, length: float) -> None:
    seconds = length / rate
    for second in range(0, int(seconds) + 1, max(1, int(seconds // 10) or 1)):
        x = left + int(second * rate * scale)
        cv2.line(image, (x, image.shape[0] - 25), (x, image.shape[0] - 20), (0, 0, 0), 1)
        cv2.putText(image, f"{second}s", (x - 6, image.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1,
                    cv2.LINE_AA)
