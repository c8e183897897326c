"""The commands on datasets: annotate, report."""

from __future__ import annotations

from pathlib import Path

from mit_annotator.core.files import output_folder
from mit_annotator.pipeline.cli.options import (
    add_asd_precision,
    add_diarizer_options,
    in_range,
)
from mit_annotator.speakers.who_speaks import SPEAKER_EVIDENCE


def add(commands) -> None:
    _add_annotate(commands)
    _add_report(commands)


def _add_annotate(commands) -> None:
    from mit_annotator.core.media import X264_PRESETS
    from mit_annotator.dataset.clips import SelectionConfig
    from mit_annotator.pipeline.annotate import AnnotateSettings
    from mit_annotator.vision.detection import CANVASES
    from mit_annotator.vision.detection_schedule import MAX_FACES_EVERY

    defaults, defaults_settings = SelectionConfig(), AnnotateSettings()
    p = commands.add_parser("annotate", help="videos of conversations -> a dataset of clips in the MIT layout",
                            description="Annotate a video, a folder of videos (recursively) or a text file listing "
                                        "videos: shots, people, faces and tracks, diarization, who speaks, clip "
                                        "selection by the MIT paper's rules, and export in the MIT layout. A rerun "
                                        "skips what is done and redoes what a killed run left partial.")
    p.add_argument("input", type=Path, help="a video, a folder of videos, or a text file with one path a line")
    p.add_argument("--out", required=True, type=output_folder, help="dataset folder")
    p.add_argument("--people", type=int, nargs="+", default=list(defaults.people),
                   help="people counts a clip may show (default 2 3 4, the paper's)")
    p.add_argument("--source", default=None, help="the source's name in clip folder names (default: the input's "
                                                  "name)")
    p.add_argument("--workers", type=int, default=1, help="videos annotated at once (processes, or Ray CPUs)")
    p.add_argument("--shard", default="0/1", help="i/n: annotate only this share of the videos (0 <= i < n; the "
                                                  "same split on every machine)")
    p.add_argument("--retry-failed", action="store_true", help="annotate again the videos that failed before")
    p.add_argument("--models", type=Path, default=None, help="models directory (default $MIT_MODELS_DIR)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "tensorrt"])
    p.add_argument("--det-model", default="yolox_l", help="person detector: a path or a known name")
    p.add_argument("--det-threshold", type=float, default=0.5)
    p.add_argument("--detect-every", type=in_range(int, 1, 25), default=defaults_settings.detect_every,
                   help="person detection on every Nth frame, people tracked between; every frame after a cut, "
                        f"a new or lost person or fast motion (default {defaults_settings.detect_every})")
    p.add_argument("--face-search", choices=["heads", "frame"], default=defaults_settings.face_search,
                   help="faces searched around each tracked head, or in the whole frame (default "
                        f"{defaults_settings.face_search})")
    p.add_argument("--faces-every", type=in_range(int, 1, MAX_FACES_EVERY), default=defaults_settings.faces_every,
                   help="faces searched on every Nth frame and at each cut, their landmarks interpolated between "
                        f"(default {defaults_settings.faces_every})")
    p.add_argument("--detector-input", choices=CANVASES, default=defaults_settings.detector_input,
                   help="the person detector's letterbox: its square input, or that square cut to the frame's shape "
                        f"(fit: fewer pixels for wide frames, the same scale; default {defaults_settings.detector_input})")
    p.add_argument("--encode-preset", choices=X264_PRESETS, default=defaults_settings.encode_preset,
                   help="x264's preset for each clip's video.mp4, at crf 18 (default "
                        f"{defaults_settings.encode_preset})")
    p.add_argument("--exact", action="store_true",
                   help="detect people and faces on every whole frame at full size, and encode the clips with x264's "
                        "medium preset (--detect-every 1 --face-search frame --faces-every 1 --detector-input square "
                        "--encode-preset medium): the slower reference the defaults are measured against")
    p.add_argument("--pose-model", default="dwpose", help="pose model: a path, a known name, or none (boxes and "
                                                          "faces only: the clips' poses are then empty)")
    p.add_argument("--faces", choices=["yunet", "scrfd", "none"], default="yunet",
                   help="face detector, for face boxes where keypoints give none (default yunet)")
    p.add_argument("--speakers", choices=list(SPEAKER_EVIDENCE), default="auto",
                   help="who-speaks evidence: asd = LR-ASD (its weights must be found), lips = lip activity; "
                        "default auto: asd when its weights are found")
    p.add_argument("--asd-model", default="lr_asd", help="LR-ASD weights: a path or a known name")
    add_asd_precision(p)
    add_diarizer_options(p)
    p.add_argument("--min-seconds", type=float, default=defaults.min_seconds,
                   help=f"least clip length (default {defaults.min_seconds:g}, the paper's)")
    p.add_argument("--max-seconds", type=float, default=defaults.max_seconds,
                   help=f"longer runs are cut into clips at most this long (default {defaults.max_seconds:g})")
    p.add_argument("--min-face", type=float, default=defaults.min_face_px_1080p,
                   help=f"least mean face size, px at 1080p (default {defaults.min_face_px_1080p:g}, the paper's)")
    p.add_argument("--max-camera-motion", type=float, default=defaults.max_camera_motion,
                   help="most background motion, frame widths per second (default "
                        f"{defaults.max_camera_motion:g})")
    p.add_argument("--frames", action="store_true", help="also write each clip's frames as frames/*.png")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local processes, or Ray tasks (pip install mit-covog[cluster])")
    p.add_argument("--ray-address", default=None, help="a running Ray cluster (default $RAY_ADDRESS, else a local "
                                                       "one with --workers CPUs)")
    p.set_defaults(run=_annotate)


def _annotate(args) -> int:
    import logging

    from mit_annotator.pipeline.batch import BatchOptions, find_videos, parse_shard, run_batch, summary_lines

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    settings = annotate_settings(args)
    jobs = find_videos(args.input, args.source)
    options = BatchOptions(settings=settings, workers=args.workers, shard=parse_shard(args.shard),
                           retry_failed=args.retry_failed, frames=args.frames, backend=args.backend,
                           ray_address=args.ray_address)
    summary = run_batch(jobs, args.out, options)
    for line in summary_lines(summary, args.out):
        print(line)
    return 1 if summary.failed else 0  # scripts see when videos failed


def _add_report(commands) -> None:
    p = commands.add_parser("report", help="what an annotated dataset holds (JSON, PNG and SVG)",
                            description="Hours, clips per people count, clip lengths, speaking ratio per person, "
                                        "face sizes and rejection reasons of a dataset that annotate wrote; printed, "
                                        "and written as report.json, report.png and report.svg.")
    p.add_argument("dataset", type=Path)
    p.add_argument("--out", type=output_folder, default=None,
                   help="folder for report.json, .png and .svg (default: the dataset)")
    p.set_defaults(run=_report)


def _report(args) -> int:
    from mit_annotator.dataset.report import report_lines, write_report

    report, json_path, png_path = write_report(args.dataset, args.out)
    for line in report_lines(report):
        print(line)
    print(f"-> {json_path}, {png_path}")
    return 0


def annotate_settings(args):
    """The AnnotateSettings an `annotate` command line asks for."""
    from mit_annotator.dataset.clips import SelectionConfig
    from mit_annotator.pipeline.annotate import AnnotateSettings

    selection = SelectionConfig(people=tuple(args.people), min_seconds=args.min_seconds, max_seconds=args.max_seconds,
                                min_face_px_1080p=args.min_face, max_camera_motion=args.max_camera_motion)
    return AnnotateSettings(models_dir=str(args.models) if args.models else None, det_model=args.det_model,
                            pose_model=args.pose_model, faces=args.faces, speakers=args.speakers,
                            asd_model=args.asd_model, asd_precision=args.asd_precision, diarizer=args.diarizer,
                            device=args.device, det_threshold=args.det_threshold,
                            detect_every=1 if args.exact else args.detect_every,
                            face_search="frame" if args.exact else args.face_search,
                            faces_every=1 if args.exact else args.faces_every,
                            detector_input="square" if args.exact else args.detector_input,
                            encode_preset="medium" if args.exact else args.encode_preset, selection=selection)
