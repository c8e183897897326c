"""covog.evaluation.mouths: the mouth opening read from pixels where the poses put each mouth. Checked on hand-drawn
images (the opening is the share of the region darker than half the skin), on a real-voiced face close-up
conversation drawn as the CovOG speakers proof trains on (its true frames score the true schedule near 1, a swapped
schedule near -1, noise near 0, frames whose mouths never move exactly at chance) and on each voice's margin."""

import cv2
import numpy as np
import pytest

from covog.evaluation import mouths
from mit_annotator.core import keypoints as kp
from mit_annotator.core.records import PersonSpeaking, PersonTrack, SpeakingActivity, VideoTracks
from mit_annotator.synthetic import ConversationSpec, synthesize_conversation

SIZE = (128, 64)


def face_keypoints(left: float, right: float, lip_y: float) -> np.ndarray:
    """133 points, all at the mouth, but the inner-lip corners at (left, lip_y) and (right, lip_y), the upper inner
    lip at lip_y, and the cheeks' eye and mouth-corner points 20 px above and at the corners."""
    points = np.full((kp.NUM_KEYPOINTS, 2), [(left + right) / 2, lip_y], np.float32)
    face = points[kp.FACE]  # a view: iBUG-68 indices
    face[60], face[64] = (left, lip_y), (right, lip_y)
    face[[61, 62, 63], 1] = lip_y
    face[41], face[48] = (left, lip_y - 20), (left, lip_y)
    face[46], face[54] = (right, lip_y - 20), (right, lip_y)
    return points


def one_person(points: np.ndarray, frames: int, width=100, height=80) -> VideoTracks:
    track = PersonTrack(0, np.arange(frames), np.tile([0, 0, width, height], (frames, 1)).astype(np.float32),
                        np.tile(points, (frames, 1, 1)), np.ones((frames, kp.NUM_KEYPOINTS), np.float32))
    return VideoTracks(width, height, 25.0, frames, [track])


def test_the_opening_is_the_share_of_the_mouth_region_darker_than_half_the_skin():
    """Inner corners at x 40 and 60 (20 px wide), upper lip at y 30: the region is x 43..56, y 28..46 (pixel centres
    within 50 +- 7 and 28..47), 14 x 19 = 266 pixels; the cheeks (skin 200) are at (40..60, 20)."""
    image = np.full((80, 100, 3), 200, np.uint8)
    image[30:40, 43:57] = 0  # 10 rows of 14 black pixels: 140 of 266, each fully dark
    image[40:42, 43:57] = 50  # 2 rows at half of "half the skin" (100): each counts 0.5
    image[42:47, 43:57] = 120  # darker than the skin, not than half of it: 0
    tracks = one_person(face_keypoints(40, 60, 30), 1)
    opening = mouths.mouth_openings(image[None], tracks)
    assert opening.shape == (1, 1)
    assert opening[0, 0] == pytest.approx((140 + 0.5 * 28) / 266, abs=1e-6)
    # the same poses on a video twice as large read the same place
    large = cv2.resize(image, (200, 160), interpolation=cv2.INTER_NEAREST)
    assert mouths.mouth_openings(large[None], tracks)[0, 0] == pytest.approx(opening[0, 0], abs=0.03)
    # the skin is read in the frame: the same mouth on darker skin, against half of that skin
    darker = image.copy()
    darker[darker == 200] = 80
    assert mouths.mouth_openings(darker[None], tracks)[0, 0] == pytest.approx(140 / 266, abs=1e-6)


def test_an_unposed_or_outside_mouth_has_no_opening():
    image = np.full((2, 80, 100, 3), 200, np.uint8)
    tracks = one_person(face_keypoints(40, 60, 30), 2)
    tracks.tracks[0].keypoints[1] += 500  # off the frame
    openings = mouths.mouth_openings(image, tracks)
    assert np.isnan(openings[0, 1]) and np.isfinite(openings[0, 0])


def test_otsu_splits_two_groups_between_them():
    low, high = np.random.default_rng(0).normal(0.05, 0.02, 300), np.random.default_rng(1).normal(0.5, 0.05, 100)
    threshold = mouths.otsu_threshold(np.concatenate([low, high]))
    assert low.max() < threshold < high.min()
    assert mouths.otsu_threshold(np.concatenate([low, low + 0.2])) == pytest.approx(0.15, abs=0.03)


@pytest.fixture(scope="module")
def close_up(speech):
    """Two people in face close-ups (drawn at 512x256, read at 128x64: mouths 12-13 px wide), 6 s of real voices
    with turns and an overlap, the poses with the mouths closed (what the speakers proof generates from)."""
    spec = ConversationSpec(num_people=2, seconds=6.0, width=512, height=256, seed=7, framing="face",
                            overlap_probability=0.5, utterance_seconds=(0.8, 1.8))
    conversation = synthesize_conversation(spec, speech)
    frames = np.stack([cv2.resize(f, SIZE, interpolation=cv2.INTER_AREA) for f in conversation.frames()])
    return conversation, frames, conversation.tracks_with_mouths_closed()


def test_true_frames_score_the_true_schedule_near_one(close_up):
    conversation, frames, tracks = close_up
    speaking = conversation.speaking
    assert all((p.scores > 0).mean() > 0.2 for p in speaking.people)
    report = mouths.mouth_report(frames, tracks, speaking, list(conversation.person_audio))
    assert report["frames"] == len(frames) and report["kappa"] >= 0.75 and report["accuracy"] >= 0.9
    for person in report["people"]:
        assert person["opening_speaking"] > 10 * person["opening_silent"]
    correlation = np.array(report["correlation"])
    assert (np.diag(correlation) > 0.8).all() and (correlation[[0, 1], [1, 0]] < 0.2).all()
    assert [v["margin"] for v in report["voices"]] == pytest.approx(
        [correlation[0, 0] - correlation[1, 0], correlation[1, 1] - correlation[0, 1]], abs=1e-3)
    assert min(v["margin"] for v in report["voices"]) > 0.7


def test_a_swapped_schedule_scores_below_zero_and_the_voices_change_hands(close_up):
    conversation, frames, tracks = close_up
    a, b = conversation.speaking.people
    swapped = SpeakingActivity(25.0, conversation.speaking.num_frames,
                               [PersonSpeaking(0, b.scores), PersonSpeaking(1, a.scores)])
    report = mouths.mouth_report(frames, tracks, swapped, list(conversation.person_audio[::-1]))
    assert report["kappa"] < -0.4
    assert max(v["margin"] for v in report["voices"]) < -0.7


def test_noise_and_still_mouths_score_at_chance(close_up):
    conversation, frames, tracks = close_up
    noise = np.random.default_rng(0).integers(0, 256, frames.shape, dtype=np.uint8)
    report = mouths.mouth_report(noise, tracks, conversation.speaking, list(conversation.person_audio))
    assert abs(report["kappa"]) < 0.2 and max(abs(v["margin"]) for v in report["voices"]) < 0.4
    still = np.repeat(frames[:1], len(frames), axis=0)  # the first frame, before anyone speaks
    report = mouths.mouth_report(still, tracks, conversation.speaking)
    assert report["threshold"] is None and report["kappa"] == 0.0
    assert all(p["annotated_share"] == 0.0 for p in report["people"])


def test_a_schedule_without_a_posed_person_is_refused(close_up):
    conversation, frames, tracks = close_up
    only = SpeakingActivity(25.0, conversation.speaking.num_frames, conversation.speaking.people[:1])
    with pytest.raises(ValueError, match=r"no speaking scores for track ids \[1\]"):
        mouths.mouth_report(frames, tracks, only)
    with pytest.raises(ValueError, match="1 voices for the poses' 2 people"):
        mouths.mouth_report(frames, tracks, conversation.speaking, [conversation.person_audio[0]])
