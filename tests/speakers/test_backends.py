"""A new backend is one module and one registry line: a stand-in diarizer and a stand-in active-speaker model,
each written as its own file here and registered with one line, are offered and run by the command line, the
nodes and who_speaks, without touching any other file."""

import logging
import sys

import numpy as np
import pytest
from conftest import PACK_ROOT

from mit_annotator.audio import diarizers
from mit_annotator.core import media
from mit_annotator.core.backends import Backend
from mit_annotator.pipeline import cli
from mit_annotator.speakers import who_speaks as ws

STANDIN_DIARIZER = '''
from mit_annotator.core.records import Diarization, SpeakerTurn


class HalfAndHalf:
    """Two voices: the first half of the recording is A's, the rest B's (the configs it was given kept)."""

    configs = []

    def __call__(self, samples, config=None, uri="recording", progress=None):
        HalfAndHalf.configs.append(config)
        middle = len(samples) / 16000 / 2
        return Diarization([SpeakerTurn("A", 0.0, middle), SpeakerTurn("B", middle, 2 * middle)], uri=uri)


def make(options):
    return HalfAndHalf()
'''

STANDIN_ACTIVE_SPEAKER = '''
class Oracle:
    """Scores each person by the truth it is given (standin_truth.SCORES), after reading every frame."""

    calls = 0

    def scores(self, video, tracks, audio=None, frames=None, progress=None):
        import standin_truth

        Oracle.calls += 1
        for _ in frames:
            pass
        return {track_id: values.copy() for track_id, values in standin_truth.SCORES.items()}


def make(options):
    return Oracle()
'''


@pytest.fixture
def standins(tmp_path, monkeypatch):
    (tmp_path / "standin_diarizer.py").write_text(STANDIN_DIARIZER)
    (tmp_path / "standin_asd.py").write_text(STANDIN_ACTIVE_SPEAKER)
    (tmp_path / "standin_truth.py").write_text("SCORES = {}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(diarizers.DIARIZERS, "halves", Backend("standin_diarizer:make", "half-and-half stand-in"))
    monkeypatch.setitem(ws.ACTIVE_SPEAKER_MODELS, "oracle", Backend("standin_asd:make", "oracle stand-in"))
    yield tmp_path
    for name in ("standin_diarizer", "standin_asd", "standin_truth"):
        sys.modules.pop(name, None)


def test_a_registered_diarizer_runs_from_the_command_line(standins, tmp_path, capsys, caplog):
    wav = media.write_wav(tmp_path / "talk.wav", np.zeros(16000 * 4, np.float32), 16000)
    caplog.set_level(logging.INFO, "mit_annotator")
    assert cli.main(["diarize", str(wav), "--out", str(tmp_path / "talk.rttm"), "--diarizer", "halves"]) == 0
    lines = (tmp_path / "talk.rttm").read_text().splitlines()
    assert [(line.split()[3], line.split()[4], line.split()[7]) for line in lines] == [
        ("0.000", "2.000", "A"), ("2.000", "2.000", "B")]
    assert "diarizing with the half-and-half stand-in" in caplog.text
    assert "2 speakers, 2 turns" in capsys.readouterr().out


def test_a_registered_diarizer_is_offered_and_run_by_the_diarize_node(standins):
    sys.path.insert(0, str(PACK_ROOT))
    import torch

    from nodes.speaker_nodes import Diarize

    assert "halves" in Diarize.INPUT_TYPES()["required"]["diarizer"][1]["options"]
    audio = {"waveform": torch.zeros(1, 1, 16000 * 3), "sample_rate": 16000}
    diarization, _ = Diarize.execute(audio, 0, 1, 4, "halves")
    assert [(t.speaker, t.start, t.end) for t in diarization.turns] == [("A", 0.0, 1.5), ("B", 1.5, 3.0)]
    Diarize.execute(audio, 2, 1, 3, "halves")
    import standin_diarizer

    asked = [(c.num_speakers, c.min_speakers, c.max_speakers) for c in standin_diarizer.HalfAndHalf.configs]
    assert asked == [(None, 1, 4), (2, 2, 2)]  # the node's counts reach the diarizer (0: find out; n: exactly n)


def test_an_unknown_backend_is_named_with_the_choices():
    with pytest.raises(ValueError, match="diarizer must be one of auto, overlap, overlap-embeddings, offline, "
                                         "pyannote, got 'nemo'"):
        diarizers.make_diarizer("nemo")
    with pytest.raises(ValueError, match="active-speaker model must be one of lr_asd, got 'talknet'"):
        ws.load_active_speaker("asd", backend="talknet")


def test_a_registered_active_speaker_model_decides_who_speaks(standins, speech):
    import standin_truth

    from mit_annotator.synthetic import ConversationSpec, synthesize_conversation

    conversation = synthesize_conversation(ConversationSpec(num_people=2, seconds=8.0, width=320, height=192,
                                                            seed=3), speech)
    standin_truth.SCORES.update({p.track_id: p.scores for p in conversation.speaking.people})
    model = ws.load_active_speaker("asd", backend="oracle")
    assert type(model).__name__ == "Oracle" and ws.load_active_speaker("lips", backend="oracle") is None
    found, _ = ws.who_speaks(None, conversation.tracks, conversation.diarization, active_speaker=model,
                             audio=conversation.mix, frames=conversation.frames())
    assert type(model).calls == 1
    assert [(p.track_id, p.voice, p.evidence) for p in found.people] == [
        (p.track_id, p.voice, "active_speaker") for p in conversation.speaking.people]


def test_the_assign_speakers_node_asks_the_diarizer_for_its_voice_counts(standins, speech):
    """max_speakers reaches the diarizer; 0 means the people on screen and two more (off-screen voices)."""
    sys.path.insert(0, str(PACK_ROOT))
    import standin_diarizer

    from mit_annotator.synthetic import ConversationSpec, synthesize_conversation
    from nodes.comfy_bridge import audio_to_comfy
    from nodes.speaker_nodes import AssignSpeakers

    conversation = synthesize_conversation(ConversationSpec(num_people=2, seconds=3.0, width=160, height=96,
                                                            seed=1), speech)
    audio = audio_to_comfy(conversation.mix, 16000)
    for max_speakers in (3, 0):
        AssignSpeakers.execute(conversation.tracks, audio, max_speakers, "halves")
    asked = [(c.num_speakers, c.max_speakers) for c in standin_diarizer.HalfAndHalf.configs]
    assert asked == [(None, 3), (None, 4)]
