"""What a hostile or careless user hit (issue: nothing lost, nothing leaked, nothing unbounded): crafted records,
absurd numbers and wrong files give one clear line naming the input, before any work; nothing is planned from a
single timestamp or a field nobody checked."""

import json
import math
import re

import av
import numpy as np
import pytest

from covog.pipeline.conditioning import speaking_scores
from mit_annotator.core import media
from mit_annotator.core.documents import FormatError
from mit_annotator.core.records import (
    MAX_FRAMES,
    Diarization,
    PersonSpeaking,
    PersonTrack,
    SpeakingActivity,
    VideoTracks,
    check_same_video,
)
from mit_annotator.pipeline.cli import main


def tracks_document(**change):
    tracks = VideoTracks(320, 180, 25.0, 10, [PersonTrack(3, [0, 1], [[10, 10, 50, 90], [11, 10, 51, 90]])])
    document = tracks.to_dict()
    document.update(change)
    return document


def speaking_of(track_id=3, fps=25.0, frames=10, scores=None, speak=()):
    scores = np.full(frames, 1.0, np.float32) if scores is None else scores
    return SpeakingActivity(fps, frames, [PersonSpeaking(track_id, scores, "spk0", list(speak))])


def last_line(capsys):
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err.strip().splitlines()[-1]


# ---------------------------------------------------------------------------------------------------------------------
# Records accepted silently when wrong


@pytest.mark.parametrize("change, message", [
    ({"num_frames": 2_000_000_000}, f"num_frames 2000000000 must be between 0 and {MAX_FRAMES}"),
    ({"fps": 0}, "fps 0.0 must be above 0"),
    ({"fps": -25}, "fps -25.0 must be above 0"),
    ({"fps": float("nan")}, "fps nan must be above 0"),
    ({"width": 0}, "the video size 0x180 must be between 1 and"),
])
def test_tracks_with_impossible_numbers_are_refused_on_load(tmp_path, change, message):
    path = tmp_path / "tracks.json"
    path.write_text(json.dumps(tracks_document(**change)))
    with pytest.raises(FormatError, match=f"{path}: malformed document .*{message}"):
        VideoTracks.load(path)


@pytest.mark.parametrize("box", [[float("nan"), 0, 10, 10], [0, 0, float("inf"), 10]])
def test_boxes_that_are_not_numbers_are_refused(box):
    with pytest.raises(ValueError, match="track 3 boxes hold values that are not finite numbers"):
        PersonTrack(3, [0], [box])


def test_speaking_at_a_negative_rate_or_with_segments_outside_the_clip_is_refused():
    with pytest.raises(ValueError, match="fps -25.0 must be above 0"):
        speaking_of(fps=-25.0)
    with pytest.raises(ValueError, match=r"person 3 has the segment \[-5, 3\) outside the 10 frames"):
        speaking_of(speak=[(-5, 3)])
    with pytest.raises(ValueError, match=r"person 3 has the segment \[8, 12\) outside the 10 frames"):
        speaking_of(speak=[(8, 12)])
    with pytest.raises(ValueError, match="person 3 has infinite speaking scores"):
        speaking_of(scores=np.array([math.inf] * 10, np.float32))


@pytest.mark.parametrize("line, message", [
    ("SPEAKER rec 1 0.000 1e300 <NA> <NA> spk0 <NA> <NA>", "line 2: speaker turn of 'spk0' has start 0.0 and end 1e+300"),
    ("SPEAKER rec 1 0.000 inf <NA> <NA> spk0 <NA> <NA>", "line 2: speaker turn of 'spk0' has start 0.0 and end inf"),
    ("SPEAKER rec 1 nan 1.0 <NA> <NA> spk0 <NA> <NA>", "line 2: speaker turn of 'spk0' has start nan"),
    ("SPEAKER rec 1 -4.0 1.0 <NA> <NA> spk0 <NA> <NA>", "line 2: speaker turn of 'spk0' has start -4.0"),
])
def test_rttm_turns_out_of_time_are_refused_with_their_line(tmp_path, line, message):
    path = tmp_path / "turns.rttm"
    path.write_text(f"SPEAKER rec 1 0.000 1.000 <NA> <NA> spk1 <NA> <NA>\n{line}\n")
    with pytest.raises(FormatError, match=re.escape(f"{path}, {message}")):
        Diarization.load_rttm(path)


def test_covog_refuses_scores_nobody_gave_people_it_does_not_know_and_another_rate():
    """NaN scores once reached CovOG's inputs; an assignment naming an unknown person made everyone a listener."""
    tracks = VideoTracks.from_dict(tracks_document())
    scores = np.ones(10, np.float32)
    scores[4] = np.nan  # a frame where active-speaker scoring did not see the face
    with pytest.raises(ValueError, match=r"person 3's speaking scores are missing \(null\) in some frames"):
        speaking_scores(speaking_of(scores=scores), tracks, range(10))
    with pytest.raises(ValueError, match=r"the assignment names person 7, whom the tracks do not hold \(their "
                                         r"people: \[3\]\)"):
        speaking_scores(speaking_of(track_id=7), tracks, range(10))
    with pytest.raises(ValueError, match="the assignment counts frames at 30 fps, the tracks at 25 fps"):
        speaking_scores(speaking_of(fps=30.0), tracks, range(10))
    assert speaking_scores(speaking_of(), tracks, range(10)).tolist() == [[1.0]] * 10


def test_tracks_of_another_video_are_refused():
    tracks = VideoTracks.from_dict(tracks_document())  # 320x180, 10 frames at 25 fps: 0.4 s
    check_same_video(tracks, 320, 180, 0.4)
    with pytest.raises(ValueError, match="the tracks are of a 320x180 video, clip.mp4 is 640x360"):
        check_same_video(tracks, 640, 360, 0.4, "clip.mp4")
    with pytest.raises(ValueError, match="the tracks cover 0.40 s, clip.mp4 lasts 0.20 s"):
        check_same_video(tracks, 320, 180, 0.2, "clip.mp4")


# ---------------------------------------------------------------------------------------------------------------------
# Unbounded work from crafted input


def write_with_timestamps(path, pts, rate=25):
    """A tiny video whose packets carry the given presentation timestamps (in 1/rate s), as a crafted file can."""
    from fractions import Fraction

    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        packets = []
        for k in range(len(pts)):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, rate)
            packets += stream.encode(frame)
        packets += stream.encode(None)
        for packet, value in zip(packets, pts):
            packet.time_base = Fraction(1, rate)
            packet.pts = packet.dts = value
            container.mux(packet)


def test_a_video_whose_last_timestamp_is_a_day_away_plans_no_frames(tmp_path, capsys):
    """A 51 kB mkv whose last timestamp was 27.8 h away once planned 3.75 M frames."""
    path = tmp_path / "crafted.mkv"
    write_with_timestamps(path, [0, 1, 2, 3, int(27.8 * 3600 * 25)])
    with pytest.raises(media.MediaError, match=r"crafted.mkv: 100080 s pass between frame 3 \(0.12 s\) and the "
                                               "next: its timestamps are broken"):
        media.probe(path)
    assert main(["poses", str(path), "--out", str(tmp_path / "poses.json"), "--pose-model", "none"]) == 2
    assert "its timestamps are broken" in last_line(capsys)
    write_with_timestamps(tmp_path / "fine.mkv", range(5))
    assert media.probe(tmp_path / "fine.mkv").num_frames == 5


@pytest.mark.parametrize("args, message", [
    (["make-conversation", "--fps", "1e9"], "argument --fps: 1e9 is outside 1..120"),
    (["make-conversation", "--width", "100000"], "argument --width: 100000 is outside 64..4096"),
    (["make-conversation", "--seconds", "1e7"], "argument --seconds: 1e7 is outside 0.2..3600"),
    (["poses", "video.mp4", "--fps", "1e9"], "argument --fps: 1e9 is outside 1..1000"),
])
def test_numbers_on_the_command_line_are_bounded_before_any_work(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exited:
        main([*args, "--out", str(tmp_path / "out")])
    assert exited.value.code == 2 and message in last_line(capsys)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------------------------
# One clear line instead of a traceback


@pytest.fixture
def conversation_files(tmp_path):
    """A tiny tracks/speaking/RTTM set, and a 2 s video of its size."""
    tracks = VideoTracks.from_dict(tracks_document())
    tracks.save(tmp_path / "tracks.json")
    speaking_of().save(tmp_path / "speaking.json")
    Diarization.from_rttm("SPEAKER rec 1 0.0 0.4 <NA> <NA> spk0 <NA> <NA>\n").save_rttm(tmp_path / "turns.rttm")
    media.write_video(tmp_path / "video.mp4", np.zeros((10, 180, 320, 3), np.uint8), 25.0, None, 16000)
    return tmp_path


def test_outputs_that_cannot_be_written_are_refused_before_the_work(conversation_files, capsys):
    folder = conversation_files
    (folder / "existing").mkdir()
    for args, message in (
            (["diarize", str(folder / "video.mp4"), "--out", str(folder / "existing")],
             f"argument --out: {folder / 'existing'} is a folder: name the file to write"),
            (["poses", str(folder / "video.mp4"), "--out", str(folder / "tracks.json" / "x.json")],
             f"argument --out: {folder / 'tracks.json' / 'x.json'}: {folder / 'tracks.json'} is a file, not a folder"),
            (["annotate", str(folder), "--out", str(folder / "tracks.json")],
             f"argument --out: {folder / 'tracks.json'} is a file: name a folder to write into")):
        with pytest.raises(SystemExit) as exited:
            main(args)
        assert exited.value.code == 2 and message in last_line(capsys)


def test_a_folder_given_as_a_video_or_a_record_is_named_as_a_folder(conversation_files, capsys):
    folder = conversation_files
    assert main(["render-poses", str(folder), str(folder / "tracks.json"), "--out", str(folder / "r.mp4")]) == 2
    assert last_line(capsys) == f"error: {folder}: is a folder, not a media file"
    assert main(["render-poses", str(folder / "video.mp4"), str(folder), "--out", str(folder / "r.mp4")]) == 2
    assert last_line(capsys) == f"error: {folder}: is a folder, not a JSON file"


def test_tracks_of_another_video_are_refused_by_the_commands(conversation_files, capsys):
    folder = conversation_files
    media.write_video(folder / "other.mp4", np.zeros((10, 96, 128, 3), np.uint8), 25.0, None, 16000)
    assert main(["render-poses", str(folder / "other.mp4"), str(folder / "tracks.json"),
                 "--out", str(folder / "r.mp4")]) == 2
    assert last_line(capsys).startswith(f"error: the tracks are of a 320x180 video, {folder / 'other.mp4'} is 128x96")
    assert main(["bind", str(folder / "other.mp4"), "--for", "multitalk", "--poses", str(folder / "tracks.json"),
                 "--speaking", str(folder / "speaking.json"), "--out", str(folder / "bound")]) == 2
    assert "the tracks are of a 320x180 video" in last_line(capsys)
    assert not (folder / "r.mp4").exists() and not (folder / "bound").exists()


def test_score_speaking_with_unknown_people_or_empty_tracks_is_one_line(conversation_files, capsys):
    folder = conversation_files
    speaking_of(track_id=9).save(folder / "stranger.json")
    VideoTracks(320, 180, 25.0, 10, []).save(folder / "empty.json")

    def score(speaking, tracks):
        return main(["score-speaking", str(folder / speaking), str(folder / "speaking.json"), "--tracks",
                     str(folder / tracks), "--truth-tracks", str(folder / "tracks.json"), "--diarization",
                     str(folder / "turns.rttm"), "--truth-diarization", str(folder / "turns.rttm")])

    assert score("stranger.json", "tracks.json") == 2
    assert last_line(capsys).startswith("error: the assignment names person 9, whom the tracks do not hold")
    assert score("speaking.json", "empty.json") == 2
    assert last_line(capsys) == f"error: {folder / 'empty.json'} holds nobody: there is no one to score"
    assert score("speaking.json", "tracks.json") == 0


def test_generate_with_tracks_at_zero_fps_is_one_line(conversation_files, capsys):
    from covog.generate import main as generate

    folder = conversation_files
    (folder / "zero.json").write_text(json.dumps(tracks_document(fps=0)))
    code = generate(["--model", str(folder), "--reference", str(folder / "ref.png"), "--poses",
                     str(folder / "zero.json"), "--audio", str(folder / "video.mp4"), "--out", str(folder / "o.mp4")])
    assert code == 2 and "zero.json: malformed document (ValueError: fps 0.0 must be above 0" in last_line(capsys)


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"),
    ('{"format": "mit_annotator.manifest", "version": 99, "clips": [], "videos": []}',
     "version 99 is newer than this mit_annotator reads"),
    ("[]", "expected a JSON object holding 'mit_annotator.manifest', got list"),
])
def test_report_on_a_corrupt_or_future_manifest_is_one_line(tmp_path, capsys, text, message):
    (tmp_path / "manifest.json").write_text(text)
    assert main(["report", str(tmp_path)]) == 2
    line = last_line(capsys)
    assert line.startswith(f"error: {tmp_path / 'manifest.json'}") and message in line


def test_a_corrupt_video_record_is_named_with_what_to_do(tmp_path, capsys):
    from mit_annotator.pipeline.batch import BatchError, read_video_record

    videos = tmp_path / ".annotate" / "videos"
    videos.mkdir(parents=True)
    (videos / "src_talk.json").write_text('{"format": "mit_annotator.video_rec')
    with pytest.raises(BatchError, match=f"{videos / 'src_talk.json'}: not valid JSON .* delete the file to annotate "
                                         "its video again"):
        read_video_record(tmp_path, "src_talk")


def test_generate_refuses_poses_that_run_far_past_the_audio(conversation_files, capsys):
    """A tracks file may say 10 million frames (within the limit): with a second of audio, generate once planned
    them all (terabytes); it stops before the model loads."""
    from PIL import Image

    from covog.generate import main as generate

    folder = conversation_files
    (folder / "long.json").write_text(json.dumps(tracks_document(num_frames=MAX_FRAMES)))
    Image.new("RGB", (64, 64)).save(folder / "ref.png")
    media.write_wav(folder / "one_second.wav", np.zeros(16000, np.float32), 16000)
    code = generate(["--model", str(folder / "no-model"), "--reference", str(folder / "ref.png"), "--poses",
                     str(folder / "long.json"), "--audio", str(folder / "one_second.wav"), "--out",
                     str(folder / "o.mp4")])
    assert code == 2
    assert last_line(capsys) == (f"error: the pose sequence ({MAX_FRAMES} frames, 400000.00 s) runs past the audio "
                                 "(1.00 s): trim the poses to the audio")
