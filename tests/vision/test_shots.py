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
