import numpy as np

from mit_annotator.synthetic import ConversationSpec, synthesize_conversation
from mit_annotator.vision.shots import ShotDetector, detect_shots


def test_a_cut_between_two_conversations_is_found(speech):
    spec = dict(num_people=2, seconds=3.0, width=160, height=96)
    first = synthesize_conversation(ConversationSpec(seed=1, **spec), speech)
    second = synthesize_conversation(ConversationSpec(seed=2, **spec), speech)
    frames = list(first.frames()) + list(second.frames())
    shots = detect_shots(frames, fps=25.0)
    assert shots == [(0, 75), (75, 150)]


def test_one_continuous_shot_and_no_frames(small_conversation):
    assert detect_shots(small_conversation.frames(), fps=25.0) == [(0, small_conversation.spec.num_frames)]
    assert ShotDetector(25.0).shots() == []
    assert detect_shots([np.zeros((8, 8, 3), np.uint8)], fps=25.0) == [(0, 1)]


def test_frames_reach_the_detector_at_pyscenedetects_own_processing_size(monkeypatch):
    """As PySceneDetect's SceneManager gives them (auto_downscale: the longer side to about 256 px): the content
    detector's threshold is meant for that size, and a 720p frame at full size costs it many times more."""
    detector = ShotDetector(25.0)
    seen = []
    monkeypatch.setattr(detector.detector, "process_frame", lambda timecode, image: seen.append(image.shape) or [])
    for width, height in ((640, 360), (1280, 720), (360, 640), (200, 100)):
        detector.add(np.zeros((height, width, 3), np.uint8))
    assert seen == [(144, 256, 3), (144, 256, 3), (256, 144, 3), (100, 200, 3)]


def test_the_cuts_of_real_footage_are_pyscenedetects_own(tmp_path):
    """Real footage with two cuts (interact_11, talking_head_1, interact_11 again): our detector fed decoded frames
    finds the cuts PySceneDetect's own detect() finds reading the same file."""
    import scenedetect
    from conftest import shared_path

    from mit_annotator.core import media

    parts = [media.read_frames(shared_path("video", name), start, start + 40, size=(640, 360))
             for name, start in (("interact_11.mp4", 0), ("talking_head_1.mp4", 0), ("interact_11.mp4", 100))]
    path = media.write_video(tmp_path / "cuts.mp4", np.concatenate(parts), 25.0, crf=18, preset="veryfast")
    theirs = scenedetect.detect(str(path), scenedetect.ContentDetector(threshold=27.0, min_scene_len=15))
    ours = detect_shots(media.iter_frames(path), fps=25.0)
    assert ours == [(0, 40), (40, 80), (80, 120)]
    assert ours == [(start.frame_num, end.frame_num) for start, end in theirs]
