"""`python -m mit_annotator bind`: the files each multi-speaker model's own script reads, read back here the way
that script reads them (in our own words, from its code; see mit_annotator/speakers/model_inputs.py), and checked: each
script gives person k's voice to person k's place on screen, at the right times."""

import json
import wave

import cv2
import numpy as np
import pytest
from conftest import shared_path

from mit_annotator.core import media
from mit_annotator.core.records import PersonSpeaking, SpeakingActivity
from mit_annotator.pipeline.cli import main
from mit_annotator.speakers.binding import BindingError
from mit_annotator.speakers.model_inputs import TARGETS, write_model_inputs
from mit_annotator.speakers.who_speaks import track_faces
from mit_annotator.vision.faces import YuNetFaceDetector


def read_wav(path) -> np.ndarray:
    with wave.open(str(path)) as f:
        assert f.getframerate() == 16000 and f.getnchannels() == 1
        return np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(np.float32) / 32767


def multitalk_reads(path):
    """MultiTalk / InfiniteTalk: the audios by key, the boxes by order, each [top, left, bottom, right] sliced as
    mask[a:c, b:d] on an image-sized (height, width) mask; 'para' needs equal lengths."""
    data = json.loads(path.read_text())
    image = cv2.imread(data.get("cond_image") or data["cond_video"])
    assert data["audio_type"] == "para" and set(data["cond_audio"]) == {"person1", "person2"}
    voices = [read_wav(data["cond_audio"][k]) for k in ("person1", "person2")]
    assert len(voices[0]) == len(voices[1])
    masks = []
    for a, b, c, d in list(data["bbox"].values())[:2]:
        mask = np.zeros(image.shape[:2], bool)
        mask[int(a):int(c), int(b):int(d)] = True
        masks.append(mask)
    return list(zip(voices, masks))


def longcat_reads(path):
    """LongCat-Video-Avatar: audios and boxes by key, each box [y_min, x_min, y_max, x_max] in whole pixels."""
    data = json.loads(path.read_text())
    image = cv2.imread(data["cond_image"])
    out = []
    for key in ("person1", "person2"):
        y0, x0, y1, x1 = data["bbox"][key]
        assert all(isinstance(v, int) for v in (y0, x0, y1, x1))
        mask = np.zeros(image.shape[:2], bool)
        mask[y0:y1, x0:x1] = True
        out.append((read_wav(data["cond_audio"][key]), mask))
    return out


def anytalker_reads(path, faces_left_to_right):
    """AnyTalker: one task; audio_list[k] drives the k-th face from the left (it finds the faces itself)."""
    (task,) = json.loads(path.read_text()).values()
    assert cv2.imread(task["image_path"]) is not None and task["caption"]
    return [(read_wav(a), centre) for a, centre in zip(task["audio_list"], faces_left_to_right)]


def face_centre(tracks, track_id, frame):
    track = tracks.track(track_id)
    row = int(np.argmin(np.abs(track.frames - frame)))
    box = track.face_boxes[row] if track.face_boxes is not None else track.boxes[row]
    return int((box[1] + box[3]) / 2), int((box[0] + box[2]) / 2)  # (row, column)


def check(pairs, tracks, speaking, mix, reference):
    """Each (voice, place) pair: the place holds exactly one person's face; that person's voice is the mix while
    they speak and silence while they do not."""
    for voice, place in pairs:
        if isinstance(place, np.ndarray):
            inside = [t.track_id for t in tracks.tracks if place[face_centre(tracks, t.track_id, reference)]]
        else:
            inside = [t.track_id for t in tracks.tracks if face_centre(tracks, t.track_id, reference) == place]
        assert len(inside) == 1, inside
        person = speaking.person(inside[0])
        assert len(voice) == len(mix)
        for a, b in person.speak:  # their speech, as in the mix (16-bit rounding aside)
            span = slice(int(a / speaking.fps * 16000) + 400, int(b / speaking.fps * 16000) - 400)
            np.testing.assert_allclose(voice[span], np.clip(mix[span], -1, 1), atol=1e-4)
        quiet = np.ones(len(mix), bool)
        for a, b in person.speak:
            quiet[int(a / speaking.fps * 16000):int(b / speaking.fps * 16000)] = False
        assert np.abs(voice[quiet]).max(initial=0) < 1e-4


@pytest.fixture(scope="module")
def interact():
    video = shared_path("video", "interact_11.mp4")
    tracks = track_faces(video, YuNetFaceDetector(shared_path("models", "face_detection_yunet.onnx")))
    turns = json.loads(shared_path("video", "interact_11.turns.json").read_text())["speaking_seconds"]
    side = {t.track_id: "left" if np.nanmean(t.boxes[:, 0::2]) < tracks.width / 2 else "right" for t in tracks.tracks}
    people = []
    for track_id, where in side.items():
        speak = [(int(a * 25 / 24 * 25), int(min(b * 25 / 24, tracks.num_frames / 25) * 25)) for a, b in turns[where]]
        scores = np.full(tracks.num_frames, -2.0, np.float32)
        for a, b in speak:
            scores[a:b] = 2.0
        people.append(PersonSpeaking(track_id, scores, where, speak, []))
    speaking = SpeakingActivity(tracks.fps, tracks.num_frames, people)
    frame = media.read_frames(video, start=10, end=11, fps=25)[0]
    return tracks, speaking, frame, media.read_audio(video, 16000)


@pytest.mark.parametrize("target", TARGETS)
def test_each_script_gives_each_person_their_own_voice_on_interact_11(interact, target, tmp_path):
    tracks, speaking, frame, mix = interact
    path = write_model_inputs(target, frame, mix, tracks, speaking, tmp_path, reference=10)
    if target in ("multitalk", "infinitetalk"):
        pairs = multitalk_reads(path)
    elif target == "longcat":
        pairs = longcat_reads(path)
    else:
        faces = sorted((face_centre(tracks, t.track_id, 10) for t in tracks.tracks), key=lambda rc: rc[1])
        pairs = anytalker_reads(path, faces)
    check(pairs, tracks, speaking, mix, 10)
    if target in ("multitalk", "infinitetalk"):  # person1 is the first to speak: the right-hand person
        right = max(tracks.tracks, key=lambda t: np.nanmean(t.boxes[:, 0::2])).track_id
        assert pairs[0][1][face_centre(tracks, right, 10)]


def test_a_three_person_conversation_for_anytalker_and_a_clear_no_from_the_two_speaker_scripts(speech, tmp_path):
    from mit_annotator.synthetic import ConversationSpec, synthesize_conversation

    c = synthesize_conversation(ConversationSpec(num_people=3, seconds=8.0, width=480, height=192, seed=1), speech)
    frame = next(iter(c.frames()))
    path = write_model_inputs("anytalker", frame, c.mix, c.tracks, c.speaking, tmp_path, reference=0)
    faces = sorted((face_centre(c.tracks, t.track_id, 0) for t in c.tracks.tracks), key=lambda rc: rc[1])
    check(anytalker_reads(path, faces), c.tracks, c.speaking, c.mix, 0)
    for target in ("multitalk", "infinitetalk", "longcat"):
        with pytest.raises(BindingError, match=f"3 people speak.*{target}'s script takes two speakers"):
            write_model_inputs(target, frame, c.mix, c.tracks, c.speaking, tmp_path / target)


def test_longcat_gets_the_silent_people_as_others(interact, tmp_path):
    tracks, speaking, frame, mix = interact
    quiet = SpeakingActivity(speaking.fps, speaking.num_frames, speaking.people[:1] + [
        PersonSpeaking(p.track_id, np.full(speaking.num_frames, -2.0, np.float32), None, [], [(0, speaking.num_frames)])
        for p in speaking.people[1:]])
    data = json.loads(write_model_inputs("longcat", frame, mix, tracks, quiet, tmp_path).read_text())
    assert set(data["bbox"]) == {"person1", "person2"}  # both people are bound: 2 slots, one of them silent


def test_the_bind_command_writes_the_inputs_and_says_where(interact, tmp_path, capsys):
    tracks, speaking, _, _ = interact
    tracks.save(tmp_path / "tracks.json")
    speaking.save(tmp_path / "speaking.json")
    code = main(["bind", str(shared_path("video", "interact_11.mp4")), "--for", "multitalk", "--out",
                 str(tmp_path / "out"), "--poses", str(tmp_path / "tracks.json"), "--speaking",
                 str(tmp_path / "speaking.json"), "--reference-frame", "10"])
    assert code == 0 and "multitalk_input.json" in capsys.readouterr().out
    assert len(multitalk_reads(tmp_path / "out" / "multitalk_input.json")) == 2
    assert main(["bind", str(shared_path("video", "interact_11.mp4")), "--for", "anytalker", "--out",
                 str(tmp_path / "x"), "--poses", str(tmp_path / "tracks.json"), "--speaking",
                 str(tmp_path / "speaking.json"), "--reference-frame", "9999"]) == 2
    assert "--reference-frame 9999 is outside" in capsys.readouterr().err
