import subprocess
import sys

from conftest import LIBRISPEECH, PACK_ROOT

from mit_annotator.core.records import Diarization, SpeakingActivity, VideoTracks


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mit_annotator", *args], capture_output=True, text=True,
                          cwd=PACK_ROOT, timeout=300)


def test_make_conversation_writes_video_ground_truth_and_preview(tmp_path):
    speech = str(LIBRISPEECH) if LIBRISPEECH.is_dir() else "espeak"
    done = run_cli("make-conversation", "--out", str(tmp_path), "--people", "2", "--seconds", "5", "--width", "160",
                   "--height", "96", "--offscreen", "--speech", speech)
    assert done.returncode == 0, done.stderr
    assert "2 people, 125 frames at 25 fps" in done.stdout and "off-screen voice" in done.stdout
    expected = {"video.mp4", "person_0.wav", "person_1.wav", "offscreen_0.wav", "tracks.json", "speaking.json",
                "diarization.rttm", "conversation.json", "preview.png"}
    assert {p.name for p in tmp_path.iterdir()} == expected  # and no partial files left behind
    tracks = VideoTracks.load(tmp_path / "tracks.json")
    assert (tracks.width, tracks.height, tracks.num_frames, len(tracks.tracks)) == (160, 96, 125, 2)
    assert len(SpeakingActivity.load(tmp_path / "speaking.json").unassigned_voices) == 1
    assert len(Diarization.load_rttm(tmp_path / "diarization.rttm").speakers) >= 2


def test_bad_arguments_give_one_clear_line(tmp_path):
    done = run_cli("make-conversation", "--out", str(tmp_path), "--people", "6")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: ConversationSpec.num_people must be 2, 3 or 4, got 6"
    done = run_cli("make-conversation", "--out", str(tmp_path), "--speech", str(tmp_path / "none"))
    assert done.returncode == 2 and "does not exist" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
