"""python -m covog.evaluate: how well a generated conversation video does what it was asked, measured by the pack's
own annotator (the benchmark CovOG's paper lacked: who moves their lips to whose voice, in sync, staying the same
person with the same fingers).

The details: docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from covog.evaluation.figure import report_chart
from covog.evaluation.mouths import mouth_report
from covog.evaluation.observation import SYNC_MAX_OFFSET, EvaluationError, EvaluationSettings
from covog.evaluation.scoring import evaluate
from mit_annotator.core import media
from mit_annotator.core.charts import save_figure
from mit_annotator.core.documents import FormatError, save_json
from mit_annotator.core.files import output_file
from mit_annotator.core.records import SAMPLE_RATE, SpeakingActivity, VideoTracks


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m covog.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("video", help="the generated video (mp4 with its audio)")
    parser.add_argument("--reference-speaking", required=True,
                        help="who was meant to speak when: a speaking JSON (mit_annotator assign, or the one the video "
                             "was generated with)")
    parser.add_argument("--tracks", default=None, help="the poses the video was made from (their track ids are the "
                                                       "schedule's); without them faces are matched left to right")
    parser.add_argument("--reference-video", default=None, help="a real video of the same scene: PSNR, SSIM, ...")
    parser.add_argument("--audio", default=None, help="the conversation's audio (default: the video's own)")
    parser.add_argument("--out", required=True, type=output_file, help="report JSON to write")
    parser.add_argument("--plot", default=None, help="report PNG to write (default: beside --out)")
    parser.add_argument("--models", default=None, help="models directory (YuNet, LR-ASD, DWPose, I3D)")
    parser.add_argument("--asd-model", default="lr_asd", help="LR-ASD weights: a path or a known name")
    parser.add_argument("--pose-model", default="dwpose", help="pose model for hands: a path, a known name or none")
    parser.add_argument("--det-model", default="yolox_l", help="person detector used with the pose model")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--sync-max-offset", type=int, default=SYNC_MAX_OFFSET,
                        help=f"audio delays tried each way, in frames (default {SYNC_MAX_OFFSET})")
    parser.add_argument("--max-speakers", type=int, default=None, help="for diarizing (default: people + 2)")
    parser.add_argument("--mouths", action="store_true",
                        help="also read each mouth's opening from the pixels where --tracks put it (needs --tracks; "
                             "for drawn or small faces an active-speaker model cannot read)")
    parser.add_argument("--voices", nargs="+", default=None,
                        help="with --mouths: each person's own voice (audio files, in the tracks' order), to "
                             "correlate each mouth with each voice")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> tuple[Path, Path, dict]:
    if args.sync_max_offset < 0:
        raise EvaluationError(f"--sync-max-offset must be at least 0, got {args.sync_max_offset}")
    for name in ("video", "reference_speaking", "tracks", "reference_video", "audio"):
        value = getattr(args, name)
        if value is not None and not Path(value).is_file():
            raise FileNotFoundError(f"--{name.replace('_', '-')} {value}: no such file" if name != "video"
                                    else f"video {value}: no such file")
    if (args.mouths or args.voices) and not args.tracks:
        raise EvaluationError("--mouths reads each mouth where the poses put it: give the poses with --tracks")
    if args.voices and not args.mouths:
        raise EvaluationError("--voices is read by --mouths: add --mouths")
    for voice in args.voices or []:
        if not Path(voice).is_file():
            raise FileNotFoundError(f"--voices {voice}: no such file")
    schedule = SpeakingActivity.load(args.reference_speaking)
    tracks = VideoTracks.load(args.tracks) if args.tracks else None
    audio = media.read_audio(args.audio, SAMPLE_RATE) if args.audio else None
    settings = EvaluationSettings(models_dir=args.models, asd_model=args.asd_model, pose_model=args.pose_model,
                                  det_model=args.det_model, device=args.device, sync_max_offset=args.sync_max_offset,
                                  max_speakers=args.max_speakers)
    report = evaluate(args.video, schedule, tracks, args.reference_video, audio, settings)
    if args.mouths:
        voices = [media.read_audio(v, SAMPLE_RATE) for v in args.voices] if args.voices else None
        frames = media.read_frames(args.video, fps=schedule.fps)
        report["mouths"] = mouth_report(frames, tracks, schedule, voices, SAMPLE_RATE)
    out = save_json(report, args.out)
    plot, _ = save_figure(report_chart(report), Path(args.plot) if args.plot else out.with_suffix(".png"))
    return out, plot, report


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        out, plot, report = run(args)
    except (ValueError, FileNotFoundError, media.MediaError, FormatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    a = report["attribution"]
    print(f"speaker attribution: frame accuracy {a['frame_accuracy']:.3f} (chance {a['chance']:.3f}), "
          f"F1 {a['f1']:.3f}, kappa {a['kappa']:.3f}")
    for entry in report["sync"]["per_person"]:
        if "offset_frames" in entry:
            print(f"  person {entry['track_id']}: sync offset {entry['offset_frames']:+d} frames, confidence "
                  f"{entry['confidence']:.3f}")
    if "mouths" in report:
        m = report["mouths"]
        print(f"mouths: speaking/not speaking accuracy {m['accuracy']:.3f} (chance {m['chance']:.3f}), kappa "
              f"{m['kappa']:.3f}" + "".join(f"; voice of person {v['person']}: margin {v['margin']:+.2f}"
                                              for v in m.get("voices", [])))
    for note in report["notes"]:
        print(f"note: {note}")
    print(f"wrote {out} and {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
