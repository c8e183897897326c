"""Throughput of `annotate` (video-seconds per wall-second), the share of each stage, the fast vision pass against
`--exact`, 1 worker against 2, and Ray's overhead against the plain loop on the same inputs.

    python benchmarks/bench_annotate.py [--videos 4] [--real 0] [--seconds 12] [--size 640x360]
                                        [--speakers lips auto] [--rounds 1] [--no-ray] [--json results.json]

Inputs: synthetic conversations (2, 3, 4, 3 ... people, LibriSpeech voices from ../shared/data) at --size, written
as h264 + AAC mp4 once; with --real N also N real videos scaled to --size: interact_11.mp4, then panels of real
talking people (interact_11's two and talking_head_1, benchmarks/diarization_material.py). Models: the bundled
YOLOX-Nano detector and YuNet faces from ../shared/data/models, pose model none; who speaks with each --speakers
evidence (auto: LR-ASD from ../shared/data/models/lr_asd). Runs, each
into a fresh dataset folder, timed around `run_batch` (model loading and worker start included):
- the plain loop (1 worker, this process), per --speakers: wall time, and the stages' shares from the timings files;
- the plain loop with `--exact` (every frame, faces in whole frames; the first --speakers), and whether it selects
  the same clips (same video, people, and boundaries within one frame) as the default;
- 2 worker processes (the first --speakers);
- Ray tasks on a local cluster started here, with 1 CPU (against the plain loop) and 2 CPUs (against 2 workers);
  ray.init's own time is given apart.
With --rounds N the runs repeat N times, interleaved (a shared machine's load drifts), and each is reported by its
fastest round (the least disturbed), with every round's time beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
MODELS = SHARED / "models"

sys.path.insert(0, str(ROOT / "benchmarks"))

import cv2  # noqa: E402

from mit_annotator.core import media  # noqa: E402
from mit_annotator.pipeline.annotate import STAGES, AnnotateSettings  # noqa: E402
from mit_annotator.pipeline.batch import BatchOptions, find_videos, run_batch  # noqa: E402
from mit_annotator.synthetic import ConversationSpec, LibriSpeechSource, synthesize_conversation  # noqa: E402


def make_inputs(folder: Path, count: int, seconds: float, size: tuple[int, int], real: int = 0) -> float:
    speech = LibriSpeechSource(SHARED / "speech" / "librispeech_test-other")
    total = 0.0
    for k in range(count):
        people = (2, 3, 4)[k % 3]
        talk = synthesize_conversation(ConversationSpec(num_people=people, seconds=seconds, width=size[0],
                                                        height=size[1], seed=100 + k), speech)
        media.write_video(folder / f"talk{k}.mp4", talk.frames(), 25.0, talk.mix, 16000)
        total += talk.spec.num_frames / 25.0
    for name, frames, audio in real_videos(real):
        scaled = (cv2.resize(frame, size, interpolation=cv2.INTER_AREA if frame.shape[1] > size[0]
                             else cv2.INTER_CUBIC) for frame in frames)
        media.write_video(folder / f"{name}.mp4", scaled, 25.0, audio, 16000)
        total += len(frames) / 25.0
    return total


def real_videos(count: int):
    """(name, frames at 25 fps, audio at 16 kHz) of the first `count` real videos."""
    from diarization_material import PANELS, talkers

    from mit_annotator.synthetic.remix import panel

    if count:
        interact = SHARED / "video" / "interact_11.mp4"
        yield "interact_11", media.read_frames(interact, fps=25), media.read_audio(interact, 16000)
    for k, (name, split, order, stretch, parts) in enumerate(PANELS[:max(0, count - 1)]):
        people = talkers(SHARED, stretch)
        remix = panel([people[p] for p in order], parts, 25.0, 16000)
        yield f"panel{k}", remix.frames, remix.audio


def clip_rows(out: Path) -> list[tuple]:
    manifest = json.loads((out / "manifest.json").read_text())
    return sorted((c["video"], c["start"], c["end"], c["people"]) for c in manifest["clips"])


def same_clips(exact: list[tuple], fast: list[tuple]) -> str:
    """Whether two runs chose the same clips: same video and people, boundaries within one frame."""
    if len(exact) != len(fast):
        return f"{len(exact)} clips exact, {len(fast)} fast"
    moved = [max(abs(a[1] - b[1]), abs(a[2] - b[2])) for a, b in zip(exact, fast)]
    if any(a[0] != b[0] or a[3] != b[3] for a, b in zip(exact, fast)) or max(moved, default=0) > 1:
        return f"different: {exact} against {fast}"
    return f"the same {len(exact)} clips (boundaries moved by at most {max(moved, default=0)} frame)"


def timed_run(videos: Path, out: Path, settings: AnnotateSettings, **options) -> tuple[float, object]:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    summary = run_batch(find_videos(videos, "bench"), out, BatchOptions(settings=settings, progress=False, **options))
    return time.perf_counter() - started, summary


def stage_seconds(out: Path) -> dict[str, float]:
    totals = dict.fromkeys(STAGES, 0.0)
    for path in (out / ".annotate" / "timings").glob("*.json"):
        for stage, seconds in json.loads(path.read_text())["seconds"].items():
            totals[stage] += seconds
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--real", type=int, default=0, help="also this many real videos (at most 7), scaled to --size")
    parser.add_argument("--detect-every", type=int, default=AnnotateSettings().detect_every,
                        help="the default runs' person-detection stride (--exact runs always detect on every frame)")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--speakers", nargs="+", default=["lips", "auto"], choices=["lips", "auto", "asd"])
    parser.add_argument("--rounds", type=int, default=1, help="repeat the runs, interleaved; keep each one's fastest")
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="bench_annotate_"))
    videos = work / "videos"
    videos.mkdir()
    video_seconds = make_inputs(videos, args.videos, args.seconds, size, args.real)
    print(f"{args.videos} videos, {video_seconds:.1f} s at {size[0]}x{size[1]}; {os.cpu_count()} CPUs; "
          f"work folder {work}")
    results = {"videos": args.videos, "video_seconds": video_seconds, "size": list(size), "runs": []}
    models = dict(models_dir=str(MODELS), det_model=str(MODELS / "yolox_nano.onnx"), pose_model="none")
    base = {**models, "detect_every": args.detect_every}
    first = args.speakers[0]
    configs = [(f"plain loop, 1 worker, speakers {s}", AnnotateSettings(**base, speakers=s), {}, 0)
               for s in args.speakers]
    configs.append((f"plain loop, 1 worker, speakers {first}, --exact",
                    AnnotateSettings(**models, speakers=first, detect_every=1, face_search="frame", faces_every=1,
                                     detector_input="square",
                                     encode_preset="medium"), {}, 0))
    configs.append((f"2 worker processes, speakers {first}", AnnotateSettings(**base, speakers=first),
                    {"workers": 2}, 0))
    if not args.no_ray:
        for cpus in (1, 2):
            configs.append((f"Ray, {cpus} CPU{'s' if cpus > 1 else ''}, speakers {first}",
                            AnnotateSettings(**base, speakers=first), {"backend": "ray", "workers": cpus}, cpus))
    walls: dict[str, list[float]] = {name: [] for name, *_ in configs}
    inits: dict[str, list[float]] = {name: [] for name, *_ in configs}
    best: dict[str, tuple] = {}
    chosen: dict[str, list[tuple]] = {}
    for round_ in range(args.rounds):
        for name, settings, options, cpus in configs:
            out = work / f"run{len(walls[name])}_{abs(hash(name))}"
            init = 0.0
            if cpus:
                import ray

                started = time.perf_counter()
                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
                init = time.perf_counter() - started
            wall, summary = timed_run(videos, out, settings, **options)
            if cpus:
                ray.shutdown()
            walls[name].append(round(wall, 2))
            inits[name].append(round(init, 2))
            if name not in best or wall < best[name][0]:
                best[name] = (wall, summary.clips, stage_seconds(out))
            chosen[name] = clip_rows(out)
            shutil.rmtree(out, ignore_errors=True)
            print(f"round {round_ + 1}: {name}: {wall:.1f} s" + (f" (+ ray.init {init:.1f} s)" if cpus else ""),
                  flush=True)
    print()
    for name, *_ in configs:
        wall, clips, stages = best[name]
        staged = sum(stages.values())
        row = {"run": name, "wall_s": round(wall, 2), "rounds_s": walls[name], "video_s_per_s":
               round(video_seconds / wall, 3), "clips": clips, "stage_s": {k: round(v, 2) for k, v in stages.items()},
               "stage_share": {k: round(v / staged, 3) for k, v in stages.items()} if staged else {},
               "outside_stages_s": round(wall - staged, 2)}
        if inits[name][0]:
            row["ray_init_s"] = inits[name]
        results["runs"].append(row)
        shares = ", ".join(f"{k} {v:.0%}" for k, v in row["stage_share"].items() if v >= 0.005)
        print(f"{name}: best {wall:.1f} s of {walls[name]}, {row['video_s_per_s']:.2f} video-s/s, {clips} clips; "
              f"stages: {shares}; outside the stages (models, workers, commits) {row['outside_stages_s']:.1f} s")
    by_name = {row["run"]: row for row in results["runs"]}
    plain_first = by_name[f"plain loop, 1 worker, speakers {first}"]["wall_s"]
    pool = by_name[f"2 worker processes, speakers {first}"]["wall_s"]
    print(f"2 workers against 1: {plain_first / pool:.2f}x")
    exact_name = f"plain loop, 1 worker, speakers {first}, --exact"
    print(f"the default against --exact: {by_name[exact_name]['wall_s'] / plain_first:.2f}x faster; "
          f"{same_clips(chosen[exact_name], chosen[f'plain loop, 1 worker, speakers {first}'])}")
    results["exact_against_default_clips"] = {"exact": chosen[exact_name],
                                              "default": chosen[f"plain loop, 1 worker, speakers {first}"]}
    if not args.no_ray:
        for name, against in ((f"Ray, 1 CPU, speakers {first}", plain_first), (f"Ray, 2 CPUs, speakers {first}", pool)):
            print(f"{name}: {by_name[name]['wall_s'] / against - 1:+.1%} against the "
                  f"{'plain loop' if '1 CPU' in name else '2 worker processes'} (ray.init apart: "
                  f"{min(by_name[name]['ray_init_s']):.1f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
