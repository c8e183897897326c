"""Does CovOG learn? A small CovOG trained from scratch on the CPU with `covog.train` (stage 1, then stage 2) on
synthetic conversations the pack annotated, then measured on held-out conversations against the same model before
training and against a stage-2 ablation without the audio driver.

    .venv/bin/python benchmarks/learning_proof.py all            # every step below, in order (resumes: done steps
                                                                 # are skipped; --force STEP redoes one)
    .venv/bin/python benchmarks/learning_proof.py data|vae|init|stage1|stage2|ablation|generate|measure|figures
    .venv/bin/python benchmarks/learning_proof.py stage1_long   # then stage2_long, ablation_long, generate,
                                                                # measure, figures: the longer run
    .venv/bin/python benchmarks/learning_proof.py speakers all  # the speakers track: does the audio driver learn
                                                                # who speaks? (benchmarks/learning_proof_speakers.py)

Everything is written under OUT (outputs/learning_proof/); the settings are the constants below.

- data: conversations of two drawn people (mit_annotator.synthetic, LibriSpeech voices), framed head-and-shoulders
  (the top half of a square frame: the MIT clips are upper-body shots too), each saved as a clip folder that
  covog.train reads (video.mp4 with the mixed audio, tracks.json, speaking.json). Who speaks when (speaking.json)
  is the pack's annotation: the audio diarized and each voice given to a person by `who_speaks` (LR-ASD active-
  speaker scores, lip activity, synchrony), as `python -m mit_annotator assign` does. The poses are the drawn ones:
  DWPose's weights are not on this machine, and `annotate`'s clip selection finds no clips in these videos with
  YOLOX-Nano (it sees one of the two drawn people in most frames). The drawn truth is kept beside each clip
  (truth_speaking.json) to score the annotation.
- vae: no pretrained SD VAE is here, and a random one decodes nothing, so the VAE (the tiny config's shape) is first
  trained as an autoencoder on the training frames (the frozen part of CovOG that SD-1.5 would bring).
- init: the model before training: the trained VAE with every other network at random (published zero inits).
- stage1, stage2: `python -m covog.train` as documented; ablation: stage 2 from the same stage-1 checkpoint with
  --no-audio-driver (motion modules only). stage1_long continues stage 1 (--resume from its last state) to
  LONG_STAGE1_STEPS; stage2_long and ablation_long start from there. (For the figures in BENCHMARKS.md the
  continuation ran by hand with --steps 2000 --save-every 500 and was stopped after step 1500; the learning rate is
  constant, so its first 1500 steps are the ones stage1_long takes.)
- generate: the held-out conversations (new seeds: new people, poses and voices) from their first frame, their poses
  and their audio, with the pack's speaking annotation, by each model. At this size the pose renders hold no lip
  points (a DWPose-style face point is under a pixel: `lip_pixels_in_renders`), so only the audio driver can open
  a mouth where the schedule says.
- measure: per generated video, pose following (each person found by their shirt colour where the poses put them),
  identity (the colour there against each person's colours in the reference), fidelity to the real held-out video
  (PSNR, SSIM), and speaker attribution with `covog.evaluate` (against the true schedule); the same on the real
  held-out videos at the generated size (what the measures can see at all), and a probe of the audio driver: the
  stage-2 loss on held-out clips with each person's speaking scores right against swapped; and how many pixels the
  lip points make in the pose renders at a few sizes.
- figures: loss curves and sample frames (PNG) in OUT and docs/, and OUT/table.md (the figures in BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# One thread per process: on a shared, loaded machine OpenMP's second thread spins on a busy core (a VAE step took
# 15 s with 2 threads, 2.4 s with 1, at load average 7 on 2 cores). Set before torch is imported.
THREADS = os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", THREADS)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("MIT_SHARED_DATA") or ROOT.parent / "shared" / "data")

# ---- settings ------------------------------------------------------------------------------------------------------
OUT = ROOT / "outputs" / "learning_proof"
SPEECH = SHARED / "speech" / "librispeech_test-other"
MODELS = SHARED / "models"
ASD_WEIGHTS = MODELS / "lr_asd" / "pretrain_AVA.model"
TRAIN_SEEDS = list(range(1000, 1012))  # 12 training conversations
HELD_OUT_SEEDS = [9001, 9002]  # new people, poses and voices
SECONDS = 10.0  # per training conversation
HELD_OUT_SECONDS = 6.0
FRAME = 256  # conversations drawn in a FRAME x FRAME square ...
CROP = 128  # ... of which the top CROP rows (heads and shoulders) are kept: 256x128 clips
SIZE = (128, 64)  # training and generation size (width, height); the clips are read resized to it
# the model: the tiny configs' structure with every width doubled at the first two levels (between 'tiny' and
# SD-1.5: SD-1.5's UNet is [320, 640, 1280, 1280])
UNET_CHANNELS = [32, 64, 96, 96]
NORM_GROUPS = 16
VAE_STEPS, VAE_LR, VAE_BATCH, VAE_CROP, VAE_KL = 600, 2e-3, 8, 64, 1e-6  # crops of VAE_CROP x VAE_CROP
STAGE1_STEPS, STAGE2_STEPS = 500, 120
# the longer run: stage 1 continued (--resume) from STAGE1_STEPS to LONG_STAGE1_STEPS, then stage 2 and its ablation
LONG_STAGE1_STEPS, LONG_STAGE2_STEPS = 1500, 120
LR = 1e-4  # from scratch (the paper's 1e-5 fine-tunes pretrained SD weights)
CLIP_FRAMES = 8  # stage-2 frames per clip (the paper: 15)
MIN_FRAME_GAP = 30
GEN_STEPS, GEN_CFG, GEN_WINDOW, GEN_OVERLAP = 20, 2.0, 16, 4
SEED = 0
# --------------------------------------------------------------------------------------------------------------------

PYTHON = sys.executable
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------------------------------
# data


def head_and_shoulders(tracks, height: int):
    """The tracks of the top `height` rows of their frames: points below are unseen, boxes clipped."""
    from mit_annotator.core.records import PersonTrack, VideoTracks

    out = []
    for t in tracks.tracks:
        scores = t.keypoint_scores.copy()
        scores[t.keypoints[..., 1] >= height] = 0.0
        boxes = t.boxes.copy()
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
        faces = t.face_boxes.copy()
        faces[:, [1, 3]] = np.clip(faces[:, [1, 3]], 0, height)
        out.append(PersonTrack(t.track_id, t.frames, boxes, t.keypoints, scores, faces, t.shot))
    return VideoTracks(tracks.width, height, tracks.fps, tracks.num_frames, out, tracks.shots, tracks.source)


def lip_pixels_in_renders(sizes=((128, 64), (256, 128), (512, 256))) -> dict:
    """How many pixels of the pose renders (as covog.train and covog.generate draw them) the lip points make, per
    frame and size, on the first held-out conversation: the renders with and without the lip points compared."""
    from covog.training.dataset import PoseRenders
    from mit_annotator.core.records import VideoTracks

    tracks = VideoTracks.load(held_out()[0] / "tracks.json")
    hidden = hide_mouths(tracks)
    out = {}
    for size in sizes:
        with_lips, without = PoseRenders(tracks, size), PoseRenders(hidden, size)
        counts = [int((np.asarray(with_lips[f]) != np.asarray(without[f])).any(axis=-3).sum())
                  for f in range(0, tracks.num_frames, 5)]
        out[f"{size[0]}x{size[1]}"] = {"mean_pixels_per_frame": float(np.mean(counts)), "max": max(counts)}
    return out


def hide_mouths(tracks):
    """The same tracks with every lip point unseen: their pose renders show no mouth."""
    from mit_annotator.core import keypoints as kp
    from mit_annotator.core.records import PersonTrack, VideoTracks

    lips = np.concatenate([kp.OUTER_LIPS, kp.INNER_LIPS])
    out = []
    for t in tracks.tracks:
        scores = t.keypoint_scores.copy()
        scores[:, lips] = 0.0
        out.append(PersonTrack(t.track_id, t.frames, t.boxes, t.keypoints, scores, t.face_boxes, t.shot))
    return VideoTracks(tracks.width, tracks.height, tracks.fps, tracks.num_frames, out, tracks.shots, tracks.source)


class Annotator:
    """Who speaks when, as `python -m mit_annotator assign VIDEO --poses TRACKS --speakers asd` finds it."""

    def __init__(self):
        from mit_annotator.speakers.active_speaker import ActiveSpeakerModel

        self.asd = ActiveSpeakerModel(ASD_WEIGHTS, device="cpu")

    def __call__(self, video: Path, tracks):
        from mit_annotator.audio.diarization import DiarizationConfig
        from mit_annotator.speakers.who_speaks import diarize_media, who_speaks

        diarization = diarize_media(video, DiarizationConfig(max_speakers=len(tracks.tracks) + 2))
        speaking, _ = who_speaks(video, tracks, diarization, active_speaker=self.asd)
        return speaking, diarization


def make_clip(seed: int, seconds: float, folder: Path, speech, annotator: Annotator) -> dict:
    from mit_annotator.core import media
    from mit_annotator.synthetic import ConversationSpec, synthesize_conversation
    from mit_annotator.vision.metrics import frame_score

    spec = ConversationSpec(num_people=2, seconds=seconds, width=FRAME, height=FRAME, seed=seed)
    conversation = synthesize_conversation(spec, speech)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    frames = (conversation.render_frame(k)[:CROP] for k in range(spec.num_frames))
    media.write_video(partial / "video.mp4", frames, spec.fps, conversation.mix, 16000)
    tracks = head_and_shoulders(conversation.tracks, CROP)
    tracks.save(partial / "tracks.json")
    conversation.speaking.save(partial / "truth_speaking.json")
    speaking, diarization = annotator(partial / "video.mp4", tracks)
    speaking.save(partial / "speaking.json")
    diarization.save_rttm(partial / "diarization.rttm")
    scores = [frame_score(speaking.person(p.track_id).scores > 0, p.scores > 0) for p in conversation.speaking.people]
    info = {"seed": seed, "seconds": seconds, "voices": conversation.voices,
            "shirts": [list(f.shirt) for f in conversation.figures],
            "annotation_accuracy": [round(s.accuracy, 4) for s in scores],
            "annotation_f1": [round(s.f1, 4) for s in scores]}
    (partial / "conversation.json").write_text(json.dumps(info, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return info


def step_data():
    from mit_annotator.synthetic import LibriSpeechSource

    speech = LibriSpeechSource(SPEECH)
    annotator = Annotator()
    for split, seeds, seconds in (("train", TRAIN_SEEDS, SECONDS), ("held_out", HELD_OUT_SEEDS, HELD_OUT_SECONDS)):
        for seed in seeds:
            folder = OUT / "data" / split / f"conversation_{seed}"
            if (folder / "conversation.json").is_file():
                continue
            start = time.perf_counter()
            info = make_clip(seed, seconds, folder, speech, annotator)
            log(f"{split} {seed}: annotated in {time.perf_counter() - start:.0f} s; frame accuracy of the pack's "
                f"speaking vs the truth {info['annotation_accuracy']}, F1 {info['annotation_f1']}")


# ---------------------------------------------------------------------------------------------------------------------
# vae and the model before training


def model_configs() -> dict:
    """The component configs of the model trained here (see UNET_CHANNELS)."""
    from covog.models.configs import configs

    c = configs("tiny")
    channels = UNET_CHANNELS
    c["unet"].update(block_out_channels=channels, norm_num_groups=NORM_GROUPS, attention_head_dim=8,
                     cross_attention_dim=64)
    c["motion_adapter"].update(block_out_channels=channels, motion_norm_num_groups=NORM_GROUPS)
    c["image_encoder"].update(projection_dim=64)
    c["audio_driver"].update(down_channels=channels[:3], up_channels=[channels[3], channels[2]],
                             norm_num_groups=NORM_GROUPS)
    c["pose_guider"].update(embedding_channels=channels[0])
    c["pose_adaptor"].update(embedding_channels=channels[0])
    c["vae"].update(block_out_channels=[16, 32, 32, 32], norm_num_groups=8, layers_per_block=1)
    return c


def training_frames() -> np.ndarray:
    from mit_annotator.core import media

    folders = sorted((OUT / "data" / "train").glob("conversation_*"))
    return np.concatenate([media.read_frames(f / "video.mp4", size=SIZE) for f in folders])


def step_vae():
    train_vae(OUT / "vae", training_frames, OUT / "vae_curve.json")


def train_vae(folder: Path, frames_of, record: Path, size: tuple[int, int] = SIZE):
    """The VAE as an autoencoder of the training frames (`frames_of()`: (N, H, W, 3) uint8 at `size`; random square
    crops): L1 + MSE reconstruction, a small KL term; then its scaling factor set so that latents have unit variance
    (as SD's 0.18215 was chosen)."""
    import torch

    from covog.models.model import build_component

    if (folder / "config.json").is_file():
        return
    torch.manual_seed(SEED)
    vae = build_component("vae", model_configs()).train()
    frames = torch.from_numpy(frames_of()).permute(0, 3, 1, 2).float() / 127.5 - 1
    optimizer = torch.optim.AdamW(vae.parameters(), lr=VAE_LR, weight_decay=0.0)
    generator = torch.Generator().manual_seed(SEED)
    curve = []
    start = time.perf_counter()
    for step in range(1, VAE_STEPS + 1):
        batch = frames[torch.randint(len(frames), (VAE_BATCH,), generator=generator)]
        x = int(torch.randint(size[0] - VAE_CROP + 1, (), generator=generator))
        batch = batch[..., x:x + VAE_CROP]  # fully convolutional: square crops train it for the whole frame
        posterior = vae.encode(batch).latent_dist
        decoded = vae.decode(posterior.sample(generator)).sample
        reconstruction = (decoded - batch).abs().mean() + (decoded - batch).pow(2).mean()
        loss = reconstruction + VAE_KL * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        curve.append((step, float(reconstruction.detach())))
        if step % 100 == 0:
            log(f"vae step {step}/{VAE_STEPS}: reconstruction {np.mean([c[1] for c in curve[-100:]]):.4f}")
    vae.eval()
    with torch.no_grad():
        latents = torch.cat([vae.encode(frames[k:k + 64]).latent_dist.mean for k in range(0, len(frames), 256)])
        vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
        check = frames[:64]
        psnr = 10 * torch.log10(4.0 / (vae.decode(vae.encode(check).latent_dist.mean).sample - check).pow(2).mean())
    vae.save_pretrained(folder, safe_serialization=True)
    record.write_text(json.dumps({"curve": curve, "seconds": time.perf_counter() - start,
                                                    "psnr_db": float(psnr),
                                                    "scaling_factor": vae.config.scaling_factor}))
    log(f"vae: {time.perf_counter() - start:.0f} s, reconstruction PSNR {float(psnr):.1f} dB on training frames")


def step_init():
    build_initial_model(OUT / "vae", OUT / "models" / "init", OUT / "model_size.json")


def build_initial_model(vae_folder: Path, folder: Path, record: Path):
    """The model before training: the trained VAE with every other network at random (published zero inits)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler

    from covog.models.model import COMPONENTS, CovOGModel, build_component

    if (folder / "model_index.json").is_file():
        return
    c = model_configs()
    torch.manual_seed(SEED)
    networks = {name: build_component(name, c) for name in COMPONENTS if name != "vae"}
    vae = AutoencoderKL.from_pretrained(vae_folder)
    model = CovOGModel(vae=vae, **networks, scheduler=DDIMScheduler(**c["scheduler"])).eval()
    sizes = {name: sum(p.numel() for p in module.parameters()) for name, module in model.modules.items()}
    model.save(folder)
    record.write_text(json.dumps({"parameters": sizes, "unet_channels": UNET_CHANNELS}))
    log("model before training: " + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in sizes.items()))


# ---------------------------------------------------------------------------------------------------------------------
# training


def train(stage: int, start: Path, out: Path, steps: int, extra: list[str] = (), data: Path | None = None,
          resume_from: Path | None = None, size: tuple[int, int] = SIZE, lr: float = LR) -> dict:
    """`python -m covog.train` as documented; its log beside the run; returns the curve and the time. With
    `resume_from` (an earlier run of the same settings): its last state copied into `out` and continued (--resume)
    to `steps`; the curve then starts with that run's."""
    done = out / f"checkpoint-{steps}"
    record = out / "run.json"
    if done.is_dir() and record.is_file():
        return json.loads(record.read_text())
    command = [PYTHON, "-m", "covog.train", "--stage", str(stage), "--data", str(data or OUT / "data" / "train"),
               "--model", str(start), "--out", str(out), "--steps", str(steps), "--lr", str(lr),
               "--width", str(size[0]), "--height", str(size[1]), "--clip-frames", str(CLIP_FRAMES),
               "--min-frame-gap", str(MIN_FRAME_GAP), "--save-every", str(steps), "--log-every", "5",
               "--workers", "0", "--seed", str(SEED), "--fused-optimizer", *extra]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    earlier = []
    if resume_from is not None:
        state = max(resume_from.glob("state-*"), key=lambda p: int(p.name.split("-")[1]))
        shutil.copytree(state, out / state.name)
        earlier = json.loads((resume_from / "run.json").read_text())["curve"]
        command.append("--resume")
    log(" ".join(str(c) for c in command[1:]).replace(str(ROOT) + "/", ""))
    load_before = os.getloadavg()
    cpu_before = os.times()
    start_time = time.perf_counter()
    with open(out / "train.log", "w") as file, open(out / "stdout.log", "w") as stdout:  # stdout.log as it goes
        done_run = subprocess.run(command, cwd=ROOT, env={**ENV, "PYTHONUNBUFFERED": "1"}, stdout=stdout,
                                  stderr=file, text=True)
    seconds = time.perf_counter() - start_time
    cpu = os.times()
    if done_run.returncode != 0:
        raise SystemExit(f"training failed ({done_run.returncode}); see {out}/train.log")
    printed = (out / "stdout.log").read_text()
    curve = earlier + [(int(a), float(b)) for a, b in re.findall(r"^step (\d+)/\d+ loss (\S+)$", printed, re.M)]
    info = {"stage": stage, "steps": steps, "seconds": seconds,
            "cpu_seconds": (cpu.children_user + cpu.children_system) - (cpu_before.children_user
                                                                         + cpu_before.children_system),
            "load_before": load_before, "load_after": os.getloadavg(), "curve": curve, "command": command[1:]}
    record.write_text(json.dumps(info))
    log(f"stage {stage} -> {out.name}: {steps} steps in {seconds / 60:.1f} min (CPU {info['cpu_seconds'] / 60:.1f} "
        f"min); loss first 25 steps {np.mean([c[1] for c in curve[:5]]):.4f}, last 25 "
        f"{np.mean([c[1] for c in curve[-5:]]):.4f}")
    return info


def step_stage1():
    train(1, OUT / "models" / "init", OUT / "runs" / "stage1", STAGE1_STEPS)


def step_stage2():
    train(2, OUT / "runs" / "stage1" / f"checkpoint-{STAGE1_STEPS}", OUT / "runs" / "stage2", STAGE2_STEPS)


def step_ablation():
    train(2, OUT / "runs" / "stage1" / f"checkpoint-{STAGE1_STEPS}", OUT / "runs" / "stage2_no_audio",
          STAGE2_STEPS, ["--no-audio-driver"])


def step_stage1_long():
    train(1, OUT / "models" / "init", OUT / "runs" / "stage1_long", LONG_STAGE1_STEPS,
          resume_from=OUT / "runs" / "stage1")


def step_stage2_long():
    train(2, OUT / "runs" / "stage1_long" / f"checkpoint-{LONG_STAGE1_STEPS}", OUT / "runs" / "stage2_long",
          LONG_STAGE2_STEPS)


def step_ablation_long():
    train(2, OUT / "runs" / "stage1_long" / f"checkpoint-{LONG_STAGE1_STEPS}", OUT / "runs" / "stage2_long_no_audio",
          LONG_STAGE2_STEPS, ["--no-audio-driver"])


def models() -> dict[str, Path]:
    return {"before training": OUT / "models" / "init",
            "stage 1": OUT / "runs" / "stage1" / f"checkpoint-{STAGE1_STEPS}",
            "stage 1+2": OUT / "runs" / "stage2" / f"checkpoint-{STAGE2_STEPS}",
            "stage 1+2, no audio driver": OUT / "runs" / "stage2_no_audio" / f"checkpoint-{STAGE2_STEPS}",
            "long: stage 1+2": OUT / "runs" / "stage2_long" / f"checkpoint-{LONG_STAGE2_STEPS}",
            "long: stage 1+2, no audio driver": OUT / "runs" / "stage2_long_no_audio"
            / f"checkpoint-{LONG_STAGE2_STEPS}"}


# ---------------------------------------------------------------------------------------------------------------------
# generation


def held_out() -> list[Path]:
    return sorted((OUT / "data" / "held_out").glob("conversation_*"))


def generation_jobs():
    """(model name, model folder, conversation folder, poses variant, output video)."""
    for name, folder in models().items():
        if not (folder / "model_index.json").is_file():
            continue  # not trained (yet)
        for conversation in held_out():
            variants = ["poses"]  # at 128x64 the pose renders hold no lip points (see lip_pixels_in_renders)
            for variant in variants:
                tag = name.replace(" ", "_").replace(",", "").replace("+", "")
                out = OUT / "generated" / f"{conversation.name}__{tag}__{variant.replace(' ', '_')}.mp4"
                yield name, folder, conversation, variant, out


def step_generate():
    from PIL import Image

    from mit_annotator.core import media

    (OUT / "generated").mkdir(parents=True, exist_ok=True)
    for conversation in held_out():
        reference = conversation / "reference.png"
        if not reference.is_file():
            Image.fromarray(media.read_frames(conversation / "video.mp4", end=1, size=SIZE)[0]).save(reference)
    for name, folder, conversation, variant, out in generation_jobs():
        if out.is_file():
            continue
        poses = conversation / "tracks.json"
        command = [PYTHON, "-m", "covog.generate", "--model", str(folder), "--reference",
                   str(conversation / "reference.png"), "--poses", str(poses), "--audio",
                   str(conversation / "video.mp4"), "--assignment", str(conversation / "speaking.json"),
                   "--out", str(out), "--steps", str(GEN_STEPS), "--cfg", str(GEN_CFG), "--seed", str(SEED),
                   "--window", str(GEN_WINDOW), "--overlap", str(GEN_OVERLAP), "--width", str(SIZE[0]),
                   "--height", str(SIZE[1]), "--device", "cpu"]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"generation failed: {' '.join(command)}\n{done.stderr[-2000:]}")
        log(f"generated {out.name} in {time.perf_counter() - start:.0f} s")


# ---------------------------------------------------------------------------------------------------------------------
# measures


def torso_regions(tracks, frame: int, size: tuple[int, int]) -> dict[int, tuple[int, int, int, int]]:
    """Per person, the middle of their shirt where the poses put it at `frame`, in pixels of `size`: between the
    shoulders (their middle 60%), from a third of a shoulder width below them down to the hips or the frame's
    bottom."""
    from mit_annotator.core import keypoints as kp

    sx, sy = size[0] / tracks.width, size[1] / tracks.height
    out = {}
    for track in tracks.tracks:
        row = track.row_of(frame)
        if row is None:
            continue
        points = track.keypoints[row]
        left, right = points[kp.LEFT_SHOULDER], points[kp.RIGHT_SHOULDER]
        width = abs(left[0] - right[0])
        x1, x2 = min(left[0], right[0]) + 0.2 * width, max(left[0], right[0]) - 0.2 * width
        y1 = max(left[1], right[1]) + 0.3 * width / 2
        y2 = min((points[kp.LEFT_HIP][1] + points[kp.RIGHT_HIP][1]) / 2, tracks.height) - 2
        box = (int(round(x1 * sx)), int(round(y1 * sy)), int(round(x2 * sx)), int(round(y2 * sy)))
        if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
            out[track.track_id] = box
    return out


COLOUR_MATCH = 60.0  # RGB distance within which a pixel has a person's shirt colour


def pose_and_identity(video: Path, reference: np.ndarray, tracks) -> dict:
    """Pose following and identity from the shirts. Each person's colour: the median of their shirt region in the
    reference frame (the real frame 0). Per generated frame and person: `found` when at least half the pixels of
    the region where the poses put their shirt have their colour (within COLOUR_MATCH); the centroid error: how far
    the pixels of their colour within their half of the frame lie from that region's centre (pixels); identity: the
    region's median colour is nearer their own colour than anyone else's and the wall's."""
    from mit_annotator.core import media

    frames = media.read_frames(video, fps=25, size=SIZE)
    regions0 = torso_regions(tracks, 0, SIZE)
    colours = {p: np.median(reference[y1:y2, x1:x2].reshape(-1, 3), axis=0) for p, (x1, y1, x2, y2) in
               regions0.items()}
    wall = np.median(reference[:max(2, SIZE[1] // 8)].reshape(-1, 3), axis=0)  # the top rows: the wall
    found, identity, errors = [], [], []
    torso_share, elsewhere_share = [], []  # pixels unlike the wall: in the posed torsos, and outside every person
    sx, sy = SIZE[0] / tracks.width, SIZE[1] / tracks.height
    for t, frame in enumerate(frames[:tracks.num_frames]):
        regions = torso_regions(tracks, t, SIZE)
        not_wall = np.linalg.norm(frame.astype(float) - wall, axis=2) >= COLOUR_MATCH
        people = np.zeros(not_wall.shape, bool)
        for track in tracks.tracks:
            row = track.row_of(t)
            if row is not None:
                x1, y1, x2, y2 = track.boxes[row]
                people[max(0, int(y1 * sy) - 2):int(np.ceil(y2 * sy)) + 2,
                       max(0, int(x1 * sx) - 2):int(np.ceil(x2 * sx)) + 2] = True
        if (~people).any():
            elsewhere_share.append(not_wall[~people].mean())
        for x1, y1, x2, y2 in regions.values():
            torso_share.append(not_wall[y1:y2, x1:x2].mean())
        for p, (x1, y1, x2, y2) in regions.items():
            pixels = frame[y1:y2, x1:x2].reshape(-1, 3).astype(float)
            close = np.linalg.norm(pixels - colours[p], axis=1) < COLOUR_MATCH
            found.append(close.mean() >= 0.5)
            median = np.median(pixels, axis=0)
            others = [np.linalg.norm(median - c) for q, c in colours.items() if q != p] + [np.linalg.norm(median - wall)]
            identity.append(np.linalg.norm(median - colours[p]) < min(others))
            half = slice(0, SIZE[0] // 2) if (x1 + x2) / 2 < SIZE[0] / 2 else slice(SIZE[0] // 2, SIZE[0])
            mask = np.linalg.norm(frame[:, half].astype(float) - colours[p], axis=2) < COLOUR_MATCH
            if mask.sum() >= 4:
                ys, xs = np.nonzero(mask)
                errors.append(float(np.hypot(xs.mean() + half.start - (x1 + x2) / 2, ys.mean() - (y1 + y2) / 2)))
    return {"found": float(np.mean(found)), "identity": float(np.mean(identity)),
            "torso_not_wall": float(np.mean(torso_share)),
            "elsewhere_not_wall": float(np.mean(elsewhere_share)) if elsewhere_share else None,
            "centroid_error_px": float(np.median(errors)) if errors else None,
            "centroid_measured": len(errors) / max(len(found), 1)}


def step_measure():
    from covog.evaluation.observation import EvaluationSettings
    from covog.evaluation.scoring import evaluate
    from mit_annotator.core import media
    from mit_annotator.core.records import SpeakingActivity, VideoTracks

    settings = EvaluationSettings(models_dir=str(MODELS), asd_model=str(ASD_WEIGHTS), pose_model="none",
                                  sync_max_offset=3)
    results_path = OUT / "measures.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    jobs = [("real video", None, c, "poses", None) for c in held_out()] + list(generation_jobs())
    for name, _, conversation, variant, out in jobs:
        key = f"{conversation.name} | {name} | {variant}"
        if key in results:
            if "torso_not_wall" not in results[key]:  # measured before this measure existed: add it
                video = out or OUT / "generated" / f"{conversation.name}__real.mp4"
                reference = media.read_frames(conversation / "video.mp4", end=1, size=SIZE)[0]
                results[key].update(pose_and_identity(video, reference, VideoTracks.load(conversation / "tracks.json")))
                results_path.write_text(json.dumps(results, indent=1))
            continue
        tracks = VideoTracks.load(conversation / "tracks.json")
        truth = SpeakingActivity.load(conversation / "truth_speaking.json")
        reference = media.read_frames(conversation / "video.mp4", end=1, size=SIZE)[0]
        video = out
        if out is None:  # the real held-out video at the generated size: what the measures can see at all
            video = OUT / "generated" / f"{conversation.name}__real.mp4"
            if not video.is_file():
                media.write_video(video, media.read_frames(conversation / "video.mp4", fps=25, size=SIZE), 25.0,
                                  media.read_audio(conversation / "video.mp4", 16000), 16000)
        start = time.perf_counter()
        report = evaluate(video, truth, tracks, reference_video=conversation / "video.mp4", settings=settings)
        (video.with_suffix(".report.json")).write_text(json.dumps(report))

        from covog.evaluation.figure import report_chart
        from mit_annotator.core.charts import save_figure

        save_figure(report_chart(report), video.with_suffix(".report.png"))
        a = report["attribution"]
        results[key] = {
            "conversation": conversation.name, "model": name, "poses": variant,
            **pose_and_identity(video, reference, tracks),
            "psnr": report["reference"]["psnr"], "ssim": report["reference"]["ssim"],
            "attribution_accuracy": a["frame_accuracy"], "attribution_f1": a["f1"], "attribution_kappa": a["kappa"],
            "chance": a["chance"], "asd_accuracy": a["active_speaker_only"]["frame_accuracy"],
            "asd_kappa": a["active_speaker_only"]["kappa"],
            "faces_detected": float(np.mean([p["face_detected_share"] for p in report["people"]])),
            "voices_right": sum(v["annotated_owner"] is not None and v["annotated_owner"] == v["schedule_owner"]
                                for v in a["voices"]),
            "voices": len(a["voices"]),
        }
        results_path.write_text(json.dumps(results, indent=1))
        log(f"measured {key} in {time.perf_counter() - start:.0f} s: " + json.dumps(
            {k: (round(v, 3) if isinstance(v, float) else v) for k, v in results[key].items()
             if k not in ("conversation", "model", "poses")}))
    lips = OUT / "lip_render_pixels.json"
    if not lips.is_file():
        lips.write_text(json.dumps(lip_pixels_in_renders(), indent=1))
    probe = OUT / "audio_probe.json"
    done = json.loads(probe.read_text()) if probe.is_file() else {}
    for name in models():
        if name.endswith("stage 1+2") or name.endswith("no audio driver"):
            if name not in done and (models()[name] / "model_index.json").is_file():
                done[name] = audio_driver_probe(name)
                probe.write_text(json.dumps(done, indent=1))


def audio_driver_probe(name: str, draws: int = 24) -> dict:
    out = probe_audio_driver(models()[name], held_out(), SIZE, not name.endswith("no audio driver"), draws)
    log(f"audio probe {name}: loss(swapped) - loss(right) = {out['mean_gap']:.5f} +- {out['stderr']:.5f}")
    return out


def probe_audio_driver(folder: Path, conversations: list[Path], size: tuple[int, int], use_audio: bool,
                       draws: int = 24) -> dict:
    """The stage-2 loss on held-out clips with the right speaking scores against the people's scores swapped, at the
    same noise, timesteps and frames: above zero when the audio driver uses whose score is whose."""
    import torch

    from covog.models.model import CovOGModel
    from covog.training import trainer as tr
    from covog.training.dataset import ConversationClips, collate

    model = CovOGModel.load(folder)
    net = tr.TrainingNet(model, 2, tr.Recipe(noise_offset=0.0, condition_dropout=0.0), audio_driver=use_audio)
    data = ConversationClips([str(c) for c in conversations], size, 2, CLIP_FRAMES, audio_encoder=model.audio_encoder)
    gaps = []
    with torch.no_grad():
        for draw in range(draws):
            batch = collate([data[(draw % len(data), 1000 + draw)]])
            losses = []
            for swap in (False, True):
                item = dict(batch)
                if swap:
                    item["speaking_scores"] = batch["speaking_scores"].flip(-1)
                torch.manual_seed(draw)
                losses.append(float(net(item)))
                net.bank.clear()
            gaps.append(losses[1] - losses[0])
    gaps = np.array(gaps)
    return {"mean_gap": float(gaps.mean()), "stderr": float(gaps.std(ddof=1) / np.sqrt(len(gaps))),
            "positive_share": float((gaps > 0).mean()), "draws": draws}


# ---------------------------------------------------------------------------------------------------------------------
# figures and the table


def line_plot(series: list[tuple[str, list[tuple[float, float]], tuple[int, int, int]]], title: str,
              size=(900, 300), smooth: int = 1) -> np.ndarray:
    """A line chart (RGB, matplotlib): (label, [(x, y)], colour) series, each averaged over `smooth` points."""
    from mit_annotator.core.charts import figure_rgb, new_figure

    figure = new_figure(*size)
    axes = figure.add_subplot()
    axes.set(title=title, xlabel="step", ylabel="loss")
    for label, values, colour in series:
        if not values:
            continue
        points = np.array(values, float)
        ys = np.convolve(points[:, 1], np.ones(smooth) / smooth, mode="valid")
        axes.plot(points[smooth - 1:, 0], ys, color=np.array(colour) / 255, lw=1.5, label=label)
    if axes.lines:
        axes.legend(fontsize=8)
    return figure_rgb(figure)


def sample_grid(conversation: Path, frames: list[int], scale: int = 2, skip: tuple[str, ...] = ()) -> np.ndarray:
    """Rows: the real held-out video, then each model's video of it (but those named in `skip`); columns: `frames`."""
    import cv2

    from mit_annotator.core import media

    rows = [("real", OUT / "generated" / f"{conversation.name}__real.mp4")]
    rows += [(name, out) for name, _, c, variant, out in generation_jobs() if c == conversation and name not in skip]
    label = 250
    tiles = []
    for name, video in rows:
        if not video.is_file():
            continue
        pixels = media.read_frames(video, fps=25, size=SIZE)
        row = np.concatenate([cv2.resize(pixels[min(f, len(pixels) - 1)], (SIZE[0] * scale, SIZE[1] * scale),
                                         interpolation=cv2.INTER_NEAREST) for f in frames], axis=1)
        text = np.full((row.shape[0], label, 3), 255, np.uint8)
        cv2.putText(text, name, (4, row.shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([text, row], axis=1))
    header = np.full((22, tiles[0].shape[1], 3), 255, np.uint8)
    for k, f in enumerate(frames):
        cv2.putText(header, f"frame {f}", (label + k * SIZE[0] * scale + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([header, *tiles])


def step_figures():
    import cv2

    def save(image, path):
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])

    runs = {name: json.loads((OUT / "runs" / name / "run.json").read_text())
            for name in ("stage1", "stage2", "stage2_no_audio", "stage1_long", "stage2_long", "stage2_long_no_audio")
            if (OUT / "runs" / name / "run.json").is_file()}
    vae = json.loads((OUT / "vae_curve.json").read_text())
    curves = [line_plot([("VAE reconstruction (L1 + MSE)", vae["curve"], (120, 60, 160))], "VAE (stage 0)",
                        smooth=25)]
    stage1 = "stage1_long" if "stage1_long" in runs else "stage1"
    if stage1 in runs:
        curves.append(line_plot([("stage 1 loss", runs[stage1]["curve"], (40, 90, 200))], "stage 1 (every 5th "
                                "step, mean of 20 logs)", smooth=20))
    for suffix, title in (("", f"stage 2 from stage 1's step {STAGE1_STEPS}"),
                          ("_long", f"stage 2 from stage 1's step {LONG_STAGE1_STEPS}")):
        stage2 = [(label, runs[name]["curve"], colour) for name, label, colour in
                  ((f"stage2{suffix}", "with the audio driver", (200, 60, 40)),
                   (f"stage2{suffix}_no_audio", "without it (ablation)", (40, 160, 80))) if name in runs]
        if stage2:
            curves.append(line_plot(stage2, title + " (every 5th step, mean of 5 logs)", smooth=5))
    save(np.concatenate(curves), OUT / "curves.png")
    conversation = held_out()[0]
    grid = sample_grid(conversation, [0, 40, 80, 120])
    save(grid, OUT / "samples.png")
    docs = ROOT / "docs"
    save(sample_grid(conversation, [0, 60, 120], skip=("stage 1+2, no audio driver",)),
         docs / "learning_proof_frames.png")  # under 300 KB
    save(np.concatenate(curves), docs / "learning_proof_curves.png")
    table = ["| model | posed torsos not wall | elsewhere not wall | people found where posed (own colour) | "
             "identity (shirt colour) | PSNR | SSIM | attribution accuracy | chance | F1 | kappa | LR-ASD-only kappa | "
             "voices given right |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    results = json.loads((OUT / "measures.json").read_text())
    groups = {}
    for value in results.values():
        groups.setdefault((value["model"], value["poses"]), []).append(value)
    for (model, poses), values in groups.items():
        def mean(key, digits=3):
            got = [v[key] for v in values if v[key] is not None]
            return f"{np.mean(got):.{digits}f}" if got else "-"
        voices = f"{sum(v['voices_right'] for v in values)}/{sum(v['voices'] for v in values)}"
        table.append(f"| {model} | {mean('torso_not_wall')} | {mean('elsewhere_not_wall')} | {mean('found')} | "
                     f"{mean('identity')} | {mean('psnr', 2)} | {mean('ssim')} | {mean('attribution_accuracy')} | "
                     f"{mean('chance')} | {mean('attribution_f1')} | {mean('attribution_kappa')} | {mean('asd_kappa')} "
                     f"| {voices} |")
    probe = json.loads((OUT / "audio_probe.json").read_text()) if (OUT / "audio_probe.json").is_file() else {}
    lines = ["Held-out conversations: " + ", ".join(c.name for c in held_out()), "", *table, ""]
    for name, value in probe.items():
        lines.append(f"- audio probe, {name}: stage-2 loss with the people's speaking scores swapped minus right "
                     f"= {value['mean_gap']:.2e} +- {value['stderr']:.1e} (positive in {value['positive_share']:.0%} "
                     f"of {value['draws']} draws)")
    for name, run in runs.items():
        cpu = "" if run.get("cpu_seconds") is None else f", {run['cpu_seconds'] / 60:.1f} min CPU"
        lines.append(f"- {name}: {run['steps']} steps in {run['seconds'] / 60:.1f} min wall{cpu}; load average "
                     f"{run['load_before'][0]:.1f} before, {run['load_after'][0]:.1f} after"
                     + (f" ({run['note']})" if run.get("note") else ""))
    lines.append(f"- VAE: {VAE_STEPS} steps in {vae['seconds'] / 60:.1f} min, reconstruction PSNR {vae['psnr_db']:.1f} dB")
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


STEPS = {"data": step_data, "vae": step_vae, "init": step_init, "stage1": step_stage1, "stage2": step_stage2,
         "ablation": step_ablation, "stage1_long": step_stage1_long, "stage2_long": step_stage2_long,
         "ablation_long": step_ablation_long, "generate": step_generate, "measure": step_measure, "figures": step_figures}



def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["speakers"]:  # the speakers track: benchmarks/learning_proof_speakers.py
        import learning_proof_speakers

        return learning_proof_speakers.main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=[*STEPS, "all"])
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    for name in (STEPS if args.step == "all" else [args.step]):
        log(f"step {name}")
        STEPS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
