"""Speaker binding for the multi-speaker talking-video nodes creators already run: speaker k's mask and voice, in the
order of who speaks first, from the annotator's tracks and who-speaks assignment (no hand-painted masks, no stems cut
by hand). ComfyUI core's WanInfiniteTalkToVideo (two_speakers): mask_1 / mask_2, and voice 1 / voice 2 through
AudioEncoderEncode; WanVideoWrapper's MultiTalk: audio_1..4 and `masks` as ref_target_masks."""

from __future__ import annotations

import logging

import numpy as np
import torch

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

from .comfy_bridge import check_audio_covers, check_people, frames_to_image

MAX_SLOTS = 4  # the most speakers the models above take (MultiTalk: audio_1..4)
log = logging.getLogger("MIT-CovOG")


class SpeakerMasks:
    DESCRIPTION = ("One MASK per person for multi-speaker models (InfiniteTalk's mask_1/mask_2, MultiTalk's "
                   "ref_target_masks), numbered in the speaker order of Split Voices: by default the first person to "
                   "speak is 1, whatever their place on screen. Face, head or body region; one static mask over the "
                   "reference frame (what InfiniteTalk and MultiTalk read) or one per frame; grown and feathered in "
                   "pixels. `masks` holds every person's static mask as one batch; the preview shows them numbered.")
    CATEGORY = "MIT-CovOG/binding"
    FUNCTION = "make"
    RETURN_TYPES = ("MASK", "MASK", "MASK", "MASK", "MASK", "IMAGE", "INT")
    RETURN_NAMES = ("mask_1", "mask_2", "mask_3", "mask_4", "masks", "preview", "people")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "tracks": ("MIT_TRACKS", {"tooltip": "The people (with face boxes for the face and head regions)."}),
                "speaking": ("MIT_SPEAKING", {"tooltip": "Who speaks when, from Assign Speakers."}),
                "region": (list(REGIONS), {"default": "face", "tooltip": (
                    "face: the face box; head: the face box widened to the hair; body: the person's box.")}),
                "mode": (["static", "per_frame"], {"default": "static", "tooltip": (
                    "static: one mask per person over the reference frame (InfiniteTalk, MultiTalk); per_frame: "
                    "one per video frame, following the person.")}),
                "reference_frame": ("INT", {"default": 0, "min": 0, "max": 100000, "tooltip": (
                    "The frame the static masks (and the preview) are drawn over; a person not seen there gets "
                    "their nearest frame's region.")}),
                "order": (list(ORDERS), {"default": "first_to_speak", "tooltip": (
                    "Slot order: first_to_speak (the assignment's order in time; people who never speak last), "
                    "track_id, or left_to_right. Use the same order in Split Voices.")}),
                "grow": ("INT", {"default": 0, "min": 0, "max": 512, "tooltip": "Pixels added on every side."}),
                "feather": ("INT", {"default": 0, "min": 0, "max": 512, "tooltip": (
                    "Pixels over which the mask fades to 0 outside its (grown) region.")}),
            },
            "optional": {"images": ("IMAGE", {"tooltip": "The frames, for the preview (black without them)."})},
        }

    def make(self, tracks, speaking, region, mode, reference_frame, order, grow, feather, images=None):
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
        return (*outputs, torch.from_numpy(static), frames_to_image(preview[None]), len(slots))


class SplitVoices:
    DESCRIPTION = ("One AUDIO per person from the mixed track, in the speaker order of Speaker Masks: the mix while "
                   "that person speaks (their segments from Assign Speakers, short fades at the edges), silence "
                   "elsewhere; each as long as the input, at its rate and channels (the parallel layout). A "
                   "per-person recording given as voice_k passes through unchanged. Feed MultiTalk's audio_1..4 with "
                   "multi_audio_type 'para' (the voices play in parallel, as in the conversation), or CovOG. Core's "
                   "WanInfiniteTalkToVideo plays its second voice after its first: use InfiniteTalk Segment there.")
    CATEGORY = "MIT-CovOG/binding"
    FUNCTION = "split"
    RETURN_TYPES = ("AUDIO", "AUDIO", "AUDIO", "AUDIO", "INT")
    RETURN_NAMES = ("voice_1", "voice_2", "voice_3", "voice_4", "people")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "audio": ("AUDIO", {"tooltip": "The conversation's mixed audio (the video's own)."}),
                "speaking": ("MIT_SPEAKING", {"tooltip": "Who speaks when, from Assign Speakers."}),
                "order": (list(ORDERS), {"default": "first_to_speak", "tooltip": (
                    "Slot order; the same as in Speaker Masks (left_to_right needs the tracks).")}),
                "fade_ms": ("INT", {"default": int(FADE_SECONDS * 1000), "min": 0, "max": 500, "tooltip": (
                    "Each speaking segment fades in and out over this long, inside the segment.")}),
            },
            "optional": {
                "tracks": ("MIT_TRACKS", {"tooltip": "Needed for the left_to_right order."}),
                **{f"voice_{k}": ("AUDIO", {"tooltip": f"Speaker {k}'s own recording: passed through as it is."})
                   for k in range(1, MAX_SLOTS + 1)},
            },
        }

    def split(self, audio, speaking, order, fade_ms, tracks=None, **given):
        try:
            waveform, rate = audio["waveform"], int(audio["sample_rate"])
        except (KeyError, TypeError):
            raise ValueError("audio must be ComfyUI AUDIO: {'waveform': (batch, channels, samples), "
                             "'sample_rate'}") from None
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
        return (*voices, len(slots))


class InfiniteTalkSegment:
    DESCRIPTION = ("The two voices and masks of one segment for ComfyUI core's WanInfiniteTalkToVideo (two_speakers), "
                   "which plays its second audio after the whole of its first (its audio layout is sequential, not "
                   "parallel): the first voice up to the change of speaker, then the second, each with the mask of "
                   "the person speaking it. A conversation with more changes is made of segments (a change each): "
                   "run segment 0, then segment 1 with previous_frames = the joined video's motion_frame_count frames "
                   "from `previous_start` (Image From Batch), and join each segment's output with InfiniteTalk Join. "
                   "Two people speaking at once cannot be played one after the other: "
                   "the node says when; MultiTalk (Split Voices, 'para') plays them in parallel.")
    CATEGORY = "MIT-CovOG/binding"
    FUNCTION = "segment"
    RETURN_TYPES = ("AUDIO", "AUDIO", "MASK", "MASK", "INT", "INT", "INT", "INT")
    RETURN_NAMES = ("audio_1", "audio_2", "mask_1", "mask_2", "length", "keep", "previous_start", "segments")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "audio": ("AUDIO", {"tooltip": "The conversation's mixed audio (the video's own)."}),
                "speaking": ("MIT_SPEAKING", {"tooltip": "Who speaks when, from Assign Speakers."}),
                "masks": ("MASK", {"tooltip": "Speaker Masks' `masks`: every person's mask, in the speaker order."}),
                "order": (list(ORDERS), {"default": "first_to_speak", "tooltip": "The order Speaker Masks used."}),
                "segment": ("INT", {"default": 0, "min": 0, "max": 999, "tooltip": (
                    "Which segment (0: the start; one change of speaker each; `segments` says how many).")}),
                "motion_frame_count": ("INT", {"default": MOTION_FRAMES, "min": 1, "max": 33, "tooltip": (
                    "WanInfiniteTalkToVideo's motion_frame_count: how many frames of the previous segment open "
                    "this one (segments after the first).")}),
            },
            "optional": {"tracks": ("MIT_TRACKS", {"tooltip": "Needed for the left_to_right order."})},
        }

    def segment(self, audio, speaking, masks, order, segment, motion_frame_count, tracks=None):
        try:
            waveform, rate = audio["waveform"], int(audio["sample_rate"])
        except (KeyError, TypeError):
            raise ValueError("audio must be ComfyUI AUDIO: {'waveform': (batch, channels, samples), "
                             "'sample_rate'}") from None
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
        return ({"waveform": torch.from_numpy(first)[None], "sample_rate": rate},
                {"waveform": torch.from_numpy(second)[None], "sample_rate": rate},
                masks[part.first:part.first + 1], masks[part.second:part.second + 1], part.frames(), part.kept(),
                max(previous, 0), len(plan))


class InfiniteTalkJoin:
    DESCRIPTION = ("Joins InfiniteTalk segments into one video: the segments so far (`video`, none for the first) and "
                   "this segment's decoded frames without the `trim` frames it repeats from the previous one "
                   "(WanInfiniteTalkToVideo's trim_image) and without the frames past its `keep` (InfiniteTalk "
                   "Segment's keep: the 4n + 1 rounding). Joined so, the video is as long as the conversation.")
    CATEGORY = "MIT-CovOG/binding"
    FUNCTION = "join"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("video",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "segment": ("IMAGE", {"tooltip": "This segment's frames, decoded."}),
                "trim": ("INT", {"default": 0, "min": 0, "max": 1000, "tooltip": "WanInfiniteTalkToVideo's trim_image."}),
                "keep": ("INT", {"default": 81, "min": 1, "max": 100000, "tooltip": "InfiniteTalk Segment's keep."}),
            },
            "optional": {"video": ("IMAGE", {"tooltip": "The segments before this one, joined (none: the first)."})},
        }

    def join(self, segment, trim, keep, video=None):
        if segment.shape[0] < trim + keep:
            raise ValueError(f"the segment has {segment.shape[0]} frames, fewer than trim {trim} + keep {keep}: give it "
                             "the length InfiniteTalk Segment says")
        part = segment[trim:trim + keep]
        if video is None:
            return (part,)
        if video.shape[1:] != part.shape[1:]:
            raise ValueError(f"the segment's frames are {tuple(part.shape[1:3])}, the video's {tuple(video.shape[1:3])}"
                             ": generate every segment at the same size")
        return (torch.cat([video, part]),)


def _frame(images, index: int, tracks) -> np.ndarray:
    if images.ndim != 4 or images.shape[-1] != 3 or (images.shape[2], images.shape[1]) != (tracks.width,
                                                                                              tracks.height):
        raise ValueError(f"images of shape {tuple(images.shape)} are not the {tracks.width}x{tracks.height} frames "
                         "the tracks came from")
    frame = images[min(index, images.shape[0] - 1)]
    return (frame.clamp(0, 1) * 255).round().byte().cpu().numpy()


NODE_CLASS_MAPPINGS = {"MITCovOG_SpeakerMasks": SpeakerMasks, "MITCovOG_SplitVoices": SplitVoices,
                       "MITCovOG_InfiniteTalkSegment": InfiniteTalkSegment, "MITCovOG_InfiniteTalkJoin": InfiniteTalkJoin}
NODE_DISPLAY_NAME_MAPPINGS = {"MITCovOG_SpeakerMasks": "Speaker Masks (MIT-CovOG)",
                              "MITCovOG_SplitVoices": "Split Voices (MIT-CovOG)",
                              "MITCovOG_InfiniteTalkSegment": "InfiniteTalk Segment, sequential voices (MIT-CovOG)",
                              "MITCovOG_InfiniteTalkJoin": "InfiniteTalk Join (MIT-CovOG)"}
