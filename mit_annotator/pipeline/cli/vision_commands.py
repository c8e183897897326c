"""The commands on people in videos: make-conversation, poses, render-poses, score-tracks."""

from __future__ import annotations

from pathlib import Path

from mit_annotator.core.files import output_file, output_folder
from mit_annotator.core.progress import tqdm_progress
from mit_annotator.core.records import MAX_FPS
from mit_annotator.pipeline.cli.options import (
    in_range,
    write_png,
)


def add(commands) -> None:
    _add_make_conversation(commands)
    _add_poses(commands)
    _add_render_poses(commands)
    _add_score_tracks(commands)


def _add_make_conversation(commands) -> None:
    p = commands.add_parser("make-conversation", help="build a synthetic conversation with exact ground truth",
                            description="Build a video of 2-4 drawn people talking in turns with real speech, "
                                        "with its ground truth (tracks, speaking scores, RTTM) and a preview.")
    p.add_argument("--out", required=True, type=output_folder, help="folder to write into")
    p.add_argument("--people", type=int, default=2, help="people on screen, 2-4 (default 2)")
    p.add_argument("--seconds", type=in_range(float, 0.2, 3600), default=8.0, help="length (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=in_range(float, 1, 120), default=25.0)
    p.add_argument("--width", type=in_range(int, 64, 4096), default=640)
    p.add_argument("--height", type=in_range(int, 64, 4096), default=384)
    p.add_argument("--overlap", type=float, default=0.0, metavar="P",
                   help="chance that a turn starts before the previous one ends (default 0)")
    p.add_argument("--offscreen", action="store_true", help="add a voice with no one on screen")
    p.add_argument("--speech", default=None, metavar="DIR|espeak",
                   help="a LibriSpeech-style folder, or 'espeak' (default: $MIT_SPEECH_DIR, the shared sample "
                        "beside a checkout, else espeak-ng)")
    p.set_defaults(run=_make_conversation)


def _make_conversation(args) -> int:
    from tqdm import tqdm

    from mit_annotator.synthetic import ConversationSpec, default_speech_source, synthesize_conversation
    from mit_annotator.synthetic.preview import contact_sheet

    spec = ConversationSpec(num_people=args.people, seconds=args.seconds, seed=args.seed, fps=args.fps,
                            width=args.width, height=args.height, overlap_probability=args.overlap,
                            offscreen_voice=args.offscreen)
    conversation = synthesize_conversation(spec, default_speech_source(args.speech))
    with tqdm(total=spec.num_frames, unit="frame", desc="rendering") as bar:
        paths = conversation.save(args.out, progress=tqdm_progress(bar))
    write_png(args.out / "preview.png", contact_sheet(conversation))
    paths["preview"] = args.out / "preview.png"
    print(conversation.describe())
    print(f"files in {args.out}:")
    for name, path in paths.items():
        print(f"  {path.name:<20} {name}")
    return 0


def _add_poses(commands) -> None:
    p = commands.add_parser("poses", help="find, pose and track everyone in a video",
                            description="Shots, person detection (YOLOX), whole-body pose (DWPose, 133 keypoints), "
                                        "tracking with stable ids and face boxes; writes the tracks JSON.")
    p.add_argument("video", type=Path)
    p.add_argument("--out", required=True, type=output_file, help="tracks JSON to write")
    p.add_argument("--models", type=Path, default=None, help="models directory (default $MIT_MODELS_DIR or "
                                                             "~/.cache/mit_annotator/models)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "tensorrt"])
    p.add_argument("--det-model", default="yolox_l", help="detector: a path or a known name (default yolox_l)")
    p.add_argument("--pose-model", default="dwpose", help="pose model: a path or a known name (default dwpose); "
                                                          "'none' tracks boxes (and YuNet faces) only")
    p.add_argument("--fps", type=in_range(float, 1, MAX_FPS, also=(0,)), default=25.0,
                   help="processing frame rate (default 25, the MIT rate; "
                                                            "0 keeps the video's own frames)")
    p.add_argument("--det-threshold", type=float, default=0.5)
    p.add_argument("--faces", choices=["keypoints", "yunet", "scrfd"], default="keypoints",
                   help="face boxes from the face keypoints only, or also from a face detector with landmarks: "
                        "YuNet (OpenCV) or SCRFD (insightface)")
    p.add_argument("--identity", action="store_true",
                   help="give each track a face identity embedding (insightface's ArcFace; needs --faces)")
    p.add_argument("--reid", action="store_true", help="re-identify people after longer occlusions")
    p.add_argument("--download", action="store_true", help="download missing known models (huggingface-hub)")
    p.set_defaults(run=_poses)


def _poses(args) -> int:
    import logging

    from tqdm import tqdm

    from mit_annotator.core import media
    from mit_annotator.vision.detection import PersonDetector
    from mit_annotator.vision.faces import FaceIdentity, ScrfdFaceDetector, YuNetFaceDetector
    from mit_annotator.vision.people import annotate_people
    from mit_annotator.vision.pose import WholeBodyPose
    from mit_annotator.vision.tracking import TrackerConfig

    if args.identity and args.faces == "keypoints":
        raise ValueError("--identity needs a face detector: add --faces yunet or --faces scrfd")
    media.probe(args.video)  # an unusable video is named before the models load
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    detector = PersonDetector(args.det_model, score_threshold=args.det_threshold, device=args.device,
                              models_dir=args.models, download=args.download)
    pose = None if args.pose_model == "none" else WholeBodyPose(args.pose_model, device=args.device,
                                                                models_dir=args.models, download=args.download)
    faces = {"keypoints": lambda: None, "yunet": lambda: YuNetFaceDetector(models_dir=args.models),
             "scrfd": lambda: ScrfdFaceDetector(device=args.device, models_dir=args.models)}[args.faces]()
    identity = FaceIdentity(device=args.device, models_dir=args.models) if args.identity else None
    with tqdm(unit="frame", desc="poses") as bar:
        tracks = annotate_people(args.video, detector, pose, faces, fps=args.fps or None,
                                 tracker=TrackerConfig(reid=args.reid), progress=tqdm_progress(bar),
                                 face_identity=identity)
    tracks.save(args.out)
    print(f"{len(tracks.tracks)} people tracked over {tracks.num_frames} frames in {len(tracks.shots)} shots "
          f"-> {args.out}")
    return 0


def _add_render_poses(commands) -> None:
    p = commands.add_parser("render-poses", help="draw tracked skeletons and ids on the video",
                            description="Draw the tracks (skeletons, ids, face boxes) on the video; the audio is "
                                        "kept.")
    p.add_argument("video", type=Path)
    p.add_argument("tracks", type=Path)
    p.add_argument("--out", required=True, type=output_file)
    p.set_defaults(run=_render_poses)


def _render_poses(args) -> int:
    from tqdm import tqdm

    from mit_annotator.core import media
    from mit_annotator.core.records import VideoTracks, check_same_video
    from mit_annotator.vision.render import draw_people

    tracks = VideoTracks.load(args.tracks)
    info = media.probe(args.video)
    check_same_video(tracks, info.width, info.height, info.duration, str(args.video))
    audio = media.read_audio(args.video, 16000) if info.has_audio else None
    frames = media.iter_frames(args.video, fps=tracks.fps, end=tracks.num_frames)
    drawn = (draw_people(frame, tracks, k) for k, frame in enumerate(tqdm(frames, total=tracks.num_frames,
                                                                           unit="frame", desc="render")))
    media.write_video(args.out, drawn, tracks.fps, audio, 16000)
    print(f"wrote {args.out}")
    return 0


def _add_score_tracks(commands) -> None:
    p = commands.add_parser("score-tracks", help="compare tracks with ground-truth tracks (CLEAR-MOT)",
                            description="Match tracked boxes to ground-truth boxes per frame (IoU >= 0.5) and count "
                                        "misses, false positives and identity switches.")
    p.add_argument("tracks", type=Path)
    p.add_argument("truth", type=Path)
    p.set_defaults(run=_score_tracks)


def _score_tracks(args) -> int:
    from mit_annotator.core.records import VideoTracks
    from mit_annotator.vision.metrics import score_tracking

    tracks, truth = VideoTracks.load(args.tracks), VideoTracks.load(args.truth)
    if tracks.num_frames != truth.num_frames:
        raise ValueError(f"{args.tracks} has {tracks.num_frames} frames, {args.truth} has {truth.num_frames}")
    score = score_tracking(tracks.tracks, truth.tracks, truth.num_frames)
    print(f"MOTA {score.mota:.3f}: {score.matches} of {score.ground_truth} person-frames found, {score.misses} "
          f"missed, {score.false_positives} false positives, {score.id_switches} identity switches; "
          f"{len(tracks.tracks)} tracks for {len(truth.tracks)} people")
    return 0
