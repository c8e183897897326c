"""CovOG one stage per node: Encode Reference (CLIP + VAE), Encode Audio (wav2vec2, or ComfyUI's own
AUDIO_ENCODER_OUTPUT), Render Poses (the Multi-Human Pose Encoder's skeletons), CovOG Sampler (windows, LATENT out)
and Decode. Chained, they make the frames the one-click Generate Conversation Video node makes.

The sampler runs covog.pipeline.sampler's own steps (reference attention, one window after another, the overlap
re-encoded) and keeps each window's latents, so that Decode blends the windows exactly as
covog.pipeline.sampler.generate does.
"""

from __future__ import annotations

import diffusers  # noqa: F401  (imported here so that a missing diffusers leaves these nodes out at load)
import torch
import torch.nn.functional as F
from comfy_api.latest import io

from covog.models import reference_attention
from covog.models.encoders import AUDIO_RATE, audio_features
from covog.pipeline.conditioning import PoseRenders, face_masks, speaking_scores
from covog.pipeline.sampler import (
    Conditions,
    SamplerSettings,
    check_window,
    decode_windows,
    encode_reference,
    sample_windows,
    window_starts,
    write_reference,
)
from mit_annotator.core.records import check_speaking_matches

from .comfy_bridge import (
    audio_to_mono_16k,
    check_audio_covers,
    check_people,
    free_memory,
    make_room,
    progress_callback,
    torch_devices,
)
from .covog_nodes import (
    own_voices,
    person_audio_inputs,
    reference_image,
    size_inputs,
    validate_window,
    window_inputs,
)
from .pack_types import CovOGAudio, CovOGModel, CovOGPoses, CovOGReference, Speaking, Tracks

REFERENCE_FRAME = 0  # the frame of the tracks whose poses the reference image shows (as Generate Conversation)


class on_compute:
    """The model on ComfyUI's compute device for the length of a node (room made first), back on the offload
    device after it, whatever happens."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        compute, self.offload = torch_devices()
        make_room(self.model.modules.values(), compute)
        self.model.to(compute)
        return self.model

    def __exit__(self, *exc):
        self.model.to(self.offload)
        free_memory()


class EncodeReference(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_EncodeReference", display_name="Encode Reference, CLIP + VAE (MIT-CovOG)",
            category="MIT-CovOG/generate",
            description=("The reference photo (showing every person) at the video size, with its CLIP image embedding "
                         "(global appearance) and VAE latent. The ReferenceNet reads the latent at the start of "
                         "sampling."),
            inputs=[
                CovOGModel.Input("model"),
                io.Image.Input("image", tooltip="One frame showing every person (the first image is used)."),
                *size_inputs(),
            ],
            outputs=[CovOGReference.Output("reference")],
        )

    @classmethod
    def execute(cls, model, image, width, height) -> io.NodeOutput:
        picture = torch.from_numpy(reference_image(image, (width, height))).permute(2, 0, 1).float() / 255.0
        with torch.no_grad(), on_compute(model):
            clip, latent = encode_reference(model, picture)
        return io.NodeOutput({"image": picture, "size": (width, height), "clip": clip.cpu(), "latent": latent.cpu()})


class EncodeAudio(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_EncodeAudio", display_name="Encode Audio, wav2vec2 (MIT-CovOG)",
            category="MIT-CovOG/generate",
            description=("The audio as wav2vec2 features per video frame (the audio driver's input): from AUDIO with "
                         "the model's own wav2vec2, or from ComfyUI's Audio Encoder Encode output where it carries "
                         "wav2vec2 hidden states of the model's size. Optional per-person audio gives each face its "
                         "own voice."),
            inputs=[
                CovOGModel.Input("model"),
                Tracks.Input("tracks", tooltip="The video's people: its frame count and rate."),
                io.Audio.Input("audio", optional=True, tooltip="The conversation's audio."),
                io.AudioEncoderOutput.Input("audio_encoder_output", optional=True, tooltip=(
                    "Instead of audio: Audio Encoder Encode's output with a wav2vec2 encoder (all layers).")),
                *person_audio_inputs(),
            ],
            outputs=[CovOGAudio.Output("audio_features")],
        )

    @classmethod
    def execute(cls, model, tracks, audio=None, audio_encoder_output=None, **person_audio) -> io.NodeOutput:
        check_people(tracks)
        frames, fps = tracks.num_frames, tracks.fps
        own = own_voices(person_audio, tracks)
        if own:
            voices = [audio_to_mono_16k(a) for a in own]
        elif audio is not None:
            voices = [audio_to_mono_16k(audio)]
        elif audio_encoder_output is not None:
            return io.NodeOutput({"features": encoder_output_features(audio_encoder_output, model, frames, fps)})
        else:
            raise ValueError("Encode Audio needs audio, an audio encoder output, or every person's own audio")
        for samples in voices:
            check_audio_covers(len(samples) / AUDIO_RATE, frames, fps)
        progress = progress_callback(len(voices))
        features = []
        with on_compute(model):
            for k, samples in enumerate(voices):
                features.append(audio_features(model.audio_encoder, samples, frames, fps).cpu())
                progress(k + 1, len(voices))
        return io.NodeOutput({"features": torch.stack(features) if own else features[0]})


def encoder_output_features(output: dict, model, num_frames: int, fps: float) -> torch.Tensor:
    """ComfyUI's AUDIO_ENCODER_OUTPUT (wav2vec2: `encoded_audio_all_layers`, the input of layer 1 and the output of
    every layer, each (1, steps, width)) as (num_frames, layers, width) features, as
    covog.models.encoders.audio_features makes them: layers 1..N, the steps covering the video, linearly resampled
    to its frames."""
    try:
        layers, samples = output["encoded_audio_all_layers"], int(output["audio_samples"])
    except (KeyError, TypeError):
        raise ValueError("audio_encoder_output must be Audio Encoder Encode's output (with "
                         "'encoded_audio_all_layers')") from None
    config = model.audio_encoder.config
    hidden = torch.stack([layer[0] for layer in layers[1:]]).float()  # (layers, steps, width)
    if hidden.shape[0] != config.num_hidden_layers or hidden.shape[2] != config.hidden_size:
        raise ValueError(f"the audio encoder output holds {hidden.shape[0]} layers of width {hidden.shape[2]}; this "
                         f"CovOG model reads wav2vec2's {config.num_hidden_layers} layers of {config.hidden_size} "
                         "(load the wav2vec2 model it was trained with; whisper encoders do not fit)")
    wanted = int(round(num_frames / fps * AUDIO_RATE))
    check_audio_covers(samples / AUDIO_RATE, num_frames, fps)
    keep = min(hidden.shape[1], int(round(min(wanted, samples) * hidden.shape[1] / samples)))
    frames = F.interpolate(hidden[:, :keep].transpose(1, 2), size=num_frames, mode="linear", align_corners=True)
    return frames.permute(2, 0, 1).contiguous().cpu()


class RenderPoses(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_RenderPoses", display_name="Render Poses (MIT-CovOG)", category="MIT-CovOG/generate",
            description=("Each person's skeleton per frame, drawn as DWPose draws them for the pose guider (the "
                         "Multi-Human Pose Encoder's input), at the reference's video size. The preview shows the "
                         "people side by side, one panel each, in the tracks' order."),
            inputs=[
                Tracks.Input("tracks", tooltip="The people's poses (with keypoints), from Track People."),
                CovOGReference.Input("reference", tooltip="From Encode Reference: the video size."),
                io.Int.Input("preview_width", default=256, min=64, max=2048, step=8,
                             tooltip="Width of each person's panel in the preview."),
            ],
            outputs=[CovOGPoses.Output("poses"), io.Image.Output("preview")],
        )

    @classmethod
    def execute(cls, tracks, reference, preview_width) -> io.NodeOutput:
        check_people(tracks)
        poses = PoseRenders(tracks, reference["size"])
        width, height = reference["size"]
        panel = (preview_width, max(8, int(round(height * preview_width / width))))
        progress = progress_callback(len(poses))
        preview = torch.empty(len(poses), panel[1], panel[0] * len(tracks.tracks), 3)
        for frame in range(len(poses)):
            drawn = poses[frame].float() / 255.0  # (people, 3, H, W)
            small = F.interpolate(drawn, size=(panel[1], panel[0]), mode="area")
            preview[frame] = torch.cat(list(small), dim=2).permute(1, 2, 0)
            progress(frame + 1, len(poses))
        return io.NodeOutput({"renders": poses, "reference_frame": REFERENCE_FRAME}, preview)


class CovOGSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_Sampler", display_name="CovOG Sampler (MIT-CovOG)", category="MIT-CovOG/generate",
            description=("Samples the video's latents: DDIM with appearance-only guidance, in windows whose last "
                         "frames are imposed on the next (long videos), each person's face driven by their audio and "
                         "speaking scores. Progress per step; Cancel stops it within a step. The model moves to the "
                         "GPU only while sampling (ComfyUI offloads its own models to make room)."),
            inputs=[
                CovOGModel.Input("model"),
                CovOGReference.Input("reference"),
                CovOGPoses.Input("poses"),
                CovOGAudio.Input("audio_features"),
                Speaking.Input("speaking", tooltip="Who speaks when, from Assign Speakers."),
                io.Int.Input("steps", default=30, min=1, max=200),
                io.Float.Input("cfg", default=3.5, min=1.0, max=20.0, step=0.1,
                               tooltip="Guidance on appearance (reference and CLIP); 1 turns it off."),
                io.Int.Input("seed", default=0, min=0, max=2 ** 63 - 1, control_after_generate=True),
                *window_inputs(),
            ],
            outputs=[io.Latent.Output("latent")],
        )

    @classmethod
    def validate_inputs(cls, window=None, overlap=None):
        return validate_window(window, overlap)

    @classmethod
    def execute(cls, model, reference, poses, audio_features, speaking, steps, cfg, seed, window,
                overlap) -> io.NodeOutput:
        settings = SamplerSettings(steps=steps, guidance=cfg, window=window, overlap=overlap, seed=seed)
        settings.check()
        renders = poses["renders"]
        tracks, frames = renders.tracks, range(renders.tracks.num_frames)
        check_speaking_matches(speaking, tracks)
        if tuple(renders.size) != tuple(reference["size"]):
            raise ValueError(f"the poses were drawn at {renders.size}, the reference is {reference['size']}: render "
                             "them from the same Encode Reference")
        conditions = Conditions(
            reference=reference["image"], reference_poses=renders[poses["reference_frame"]].float() / 255.0,
            poses=renders, audio_features=audio_features["features"],
            speaking_scores=speaking_scores(speaking, tracks, frames), face_masks=face_masks(tracks, frames,
                                                                                          renders.size))
        conditions.check()
        check_window(model, window, conditions.frames)
        progress = progress_callback(len(window_starts(conditions.frames, window, overlap)) * steps)
        with torch.no_grad(), on_compute(model):
            bank = reference_attention.attach(model.reference_unet, model.denoising_unet)
            try:
                context = reference["clip"].to(model.device, model.dtype)
                write_reference(model, bank, context, reference["latent"], conditions.reference_poses)
                sampled = sample_windows(model, conditions, settings, context, bank, progress, decode_last=False)
            finally:
                bank.clear()
        windows = [(start, latents.float().cpu()) for start, latents in sampled.windows]
        scale = model.vae.config.scaling_factor
        samples = torch.cat([w[0].permute(1, 0, 2, 3)[max(0, _end_of(windows, k) - start):]
                             for k, (start, w) in enumerate(windows)]) / scale
        return io.NodeOutput({"samples": samples, "covog_windows": windows})


def _end_of(windows, k: int) -> int:
    """The frame after the last frame made before window k (its frames from there on are new)."""
    return 0 if k == 0 else windows[k - 1][0] + windows[k - 1][1].shape[2]


class CovOGDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_Decode", display_name="CovOG Decode (MIT-CovOG)", category="MIT-CovOG/generate",
            description=("The sampler's latents as frames: each window decoded by the VAE and blended into the "
                         "previous one over their overlap, as the one-click node does. A LATENT without CovOG's "
                         "windows (frames latents, as ComfyUI's VAE Encode gives them) is decoded frame by frame."),
            inputs=[
                CovOGModel.Input("model"),
                io.Latent.Input("latent", tooltip="From CovOG Sampler."),
                io.Int.Input("decode_chunk", default=8, min=1, max=64, tooltip="Frames per VAE call (memory)."),
            ],
            outputs=[io.Image.Output("frames")],
        )

    @classmethod
    def execute(cls, model, latent, decode_chunk) -> io.NodeOutput:
        windows = latent.get("covog_windows")
        if windows is None:
            samples = latent["samples"]
            if samples.ndim != 4:
                raise ValueError(f"latent samples must be (frames, channels, h, w), got {tuple(samples.shape)}")
            windows = [(0, (samples * model.vae.config.scaling_factor).permute(1, 0, 2, 3)[None])]
        with torch.no_grad(), on_compute(model):
            video = decode_windows(model, windows, decode_chunk, progress_callback(len(windows)))
        return io.NodeOutput(video.permute(0, 2, 3, 1).contiguous())


NODES = [EncodeReference, EncodeAudio, RenderPoses, CovOGSampler, CovOGDecode]
