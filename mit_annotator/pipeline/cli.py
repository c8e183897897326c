"""Command line: `python -m mit_annotator COMMAND ...`. Each command is a thin layer over a library function."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mit_annotator.audio.diarization import DiarizationConfig
from mit_annotator.audio.diarizers import AUTO, DIARIZERS, FALLBACK, diarizer_choices
from mit_annotator.core.files import output_file, output_folder
from mit_annotator.core.records import MAX_FPS
from mit_annotator.speakers.active_speaker import PRECISIONS
from mit_annotator.speakers.who_speaks import SPEAKER_EVIDENCE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mit_annotator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_make_conversation(commands)
    _add_poses(commands)
    _add_render_poses(commands)
    _add_score_tracks(commands)
    _add_diarize(commands)
    _add_assign(commands)
    _add_bind(commands)
    _add_active_speakers(commands)
    _add_score_speaking(commands)
    _add_annotate(commands)
    _add_report(commands)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:  # bad input: one clear line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the machine's: a file that cannot be written or read
        print(f"error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        return 2


def _in_range(kind, low, high, also=()):
    """An argparse type: a number of `kind` in [low, high] (or one of `also`), else one clear line."""
    def parse(text: str):
        value = kind(text)
        if value in also or low <= value <= high:
            return value
        raise argparse.ArgumentTypeError(f"{text} is outside {low:g}..{high:g}")
    parse.__name__ = kind.__name__  # argparse names the type in its "invalid value" message
    return parse


def write_png(path: Path, rgb) -> None:
    """An RGB image as PNG, atomically."""
    import cv2

    from mit_annotator.core.files import atomic_path

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise RuntimeError(f"could not write {path}")


def _add_make_conversation(commands) -> None:
    p = commands.add_parser("make-conversation", help="build a synthetic conversation with exact ground truth",
                            description="Build a video of 2-4 drawn people talking in turns with real speech, "
                                        "with its ground truth (tracks, speaking scores, RTTM) and a preview.")
    p.add_argument("--out", required=True, type=output_folder, help="folder to write into")
    p.add_argument("--people", type=int, default=2, help="people on screen, 2-4 (default 2)")
    p.add_argument("--seconds", type=_in_range(float, 0.2, 3600), default=8.0, help="length (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=_in_range(float, 1, 120), default=25.0)
    p.add_argument("--width", type=_in_range(int, 64, 4096), default=640)
    p.add_argument("--height", type=_in_range(int, 64, 4096), default=384)
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
        paths = conversation.save(args.out, progress=lambda done, total: bar.update(done - bar.n))
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
    p.add_argument("--fps", type=_in_range(float, 1, MAX_FPS, also=(0,)), default=25.0,
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
        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        tracks = annotate_people(args.video, detector, pose, faces, fps=args.fps or None,
                                 tracker=TrackerConfig(reid=args.reid), progress=progress, face_identity=identity)
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


def _add_diarize(commands) -> None:
    p = commands.add_parser("diarize", help="who speaks when, overlapping speech included",
                            description="Speaker diarization of a media file's audio; writes RTTM.")
    p.add_argument("media", type=Path)
    p.add_argument("--out", required=True, type=output_file, help="RTTM file to write")
    p.add_argument("--num-speakers", type=int, default=None)
    p.add_argument("--min-speakers", type=int, default=1)
    p.add_argument("--max-speakers", type=int, default=DiarizationConfig.max_speakers)
    _add_diarizer_options(p, "--backend", "--diarizer")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(run=_diarize)


def _add_diarizer_options(p, *flags: str) -> None:
    named = "; ".join(f"{name}: the {backend.description}" for name, backend in DIARIZERS.items())
    p.add_argument(*(flags or ("--diarizer",)), dest="diarizer", choices=list(diarizer_choices()), default="auto",
                   help=f"{named}; default auto: {AUTO['diarize']} (diarize) or {AUTO['assign']} (assign, annotate) "
                        f"when the segmentation model's weights are found (see --models), else {FALLBACK}")
    if not any(a.dest == "models" for a in p._actions):
        p.add_argument("--models", type=Path, default=None, help="models directory (a model is also looked for in "
                                                                 "the subfolder it ships in, e.g. lr_asd/)")
    if not any(a.dest == "download" for a in p._actions):
        p.add_argument("--download", action="store_true", help="download missing known models")


def _diarize(args) -> int:
    import logging

    from mit_annotator.audio.diarizers import make_diarizer
    from mit_annotator.speakers.who_speaks import diarize_media

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = DiarizationConfig(num_speakers=args.num_speakers, min_speakers=args.min_speakers,
                               max_speakers=args.max_speakers)
    diarization = diarize_media(args.media, config, make_diarizer(args.diarizer, args.models, args.device,
                                                                  args.download))
    diarization.save_rttm(args.out)
    spoken = {s: sum(t.duration for t in diarization.turns if t.speaker == s) for s in diarization.speakers}
    print(f"{len(spoken)} speakers, {len(diarization.turns)} turns -> {args.out}")
    for speaker, seconds in spoken.items():
        print(f"  {speaker}: {seconds:.1f} s")
    return 0


def _add_assign(commands) -> None:
    p = commands.add_parser("assign", help="bind each voice to the person on screen who speaks it",
                            description="Match diarized voices (or one audio file per speaker) to the people on "
                                        "screen by their lip activity; writes per-person speaking scores and "
                                        "speak/listen segments.")
    p.add_argument("video", type=Path)
    p.add_argument("--poses", type=Path, default=None, help="tracks JSON from `poses` (default: find and track "
                                                             "faces here with YuNet)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--diarization", type=Path, default=None, help="RTTM (default: diarize the video's audio)")
    source.add_argument("--person-audio", type=Path, nargs="+", default=None, metavar="AUDIO",
                        help="one audio file per speaker instead of a diarization")
    p.add_argument("--out", required=True, type=output_file, help="speaking JSON to write")
    p.add_argument("--plot", type=Path, default=None, help="timeline PNG to write")
    p.add_argument("--max-speakers", type=int, default=None, help="for diarizing (default: people + 2)")
    _add_speaker_model_options(p)
    _add_diarizer_options(p)
    p.set_defaults(run=_assign)


def _add_speaker_model_options(p, evidence_choice: bool = True) -> None:
    if evidence_choice:
        p.add_argument("--speakers", choices=list(SPEAKER_EVIDENCE), default="auto",
                       help="the visual evidence: asd = the active-speaker model LR-ASD (its weights must be "
                            "found), lips = lip activity; both with the mouth's synchrony with the audio (default "
                            "auto: asd when its weights are found)")
    p.add_argument("--asd-model", default="lr_asd", help="LR-ASD weights: a path or a known name (lr_asd: "
                                                         "AVA-trained, lr_asd_talkset: TalkSet fine-tuned)")
    p.add_argument("--models", type=Path, default=None, help="models directory (YuNet, LR-ASD)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    _add_asd_precision(p)


def _add_asd_precision(p) -> None:
    p.add_argument("--asd-precision", choices=list(PRECISIONS), default="auto",
                   help="LR-ASD's face encoder on the CPU: int8 (all the scoring 1.6-2.1x as fast as float32, "
                        "scores within 0.01-0.03 of float32's on average on real faces; the released weights only) "
                        "or float32; default auto: int8 where it can run")


def _bar_progress(bar):
    def progress(done, total):
        bar.total = total
        bar.update(done - bar.n)

    return progress


def _assign(args) -> int:
    from mit_annotator.speakers.timeline import speaking_timeline

    tracks, speaking, diarization = _who_speaks_in(args)
    speaking.save(args.out)
    print(f"{len(tracks.tracks)} people, {len(diarization.speakers)} voices -> {args.out}")
    for person in speaking.people:
        seconds = sum(e - s for s, e in person.speak) / speaking.fps
        evidence = (person.evidence or "no visual evidence").replace("_", "-")
        print(f"  person {person.track_id}: {person.voice or 'listener'} ({seconds:.1f} s speaking; {evidence})")
    if speaking.unassigned_voices:
        print(f"  unassigned (off screen): {', '.join(speaking.unassigned_voices)}")
    if args.plot:
        write_png(args.plot, speaking_timeline(speaking))
    return 0


def _who_speaks_in(args):
    """(tracks, speaking, diarization) of `args.video` as `assign` finds them: its tracks (--poses, else faces
    tracked here), its diarization (--diarization, --person-audio, else the audio diarized), the assignment."""
    import logging

    from tqdm import tqdm

    from mit_annotator.core.records import Diarization
    from mit_annotator.speakers.who_speaks import (
        diarize_media,
        load_active_speaker,
        person_audio_diarization,
        track_faces,
        who_speaks,
    )
    from mit_annotator.vision.faces import YuNetFaceDetector

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    active_speaker = load_active_speaker(args.speakers, args.asd_model, args.models, args.device,
                                         precision=args.asd_precision)
    tracks = _tracks_of(args.video, args.poses) if args.poses else track_faces(args.video, YuNetFaceDetector(
        models_dir=args.models))
    if getattr(args, "diarization", None):
        diarization = Diarization.load_rttm(args.diarization)
    elif getattr(args, "person_audio", None):
        diarization = person_audio_diarization(args.person_audio)
    else:
        from mit_annotator.audio.diarizers import make_diarizer

        config = DiarizationConfig.for_people(len(tracks.tracks), args.max_speakers)
        diarization = diarize_media(args.video, config,
                                    make_diarizer(args.diarizer, args.models, args.device, args.download,
                                                  use="assign"))
    with tqdm(unit="frame", desc="who speaks") as bar:
        speaking, _ = who_speaks(args.video, tracks, diarization, active_speaker=active_speaker,
                                 progress=_bar_progress(bar))
    return tracks, speaking, diarization


def _tracks_of(video: Path, path: Path):
    """Tracks read from `path`, checked to be of `video` (its size, no frame past its end)."""
    from mit_annotator.core import media
    from mit_annotator.core.records import VideoTracks, check_same_video

    tracks = VideoTracks.load(path)
    info = media.probe(video)
    check_same_video(tracks, info.width, info.height, info.duration, str(video))
    return tracks


BIND_TARGETS = ("multitalk", "infinitetalk", "anytalker", "longcat")  # mit_annotator.speakers.model_inputs.TARGETS


def _add_bind(commands) -> None:
    p = commands.add_parser("bind", help="the speaker binding for a multi-speaker model's own script",
                            description="Who speaks when in VIDEO, written the way a multi-speaker talking-video "
                                        "model's own generation script reads it: one 16 kHz WAV per person (the "
                                        "mix while they speak), the reference frame, and the script's input JSON "
                                        "with each person's box in its convention (MultiTalk, InfiniteTalk: "
                                        "[top, left, bottom, right] by order; LongCat-Video-Avatar: by key; "
                                        "AnyTalker: voices left to right).")
    p.add_argument("video", type=Path)
    p.add_argument("--for", dest="target", required=True, choices=BIND_TARGETS)
    p.add_argument("--out", required=True, type=output_folder, help="folder to write into")
    p.add_argument("--poses", type=Path, default=None, help="tracks JSON from `poses` (default: find and track "
                                                             "faces here with YuNet)")
    p.add_argument("--speaking", type=Path, default=None, help="speaking JSON from `assign` (default: find who "
                                                                "speaks here, as `assign` does)")
    p.add_argument("--reference-frame", type=int, default=0, help="the frame written as the reference image")
    p.add_argument("--prompt", default="Two people talking to each other.")
    p.add_argument("--max-speakers", type=int, default=None, help="for diarizing (default: people + 2)")
    _add_speaker_model_options(p)
    _add_diarizer_options(p)
    p.set_defaults(run=_bind)


def _bind(args) -> int:
    from mit_annotator.core import media
    from mit_annotator.core.media import SAMPLE_RATE
    from mit_annotator.core.records import SpeakingActivity, check_speaking_matches
    from mit_annotator.speakers.model_inputs import write_model_inputs

    if args.speaking:
        if not args.poses:
            raise ValueError("--speaking needs the --poses (tracks) it was made from")
        tracks = _tracks_of(args.video, args.poses)
        speaking = SpeakingActivity.load(args.speaking)
        check_speaking_matches(speaking, tracks)
    else:
        tracks, speaking, _ = _who_speaks_in(args)
    if not 0 <= args.reference_frame < tracks.num_frames:
        raise ValueError(f"--reference-frame {args.reference_frame} is outside the video's {tracks.num_frames} "
                         "frames")
    frame = media.read_frames(args.video, start=args.reference_frame, end=args.reference_frame + 1,
                              fps=tracks.fps)[0]
    audio = media.read_audio(args.video, SAMPLE_RATE)
    path = write_model_inputs(args.target, frame, audio, tracks, speaking, args.out, args.reference_frame,
                              args.prompt)
    print(f"{args.target}: {path} (and the voices and reference image beside it)")
    return 0


def _add_active_speakers(commands) -> None:
    p = commands.add_parser("active-speakers", help="per-person active-speaker scores (LR-ASD) for a video",
                            description="Score every tracked face, frame by frame, with the LR-ASD active-speaker "
                                        "model (> 0: this face is the one speaking); writes the scores as a "
                                        "speaking JSON (per person: scores and speak/listen segments, no voices).")
    p.add_argument("video", type=Path)
    p.add_argument("--poses", type=Path, default=None, help="tracks JSON from `poses` (default: find and track "
                                                             "faces here with YuNet)")
    p.add_argument("--out", required=True, type=output_file, help="speaking JSON to write")
    p.add_argument("--plot", type=Path, default=None, help="timeline PNG to write")
    p.add_argument("--exact-windows", action="store_true",
                   help="run the encoders on every window as the published demo does (6x the work)")
    p.add_argument("--download", action="store_true", help="download missing known models (huggingface-hub)")
    _add_speaker_model_options(p, evidence_choice=False)
    p.set_defaults(run=_active_speakers)


def _active_speakers(args) -> int:
    import logging

    import numpy as np
    from tqdm import tqdm

    from mit_annotator.core.records import PersonSpeaking, SpeakingActivity
    from mit_annotator.core.segments import MERGE_SHORTER_THAN_S, speak_listen_segments
    from mit_annotator.speakers.active_speaker import ActiveSpeakerConfig, ActiveSpeakerModel
    from mit_annotator.speakers.timeline import speaking_timeline
    from mit_annotator.speakers.who_speaks import track_faces
    from mit_annotator.vision.faces import YuNetFaceDetector

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = ActiveSpeakerModel(args.asd_model, device=args.device, models_dir=args.models, download=args.download,
                               config=ActiveSpeakerConfig(exact_windows=args.exact_windows,
                                                          precision=args.asd_precision))
    tracks = _tracks_of(args.video, args.poses) if args.poses else track_faces(args.video, YuNetFaceDetector(
        models_dir=args.models))
    with tqdm(unit="frame", desc="active speakers") as bar:
        scores = model.scores(args.video, tracks, progress=_bar_progress(bar))
    people = []
    for track in tracks.tracks:
        values = scores[track.track_id]
        speak, listen = speak_listen_segments(np.nan_to_num(values, nan=-1.0), tracks.fps,
                                              merge_shorter_than=MERGE_SHORTER_THAN_S)
        people.append(PersonSpeaking(track.track_id, values, None, speak, listen, "active_speaker"))
    speaking = SpeakingActivity(tracks.fps, tracks.num_frames, people)
    speaking.save(args.out)
    for person in people:
        seen = ~np.isnan(person.scores)
        print(f"  person {person.track_id}: {seen.sum()} frames scored, "
              f"{sum(e - s for s, e in person.speak) / tracks.fps:.1f} s speaking")
    if args.plot:
        write_png(args.plot, speaking_timeline(speaking))
    print(f"-> {args.out}")
    return 0


def _add_score_speaking(commands) -> None:
    p = commands.add_parser("score-speaking", help="compare a speaker assignment with the ground truth",
                            description="Per person: is the assigned voice their true voice, and the frame-level "
                                        "F1 of 'speaking'. People are matched to the truth by their tracked boxes.")
    p.add_argument("speaking", type=Path)
    p.add_argument("truth", type=Path, help="the true speaking JSON")
    p.add_argument("--tracks", type=Path, required=True, help="the tracks the assignment used")
    p.add_argument("--truth-tracks", type=Path, required=True)
    p.add_argument("--diarization", type=Path, required=True, help="the RTTM the assignment used")
    p.add_argument("--truth-diarization", type=Path, required=True)
    p.set_defaults(run=_score_speaking)


def _score_speaking(args) -> int:
    import numpy as np

    from mit_annotator.core.records import Diarization, SpeakingActivity, VideoTracks, check_speaking_matches
    from mit_annotator.vision.metrics import diarization_error, frame_score, speaking_f1, speaking_frames, voice_mapping
    from mit_annotator.vision.tracking import box_iou

    speaking, truth = SpeakingActivity.load(args.speaking), SpeakingActivity.load(args.truth)
    tracks, truth_tracks = VideoTracks.load(args.tracks), VideoTracks.load(args.truth_tracks)
    for path, people in ((args.tracks, tracks), (args.truth_tracks, truth_tracks)):
        if not people.tracks:
            raise ValueError(f"{path} holds nobody: there is no one to score")
    check_speaking_matches(speaking, tracks)
    check_speaking_matches(truth, truth_tracks)
    hypothesis, reference = Diarization.load_rttm(args.diarization), Diarization.load_rttm(args.truth_diarization)
    person_map = {}
    for track in tracks.tracks:
        overlap = {t.track_id: np.mean([box_iou(track.boxes[r], t.boxes[t.row_of(f)]) for r, f in
                                        enumerate(track.frames) if t.row_of(f) is not None] or [0.0])
                   for t in truth_tracks.tracks}
        person_map[track.track_id] = max(overlap, key=overlap.get)
    to_truth = voice_mapping(hypothesis, reference)
    right = 0
    for person in speaking.people:
        if person_map[person.track_id] not in {p.track_id for p in truth.people}:
            raise ValueError(f"{args.truth} has no speaking record for true person {person_map[person.track_id]} "
                             f"(person {person.track_id}'s match in {args.truth_tracks})")
        true_person = truth.person(person_map[person.track_id])
        voices = person.voice.split("+") if person.voice else []
        ok = bool(voices) and all(to_truth.get(v) == true_person.voice for v in voices)
        right += ok
        frames = frame_score(speaking_frames(person, speaking.num_frames),
                             speaking_frames(true_person, truth.num_frames)[:speaking.num_frames])
        print(f"  person {person.track_id} (true person {person_map[person.track_id]}): "
              f"{person.voice or 'listener'} = {', '.join(to_truth.get(v, '?') for v in voices) or '-'}; "
              f"truth {true_person.voice} -> {'right' if ok else 'WRONG'}; speaking F1 {frames.f1:.3f}, "
              f"frame accuracy {frames.accuracy:.3f}")
    print(f"{right} of {len(speaking.people)} people got their own voice; DER "
          f"{diarization_error(reference, hypothesis).der:.3f}; speaking F1 "
          f"{speaking_f1(speaking, truth, person_map):.3f}")
    return 0


def _add_annotate(commands) -> None:
    from mit_annotator.dataset.clips import SelectionConfig

    defaults = SelectionConfig()
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
    p.add_argument("--pose-model", default="dwpose", help="pose model: a path, a known name, or none (boxes and "
                                                          "faces only: the clips' poses are then empty)")
    p.add_argument("--faces", choices=["yunet", "scrfd", "none"], default="yunet",
                   help="face detector, for face boxes where keypoints give none (default yunet)")
    p.add_argument("--speakers", choices=list(SPEAKER_EVIDENCE), default="auto",
                   help="who-speaks evidence: asd = LR-ASD (its weights must be found), lips = lip activity; "
                        "default auto: asd when its weights are found")
    p.add_argument("--asd-model", default="lr_asd", help="LR-ASD weights: a path or a known name")
    _add_asd_precision(p)
    _add_diarizer_options(p)
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

    from mit_annotator.dataset.clips import SelectionConfig
    from mit_annotator.pipeline.annotate import AnnotateSettings
    from mit_annotator.pipeline.batch import BatchOptions, find_videos, parse_shard, run_batch, summary_lines

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    selection = SelectionConfig(people=tuple(args.people), min_seconds=args.min_seconds, max_seconds=args.max_seconds,
                                min_face_px_1080p=args.min_face, max_camera_motion=args.max_camera_motion)
    settings = AnnotateSettings(models_dir=str(args.models) if args.models else None, det_model=args.det_model,
                                pose_model=args.pose_model, faces=args.faces, speakers=args.speakers,
                                asd_model=args.asd_model, asd_precision=args.asd_precision, diarizer=args.diarizer,
                                device=args.device,
                                det_threshold=args.det_threshold,
                                selection=selection)
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
