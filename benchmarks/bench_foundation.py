"""Foundation figures: synthetic-conversation rendering, mp4 writing, and frame/audio reading, each against a
baseline measured in the same run (raw PyAV decoding; rendering alone).

    .venv/bin/python benchmarks/bench_foundation.py [--seconds 20] [--width 640] [--height 384]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from mit_annotator.core import media
from mit_annotator.synthetic import ConversationSpec, default_speech_source, synthesize_conversation
from mit_annotator.synthetic.speech import SAMPLE_RATE


def best_of(runs: int, work) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def raw_pyav_decode(path: Path) -> int:
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--people", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    spec = ConversationSpec(num_people=args.people, seconds=args.seconds, width=args.width, height=args.height,
                            seed=0, offscreen_voice=True, overlap_probability=0.2)
    speech = default_speech_source()
    speech.utterances(speech.voices()[0])  # warm the decoder
    synth_s = best_of(args.runs, lambda: synthesize_conversation(spec, speech))
    conversation = synthesize_conversation(spec, speech)
    frames = np.stack(list(conversation.frames()))
    render_s = best_of(args.runs, lambda: [conversation.render_frame(k) for k in range(spec.num_frames)])

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "conversation.mp4"
        write_s = best_of(args.runs, lambda: media.write_video(path, frames, spec.fps, conversation.mix, SAMPLE_RATE))
        raw_s = best_of(args.runs, lambda: raw_pyav_decode(path))
        ours_s = best_of(args.runs, lambda: media.read_frames(path))
        resampled_s = best_of(args.runs, lambda: media.read_frames(path, fps=12.5, size=(320, 192)))
        audio_s = best_of(args.runs, lambda: media.read_audio(path, 16000))

    n = spec.num_frames
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}, "
          f"PyAV {av.__version__}")
    print(f"clip: {args.people} people, {n} frames, {args.width}x{args.height}, {args.seconds:g} s\n")
    print("| step | seconds | frames/s | vs baseline |")
    print("|---|---|---|---|")
    print(f"| synthesize (timeline, audio, poses) | {synth_s:.3f} | {n / synth_s:.0f} | |")
    print(f"| render frames | {render_s:.3f} | {n / render_s:.0f} | |")
    print(f"| write mp4 (h264 + aac) | {write_s:.3f} | {n / write_s:.0f} | |")
    print(f"| decode: raw PyAV loop (baseline) | {raw_s:.3f} | {n / raw_s:.0f} | 1.00 |")
    print(f"| decode: media.read_frames | {ours_s:.3f} | {n / ours_s:.0f} | {ours_s / raw_s:.2f} |")
    print(f"| decode: read_frames at 12.5 fps, 320x192 | {resampled_s:.3f} | {n / resampled_s:.0f} | "
          f"{resampled_s / raw_s:.2f} |")
    print(f"| audio: read_audio 16 kHz mono | {audio_s:.3f} | real time x{args.seconds / audio_s:.0f} | |")


if __name__ == "__main__":
    main()
