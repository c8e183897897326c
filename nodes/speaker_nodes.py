"""Who speaks: diarize the audio and bind each voice to the person on screen who speaks it."""

from __future__ import annotations

import numpy as np
from comfy_api.latest import io

from mit_annotator.audio.diarization import STAGES, DiarizationConfig
from mit_annotator.audio.diarizers import AUTO, DIARIZERS, FALLBACK, diarizer_choices, make_diarizer
from mit_annotator.audio.voice_activity import require_silero_vad
from mit_annotator.core import media
from mit_annotator.core.models import KNOWN_MODELS
from mit_annotator.core.progress import within
from mit_annotator.core.records import PROCESSING_FPS, SAMPLE_RATE
from mit_annotator.speakers.binding import (
    ORDERS,
    diarization_timeline,
    person_thumbnail,
    speaker_order,
    speaking_timeline_with_faces,
)
from mit_annotator.speakers.timeline import speaking_timeline
from mit_annotator.speakers.who_speaks import SPEAKER_EVIDENCE, load_active_speaker, who_speaks

from .comfy_bridge import (
    active_speaker_choices,
    audio_to_mono_16k,
    check_audio_covers,
    check_images,
    check_people,
    frames_to_image,
    image_to_frames,
    image_to_rgb,
    progress_callback,
    segmentation_choices,
)
from .pack_types import ActiveSpeakerScores, Diarization, Speaking, Tracks

# a missing silero-vad leaves these nodes out at load; checked without importing it (its import would set torch's CPU
# threads to 1 for all of ComfyUI)
require_silero_vad()

_diarizers: dict = {}  # loaded once per session
MAX_SPEAKERS = 16  # the most voices the nodes look for
SEGMENTATION_TOOLTIP = (
    "The overlap-aware diarizer's model, in ComfyUI/models/speaker_segmentation/: pyannote's segmentation model "
    "(MIT licence), pytorch_model.bin from https://whisperx.s3.eu-west-2.amazonaws.com/model_weights/segmentation/"
    "0b5b3216d60a2d32fc086b47ea8c67589aaeb26b7e07fcbe620d6d0b83e209ea/pytorch_model.bin (or the gated "
    "huggingface.co/pyannote/segmentation); converted once to pyannote_segmentation.safetensors beside it, its "
    "pickled classes never run.")
DIARIZER_TOOLTIP = (
    "; ".join(f"{name}: the {backend.description}" for name, backend in DIARIZERS.items())
    + f". auto: {AUTO['diarize']} (Diarize) or {AUTO['assign']} (Assign Speakers) when pyannote's segmentation "
    f"model is in ComfyUI/models/speaker_segmentation/, else {FALLBACK}. pyannote needs pyannote.audio and a Hugging "
    "Face token in HF_TOKEN (never stored in the workflow).")
_active_speakers: dict = {}


class AssignSpeakers(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_AssignSpeakers", display_name="Assign Speakers to People (MIT-CovOG)",
            category="MIT-CovOG/annotate",
            description=("Finds who speaks when in the audio (diarization, overlaps included) and gives each voice to "
                         "the tracked person who speaks it, judged by the active-speaker model (LR-ASD, weights in "
                         "ComfyUI/models/active_speaker/) or lip activity, and by how the mouth follows the voice's "
                         "loudness: per-person speaking scores and speak/listen segments, no hand-painted masks. A "
                         "voice that matches no one (off screen) stays unassigned."),
            inputs=[
                Tracks.Input("tracks"),
                io.Audio.Input("audio"),
                io.Int.Input("max_speakers", default=0, min=0, max=MAX_SPEAKERS, tooltip=(
                    "Most voices to look for; 0: the number of people plus 2 (off-screen voices).")),
                io.Combo.Input("diarizer", options=list(diarizer_choices()), default="auto", tooltip=DIARIZER_TOOLTIP),
                io.Image.Input("images", optional=True, tooltip=(
                    "The frames the tracks came from: the active-speaker model reads the faces in them, and tracks "
                    "without keypoints need them for lip motion. Without them only keypoint lips are used.")),
                io.Combo.Input("speaker_evidence", options=list(SPEAKER_EVIDENCE), default="auto", optional=True,
                               tooltip=("asd: the active-speaker model (needs its weights and the images); lips: lip "
                                        "activity; auto: asd when its weights are found and images are given. Both "
                                        "add the mouth's synchrony with the audio.")),
                io.Combo.Input("asd_model", options=active_speaker_choices(), optional=True, tooltip=(
                    "LR-ASD weights in ComfyUI/models/active_speaker/: pretrain_AVA.model (the default: tells a "
                    "speaker from a listener who moves their lips best) or finetuning_TalkSet.model, from "
                    "github.com/Junhua-Liao/LR-ASD (weight/).")),
                Diarization.Input("diarization", optional=True, tooltip=(
                    "Who speaks when, from Diarize: used instead of diarizing the audio here.")),
                ActiveSpeakerScores.Input("active_speakers", optional=True, tooltip=(
                    "Per-person active-speaker scores, from Active Speakers: used instead of running the model "
                    "here.")),
                io.Combo.Input("segmentation_model", options=segmentation_choices(), optional=True,
                               tooltip=SEGMENTATION_TOOLTIP),
            ],
            outputs=[Speaking.Output("speaking"), io.Image.Output("timeline")],
        )

    @classmethod
    def execute(cls, tracks, audio, max_speakers, diarizer="auto", images=None, speaker_evidence="auto",
                asd_model=KNOWN_MODELS["lr_asd"].filename, diarization=None, active_speakers=None,
                segmentation_model=KNOWN_MODELS["pyannote_segmentation"].filename) -> io.NodeOutput:
        check_people(tracks)
        samples = audio_to_mono_16k(audio)
        check_audio_covers(len(samples) / SAMPLE_RATE, tracks.num_frames, tracks.fps)
        if images is not None:
            check_images(images, tracks)
        if images is None and speaker_evidence == "asd" and active_speakers is None:
            raise ValueError("speaker_evidence 'asd' needs the images the tracks came from")
        if images is None and any(track.keypoints is None for track in tracks.tracks):
            raise ValueError("these tracks have no keypoints (faces only, e.g. from Detect Faces): connect the images "
                             "they came from, whose faces the lips and the active-speaker model are read from")
        # the assignment counts frames at 25 fps, LR-ASD's rate; the speaking comes back at the tracks' rate
        at_rate = tracks.at_rate(PROCESSING_FPS)
        total = STAGES + at_rate.num_frames + 1  # diarization's stages, each frame's evidence, the assignment
        bar = progress_callback(total)
        bar(0, total)
        if diarization is None:
            diarization = get_diarizer(diarizer, segmentation_model, "assign")(
                samples, DiarizationConfig.for_people(len(tracks.tracks), max_speakers),
                progress=within(bar, 0, total))
        bar(STAGES, total)
        frames = None if images is None else media.frames_at_rate(image_to_frames(images), tracks.num_frames,
                                                                   tracks.fps, PROCESSING_FPS)
        model = None
        if active_speakers is None:
            model = get_active_speaker(speaker_evidence if images is not None else "lips", asd_model)
        given = None if active_speakers is None else scores_for(active_speakers, at_rate)
        found, _ = who_speaks(None, at_rate, diarization, active_speaker=model, audio=samples, frames=frames,
                              progress=within(bar, STAGES, total), scores=given)
        bar(total, total)
        speaking = found.at_rate(tracks.fps, tracks.num_frames)
        return io.NodeOutput(speaking, frames_to_image(speaking_timeline(speaking)[None]))


class Diarize(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_Diarize", display_name="Diarize (MIT-CovOG)", category="MIT-CovOG/annotate",
            description=("Who speaks when in the audio, voice by voice, two at once where they overlap (pyannote's "
                         "segmentation model with speaker embeddings; or offline: silero-vad + resemblyzer, nothing "
                         "to download; or pyannote.audio's pipeline), with a timeline picture: one row per voice. "
                         "Assign Speakers then says which person on screen each voice belongs to."),
            inputs=[
                io.Audio.Input("audio"),
                io.Int.Input("num_speakers", default=0, min=0, max=MAX_SPEAKERS, tooltip=(
                    "Exactly this many voices, when you know; 0: find out, between min and max.")),
                io.Int.Input("min_speakers", default=1, min=1, max=MAX_SPEAKERS),
                io.Int.Input("max_speakers", default=DiarizationConfig.max_speakers, min=1, max=MAX_SPEAKERS),
                io.Combo.Input("diarizer", options=list(diarizer_choices()), default="auto", tooltip=DIARIZER_TOOLTIP),
                io.Combo.Input("segmentation_model", options=segmentation_choices(), optional=True,
                               tooltip=SEGMENTATION_TOOLTIP),
            ],
            outputs=[Diarization.Output("diarization"), io.Image.Output("timeline")],
        )

    @classmethod
    def validate_inputs(cls, min_speakers=None, max_speakers=None):
        return speaker_range_error(min_speakers, max_speakers) or True

    @classmethod
    def execute(cls, audio, num_speakers, min_speakers, max_speakers, diarizer,
                segmentation_model=KNOWN_MODELS["pyannote_segmentation"].filename) -> io.NodeOutput:
        samples = audio_to_mono_16k(audio)
        error = speaker_range_error(min_speakers, max_speakers)
        if error:
            raise ValueError(error)
        config = DiarizationConfig(num_speakers=num_speakers or None, min_speakers=min_speakers,
                                   max_speakers=max_speakers)
        progress = progress_callback(STAGES)  # voice activity, embeddings, clustering, turns
        progress(0, STAGES)
        diarization = get_diarizer(diarizer, segmentation_model)(samples, config, progress=progress)
        picture = diarization_timeline(diarization, len(samples) / SAMPLE_RATE)
        return io.NodeOutput(diarization, frames_to_image(picture[None]))


def speaker_range_error(min_speakers: int | None, max_speakers: int | None) -> str | None:
    """What is wrong with Diarize's speaker range, before it runs (ComfyUI then leaves these two inputs' own ranges
    to this check); None when nothing is, or for a value fed by a link (not known yet)."""
    for name, value in (("min_speakers", min_speakers), ("max_speakers", max_speakers)):
        if value is not None and not 1 <= value <= MAX_SPEAKERS:
            return f"{name} {value} must be between 1 and {MAX_SPEAKERS}"
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        return f"min_speakers ({min_speakers}) is more than max_speakers ({max_speakers})"
    return None


class ActiveSpeakers(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_ActiveSpeakers", display_name="Active Speakers, LR-ASD (MIT-CovOG)",
            category="MIT-CovOG/annotate",
            description=("Per person and frame, whether that face is the one speaking (> 0: speaking), from LR-ASD "
                         "(weights in ComfyUI/models/active_speaker/) reading each tracked face and the audio. The "
                         "scores are evidence for Assign Speakers; frames where a face is unseen have none."),
            inputs=[
                Tracks.Input("tracks", tooltip="The people, with face boxes (Detect Faces, or pose keypoints)."),
                io.Image.Input("images", tooltip="The frames the tracks came from."),
                io.Audio.Input("audio"),
                io.Combo.Input("asd_model", options=active_speaker_choices(), tooltip=(
                    "LR-ASD weights in ComfyUI/models/active_speaker/ (pretrain_AVA.model or finetuning_TalkSet.model, "
                    "github.com/Junhua-Liao/LR-ASD, weight/).")),
            ],
            outputs=[ActiveSpeakerScores.Output("active_speakers")],
        )

    @classmethod
    def execute(cls, tracks, images, audio, asd_model) -> io.NodeOutput:
        check_people(tracks)
        check_images(images, tracks)
        samples = audio_to_mono_16k(audio)
        check_audio_covers(len(samples) / SAMPLE_RATE, tracks.num_frames, tracks.fps)
        model = get_active_speaker("asd", asd_model)
        at_rate = tracks.at_rate(PROCESSING_FPS)
        frames = media.frames_at_rate(image_to_frames(images), tracks.num_frames, tracks.fps, PROCESSING_FPS)
        scores = model.scores(None, at_rate, audio=samples, frames=frames,
                              progress=progress_callback(at_rate.num_frames))
        return io.NodeOutput({"fps": at_rate.fps, "num_frames": at_rate.num_frames, "scores": scores})


class SpeakingTimeline(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_SpeakingTimeline", display_name="Speaking Timeline (MIT-CovOG)",
            category="MIT-CovOG/annotate",
            description=("Who speaks when, as a picture you can check at a glance: one row per person, starting with "
                         "that person's face from the video (so you see who 'person 0' is), their slot number in the "
                         "speaker order the binding nodes use, their voice, and their speaking time."),
            inputs=[
                Speaking.Input("speaking", tooltip="From Assign Speakers."),
                Tracks.Input("tracks"),
                io.Image.Input("images", tooltip="The frames the tracks came from (for the faces)."),
                io.Combo.Input("order", options=list(ORDERS), default="first_to_speak", tooltip=(
                    "Row order: the speaker order of Speaker Masks and Split Voices (first_to_speak: the assignment's "
                    "order in time), track ids, or left to right on screen.")),
                io.Int.Input("width", default=1000, min=400, max=4096, step=8),
            ],
            outputs=[io.Image.Output("timeline")],
        )

    @classmethod
    def execute(cls, speaking, tracks, images, order, width) -> io.NodeOutput:
        check_people(tracks)
        check_images(images, tracks)
        slots = speaker_order(speaking, tracks, order)
        frames = FrameReader(images)
        faces = {t: person_thumbnail(frames, tracks, t) for t in slots if t in [x.track_id for x in tracks.tracks]}
        picture = speaking_timeline_with_faces(speaking, faces, slots, width=width)
        return io.NodeOutput(frames_to_image(picture[None]))


class FrameReader:
    """Frames of a ComfyUI IMAGE as RGB uint8, converted only when read."""

    def __init__(self, images):
        self.images = images

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> np.ndarray:
        return image_to_rgb(self.images[index])


def scores_for(active_speakers: dict, tracks) -> dict[int, np.ndarray]:
    """Active Speakers' scores for the tracks (at the same rate), by track id."""
    if active_speakers["num_frames"] != tracks.num_frames or abs(active_speakers["fps"] - tracks.fps) > 1e-6:
        raise ValueError(f"the active-speaker scores cover {active_speakers['num_frames']} frames at "
                         f"{active_speakers['fps']:g} fps, the tracks {tracks.num_frames} at {tracks.fps:g}: score "
                         "the same tracks")
    unknown = [t.track_id for t in tracks.tracks if t.track_id not in active_speakers["scores"]]
    if unknown:
        raise ValueError(f"the active-speaker scores have no person {unknown}: score the same tracks")
    return {t.track_id: active_speakers["scores"][t.track_id] for t in tracks.tracks}


def get_active_speaker(evidence: str, model: str):
    """The active-speaker model, loaded once per session (None for lip evidence or when auto finds no weights)."""
    if (evidence, model) not in _active_speakers:
        _active_speakers[(evidence, model)] = load_active_speaker(evidence, model)
    return _active_speakers[(evidence, model)]


def get_diarizer(kind: str = "auto", segmentation_model: str = KNOWN_MODELS["pyannote_segmentation"].filename,
                 use: str = "diarize"):
    """The diarizer called `kind` (for `use`: see mit_annotator.audio.diarizers.AUTO), loaded once per session."""
    if (kind, segmentation_model, use) not in _diarizers:
        _diarizers[(kind, segmentation_model, use)] = make_diarizer(kind, segmentation_model=segmentation_model,
                                                                    use=use)
    return _diarizers[(kind, segmentation_model, use)]


NODES = [AssignSpeakers, Diarize, ActiveSpeakers, SpeakingTimeline]
