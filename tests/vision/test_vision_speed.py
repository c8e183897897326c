"""The fast vision pass (detection at a stride, faces around the heads and at a stride, the detector's letterbox fitted
to the frame) against every-frame detection."""

import numpy as np
import pytest
from conftest import MODELS, shared_path

from mit_annotator.core import media
from mit_annotator.core.records import Detection, PersonTrack
from mit_annotator.pipeline.annotate import AnnotateSettings
from mit_annotator.vision.detection import PersonDetector
from mit_annotator.vision.detection_schedule import EXACT, DetectionSchedule, VisionSpeed
from mit_annotator.vision.faces import Face, FacesAtScale, YuNetFaceDetector, head_regions
from mit_annotator.vision.metrics import score_tracking
from mit_annotator.vision.people import _faces_between_searches, _interpolate_carried, annotate_frames
from mit_annotator.vision.pose import WholeBodyPose
from mit_annotator.vision.tracking import box_iou, track_people


class Counted:
    def __init__(self, model):
        self.model, self.frames = model, []

    def __call__(self, frame, *rest):
        self.frames.append(frame)
        return self.model(frame, *rest)


def walking(frame: int, x0: float = 10.0) -> np.ndarray:
    return np.array([x0 + 2 * frame, 20, x0 + 2 * frame + 40, 120], np.float32)


def test_the_tracker_waits_over_frames_not_looked_at():
    # one person walking, looked at every 4th frame; a second one appears at frame 40
    looks = [[Detection(f, walking(f), 0.9)] if f % 4 == 0 else None for f in range(80)]
    for f in range(40, 80, 4):
        looks[f].append(Detection(f, walking(f, 300.0), 0.9))
    tracks = track_people(looks)
    assert len(tracks) == 2
    first, second = tracks
    assert first.frames.tolist() == list(range(0, 77)) and second.frames.tolist() == list(range(40, 77))
    # the gaps are filled by interpolation: on a straight walk, exactly where the person was
    np.testing.assert_allclose(first.boxes, np.stack([walking(f) for f in range(77)]), atol=1e-4)
    # a new person's patience counts the frames looked at: every 4th frame is 3 unseen frames, over the 2 allowed
    # if they were counted as time, so the second person would never be confirmed
    assert track_people([None if d is None else d[1:] for d in looks]) != []


def test_a_frame_not_looked_at_is_not_a_frame_where_no_one_was_found():
    seen = [[Detection(f, walking(f), 0.9)] for f in range(6)]
    assert len(track_people(seen + [None] * 3 + seen)) == 1  # bridged
    assert len(track_people([[]] + seen + [[] for _ in range(40)] + seen)) == 2  # lost for 40 frames: a new track


def test_the_schedule_looks_at_a_stride_and_densely_after_a_change():
    schedule = DetectionSchedule(VisionSpeed(detect_every=3, settle=4))
    person, newcomer = walking(0), walking(0, 300.0)
    due = []
    for frame in range(30):
        cut = frame == 24
        if schedule.due(frame, cut):
            due.append(frame)
            boxes = [person] if frame < 9 or 16 <= frame < 18 else [person, newcomer]
            schedule.found(frame, np.array(boxes))
    # stride 3; someone new at 9: every frame up to 9 + 4; someone missing at 16 and 17: every frame until they
    # are found again (18, no one new); a cut looks again
    assert due == [0, 3, 6, 9, 10, 11, 12, 13, 16, 17, 18, 21, 24, 27], due


def test_fast_motion_makes_the_schedule_dense():
    schedule = DetectionSchedule(VisionSpeed(detect_every=3, settle=2, max_motion=0.02))
    assert schedule.due(0, False)
    schedule.found(0, walking(0)[None])
    assert not schedule.due(1, False) and schedule.due(3, False)
    schedule.found(3, (walking(0) + [1, 0, 1, 0])[None])  # 0.33 px per frame of a 100 px person: slow
    assert not schedule.due(4, False)
    schedule.found(6, (walking(0) + [20, 0, 20, 0])[None])  # 6.3 px per frame: fast
    assert schedule.due(7, False) and schedule.due(8, False)
    schedule.found(8, (walking(0) + [20, 0, 20, 0])[None])  # still
    assert not schedule.due(9, False) and not schedule.due(10, False) and schedule.due(11, False)


def faced(frames, landmarks, boxes=None):
    frames = np.asarray(frames)
    track = PersonTrack(0, frames, np.tile(np.array([0, 0, 100, 200], np.float32), (len(frames), 1)))
    track.face_landmarks = np.asarray(landmarks, np.float32).reshape(len(frames), 5, 2)
    track.face_boxes = (np.full((len(frames), 4), np.nan, np.float32) if boxes is None
                        else np.asarray(boxes, np.float32))
    return track


def test_faces_between_searches_are_interpolated_within_the_stride_only():
    searched = np.zeros(12, bool)
    searched[[0, 2, 4, 8, 10]] = True  # 6 was not searched: frames 5-7 lie between searches 4 frames apart
    point = np.arange(12, dtype=np.float32)[:, None, None] * np.ones((1, 5, 2), np.float32)
    landmarks = np.where(searched[:, None, None], point, np.nan)
    boxes = np.where(searched[:, None], np.arange(12, dtype=np.float32)[:, None] * [1, 1, 1, 1], np.nan)
    landmarks[10] = boxes[10] = np.nan  # searched, face not found: nothing to interpolate towards
    track = faced(np.arange(1, 12), landmarks[1:], boxes[1:])
    _faces_between_searches(track, searched, every=2)
    found = track.face_landmarks[:, 0, 0]
    expected = [2, 2, 3, 4, np.nan, np.nan, np.nan, 8, 8, np.nan, np.nan]  # 1 and 9 held: a search 1 frame away
    np.testing.assert_allclose(found, expected)
    np.testing.assert_allclose(track.face_boxes[:, 0], expected)
    with_keypoint_box = faced([0, 1, 2], [point[0], np.full((5, 2), np.nan), point[2]],
                              [[7, 7, 9, 9], [8, 8, 10, 10], [7, 7, 9, 9]])
    _faces_between_searches(with_keypoint_box, np.array([True, False, True]), every=2)
    np.testing.assert_allclose(with_keypoint_box.face_landmarks[1], point[1])
    np.testing.assert_allclose(with_keypoint_box.face_boxes[1], [8, 8, 10, 10])  # a keypoints' face box stays
    untouched = faced([0, 1, 2], [point[0], np.full((5, 2), np.nan), point[2]])
    _faces_between_searches(untouched, np.array([True, False, True]), every=1)
    assert np.isnan(untouched.face_landmarks[1]).all()


def test_faces_are_searched_at_the_stride_and_at_every_cut():
    class Still:
        def __call__(self, frame):
            return np.array([[10, 10, 30, 60]], np.float32), np.array([0.9], np.float32)

    shot_a = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    frames = [shot_a.copy() for _ in range(19)] + [255 - shot_a for _ in range(21)]  # a cut at 19
    index = {id(frame): k for k, frame in enumerate(frames)}

    class FacesOnTheHead:
        def __init__(self):
            self.searched = []

        def in_regions(self, frame, regions, widths):
            k = index[id(frame)]
            self.searched.append(k)
            return [Face(np.array([15, 12, 25, 22], np.float32), np.full((5, 2), k, np.float32), 0.9)]

    faces = FacesOnTheHead()
    tracks = annotate_frames(frames, 25.0, Still(), face_detector=faces,
                             speed=VisionSpeed(detect_every=3, face_search="heads", faces_every=2))
    assert tracks.shots == [(0, 19), (19, 40)]
    assert faces.searched == [*range(0, 19, 2), *range(19, 40, 2)]
    for track in tracks.tracks:  # the frames between searches: the landmarks interpolated, here the frame's index
        np.testing.assert_allclose(track.face_landmarks[:, 0, 0], track.frames)


def test_bad_speeds_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match="detect_every must be a whole number of frames from 1 to 25, got 0"):
        AnnotateSettings(detect_every=0)
    with pytest.raises(ValueError, match="face_search must be 'frame' or 'heads', got 'face'"):
        AnnotateSettings(face_search="face")
    for bad in (0, 6, 1.5):
        with pytest.raises(ValueError, match=f"faces_every must be a whole number of frames from 1 to 5, got {bad}"):
            AnnotateSettings(faces_every=bad)
    with pytest.raises(ValueError, match="detector_input must be one of square, fit, got 'wide'"):
        AnnotateSettings(detector_input="wide")
    assert not VisionSpeed(faces_every=2).exact
    assert EXACT.exact and not AnnotateSettings().vision_speed().exact


def test_posed_frames_between_detections_get_interpolated_boxes():
    boxes = np.stack([walking(f) for f in range(7)])
    boxes[1:3] = boxes[0]  # posed on frame 0's boxes
    boxes[4:6] = boxes[3]
    track = PersonTrack(0, np.arange(7), boxes.copy())
    _interpolate_carried(track, {1, 2, 4, 5})
    np.testing.assert_allclose(track.boxes[:6], np.stack([walking(f) for f in range(6)]), atol=1e-4)
    np.testing.assert_allclose(track.boxes[6], walking(6))


def test_the_fast_pass_tracks_and_finds_faces_as_the_exact_one(saved_conversation, yolox_nano, tiny_models):
    conversation, paths = saved_conversation
    frames = list(media.iter_frames(paths["video"], fps=25.0))
    runs = {}
    fast_speed = VisionSpeed(detect_every=3, face_search="heads", faces_every=2)
    for name, speed, canvas in (("exact", EXACT, "square"), ("fast", fast_speed, "fit")):
        detector = Counted(PersonDetector(yolox_nano, canvas=canvas))
        pose = Counted(WholeBodyPose(tiny_models["pose"]))
        faces = Counted(YuNetFaceDetector(MODELS / "face_detection_yunet.onnx"))
        tracks = annotate_frames(iter(frames), 25.0, detector, pose, FacesAtScale(faces, 64.0), speed=speed)
        runs[name] = tracks, len(detector.frames), len(pose.frames), len(faces.frames)
    (exact, exact_calls, _, exact_faces), (fast, fast_calls, fast_poses, fast_faces) = runs["exact"], runs["fast"]
    assert exact_calls == len(frames) and fast_calls <= 0.6 * len(frames), fast_calls
    assert exact_faces == len(frames) and fast_faces <= 0.55 * len(frames) * 3, fast_faces  # 3 heads, every 2nd frame
    assert fast_poses == len(frames)  # the pose model still sees every frame
    score = score_tracking(fast.tracks, conversation.tracks.tracks, fast.num_frames)
    assert len(fast.tracks) == len(exact.tracks) == 3 and score.id_switches == 0 and score.mota > 0.9, score
    for a, b in zip(exact.tracks, fast.tracks):
        common = np.intersect1d(a.frames, b.frames)
        assert len(common) >= 0.95 * len(a.frames)
        overlap = [box_iou(a.boxes[a.row_of(f)], b.boxes[b.row_of(f)]) for f in common]
        assert np.mean(overlap) > 0.85, np.mean(overlap)
        landmarks = [~np.isnan(t.face_landmarks).any(axis=(1, 2)) for t in (a, b)]
        assert landmarks[1].mean() >= landmarks[0].mean() - 0.05
        both = landmarks[0][np.searchsorted(a.frames, common)] & landmarks[1][np.searchsorted(b.frames, common)]
        gap = np.abs(a.face_landmarks[np.searchsorted(a.frames, common)][both]
                     - b.face_landmarks[np.searchsorted(b.frames, common)][both])
        assert np.median(gap) < 1.0  # px, of 17 px faces: the same faces, found at the whole frame's scale


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])  # 1080p: searched scaled down
def test_faces_around_the_heads_are_the_whole_frames_faces(size):
    import cv2

    # interact_11's two people, half size, in a wider grey frame: the heads are a small part of it
    people_frame = next(media.iter_frames(shared_path("video", "interact_11.mp4"), 40, 41))
    frame = np.full((720, 1280, 3), 128, np.uint8)
    frame[300:524, 600:1016] = cv2.resize(people_frame, (416, 224), interpolation=cv2.INTER_AREA)
    frame = cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC)
    searched = []
    yunet = YuNetFaceDetector(MODELS / "face_detection_yunet.onnx")
    faces = FacesAtScale(lambda image: searched.append(image.shape[:2]) or yunet(image), 64.0)
    whole = faces(frame)
    assert len(whole) == 2
    people = PersonDetector(shared_path("models", "yolox_nano.onnx"))(frame)[0]
    for before in ([], whole):  # no face yet (the people's upper parts), then around the faces found before
        searched.clear()
        found = faces.in_regions(frame, *head_regions(people, before))
        assert len(found) == 2 and len(searched) == 2
        assert sum(h * w for h, w in searched) < 0.25 * faces.scale(size[1]) ** 2 * size[0] * size[1], searched
        if before:  # a face seen before is looked for at 40 px at most, whatever its size: 3 x 40 px wide
            assert FacesAtScale.KNOWN_FACE_PIXELS == 40
            assert all(shape[1] <= 122 for shape in searched) and max(s[1] for s in searched) >= 118, searched
        for face in whole:
            nearest = max(found, key=lambda f: box_iou(f.box, face.box))
            # a CNN sees a crop's edges: the same face, a few per cent apart
            assert box_iou(nearest.box, face.box) > 0.8
            assert np.abs(nearest.landmarks - face.landmarks).max() < 0.1 * (face.box[2] - face.box[0])


def test_close_ups_are_searched_whole():
    frame = next(media.iter_frames(shared_path("video", "interact_11.mp4"), 40, 41))
    searched = []
    yunet = YuNetFaceDetector(MODELS / "face_detection_yunet.onnx")
    faces = FacesAtScale(lambda image: searched.append(image.shape[:2]) or yunet(image), 64.0)
    whole = faces(frame)
    people = PersonDetector(shared_path("models", "yolox_nano.onnx"))(frame)[0]
    found = faces.in_regions(frame, *head_regions(people, []))
    assert searched[-1] == frame.shape[:2] and len(searched) == 2  # the people's heads cover most of it
    assert [f.box.tolist() for f in found] == [f.box.tolist() for f in whole]


def test_head_regions_cover_each_known_face_and_each_faceless_person():
    face = Face(np.array([100, 50, 140, 100], np.float32), np.zeros((5, 2), np.float32), 0.9)
    people = np.array([[80, 40, 160, 300], [300, 40, 380, 300]], np.float32)
    regions, widths = head_regions(people, [face])
    np.testing.assert_allclose(regions[0], [60, 0, 180, 150])  # three times the face, about its centre
    np.testing.assert_allclose(regions[1], [292, 32, 388, 235])  # the faceless person's upper 3/4, 10% wider
    assert len(regions) == 2  # the first person's upper half holds the known face: no second region
    assert widths[0] == 40 and np.isnan(widths[1])


def test_people_seen_at_the_last_look_of_a_shot_stay_to_its_end():
    # someone at the last look of each shot (stride 3: frames 0, 3, ..., 18, then 20 at the cut, ..., 38)
    class Still:
        def __call__(self, frame):
            return np.array([[10, 10, 30, 60]], np.float32), np.array([0.9], np.float32)

    shot_a = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    frames = [shot_a] * 20 + [255 - shot_a] * 20
    tracks = annotate_frames(frames, 25.0, Still(), speed=VisionSpeed(detect_every=3))
    assert tracks.shots == [(0, 20), (20, 40)]
    assert [t.frames.tolist() for t in tracks.tracks] == [list(range(20)), list(range(20, 40))]
    exact = annotate_frames(frames, 25.0, Still())
    assert [t.frames.tolist() for t in exact.tracks] == [t.frames.tolist() for t in tracks.tracks]


def test_a_tall_source_is_seen_at_the_vision_height_and_tracked_in_source_pixels(saved_conversation, yolox_nano,
                                                                                  monkeypatch, tmp_path):
    from mit_annotator.pipeline import annotate

    assert annotate.vision_size(1920, 1080) == (1280, 720) and annotate.vision_size(1280, 720) is None
    conversation, paths = saved_conversation
    # the camera pans 2 source pixels a frame: the background's motion, in source pixels, is 2 however it is seen
    panned = [np.roll(frame, 2 * k, axis=1) for k, frame in enumerate(media.iter_frames(paths["video"], fps=25.0))]
    video = media.write_video(tmp_path / "panned.mp4", panned, 25.0, conversation.mix, 16000)
    annotator = annotate.Annotator(AnnotateSettings(models_dir=str(MODELS), det_model=str(yolox_nano),
                                                    pose_model="none", speakers="lips"))
    assert annotator.detector.canvas == "fit"  # the settings' detector_input reaches the detector
    assert annotate.Annotator(AnnotateSettings(models_dir=str(MODELS), det_model=str(yolox_nano), pose_model="none",
                                               speakers="lips", detector_input="square")).detector.canvas == "square"
    info = media.probe(video)
    full, full_motion = annotate.vision(video, info, annotator)
    monkeypatch.setattr(annotate, "VISION_HEIGHT", 108)  # the 256x144 video stands for a source taller than 720
    annotator.detector = Counted(annotator.detector)
    smaller, smaller_motion = annotate.vision(video, info, annotator)
    assert {f.shape for f in annotator.detector.frames} == {(108, 192, 3)}
    assert (smaller.width, smaller.height) == (full.width, full.height) == (256, 144)
    assert len(smaller.tracks) == len(full.tracks) >= 3
    for a, b in zip(full.tracks, smaller.tracks):
        common = np.intersect1d(a.frames, b.frames)
        overlap = [box_iou(a.boxes[a.row_of(f)], b.boxes[b.row_of(f)]) for f in common]
        assert np.mean(overlap) > 0.8, np.mean(overlap)
    assert abs(np.nanmedian(full_motion) - 2.0) < 0.3 and abs(np.nanmedian(smaller_motion) - 2.0) < 0.3
