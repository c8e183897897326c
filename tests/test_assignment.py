import subprocess
import sys

import numpy as np
import pytest
from conftest import MODELS, PACK_ROOT

from mit_annotator import media
from mit_annotator.assignment import assign_speakers, correlate
from mit_annotator.diarization import DiarizationConfig, Diarizer
from mit_annotator.faces import YuNetFaceDetector
from mit_annotator.lips import activity_from_openings, mouth_openings
from mit_annotator.metrics import speaking_f1, voice_mapping
from mit_annotator.records import Diarization, SpeakerTurn, SpeakingActivity
from mit_annotator.synthetic import ConversationSpec, synthesize_conversation
from mit_annotator.tracking import box_iou
from mit_annotator.who_speaks import person_audio_diarization, track_faces, who_speaks


@pytest.fixture(scope="module")
def diarizer():
    return Diarizer()


def lips_from_poses(conversation):
    c = conversation
    return {t.track_id: activity_from_openings(mouth_openings(t, c.spec.num_frames), c.spec.fps)
            for t in c.tracks.tracks}


def assert_right_voices(speaking, hypothesis, conversation, person_map=None):
    """Every person's assigned voice is (mostly) their own true voice; off-screen voices stay unassigned."""
    to_truth = voice_mapping(hypothesis, conversation.diarization)
    for person in speaking.people:
        truth_id = (person_map or {}).get(person.track_id, person.track_id)
        assert person.voice is not None, f"person {person.track_id} got no voice"
        for voice in person.voice.split("+"):
            assert to_truth[voice] == conversation.voices[truth_id], (person, to_truth)
    for voice in speaking.unassigned_voices:
        assert to_truth.get(voice) not in conversation.voices


@pytest.mark.parametrize("people", [2, 3, 4])
def test_diarized_voices_go_to_the_right_people(diarizer, speech, people):
    c = synthesize_conversation(ConversationSpec(num_people=people, seconds=4.0 * people + 4, width=160 * people,
                                                 height=192, seed=people, offscreen_voice=True), speech)
    hypothesis = diarizer(c.mix, DiarizationConfig(max_speakers=people + 2))
    speaking, corr = assign_speakers(hypothesis, lips_from_poses(c), c.spec.fps, c.spec.num_frames)
    assert_right_voices(speaking, hypothesis, c)
    assert speaking.unassigned_voices  # the off-screen voice
    f1 = speaking_f1(speaking, c.speaking)
    print(f"{people} people: speaking F1 {f1:.3f}, correlations\n{np.round(corr, 2)}")
    assert f1 > 0.8


def test_exact_turns_give_exact_scores(small_conversation):
    c = small_conversation
    speaking, _ = assign_speakers(c.diarization, lips_from_poses(c), c.spec.fps, c.spec.num_frames)
    for person in speaking.people:
        assert person.voice == c.voices[person.track_id]
        np.testing.assert_allclose(person.scores, c.speaking.person(person.track_id).scores, atol=1e-6)
        assert person.speak == c.speaking.person(person.track_id).speak
    assert speaking.unassigned_voices == c.offscreen_voices


def test_one_audio_file_per_person(diarizer, saved_conversation):
    c, paths = saved_conversation
    files = [paths[f"person_{k}_audio"] for k in range(c.spec.num_people)] + [paths["offscreen_0_audio"]]
    diarization = person_audio_diarization(files, diarizer)
    assert diarization.speakers == sorted(f.stem for f in files)
    speaking, _ = assign_speakers(diarization, lips_from_poses(c), c.spec.fps, c.spec.num_frames)
    assert {p.track_id: p.voice for p in speaking.people} == {k: f"person_{k}" for k in range(c.spec.num_people)}
    assert speaking.unassigned_voices == ["offscreen_0"]
    assert speaking_f1(speaking, c.speaking) > 0.9


def test_without_poses_faces_and_mouth_motion_do_it(saved_conversation):
    c, paths = saved_conversation
    faces = track_faces(paths["video"], YuNetFaceDetector(MODELS / "face_detection_yunet.onnx"))
    assert len(faces.tracks) == c.spec.num_people
    person_map = {}
    for track in faces.tracks:  # which drawn person each face track is
        row = len(track) // 2
        frame = int(track.frames[row])
        truth = max(c.tracks.tracks, key=lambda t: box_iou(t.face_boxes[frame], track.face_boxes[row]))
        person_map[track.track_id] = truth.track_id
    speaking, _ = who_speaks(paths["video"], faces, c.diarization)
    for person in speaking.people:
        assert person.voice == c.voices[person_map[person.track_id]]
    assert speaking_f1(speaking, c.speaking, person_map) > 0.9


def test_tracks_without_keypoints_need_frames(small_conversation):
    import copy

    from mit_annotator.who_speaks import lip_activity

    tracks = copy.deepcopy(small_conversation.tracks)
    tracks.tracks[0].keypoints = tracks.tracks[0].keypoint_scores = None
    with pytest.raises(ValueError, match="tracks without keypoints need the video frames"):
        lip_activity(tracks)


def test_lips_may_lag_the_audio():
    rng = np.random.default_rng(0)
    voice = (rng.random(300) > 0.5).astype(np.float32)
    voice = np.repeat(voice[::10], 10)[:300]
    lips = np.roll(voice, 4) + rng.normal(0, 0.1, 300)
    assert correlate(voice, lips, max_lag_frames=5, min_frames=25) > 0.9
    assert correlate(voice, lips, max_lag_frames=0, min_frames=25) < 0.8
    assert np.isnan(correlate(voice, np.full(300, np.nan), 5, 25))


def test_a_silent_room_and_audio_longer_than_the_video(small_conversation):
    c = small_conversation
    silent, _ = assign_speakers(Diarization([]), lips_from_poses(c), c.spec.fps, c.spec.num_frames)
    assert all(p.voice is None and p.speak == [] for p in silent.people)
    long = Diarization(c.diarization.turns + [SpeakerTurn(c.voices[0], 100.0, 120.0)])
    speaking, _ = assign_speakers(long, lips_from_poses(c), c.spec.fps, c.spec.num_frames)
    assert speaking.person(0).voice == c.voices[0] and len(speaking.person(0).scores) == c.spec.num_frames
    with pytest.raises(ValueError, match="lip activity of person 0 has 10 frames"):
        assign_speakers(c.diarization, {0: np.zeros(10)}, c.spec.fps, c.spec.num_frames)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mit_annotator", *args], capture_output=True, text=True,
                          cwd=PACK_ROOT, timeout=600)


def test_diarize_and_assign_commands(saved_conversation, tmp_path):
    c, paths = saved_conversation
    rttm = tmp_path / "voices.rttm"
    done = run_cli("diarize", str(paths["video"]), "--out", str(rttm), "--max-speakers", "5")
    assert done.returncode == 0, done.stderr
    assert len(Diarization.load_rttm(rttm).speakers) >= 3
    out, plot = tmp_path / "speaking.json", tmp_path / "timeline.png"
    done = run_cli("assign", str(paths["video"]), "--poses", str(paths["tracks"]), "--diarization", str(rttm),
                   "--out", str(out), "--plot", str(plot))
    assert done.returncode == 0, done.stderr
    speaking = SpeakingActivity.load(out)
    assert len(speaking.people) == c.spec.num_people and all(p.voice for p in speaking.people)
    assert plot.stat().st_size > 1000 and "person 0: SPEAKER_" in done.stdout
    done = run_cli("score-speaking", str(out), str(paths["speaking"]), "--tracks", str(paths["tracks"]),
                   "--truth-tracks", str(paths["tracks"]), "--diarization", str(rttm),
                   "--truth-diarization", str(paths["diarization"]))
    assert done.returncode == 0, done.stderr
    assert "3 of 3 people got their own voice" in done.stdout and "speaking F1" in done.stdout
    per_person = [line for line in done.stdout.splitlines() if line.strip().startswith("person ")]
    assert len(per_person) == 3 and all("-> right" in line for line in per_person)
    accuracies = [float(line.rsplit("frame accuracy ", 1)[1]) for line in per_person]
    assert all(0.85 <= a <= 1.0 for a in accuracies), per_person
    done = run_cli("assign", str(paths["video"]), "--poses", str(paths["tracks"]), "--out", str(out),
                   "--person-audio", str(paths["person_0_audio"]), str(tmp_path / "missing.wav"))
    assert done.returncode == 2 and "missing.wav: no such file" in done.stderr


def test_audio_shorter_than_the_video(diarizer, saved_conversation, tmp_path):
    c, paths = saved_conversation
    half = media.write_video(tmp_path / "half_audio.mp4", media.read_frames(paths["video"]), c.spec.fps,
                             c.mix[: len(c.mix) // 2], 16000)
    hypothesis = diarizer(media.read_audio(half), DiarizationConfig(max_speakers=5))
    speaking, _ = who_speaks(half, c.tracks, hypothesis)
    assert len(speaking.people) == c.spec.num_people
    assert all(len(p.scores) == c.spec.num_frames for p in speaking.people)


def test_speaking_in_order_gives_each_person_their_own_voice():
    from mit_annotator.assignment import speaking_in_order

    diarization = Diarization([SpeakerTurn("a", 0.0, 1.0), SpeakerTurn("b", 1.0, 2.0)])
    speaking = speaking_in_order(diarization, ["b", "a", "silent"], [7, 3, 5], 25.0, 50)
    assert (speaking.person(7).scores[25:] > 0).all() and (speaking.person(7).scores[:25] < 0).all()
    assert (speaking.person(3).scores[:25] > 0).all() and (speaking.person(3).scores[25:] < 0).all()
    assert (speaking.person(5).scores < 0).all() and speaking.person(7).voice == "b"
    with pytest.raises(ValueError, match="2 voices for 3 people"):
        speaking_in_order(diarization, ["a", "b"], [7, 3, 5], 25.0, 50)


# ---------------------------------------------------------------------------------------------------------------------
# Adversarial assignments, built frame by frame (25 fps)

FPS, FRAMES = 25.0, 500


def turns(speaker, spans):
    return [SpeakerTurn(speaker, a / FPS, b / FPS) for a, b in spans]


def bursts(start, end, on=6, off=6):
    """Frame spans of syllable-like bursts: `on` frames of speech, `off` of pause."""
    return [(s, min(s + on, end)) for s in range(start, end, on + off)]


def activity_of(spans, lag=0, noise=0.05, seed=0):
    values = np.zeros(FRAMES)
    for a, b in spans:
        values[a:b] = 1.0
    return np.roll(values, lag) + np.random.default_rng(seed).normal(0, noise, FRAMES)


def test_one_to_one_beats_greedy():
    from mit_annotator.assignment import AssignmentConfig, match_voices

    agreement = np.array([[0.9, 0.8], [0.85, 0.1]])  # greedy: voice 0 -> person 0, then voice 1 has only 0.1 left
    assert match_voices(agreement, AssignmentConfig()) == {1: [0], 0: [1]}
    assert match_voices(np.array([[0.9, np.nan], [0.1, 0.15]]), AssignmentConfig()) == {0: [0]}
    split = np.array([[0.8, 0.0], [0.5, 0.05], [0.0, 0.7]])  # voice 1: the diarizer split person 0's voice
    assert match_voices(split, AssignmentConfig()) == {0: [0, 1], 1: [2]}


def test_an_off_screen_voice_is_not_given_to_the_listener():
    speaker = bursts(0, 200) + bursts(300, 400)
    narrator = bursts(200, 300) + bursts(400, 500)  # speaks between, on no one's lips
    diarization = Diarization(turns("A", speaker) + turns("X", narrator))
    lips = {0: activity_of(speaker, seed=1), 1: np.random.default_rng(2).normal(0, 1, FRAMES)}  # 1: a listener
    speaking, agreement = assign_speakers(diarization, lips, FPS, FRAMES)
    assert speaking.person(0).voice == "A" and speaking.person(1).voice is None
    assert speaking.unassigned_voices == ["X"] and abs(agreement[1, 1]) < 0.2


def test_lips_lagging_four_frames_still_match():
    from mit_annotator.assignment import AssignmentConfig

    speaker = bursts(0, 500)
    lips = {0: activity_of(speaker, lag=4, seed=3), 1: activity_of(bursts(3, 500, on=3, off=9), seed=4)}
    speaking, agreement = assign_speakers(Diarization(turns("A", speaker)), lips, FPS, FRAMES)
    assert speaking.person(0).voice == "A" and agreement[0, 0] > 0.9
    in_step, _ = assign_speakers(Diarization(turns("A", speaker)), lips, FPS, FRAMES, AssignmentConfig(max_lag=0))
    assert in_step.person(0).voice is None  # at lag 0 the bursts are out of phase


def test_the_mouth_that_follows_the_voice_is_the_speakers_when_both_move():
    from mit_annotator.assignment import Evidence

    rng = np.random.default_rng(5)
    loudness = rng.normal(-30, 6, FRAMES)  # syllable by syllable
    first, second = [(0, 250)], [(250, 500)]
    own, other = loudness + rng.normal(0, 3, FRAMES), rng.normal(-30, 6, FRAMES)  # mouths: following / not
    mouths = {0: np.where(np.arange(FRAMES) < 250, own, other), 1: np.where(np.arange(FRAMES) < 250, other, own)}
    moving = np.ones(FRAMES)  # both mouths move all the time: lip activity cannot tell them apart
    evidence = Evidence(lips={0: moving + rng.normal(0, 0.01, FRAMES), 1: moving + rng.normal(0, 0.01, FRAMES)},
                        mouth=mouths, loudness=loudness)
    diarization = Diarization(turns("A", first) + turns("B", second))
    speaking, agreement = assign_speakers(diarization, evidence, FPS, FRAMES)
    assert speaking.person(0).voice == "A" and speaking.person(1).voice == "B"
    assert agreement[0, 0] > 0.7 and abs(agreement[0, 1]) < 0.2
    without, _ = assign_speakers(diarization, Evidence(lips=evidence.lips), FPS, FRAMES)
    assert without.person(0).voice is None and without.person(1).voice is None


def test_a_still_mouth_does_not_follow_a_voice_by_a_few_frames():
    from mit_annotator.assignment import synchrony

    rng = np.random.default_rng(6)
    loudness = rng.normal(-30, 6, FRAMES)
    voice = np.zeros(FRAMES)
    voice[:250] = 1
    mouth = np.zeros(FRAMES)
    mouth[250:] = rng.normal(0.5, 0.2, 250)  # the person talks after the voice ...
    loud = np.argsort(loudness[:250])[-5:]
    mouth[loud] = 0.8  # ... and their mouth opens in the voice's five loudest frames
    assert abs(synchrony(voice, mouth, loudness, 0, 25)) < 0.15
    follows = np.where(voice > 0, 0.5 + 0.02 * (loudness + 30), 0.5)  # opens with the voice, still after it
    assert synchrony(voice, follows, loudness, 0, 25) > 0.9


def test_the_model_refines_turn_edges_but_never_makes_a_silent_person_speak():
    from mit_annotator.assignment import ACTIVE_SPEAKER, Evidence

    a, b = [(0, 250)], [(250, 500)]
    evidence = Evidence(lips={0: activity_of(a, seed=7), 1: activity_of(b, seed=8)},
                        active_speaker={0: np.full(FRAMES, 5.0), 1: np.full(FRAMES, -5.0)})  # 0 always "talks"
    diarization = Diarization(turns("A", a) + [SpeakerTurn("B", 250 / FPS, 500 / FPS), SpeakerTurn("A", 19.98, 20.0)])
    speaking, _ = assign_speakers(diarization, evidence, FPS, FRAMES)
    zero, one = speaking.person(0), speaking.person(1)
    assert zero.evidence == one.evidence == ACTIVE_SPEAKER
    assert zero.speak == [(0, 250)] and one.speak == [(250, 500)]  # the model's opinion does not override a voice
    np.testing.assert_allclose(zero.scores[:250], 2.0 + 0.25 * 5.0)
    np.testing.assert_allclose(zero.scores[250:499], -2.0 + 0.25 * 5.0)
    assert zero.scores[499] == pytest.approx(0.25 * 5.0)  # A speaks half of the last frame: the model decides
