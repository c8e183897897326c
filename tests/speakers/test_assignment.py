import subprocess
import sys

import numpy as np
import pytest
from conftest import MODELS, PACK_ROOT

from mit_annotator.audio.diarization import DiarizationConfig, Diarizer
from mit_annotator.core import media
from mit_annotator.core.records import Diarization, SpeakerTurn, SpeakingActivity
from mit_annotator.speakers.assignment import assign_speakers
from mit_annotator.speakers.lips import activity_from_openings, mouth_openings
from mit_annotator.speakers.who_speaks import person_audio_diarization, track_faces, who_speaks
from mit_annotator.synthetic import ConversationSpec, synthesize_conversation
from mit_annotator.vision.faces import YuNetFaceDetector
from mit_annotator.vision.metrics import speaking_f1, voice_mapping
from mit_annotator.vision.tracking import box_iou


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

    from mit_annotator.speakers.who_speaks import lip_activity

    tracks = copy.deepcopy(small_conversation.tracks)
    tracks.tracks[0].keypoints = tracks.tracks[0].keypoint_scores = None
    with pytest.raises(ValueError, match="tracks without keypoints need the video frames"):
        lip_activity(tracks)


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
