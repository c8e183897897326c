"""The speakers track of the CovOG learning proof: does the Interactive Audio Driver learn who speaks? Trained and
measured at a scale where the thing learned is visible: two-person face close-ups, each mouth at least 12 pixels wide
at the training size.

    .venv/bin/python benchmarks/learning_proof.py speakers all     # or one step: data vae init stage1 stage2
                                                                   # stage2_more generate measure figures
                                                                   # (resumable)

Everything is written under OUT (outputs/learning_proof/speakers/); the settings are the constants below.

- data: synthetic conversations (mit_annotator.synthetic, `framing="face"`: each head fills its half of the frame)
  with real LibriSpeech voices, turns, pauses and overlaps; each drawn mouth opens with the loudness of its own
  voice. The training conversations use 6 of the 10 voices, the held-out ones the other 4, with new seeds (new
  faces, motion and turn schedules). Each clip folder holds the poses with every mouth closed (tracks.json: what
  training and generation read, so that the pose renders show where each mouth is but not how open it is: only the
  audio can open it), the drawn poses (truth_tracks.json), who speaks when as drawn (speaking.json: the proof is
  about the driver, the annotation's accuracy is measured in the body track) and each person's own voice.
- vae, init: as in the body track, on these frames.
- stage1: `covog.train --stage 1`. stage2: `covog.train --stage 2` with the driver (--driver-lr) and its ablation
  `--no-audio-driver`, from the same stage-1 checkpoint, same steps and seed, run side by side. stage2_more: both
  continued (--resume) to MORE_STAGE2_STEPS; the models of both lengths are measured.
- generate: every held-out conversation from its first frame, its closed-mouth poses and its mixed audio, by the
  driver model with the right speaking scores and with the two people's scores swapped, and by the ablation.
- measure: covog.evaluation.mouths on each video against the true schedule (per-person opening where the poses put
  the mouth; speaking/not speaking accuracy, F1, kappa; each voice's margin), the same on the real held-out videos
  and their VAE round trip (what the measure and the VAE can see at all), and the audio probe (the stage-2 loss with
  the scores swapped minus right).
- figures: per model (the longest stage 2), frames of one held-out conversation with the two mouth-opening traces
  under them, shaded where each person speaks; OUT/table.md.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import learning_proof as lp
import numpy as np

# ---- settings ------------------------------------------------------------------------------------------------------
OUT = lp.ROOT / "outputs" / "learning_proof" / "speakers"
RENDER = (512, 256)  # drawn at this size, written as clips, read resized to SIZE
SIZE = (128, 64)  # training and generation size: a mouth is 12-13 px wide, a head 40 x 55
TRAIN_SEEDS = list(range(2000, 2016))  # 16 training conversations
HELD_OUT_SEEDS = list(range(9101, 9107))  # 6 held-out ones
TRAIN_VOICES = 6  # the first 6 LibriSpeech voices (sorted) train, the other 4 are held out
SECONDS, HELD_OUT_SECONDS = 8.0, 5.0
UTTERANCES, HELD_OUT_UTTERANCES = (1.2, 2.6), (0.8, 1.8)  # seconds; held out: shorter turns, a new kind of schedule
OVERLAP = 0.25  # chance that a turn starts before the previous one ends
# heads move alike whether their person speaks or not: with the mouths closed, the poses do not tell who speaks, so
# only the audio driver can (with True, the ablation learned who speaks from the head motion: BENCHMARKS.md)
ANIMATED_WHILE_SPEAKING = False
STAGE1_STEPS, STAGE2_STEPS = 3000, 1500
MORE_STAGE2_STEPS = 2500  # stage2_more: both stage-2 runs continued (--resume) to this many steps
# a shorter stage-1 run of the same settings, when there is one, is continued (--resume: the learning rate is
# constant, so this is the same run): the first 800 steps of the figures in BENCHMARKS.md ran as a short trial
SHORTER_STAGE1 = OUT / "runs" / "stage1_short"
LR, DRIVER_LR = 1e-4, 1e-3
GEN_STEPS, GEN_CFG, GEN_WINDOW, GEN_OVERLAP = 12, 1.0, 16, 4
# --------------------------------------------------------------------------------------------------------------------

MODELS = {"with the audio driver": ("stage2", "speaking.json"),
          "with the audio driver, scores swapped": ("stage2", "speaking_swapped.json"),
          "no audio driver (ablation)": ("stage2_no_audio", "speaking.json"),
          f"with the audio driver, {MORE_STAGE2_STEPS} steps": ("stage2_more", "speaking.json"),
          f"with the audio driver, {MORE_STAGE2_STEPS} steps, scores swapped": ("stage2_more",
                                                                                "speaking_swapped.json"),
          f"no audio driver (ablation), {MORE_STAGE2_STEPS} steps": ("stage2_more_no_audio", "speaking.json")}
RUN_STEPS = {"stage2": STAGE2_STEPS, "stage2_no_audio": STAGE2_STEPS, "stage2_more": MORE_STAGE2_STEPS,
             "stage2_more_no_audio": MORE_STAGE2_STEPS}


class Voices:
    """A speech source limited to some of its voices."""

    def __init__(self, source, voices: list[str]):
        self.source, self.name, self._voices = source, source.name, voices

    def voices(self) -> list[str]:
        return list(self._voices)

    def utterances(self, voice: str):
        return self.source.utterances(voice)


def swapped(speaking):
    """The same schedule with the two people's speaking scores exchanged."""
    from mit_annotator.core.records import PersonSpeaking, SpeakingActivity

    a, b = speaking.people
    people = [PersonSpeaking(a.track_id, b.scores, b.voice, b.speak, b.listen),
              PersonSpeaking(b.track_id, a.scores, a.voice, a.speak, a.listen)]
    return SpeakingActivity(speaking.fps, speaking.num_frames, people, speaking.unassigned_voices)


def make_clip(seed: int, seconds: float, utterances: tuple[float, float], folder: Path, speech) -> dict:
    from mit_annotator.core import media
    from mit_annotator.synthetic import ConversationSpec, synthesize_conversation

    spec = ConversationSpec(num_people=2, seconds=seconds, width=RENDER[0], height=RENDER[1], seed=seed,
                            overlap_probability=OVERLAP, utterance_seconds=utterances, framing="face",
                            animated_while_speaking=ANIMATED_WHILE_SPEAKING)
    conversation = synthesize_conversation(spec, speech)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    media.write_video(partial / "video.mp4", conversation.frames(), spec.fps, conversation.mix, 16000)
    conversation.tracks_with_mouths_closed().save(partial / "tracks.json")
    conversation.tracks.save(partial / "truth_tracks.json")
    conversation.speaking.save(partial / "speaking.json")
    swapped(conversation.speaking).save(partial / "speaking_swapped.json")
    for k, voice in enumerate(conversation.person_audio):
        media.write_wav(partial / f"person_{k}.wav", voice, 16000)
    scale = SIZE[0] / RENDER[0]
    info = {"seed": seed, "seconds": seconds, "voices": conversation.voices,
            # the outer lips span 0.64 of the head's half-width (figures' face template)
            "mouth_width_px": [round(0.64 * f.head_half_size[0] * scale, 2) for f in conversation.figures],
            "speaking_share": [round(float((p.scores > 0).mean()), 3) for p in conversation.speaking.people],
            "both_speaking_share": round(float(np.logical_and(*[p.scores > 0 for p in
                                                                conversation.speaking.people]).mean()), 3)}
    (partial / "conversation.json").write_text(json.dumps(info, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return info


def step_data():
    from mit_annotator.synthetic import LibriSpeechSource

    speech = LibriSpeechSource(lp.SPEECH)
    voices = speech.voices()
    splits = (("train", TRAIN_SEEDS, SECONDS, UTTERANCES, voices[:TRAIN_VOICES]),
              ("held_out", HELD_OUT_SEEDS, HELD_OUT_SECONDS, HELD_OUT_UTTERANCES, voices[TRAIN_VOICES:]))
    for split, seeds, seconds, utterances, allowed in splits:
        for seed in seeds:
            folder = OUT / "data" / split / f"conversation_{seed}"
            if not (folder / "conversation.json").is_file():
                info = make_clip(seed, seconds, utterances, folder, Voices(speech, allowed))
                lp.log(f"{split} {seed}: voices {info['voices']}, mouths {info['mouth_width_px']} px wide, speaking "
                       f"{info['speaking_share']}, both at once {info['both_speaking_share']}")


def held_out() -> list[Path]:
    return sorted((OUT / "data" / "held_out").glob("conversation_*"))


def training_frames() -> np.ndarray:
    from mit_annotator.core import media

    folders = sorted((OUT / "data" / "train").glob("conversation_*"))
    return np.concatenate([media.read_frames(f / "video.mp4", size=SIZE) for f in folders])


def step_vae():
    lp.train_vae(OUT / "vae", training_frames, OUT / "vae_curve.json", SIZE)


def step_init():
    lp.build_initial_model(OUT / "vae", OUT / "models" / "init", OUT / "model_size.json")


def step_stage1():
    shorter = SHORTER_STAGE1 if any(SHORTER_STAGE1.glob("state-*")) else None
    lp.train(1, OUT / "models" / "init", OUT / "runs" / "stage1", STAGE1_STEPS, data=OUT / "data" / "train",
             size=SIZE, lr=LR, resume_from=shorter)


def step_stage2():
    """The driver and its ablation side by side (one thread each: the machine has two cores)."""
    side_by_side({"stage2": None, "stage2_no_audio": None})


def step_stage2_more():
    """Both stage-2 runs continued to MORE_STAGE2_STEPS (--resume from their last state: the same runs, longer)."""
    side_by_side({"stage2_more": OUT / "runs" / "stage2", "stage2_more_no_audio": OUT / "runs" / "stage2_no_audio"})


def side_by_side(runs: dict[str, Path | None]):
    """Stage-2 runs (folder name -> the run it continues, or None), in parallel threads."""
    start = OUT / "runs" / "stage1" / f"checkpoint-{STAGE1_STEPS}"
    errors = []

    def one(name, resume_from):
        extra = ["--no-audio-driver"] if name.endswith("no_audio") else ["--driver-lr", str(DRIVER_LR)]
        try:
            lp.train(2, start, OUT / "runs" / name, RUN_STEPS[name], extra, data=OUT / "data" / "train", size=SIZE,
                     lr=LR, resume_from=resume_from)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(f"{name}: {error}")

    threads = [threading.Thread(target=one, args=item) for item in runs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit("; ".join(errors))


def model_folder(run: str) -> Path:
    return OUT / "runs" / run / f"checkpoint-{RUN_STEPS[run]}"


def generated(conversation: Path, name: str) -> Path:
    tag = name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
    return OUT / "generated" / f"{conversation.name}__{tag}.mp4"


def step_generate():
    from PIL import Image

    from mit_annotator.core import media

    (OUT / "generated").mkdir(parents=True, exist_ok=True)
    jobs = []
    for conversation in held_out():
        reference = conversation / "reference.png"
        if not reference.is_file():
            Image.fromarray(media.read_frames(conversation / "video.mp4", end=1, size=SIZE)[0]).save(reference)
        for name, (run, speaking) in MODELS.items():
            out = generated(conversation, name)
            if not out.is_file() and (model_folder(run) / "model_index.json").is_file():
                jobs.append([lp.PYTHON, "-m", "covog.generate", "--model", str(model_folder(run)), "--reference",
                             str(reference), "--poses", str(conversation / "tracks.json"), "--audio",
                             str(conversation / "video.mp4"), "--assignment", str(conversation / speaking),
                             "--out", str(out), "--steps", str(GEN_STEPS), "--cfg", str(GEN_CFG), "--seed",
                             str(lp.SEED), "--window", str(GEN_WINDOW), "--overlap", str(GEN_OVERLAP), "--width",
                             str(SIZE[0]), "--height", str(SIZE[1]), "--device", "cpu"])
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not jobs:
                    return
                command = jobs.pop(0)
            start = time.perf_counter()
            done = subprocess.run(command, cwd=lp.ROOT, env=lp.ENV, capture_output=True, text=True)
            if done.returncode != 0:
                lp.log(f"generation failed: {' '.join(command)}\n{done.stderr[-2000:]}")
            else:
                lp.log(f"generated {Path(command[command.index('--out') + 1]).name} in "
                       f"{time.perf_counter() - start:.0f} s")

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def real_videos(conversation: Path) -> dict[str, Path]:
    """The real held-out video at SIZE, and the same through the trained VAE (encoded, decoded)."""
    import torch
    from diffusers import AutoencoderKL

    from mit_annotator.core import media

    real, round_trip = (OUT / "generated" / f"{conversation.name}__{tag}.mp4" for tag in ("real", "real_through_vae"))
    audio = media.read_audio(conversation / "video.mp4", 16000)
    frames = media.read_frames(conversation / "video.mp4", fps=25, size=SIZE)
    if not real.is_file():
        media.write_video(real, frames, 25.0, audio, 16000)
    if not round_trip.is_file():
        vae = AutoencoderKL.from_pretrained(OUT / "vae").eval()
        with torch.no_grad():
            x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
            y = torch.cat([vae.decode(vae.encode(x[k:k + 32]).latent_dist.mean).sample for k in range(0, len(x), 32)])
        decoded = ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        media.write_video(round_trip, decoded, 25.0, audio, 16000)
    return {"real held-out video": real, "real video through the VAE": round_trip}


def step_measure():
    from covog.evaluation.mouths import mouth_report
    from mit_annotator.core import media
    from mit_annotator.core.records import SpeakingActivity, VideoTracks

    results_path = OUT / "measures.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for conversation in held_out():
        tracks = VideoTracks.load(conversation / "tracks.json")
        truth = SpeakingActivity.load(conversation / "speaking.json")
        given = {"speaking.json": truth, "speaking_swapped.json": SpeakingActivity.load(
            conversation / "speaking_swapped.json")}
        voices = [media.read_audio(conversation / f"person_{k}.wav", 16000) for k in range(len(tracks.tracks))]
        videos = {name: (video, "speaking.json") for name, video in real_videos(conversation).items()}
        videos.update({name: (generated(conversation, name), speaking) for name, (_, speaking) in MODELS.items()})
        for name, (video, speaking) in videos.items():
            key = f"{conversation.name} | {name}"
            if key in results or not video.is_file():
                continue
            frames = media.read_frames(video, fps=25, size=SIZE)
            report = mouth_report(frames, tracks, truth, voices)
            results[key] = {"conversation": conversation.name, "model": name, "truth": report,
                            "given": mouth_report(frames, tracks, given[speaking], voices)}
            results_path.write_text(json.dumps(results, indent=1))
            lp.log(f"{key}: kappa {report['kappa']:.3f} (accuracy {report['accuracy']:.3f}, chance "
                   f"{report['chance']:.3f}), voice margins {[v['margin'] for v in report['voices']]}")
    probe_path = OUT / "audio_probe.json"
    probe = json.loads(probe_path.read_text()) if probe_path.is_file() else {}
    for name, (run, speaking) in MODELS.items():
        if speaking != "speaking.json":
            continue
        use_audio = "no_audio" not in run
        if name not in probe and (model_folder(run) / "model_index.json").is_file():
            probe[name] = lp.probe_audio_driver(model_folder(run), held_out(), SIZE, use_audio)
            probe_path.write_text(json.dumps(probe, indent=1))
            lp.log(f"audio probe {name}: {probe[name]}")


def step_figures():
    import cv2
    from PIL import Image

    from covog.evaluation.mouths import mouth_openings
    from mit_annotator.core import media
    from mit_annotator.core.charts import figure_rgb, new_figure
    from mit_annotator.core.records import SpeakingActivity, VideoTracks

    conversation = held_out()[0]
    tracks = VideoTracks.load(conversation / "tracks.json")
    truth = SpeakingActivity.load(conversation / "speaking.json")
    longest = [name for name in MODELS if generated(conversation, name).is_file() and str(MORE_STAGE2_STEPS) in name]
    shown_models = longest or [name for name in MODELS if str(MORE_STAGE2_STEPS) not in name]
    videos = {"real held-out video": real_videos(conversation)["real held-out video"],
              **{name: generated(conversation, name) for name in shown_models}}
    panels = []
    shown = list(range(8, tracks.num_frames, max(1, tracks.num_frames // 8)))[:8]
    colours = [(0.85, 0.25, 0.2), (0.2, 0.45, 0.85)]
    for name, video in videos.items():
        if not video.is_file():
            continue
        frames = media.read_frames(video, fps=25, size=SIZE)
        openings = mouth_openings(frames, tracks)
        strip = np.concatenate([cv2.resize(frames[f], (SIZE[0] * 2, SIZE[1] * 2), interpolation=cv2.INTER_NEAREST)
                                for f in shown], axis=1)
        figure = new_figure(strip.shape[1], 260)
        axes = figure.add_subplot()
        for p, person in enumerate(truth.people):
            speaking = person.scores[:len(frames)] > 0
            axes.fill_between(np.arange(len(speaking)), p * 0.5, p * 0.5 + 0.45, where=speaking, step="mid",
                              color=colours[p], alpha=0.15, lw=0)
            axes.plot(openings[p] * 0.45 + p * 0.5, color=colours[p], lw=1.4,
                      label=f"person {person.track_id} ({'left' if p == 0 else 'right'}): mouth opening; shaded: "
                            "speaking")
        for f in shown:
            axes.axvline(f, color="0.6", lw=0.6, ls=":")
        axes.set(title=name, xlabel="frame", yticks=[], xlim=(0, len(frames) - 1), ylim=(0, 1))
        axes.legend(fontsize=7, loc="upper right")
        panels.append(np.concatenate([strip, figure_rgb(figure)]))
    image = np.concatenate(panels)
    cv2.imwrite(str(OUT / "mouths.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    Image.fromarray(image).quantize(256).save(lp.ROOT / "docs" / "learning_proof_speakers.png", optimize=True)
    write_table()


def write_table():
    results = json.loads((OUT / "measures.json").read_text())
    probe = json.loads((OUT / "audio_probe.json").read_text()) if (OUT / "audio_probe.json").is_file() else {}
    lines = [f"Held-out conversations: {len(held_out())} ({', '.join(c.name for c in held_out())})", "",
             "| video | kappa vs the true schedule (mean, min-max) | accuracy | chance | F1 | kappa vs the scores "
             "given | voice margin (mean, min) | opening speaking / silent |", "|---|---|---|---|---|---|---|---|"]
    groups = {}
    for value in results.values():
        groups.setdefault(value["model"], []).append(value)
    for model, values in groups.items():
        def column(key, source="truth"):
            return np.array([v[source][key] for v in values], float)
        kappa = column("kappa")
        margins = [m["margin"] for v in values for m in v["truth"].get("voices", [])]
        speaking = [p["opening_speaking"] for v in values for p in v["truth"]["people"] if p["opening_speaking"]]
        silent = [p["opening_silent"] for v in values for p in v["truth"]["people"] if p["opening_silent"]]
        lines.append(f"| {model} | {kappa.mean():.3f} ({kappa.min():.2f} to {kappa.max():.2f}) | "
                     f"{column('accuracy').mean():.3f} | {column('chance').mean():.3f} | {column('f1').mean():.3f} | "
                     f"{column('kappa', 'given').mean():.3f} | {np.mean(margins):.2f}, {np.min(margins):.2f} | "
                     f"{np.mean(speaking):.3f} / {np.mean(silent):.3f} |")
    for suffix in ("", f", {MORE_STAGE2_STEPS} steps"):
        lines += per_conversation(results, suffix)
    lines.append("")
    for name, value in probe.items():
        lines.append(f"- audio probe, {name}: stage-2 loss with the speaking scores swapped minus right = "
                     f"{value['mean_gap']:.2e} +- {value['stderr']:.1e} (positive in {value['positive_share']:.0%} "
                     f"of {value['draws']} draws)")
    for name in ("stage1", *RUN_STEPS):
        record = OUT / "runs" / name / "run.json"
        if record.is_file():
            run = json.loads(record.read_text())
            curve = run["curve"]
            lines.append(f"- {name}: {run['steps']} steps in {run['seconds'] / 60:.1f} min wall; loss first 25 steps "
                         f"{np.mean([c[1] for c in curve[:5]]):.3f}, last 25 {np.mean([c[1] for c in curve[-5:]]):.3f};"
                         f" load average {run['load_before'][0]:.1f} before, {run['load_after'][0]:.1f} after")
    vae = OUT / "vae_curve.json"
    if vae.is_file():
        record = json.loads(vae.read_text())
        lines.append(f"- VAE: {record['seconds'] / 60:.1f} min, reconstruction PSNR {record['psnr_db']:.1f} dB")
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def per_conversation(results: dict, suffix: str) -> list[str]:
    """The table's rows per held-out conversation for the stage-2 models named with `suffix`."""
    if not any(v["model"] == f"with the audio driver{suffix}" for v in results.values()):
        return []
    lines = ["", f"Per conversation{suffix or f', {STAGE2_STEPS} steps'}:", "",
             "| conversation | real video | with the driver (voice margins) | scores swapped: vs the truth, vs the "
             "scores given (voice margins) | ablation |", "|---|---|---|---|---|"]
    for conversation in held_out():
        got = {v["model"]: v for v in results.values() if v["conversation"] == conversation.name}

        def cell(model, given=False):
            if model not in got:
                return "-"
            report = got[model]["truth"]
            margins = ", ".join(f"{m['margin']:+.2f}" for m in report.get("voices", []))
            extra = f", {got[model]['given']['kappa']:.3f}" if given else ""
            return f"{report['kappa']:.3f}{extra} ({margins})"
        driver, swapped = f"with the audio driver{suffix}", f"with the audio driver{suffix}, scores swapped"
        lines.append(f"| {conversation.name} | {cell('real held-out video')} | {cell(driver)} | {cell(swapped, True)} "
                     f"| {cell(f'no audio driver (ablation){suffix}')} |")
    return lines


STEPS = {"data": step_data, "vae": step_vae, "init": step_init, "stage1": step_stage1, "stage2": step_stage2,
         "stage2_more": step_stage2_more, "generate": step_generate, "measure": step_measure, "figures": step_figures}


def main(argv: list[str]) -> int:
    step = argv[0] if argv else "all"
    if step not in (*STEPS, "all"):
        raise SystemExit(f"speakers step must be one of {', '.join(STEPS)} or all, got {step!r}")
    OUT.mkdir(parents=True, exist_ok=True)
    for name in (STEPS if step == "all" else [step]):
        lp.log(f"speakers: step {name}")
        STEPS[name]()
    return 0
