"""The commands on who speaks: diarize, assign, bind, active-speakers, score-speaking."""

from __future__ import annotations

from pathlib import Path

from mit_annotator.audio.diarization import DiarizationConfig
from mit_annotator.core.files import output_file, output_folder
from mit_annotator.core.progress import tqdm_progress
from mit_annotator.pipeline.cli.options import (
    add_diarizer_options,
    add_poses_option,
    add_speaker_model_options,
    tracks_of,
    tracks_or_faces,
    write_png,
)
from mit_annotator.speakers.model_inputs import TARGETS as BIND_TARGETS


def add(commands) -> None:
    _add_diarize(commands)
    _add_assign(commands)
    _add_bind(commands)
    _add_active_speakers(commands)
    _add_score_speaking(commands)


def _add_diarize(commands) -> None:
    p = commands.add_parser("diarize", help="who speaks when, overlapping speech included",
                            description="Speaker diarization of a media file's audio; writes RTTM.")
    p.add_argument("media", type=Path)
    p.add_argument("--out", required=True, type=output_file, help="RTTM file to write")
    p.add_argument("--num-speakers", type=int, default=None)
    p.add_argument("--min-speakers", type=int, default=1)
    p.add_argument("--max-speakers", type=int, default=DiarizationConfig.max_speakers)
    add_diarizer_options(p, "--backend", "--diarizer")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(run=_diarize)


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
    add_poses_option(p)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--diarization", type=Path, default=None, help="RTTM (default: diarize the video's audio)")
    source.add_argument("--person-audio", type=Path, nargs="+", default=None, metavar="AUDIO",
                        help="one audio file per speaker instead of a diarization")
    p.add_argument("--out", required=True, type=output_file, help="speaking JSON to write")
    p.add_argument("--plot", type=Path, default=None, help="timeline PNG to write")
    p.add_argument("--max-speakers", type=int, default=None, help="for diarizing (default: people + 2)")
    add_speaker_model_options(p)
    add_diarizer_options(p)
    p.set_defaults(run=_assign)


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
        who_speaks,
    )

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    active_speaker = load_active_speaker(args.speakers, args.asd_model, args.models, args.device,
                                         precision=args.asd_precision)
    tracks = tracks_or_faces(args)
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
                                 progress=tqdm_progress(bar))
    return tracks, speaking, diarization


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
    add_poses_option(p)
    p.add_argument("--speaking", type=Path, default=None, help="speaking JSON from `assign` (default: find who "
                                                                "speaks here, as `assign` does)")
    p.add_argument("--reference-frame", type=int, default=0, help="the frame written as the reference image")
    p.add_argument("--prompt", default="Two people talking to each other.")
    p.add_argument("--max-speakers", type=int, default=None, help="for diarizing (default: people + 2)")
    add_speaker_model_options(p)
    add_diarizer_options(p)
    p.set_defaults(run=_bind)


def _bind(args) -> int:
    from mit_annotator.core import media
    from mit_annotator.core.records import SAMPLE_RATE, SpeakingActivity, check_speaking_matches
    from mit_annotator.speakers.model_inputs import write_model_inputs

    if args.speaking:
        if not args.poses:
            raise ValueError("--speaking needs the --poses (tracks) it was made from")
        tracks = tracks_of(args.video, args.poses)
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
    add_poses_option(p)
    p.add_argument("--out", required=True, type=output_file, help="speaking JSON to write")
    p.add_argument("--plot", type=Path, default=None, help="timeline PNG to write")
    p.add_argument("--exact-windows", action="store_true",
                   help="run the encoders on every window as the published demo does (6x the work)")
    p.add_argument("--download", action="store_true", help="download missing known models (huggingface-hub)")
    add_speaker_model_options(p, evidence_choice=False)
    p.set_defaults(run=_active_speakers)


def _active_speakers(args) -> int:
    import logging

    import numpy as np
    from tqdm import tqdm

    from mit_annotator.core.records import PersonSpeaking, SpeakingActivity
    from mit_annotator.core.segments import MERGE_SHORTER_THAN_S, speak_listen_segments
    from mit_annotator.speakers.active_speaker import ActiveSpeakerConfig, ActiveSpeakerModel
    from mit_annotator.speakers.timeline import speaking_timeline

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = ActiveSpeakerModel(args.asd_model, device=args.device, models_dir=args.models, download=args.download,
                               config=ActiveSpeakerConfig(exact_windows=args.exact_windows,
                                                          precision=args.asd_precision))
    tracks = tracks_or_faces(args)
    with tqdm(unit="frame", desc="active speakers") as bar:
        scores = model.scores(args.video, tracks, progress=tqdm_progress(bar))
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
