"""Synthetic conversations with exact ground truth (test fixtures, benchmarks, the README example, a toy task)."""

from mit_annotator.synthetic.conversation import Conversation, ConversationSpec, synthesize_conversation
from mit_annotator.synthetic.speech import EspeakSource, LibriSpeechSource, SpeechSource, default_speech_source

__all__ = ["Conversation", "ConversationSpec", "synthesize_conversation", "EspeakSource", "LibriSpeechSource",
           "SpeechSource", "default_speech_source"]
