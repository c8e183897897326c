import json
import os
import stat

import numpy as np
import pytest

from mit_annotator.core.documents import FormatError
from mit_annotator.core.files import atomic_path
from mit_annotator.core.records import (
    Detection,
    Diarization,
    PersonSpeaking,
    PersonTrack,
    SpeakerTurn,
    SpeakingActivity,
    VideoTracks,
)
from mit_annotator.core.segments import speak_listen_segments
from mit_annotator.dataset.layout import CLIP_NAME, clip_folder_name, frame_file


def make_tracks(rng=np.random.default_rng(0)):
    frames_a, frames_b = np.arange(0, 10), np.array([2, 3, 5, 8])
    tracks = []
    for track_id, frames in ((4, frames_a), (9, frames_b)):
        n = len(frames)
        faces = rng.uniform(0, 100, (n, 4)).astype(np.float32)
        faces[1] = np.nan  # no face found in that frame
        tracks.append(PersonTrack(track_id, frames, rng.uniform(0, 200, (n, 4)), rng.uniform(0, 200, (n, 133, 2)),
                                  rng.uniform(0, 1, (n, 133)), faces, shot=0))
    return VideoTracks(320, 180, 25.0, 10, tracks, shots=[(0, 10)], source="clip.mp4")


def test_tracks_round_trip_through_a_file(tmp_path):
    tracks = make_tracks()
    path = tracks.save(tmp_path / "tracks.json")
    loaded = VideoTracks.load(path)
    assert (loaded.width, loaded.height, loaded.fps, loaded.num_frames) == (320, 180, 25.0, 10)
    assert loaded.shots == [(0, 10)] and loaded.source == "clip.mp4"
    for a, b in zip(tracks.tracks, loaded.tracks):
        assert a.track_id == b.track_id and a.shot == b.shot
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_allclose(b.keypoints, a.keypoints, atol=0.005 + 1e-4)
        np.testing.assert_allclose(b.keypoint_scores, a.keypoint_scores, atol=5e-5 + 1e-6)
        np.testing.assert_allclose(b.face_boxes, a.face_boxes, atol=0.005 + 1e-4)
        assert np.isnan(b.face_boxes[1]).all()  # an unknown face stays unknown
    # a second round trip is exact
    assert json.loads(loaded.save(tmp_path / "again.json").read_text()) == json.loads(path.read_text())


def test_tracks_lookup_by_frame():
    tracks = make_tracks()
    assert [(t.track_id, row) for t, row in tracks.people_at(5)] == [(4, 5), (9, 2)]
    assert [t.track_id for t, _ in tracks.people_at(4)] == [4]
    assert tracks.track(9).row_of(8) == 3 and tracks.track(9).row_of(7) is None
    with pytest.raises(KeyError, match="no track with id 1"):
        tracks.track(1)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="something.else"), "expected format 'mit_annotator.tracks'"),
    (lambda d: d.update(version=99), "version 99 is newer"),
    (lambda d: d.pop("version"), "missing or bad version"),
    (lambda d: d.pop("width"), "malformed document"),
    (lambda d: d["tracks"][0].update(boxes=[[1, 2, 3]]), "malformed document"),
    (lambda d: d["tracks"][0].update(frames=list(range(10))[::-1]), "strictly increasing"),
])
def test_bad_tracks_documents_name_the_file_and_the_problem(tmp_path, change, message):
    data = make_tracks().to_dict()
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError, match=message) as caught:
        VideoTracks.load(path)
    assert str(path) in str(caught.value)


def test_loading_what_is_not_json(tmp_path):
    path = tmp_path / "tracks.json"
    path.write_text("{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        VideoTracks.load(path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        VideoTracks.load(tmp_path / "missing.json")


def test_records_reject_inconsistent_data():
    assert Detection(3, [0, 0, 10, 20], 0.9).box.dtype == np.float32
    with pytest.raises(ValueError, match="box must have shape"):
        Detection(0, [0, 0, 10], 0.9)
    with pytest.raises(ValueError, match="keypoint_scores must have shape"):
        Detection(0, [0, 0, 1, 1], 0.9, np.zeros((133, 2)), np.zeros(17))
    with pytest.raises(ValueError, match="keypoints must have shape"):
        PersonTrack(0, [0, 1], np.zeros((2, 4)), np.zeros((2, 17, 2)), np.zeros((2, 17)))
    with pytest.raises(ValueError, match="come together"):
        PersonTrack(0, [0], np.zeros((1, 4)), np.zeros((1, 133, 2)))
    with pytest.raises(ValueError, match="unique"):
        VideoTracks(10, 10, 25, 5, [PersonTrack(1, [0], np.zeros((1, 4))), PersonTrack(1, [1], np.zeros((1, 4)))])
    with pytest.raises(ValueError, match="outside"):
        VideoTracks(10, 10, 25, 5, [PersonTrack(1, [7], np.zeros((1, 4)))])
    with pytest.raises(ValueError, match="speaking scores"):
        SpeakingActivity(25, 10, [PersonSpeaking(0, np.zeros(9))])
    with pytest.raises(ValueError, match="start"):
        SpeakerTurn("a", 2.0, 1.0)


def test_rttm_and_json_round_trip():
    diarization = Diarization([SpeakerTurn("bob", 1.5, 3.25), SpeakerTurn("alice", 0.0, 1.75),
                               SpeakerTurn("bob", 4.0, 4.5)], uri="talk show")
    text = diarization.to_rttm()
    assert text.splitlines()[0] == "SPEAKER talk_show 1 0.000 1.750 <NA> <NA> alice <NA> <NA>"
    again = Diarization.from_rttm(text)
    assert again.turns == diarization.turns and again.uri == "talk_show"
    assert again.speakers == ["alice", "bob"]
    assert Diarization.from_dict(diarization.to_dict()).turns == diarization.turns


def test_rttm_errors_name_the_line():
    with pytest.raises(FormatError, match="line 2: not an RTTM SPEAKER line"):
        Diarization.from_rttm("SPEAKER x 1 0 1 <NA> <NA> a <NA> <NA>\nhello world\n", origin="f.rttm")
    with pytest.raises(FormatError, match="onset and duration must be numbers"):
        Diarization.from_rttm("SPEAKER x 1 zero 1 <NA> <NA> a <NA> <NA>\n")


def test_reference_rttm_from_pyannote_loads():
    from conftest import SHARED_DATA

    path = SHARED_DATA / "diarization" / "pyannote_sample" / "sample.rttm"
    if not path.exists():
        pytest.skip("shared diarization sample missing")
    diarization = Diarization.load_rttm(path)
    assert len(diarization.speakers) == 2 and len(diarization.turns) > 5
    assert max(t.end for t in diarization.turns) <= 30.5


def test_activity_per_frame_is_the_covered_share():
    diarization = Diarization([SpeakerTurn("a", 0.1, 0.3), SpeakerTurn("b", 0.0, 0.05)])
    activity = diarization.activity("a", fps=10, num_frames=5)
    np.testing.assert_allclose(activity, [0.0, 1.0, 1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(diarization.activity("b", 10, 2), [0.5, 0.0], atol=1e-6)


def test_speaking_activity_round_trip(tmp_path):
    people = [PersonSpeaking(0, np.linspace(-1, 1, 50), "spk_a", [(25, 50)], [(0, 25)]),
              PersonSpeaking(3, -np.ones(50), None, [], [(0, 50)])]
    activity = SpeakingActivity(25.0, 50, people, unassigned_voices=["narrator"])
    loaded = SpeakingActivity.load(activity.save(tmp_path / "speaking.json"))
    assert loaded.unassigned_voices == ["narrator"]
    assert loaded.person(0).voice == "spk_a" and loaded.person(3).voice is None
    assert loaded.person(0).speak == [(25, 50)] and loaded.person(3).listen == [(0, 50)]
    np.testing.assert_allclose(loaded.person(0).scores, people[0].scores, atol=1e-4)


def test_clip_folders_are_named_like_the_mit_layout_and_parsed_back():
    name = clip_folder_name("talkshow", "ep-3_b", 125, 300)
    assert name == "talkshow_ep-3_b_000125to000300"
    match = CLIP_NAME.match(name)
    assert (match["source"], match["video"], int(match["start"]), int(match["end"])) == ("talkshow", "ep-3_b", 125, 300)
    assert frame_file(0, 12, ".png") == "output_0001.png" and frame_file(12344, 12345, ".json") == "output_12345.json"


def test_atomic_path_leaves_nothing_when_writing_fails(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_an_atomic_file_has_the_mode_a_plain_write_gets(tmp_path, umask):
    """mkstemp makes 0600 files: renamed as they are, a dataset would be unreadable to everyone else."""
    old = os.umask(umask)
    try:
        with atomic_path(tmp_path / "out.json") as tmp:
            tmp.write_text("{}")
        (tmp_path / "plain.json").write_text("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == 0o666 & ~umask


def test_segments_follow_the_paper_rules():
    fps = 25
    scores = -np.ones(200)
    scores[50:120] = 1.0  # 2.8 s of speech
    scores[80:82] = -1.0  # a 2-frame dip: the median filter removes it
    scores[160:170] = 1.0  # 0.4 s: kept plain, merged away in the merged variant
    speak, listen = speak_listen_segments(scores, fps)
    assert speak == [(50, 120), (160, 170)]
    assert listen == [(0, 50), (120, 160), (170, 200)]
    speak, listen = speak_listen_segments(scores, fps, merge_shorter_than=1.0)
    assert speak == [(50, 120)] and listen == [(0, 50), (120, 200)]
    assert speak_listen_segments(np.ones(3), fps) == ([(0, 3)], [])
    with pytest.raises(ValueError, match="NaN"):
        speak_listen_segments(np.array([0.0, np.nan]), fps)
