import numpy as np
import pytest

from mit_annotator.core import keypoints as kp
from mit_annotator.core import media
from mit_annotator.synthetic import ConversationSpec, synthesize_conversation
from mit_annotator.synthetic.speech import SAMPLE_RATE


def mouth_pixels(frame, face_box):
    """How much open mouth is visible: dark pixels in the lower part of the face box (below the eyes)."""
    x1, y1, x2, y2 = (int(v) for v in face_box)
    lower = frame[int(y1 + 0.6 * (y2 - y1)):y2, max(x1, 0):x2].astype(float)
    luminance = lower @ np.array([0.299, 0.587, 0.114])
    return int((luminance < 60).sum())


def loudness_per_frame(samples, fps, num_frames):
    hop = SAMPLE_RATE / fps
    return np.array([np.sqrt(np.mean(samples[int(k * hop):int((k + 1) * hop)] ** 2)) for k in range(num_frames)])


def correlation_matrix(conversation, frames, person_audio):
    n = conversation.spec.num_people
    fps, num_frames = conversation.spec.fps, conversation.spec.num_frames
    mouths = np.array([[mouth_pixels(frames[f], conversation.tracks.track(p).face_boxes[f])
                        for f in range(num_frames)] for p in range(n)], dtype=float)
    loud = np.array([loudness_per_frame(person_audio[p], fps, num_frames) for p in range(n)])
    return np.array([[np.corrcoef(mouths[i], loud[j])[0, 1] for j in range(n)] for i in range(n)])


def assert_own_voice_moves_the_mouth(corr):
    own = np.diag(corr)
    others = corr[~np.eye(len(corr), dtype=bool)].reshape(len(corr), -1)
    assert (own > 0.6).all(), corr
    assert (others < 0.3).all(), corr
    assert (own[:, None] - others > 0.4).all(), corr


def test_mouths_follow_their_own_speech_in_the_rendered_frames(small_conversation):
    frames = list(small_conversation.frames())
    corr = correlation_matrix(small_conversation, frames, small_conversation.person_audio)
    assert_own_voice_moves_the_mouth(corr)


def test_mouths_follow_their_own_speech_in_the_saved_video(saved_conversation):
    conversation, paths = saved_conversation
    frames = media.read_frames(paths["video"])
    assert len(frames) == conversation.spec.num_frames
    audio = [media.read_audio(paths[f"person_{k}_audio"]) for k in range(conversation.spec.num_people)]
    corr = correlation_matrix(conversation, frames, audio)
    assert_own_voice_moves_the_mouth(corr)


def test_the_saved_mix_is_every_voice_together(saved_conversation):
    conversation, paths = saved_conversation
    mix = media.read_audio(paths["video"])
    expected = conversation.mix
    n = min(len(mix), len(expected))
    assert abs(len(mix) - len(expected)) < SAMPLE_RATE // 50
    assert np.corrcoef(mix[:n], expected[:n])[0, 1] > 0.95
    np.testing.assert_allclose(conversation.mix, conversation.person_audio.sum(0) + conversation.offscreen_audio.sum(0))


def test_rttm_turns_hold_the_speech_of_that_voice(small_conversation):
    c = small_conversation
    tracks = np.concatenate([c.person_audio, c.offscreen_audio])
    for voice, samples in zip(c.voices + c.offscreen_voices, tracks):
        inside = np.zeros(len(samples), bool)
        for turn in c.diarization.turns:
            if turn.speaker == voice:
                inside[int(turn.start * SAMPLE_RATE):int(turn.end * SAMPLE_RATE)] = True
        assert inside.any(), f"voice {voice} never speaks"
        rms_in = np.sqrt(np.mean(samples[inside] ** 2))
        rms_out = np.sqrt(np.mean(samples[~inside] ** 2))
        assert rms_out < 0.05 * rms_in, (voice, rms_in, rms_out)


def test_speaking_scores_and_segments_agree_with_the_turns(small_conversation):
    c = small_conversation
    for person in c.speaking.people:
        share = c.diarization.activity(person.voice, c.spec.fps, c.spec.num_frames)
        assert ((person.scores > 0) == (share > 0.5)).all()
        assert person.speak, f"person {person.track_id} has no speak segment"
        covered = sorted(person.speak + person.listen)
        assert covered[0][0] == 0 and covered[-1][1] == c.spec.num_frames
        assert all(a[1] == b[0] for a, b in zip(covered, covered[1:]))
    assert c.speaking.unassigned_voices == c.offscreen_voices
    assert c.offscreen_voices and c.offscreen_voices[0] not in c.voices


def test_keypoints_and_boxes_agree_with_the_drawing(small_conversation):
    c = small_conversation
    hits = []
    for f in range(0, c.spec.num_frames, 10):
        frame = c.render_frame(f)
        for track, row in c.tracks.people_at(f):
            figure = c.figures[track.track_id]
            points = track.keypoints[row]
            torso = points[[kp.LEFT_SHOULDER, kp.RIGHT_SHOULDER, kp.LEFT_HIP, kp.RIGHT_HIP]].mean(axis=0)
            x, y = (int(round(v)) for v in torso)
            hits.append(tuple(frame[y, x]) == figure.shirt)
            x1, y1, x2, y2 = track.face_boxes[row]
            face = points[kp.FACE]
            assert (face[:, 0] >= x1 - 1).all() and (face[:, 0] <= x2 + 1).all()
            assert (face[:, 1] >= y1 - 1).all() and (face[:, 1] <= y2 + 1).all()
            bx1, by1, bx2, by2 = track.boxes[row]
            seen = points[track.keypoint_scores[row] > 0]
            assert (seen >= [bx1, by1]).all() and (seen <= [bx2, by2]).all()
    assert np.mean(hits) > 0.9


def test_keypoints_outside_the_frame_have_zero_confidence(small_conversation):
    c = small_conversation
    for track in c.tracks.tracks:
        inside = ((track.keypoints[..., 0] >= 0) & (track.keypoints[..., 0] < c.spec.width) &
                  (track.keypoints[..., 1] >= 0) & (track.keypoints[..., 1] < c.spec.height))
        np.testing.assert_array_equal(track.keypoint_scores > 0, inside)
        assert (track.keypoint_scores[:, kp.FACE] == 1).all()  # faces are always in view


def test_the_same_seed_gives_the_same_conversation(speech):
    spec = ConversationSpec(num_people=2, seconds=4.0, width=128, height=80, seed=11)
    a, b = synthesize_conversation(spec, speech), synthesize_conversation(spec, speech)
    assert a.voices == b.voices and a.diarization.turns == b.diarization.turns
    np.testing.assert_array_equal(a.person_audio, b.person_audio)
    np.testing.assert_array_equal(a.tracks.tracks[0].keypoints, b.tracks.tracks[0].keypoints)
    np.testing.assert_array_equal(a.render_frame(50), b.render_frame(50))
    other = synthesize_conversation(ConversationSpec(num_people=2, seconds=4.0, width=128, height=80, seed=12),
                                    speech)
    assert other.diarization.turns != a.diarization.turns


@pytest.mark.parametrize("people", [2, 4])
def test_every_person_speaks(speech, people):
    spec = ConversationSpec(num_people=people, seconds=3.5 * people, width=64 * people, height=96, seed=people)
    c = synthesize_conversation(spec, speech)
    assert len(c.tracks.tracks) == people and len(c.speaking.people) == people
    assert len(set(c.voices)) == people
    assert all(any(t.speaker == v for t in c.diarization.turns) for v in c.voices)
    assert c.tracks.tracks[0].keypoints.shape == (spec.num_frames, 133, 2)


def test_overlap_and_no_overlap(speech):
    def overlap(c):
        turns = c.diarization.turns
        return sum(max(0.0, min(a.end, b.end) - max(a.start, b.start))
                   for i, a in enumerate(turns) for b in turns[i + 1:] if a.speaker != b.speaker)

    quiet = synthesize_conversation(ConversationSpec(seconds=10, width=128, height=80, seed=5), speech)
    busy = synthesize_conversation(ConversationSpec(seconds=10, width=128, height=80, seed=5,
                                                    overlap_probability=1.0), speech)
    assert overlap(quiet) == 0.0
    assert overlap(busy) > 0.5


def test_espeak_voices(espeak):
    spec = ConversationSpec(num_people=2, seconds=6.0, width=160, height=96, seed=2)
    c = synthesize_conversation(spec, espeak)
    assert c.speech_source == "espeak-ng"
    corr = correlation_matrix(c, list(c.frames()), c.person_audio)
    assert_own_voice_moves_the_mouth(corr)


@pytest.mark.parametrize("field, value, message", [
    ("num_people", 5, "num_people must be 2, 3 or 4"),
    ("num_people", 1, "num_people must be 2, 3 or 4"),
    ("seconds", 0.5, "seconds must be between"),
    ("width", 10, "width must be between"),
    ("overlap_probability", 2.0, "overlap_probability must be between"),
    ("framing", "waist", r"framing must be one of \('body', 'face'\), got 'waist'"),
])
def test_bad_specs(field, value, message):
    with pytest.raises(ValueError, match=message):
        ConversationSpec(**{field: value})


@pytest.fixture(scope="module")
def close_up(speech):
    spec = ConversationSpec(num_people=2, seconds=5.0, width=512, height=256, seed=5, framing="face",
                            utterance_seconds=(0.8, 1.8))
    return synthesize_conversation(spec, speech)


def test_face_close_ups_make_mouths_at_least_12_pixels_wide_at_a_quarter_size(close_up):
    """At 128x64 (the speakers proof's size) each outer-lip corner-to-corner distance is at least 12 px; each head
    (its face box) lies in its own half, fills most of the height, and the shoulders are at the bottom edge."""
    lips = kp.FACE_OFFSET + np.array([48, 54])
    for k, track in enumerate(close_up.tracks.tracks):
        corners = track.keypoints[:, lips]
        assert (np.linalg.norm(corners[:, 1] - corners[:, 0], axis=1) / 4 >= 12).all()
        faces = track.face_boxes
        assert (faces[:, 0] >= 256 * k).all() and (faces[:, 2] <= 256 * (k + 1)).all()
        assert ((faces[:, 3] - faces[:, 1]) > 0.7 * 256).all()
        shoulders = track.keypoints[:, [kp.LEFT_SHOULDER, kp.RIGHT_SHOULDER], 1]
        assert (shoulders > 0.95 * 256).all()


def test_closed_mouth_tracks_differ_only_by_how_far_the_lower_lip_dropped(close_up):
    """Only the lower lips and the chin move; the inner lower lip's middle sat 0.30 of the head's half-height
    (0.72 units) lower for a fully open mouth, in proportion to the drawn opening."""
    closed = close_up.tracks_with_mouths_closed()
    assert len(closed.tracks) == 2 and closed.num_frames == close_up.tracks.num_frames
    for track, shut, figure, opening in zip(close_up.tracks.tracks, closed.tracks, close_up.figures,
                                            close_up.mouth_open):
        moved = np.abs(track.keypoints - shut.keypoints).max(axis=(0, 2)) > 1e-3
        ibug = set((np.flatnonzero(moved) - kp.FACE_OFFSET).tolist())
        assert ibug <= set(range(5, 12)) | {55, 56, 57, 58, 59, 65, 66, 67} and {66, 57} <= ibug
        drop = track.keypoints[:, kp.FACE_OFFSET + 66, 1] - shut.keypoints[:, kp.FACE_OFFSET + 66, 1]
        np.testing.assert_allclose(drop, 0.30 * 0.72 * figure.unit * opening, rtol=0.02, atol=1e-3)
        assert opening.max() > 0.5
        np.testing.assert_array_equal(track.keypoint_scores, shut.keypoint_scores)
        np.testing.assert_array_equal(track.boxes, shut.boxes)


def test_motion_can_be_independent_of_speech(speech):
    """With animated_while_speaking off, the closed-mouth poses are a function of the person and the time alone (as
    drawn with the calm gesture level and a closed mouth), whatever the schedule; with it on, speaking moves the head
    and hands, so they are not."""
    from mit_annotator.synthetic import figures as fig
    from mit_annotator.synthetic.conversation import CALM

    for animated in (False, True):
        spec = ConversationSpec(num_people=2, seconds=6.0, width=320, height=192, seed=3, framing="face",
                                animated_while_speaking=animated)
        c = synthesize_conversation(spec, speech)
        assert all((p.scores > 0).any() for p in c.speaking.people)
        for figure, track in zip(c.figures, c.tracks_with_mouths_closed().tracks):
            alone = np.stack([fig.pose_at(figure, f / spec.fps, 0.0, CALM).keypoints for f in range(spec.num_frames)])
            difference = np.abs(track.keypoints - alone).max()
            assert (difference < 1e-3) == (not animated), difference


def test_too_few_voices(tmp_path, speech):
    from mit_annotator.synthetic import LibriSpeechSource

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        media.write_wav(tmp_path / name / "x.wav", np.zeros(1600, np.float32), SAMPLE_RATE)
    with pytest.raises(ValueError, match="has 2 voices; 3 are needed"):
        synthesize_conversation(ConversationSpec(num_people=3), LibriSpeechSource(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LibriSpeechSource(tmp_path / "nowhere")
