"""Speaker binding for the multi-speaker talking-video nodes creators already run: speaker k's mask and voice, in the
order of who speaks first, from the annotator's tracks and who-speaks assignment (no hand-painted masks, no stems cut
by hand). ComfyUI core's WanInfiniteTalkToVideo (two_speakers): mask_1 / mask_2, and voice 1 / voice 2 through
AudioEncoderEncode; WanVideoWrapper's MultiTalk: audio_1..4 and `masks` as ref_target_masks."""

from __future__ import annotations

import logging

import numpy as np
import torch
from comfy_api.latest import io

from mit_annotator.speakers.binding import (
    FADE_SECONDS,
    ORDERS,
    REGIONS,
    masks_preview,
    nearest_seen_frame,
    speaker_masks,
    speaker_order,
    split_voices,
)
from mit_annotator.speakers.voice_layouts import MOTION_FRAMES, LayoutError, sequential_plan, sequential_voices

from .comfy_bridge import audio_parts, check_audio_covers, check_people, frames_to_image, image_to_rgb
from .pack_types import Speaking, Tracks

MAX_SLOTS = 4  # the most speakers the models above take (MultiTalk: audio_1..4)
log = logging.getLogger("MIT-CovOG")


class SpeakerMasks(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_SpeakerMasks", display_name="Speaker Masks (MIT-CovOG)", category="MIT-CovOG/binding",
            description=("One MASK per person for multi-speaker models (InfiniteTalk's mask_1/mask_2, MultiTalk's "
                         "ref_target_masks), numbered in the speaker order of Split Voices: by default the first "
                         "person to speak is 1, whatever their place on screen. Face, head or body region; one static "
                         "mask over the reference frame (what InfiniteTalk and MultiTalk read) or one per frame; "
                         "grown and feathered in pixels. `masks` holds every person's static mask as one batch; the "
                         "preview shows them numbered."),
            inputs=[
                Tracks.Input("tracks", tooltip="The people (with face boxes for the face and head regions)."),
                Speaking.Input("speaking", tooltip="Who speaks when, from Assign Speakers."),
                io.Combo.Input("region", options=list(REGIONS), default="face", tooltip=(
                    "face: the face box; head: the face box widened to the hair; body: the person's box.")),
                io.Combo.Input("mode", options=["static", "per_frame"], default="static", tooltip=(
                    "static: one mask per person over the reference frame (InfiniteTalk, MultiTalk); per_frame: "
                    "one per video frame, following the person.")),
                io.Int.Input("reference_frame", default=0, min=0, max=100000, tooltip=(
                    "The frame the static masks (and the preview) are drawn over; a person not seen there gets "
                    "their nearest frame's region.")),
                io.Combo.Input("order", options=list(ORDERS), default="first_to_speak", tooltip=(
                    "Slot order: first_to_speak (the assignment's order in time; people who never speak last), "
                    "track_id, or left_to_right. Use the same order in Split Voices.")),
                io.Int.Input("grow", default=0, min=0, max=512, tooltip="Pixels added on every side."),
                io.Int.Input("feather", default=0, min=0, max=512, tooltip=(
                    "Pixels over which the mask fades to 0 outside its (grown) region.")),
                io.Image.Input("images", optional=True, tooltip="The frames, for the preview (black without them)."),
            ],
            outputs=[*(io.Mask.Output(f"mask_{k}", tooltip=f"Speaker {k}'s mask, in the speaker order (all zeros "
                                                                  "when the assignment has fewer people).")
                       for k in range(1, MAX_SLOTS + 1)),
                     io.Mask.Output("masks", tooltip="Every person's static mask, one per person in the speaker order "
                                                     "(MultiTalk's ref_target_masks; InfiniteTalk Segment's masks)."),
                     io.Image.Output("preview", tooltip="The masks over the reference frame, numbered."),
                     io.Int.Output("people", tooltip="How many people the assignment holds.")],
        )

    @classmethod
    def execute(cls, tracks, speaking, region, mode, reference_frame, order, grow, feather,
                images=None) -> io.NodeOutput:
        check_people(tracks)
        if not speaking.people:
            raise ValueError("the assignment has no people: run Assign Speakers on these tracks")
        if not 0 <= reference_frame < tracks.num_frames:
            raise ValueError(f"reference_frame {reference_frame} is outside the video's {tracks.num_frames} frames")
        slots = speaker_order(speaking, tracks, order)
        if len(slots) > MAX_SLOTS:
            log.warning("[MIT-CovOG] %d people: masks 1-%d go to %s; `masks` holds all of them", len(slots),
                        MAX_SLOTS, slots[:MAX_SLOTS])
        static = np.concatenate([
            speaker_masks(tracks, [t], region, [nearest_seen_frame(tracks, t, reference_frame, region)], grow,
                          feather)[:, 0] for t in slots])  # (people, H, W)
        if mode == "per_frame":
            moving = speaker_masks(tracks, slots[:MAX_SLOTS], region, None, grow, feather)  # (people, F, H, W)
            outputs = [torch.from_numpy(m) for m in moving]
            empty = torch.zeros(tracks.num_frames, tracks.height, tracks.width)
        else:
            outputs = [torch.from_numpy(m[None]) for m in static[:MAX_SLOTS]]
            empty = torch.zeros(1, tracks.height, tracks.width)
        outputs += [empty.clone() for _ in range(MAX_SLOTS - len(outputs))]
        frame = (np.zeros((tracks.height, tracks.width, 3), np.uint8) if images is None
                 else _frame(images, reference_frame, tracks))
        preview = masks_preview(frame, static, [f"{k + 1}: person {t}" for k, t in enumerate(slots)])
        return io.NodeOutput(*outputs, torch.from_numpy(static), frames_to_image(preview[None]), len(slots))


class SplitVoices(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_SplitVoices", display_name="Split Voices (MIT-CovOG)", category="MIT-CovOG/binding",
            description=("One AUDIO per person from the mixed track, in the speaker order of Speaker Masks: the mix "
                         "while that person speaks (their segments from Assign Speakers, short fades at the edges), "
                         "silence elsewhere; each as long as the input, at its rate and channels (the parallel "
                         "layout). A per-person recording given as voice_k passes through unchanged. Feed MultiTalk's "
                         "audio_1..4 with multi_audio_type 'para' (the voices play in parallel, as in the "
                         "conversation), or CovOG. Core's WanInfiniteTalkToVideo plays its second voice after its "
                         "first: use InfiniteTalk Segment there."),
            inputs=[
                io.Audio.Input("audio", tooltip="The conversation's mixed audio (the video's own)."),
                Speaking.Input("speaking", tooltip="Who speaks when, from Assign Speakers."),
                io.Combo.Input("order", options=list(ORDERS), default="first_to_speak", tooltip=(
                    "Slot order; the same as in Speaker Masks (left_to_right needs the tracks).")),
                io.Int.Input("fade_ms", default=int(FADE_SECONDS * 1000), min=0, max=500, tooltip=(
                    "Each speaking segment fades in and out over this long, inside the segment.")),
                Tracks.Input("tracks", optional=True, tooltip="Needed for the left_to_right order."),
                *(io.Audio.Input(f"voice_{k}", optional=True,
                                 tooltip=f"Speaker {k}'s own recording: passed through as it is.")
                  for k in range(1, MAX_SLOTS + 1)),
            ],
            outputs=[*(io.Audio.Output(f"voice_{k}", tooltip=f"Speaker {k}'s voice, as long as the input (silent "
                                                              "when the assignment has fewer people).")
                       for k in range(1, MAX_SLOTS + 1)),
                     io.Int.Output("people", tooltip="How many people the assignment holds.")],
        )

    @classmethod
    def execute(cls, audio, speaking, order, fade_ms, tracks=None, **given) -> io.NodeOutput:
        waveform, rate = audio_parts(audio)
        if not speaking.people:
            raise ValueError("the assignment has no people: run Assign Speakers first")
        if tracks is not None:
            check_people(tracks)
        slots = speaker_order(speaking, tracks, order)
        extra = sorted(int(name.split("_")[1]) for name, value in given.items()
                       if value is not None and int(name.split("_")[1]) > len(slots))
        if extra:
            raise ValueError(f"voice_{extra[0]} is given but the assignment has {len(slots)} people: more voices "
                             "than people (connect per-person recordings to the first slots only)")
        check_audio_covers(waveform.shape[-1] / rate, speaking.num_frames, speaking.fps)
        mix = waveform[0].float().cpu().numpy()  # (channels, samples)
        split = split_voices(mix, rate, speaking, slots[:MAX_SLOTS], fade_ms / 1000)
        voices = []
        for k in range(MAX_SLOTS):
            own = given.get(f"voice_{k + 1}")
            if own is not None:
                voices.append(own)
            elif k < len(split):
                voices.append({"waveform": torch.from_numpy(split[k])[None], "sample_rate": rate})
            else:
                voices.append({"waveform": torch.zeros_like(waveform[:1]), "sample_rate": rate})
        return io.NodeOutput(*voices, len(slots))


class InfiniteTalkSegment(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_InfiniteTalkSegment",
            display_name="InfiniteTalk Segment, sequential voices (MIT-CovOG)", category="MIT-CovOG/binding",
            description=("The two voices and masks of one segment for ComfyUI core's WanInfiniteTalkToVideo "
                         "(two_speakers), which plays its second audio after the whole of its first (its audio layout "
                         "is sequential, not parallel): the first voice up to the change of speaker, then the second, "
                         "each with the mask of the person speaking it. A conversation with more changes is made of "
                         "segments (a change each): run segment 0, then segment 1 with previous_frames = the joined "
                         "video's motion_frame_count frames from `previous_start` (Image From Batch), and join each "
                         "segment's output with InfiniteTalk Join. Two people speaking at once cannot be played one "
                         "after the other: the node says when; MultiTalk (Split Voices, 'para') plays them in "
                         "parallel."),
            inputs=[
                io.Audio.Input("audio", tooltip="The conversation's mixed audio (the video's own)."),
                Speaking.Input("speaking", tooltip="Who speaks when, from Assign Speakers."),
                io.Mask.Input("masks", tooltip="Speaker Masks' `masks`: every person's mask, in the speaker order."),
                io.Combo.Input("order", options=list(ORDERS), default="first_to_speak",
                               tooltip="The order Speaker Masks used."),
                io.Int.Input("segment", default=0, min=0, max=999, tooltip=(
                    "Which segment (0: the start; one change of speaker each; `segments` says how many).")),
                io.Int.Input("motion_frame_count", default=MOTION_FRAMES, min=1, max=33, tooltip=(
                    "WanInfiniteTalkToVideo's motion_frame_count: how many frames of the previous segment open "
                    "this one (segments after the first).")),
                Tracks.Input("tracks", optional=True, tooltip="Needed for the left_to_right order."),
            ],
            outputs=[io.Audio.Output("audio_1", tooltip="The voice that opens this segment."),
                     io.Audio.Output("audio_2", tooltip="The voice after the change of speaker (core plays it after "
                                                        "audio_1)."),
                     io.Mask.Output("mask_1", tooltip="The mask of whoever speaks audio_1."),
                     io.Mask.Output("mask_2", tooltip="The mask of whoever speaks audio_2."),
                     io.Int.Output("length", tooltip="WanInfiniteTalkToVideo's length for this segment (4n + 1)."),
                     io.Int.Output("keep", tooltip="This segment's own frames: InfiniteTalk Join's keep."),
                     io.Int.Output("previous_start", tooltip=(
                         "Where in the joined video the next segment's previous_frames start (Image From Batch).")),
                     io.Int.Output("segments", tooltip="How many segments the conversation makes.")],
        )

    @classmethod
    def execute(cls, audio, speaking, masks, order, segment, motion_frame_count, tracks=None) -> io.NodeOutput:
        waveform, rate = audio_parts(audio)
        if tracks is not None:
            check_people(tracks)
        check_audio_covers(waveform.shape[-1] / rate, speaking.num_frames, speaking.fps)
        slots = speaker_order(speaking, tracks, order)
        if masks.ndim != 3 or masks.shape[0] != len(slots):
            raise ValueError(f"masks must be Speaker Masks' `masks` ({len(slots)} people, one mask each), got "
                             f"shape {tuple(masks.shape)}")
        try:
            plan = sequential_plan(speaking, slots, motion_frame_count)
        except LayoutError as error:
            raise ValueError(str(error)) from None
        if not 0 <= segment < len(plan):
            raise ValueError(f"segment {segment} does not exist: this conversation has {len(plan)} segment(s), "
                             f"0 to {len(plan) - 1}")
        part = plan[segment]
        first, second = sequential_voices(waveform[0].float().cpu().numpy(), rate, part)
        previous = sum(p.kept() for p in plan[:segment]) - motion_frame_count if segment else 0
        return io.NodeOutput({"waveform": torch.from_numpy(first)[None], "sample_rate": rate},
                             {"waveform": torch.from_numpy(second)[None], "sample_rate": rate},
                             masks[part.first:part.first + 1], masks[part.second:part.second + 1], part.frames(),
                             part.kept(), max(previous, 0), len(plan))


class InfiniteTalkJoin(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_InfiniteTalkJoin", display_name="InfiniteTalk Join (MIT-CovOG)",
            category="MIT-CovOG/binding",
            description=("Joins InfiniteTalk segments into one video: the segments so far (`video`, none for the "
                         "first) and this segment's decoded frames without the `trim` frames it repeats from the "
                         "previous one (WanInfiniteTalkToVideo's trim_image) and without the frames past its `keep` "
                         "(InfiniteTalk Segment's keep: the 4n + 1 rounding). Joined so, the video is as long as the "
                         "conversation."),
            inputs=[
                io.Image.Input("segment", tooltip="This segment's frames, decoded."),
                io.Int.Input("trim", default=0, min=0, max=1000, tooltip="WanInfiniteTalkToVideo's trim_image."),
                io.Int.Input("keep", default=81, min=1, max=100000, tooltip="InfiniteTalk Segment's keep."),
                io.Image.Input("video", optional=True,
                               tooltip="The segments before this one, joined (none: the first)."),
            ],
            outputs=[io.Image.Output("video")],
        )

    @classmethod
    def execute(cls, segment, trim, keep, video=None) -> io.NodeOutput:
        if segment.shape[0] < trim + keep:
            raise ValueError(f"the segment has {segment.shape[0]} frames, fewer than trim {trim} + keep {keep}: "
                             "give it the length InfiniteTalk Segment says")
        part = segment[trim:trim + keep]
        if video is None:
            return io.NodeOutput(part)
        if video.shape[1:] != part.shape[1:]:
            raise ValueError(f"the segment's frames are {tuple(part.shape[1:3])}, the video's {tuple(video.shape[1:3])}"
                             ": generate every segment at the same size")
        return io.NodeOutput(torch.cat([video, part]))


def _frame(images, index: int, tracks) -> np.ndarray:
    if images.ndim != 4 or images.shape[-1] != 3 or (images.shape[2], images.shape[1]) != (tracks.width,
                                                                                              tracks.height):
        raise ValueError(f"images of shape {tuple(images.shape)} are not the {tracks.width}x{tracks.height} frames "
                         "the tracks came from")
    return image_to_rgb(images[min(index, images.shape[0] - 1)])


NODES = [SpeakerMasks, SplitVoices, InfiniteTalkSegment, InfiniteTalkJoin]
