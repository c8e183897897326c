"""Overlap-aware speaker diarization: who speaks when, several voices at once where they overlap.

After the design of pyannote's diarization pipelines (Bredin and Laurent 2021), our own code; two models, each used
for what it does well (measured on real voices, BENCHMARKS.md):
1. Segmentation: pyannote's speaker segmentation network (speaker_segmentation.py) scores up to 3 local speakers per
   frame in 5 s chunks every `step` seconds, overlaps included. A local speaker is on where its score passes
   `threshold` and silero-vad hears speech (alone, the network takes long digital silences for its speaker still
   talking). How many speak in a frame: the chunks' count of local speakers, averaged over the chunks that see it.
2. Who is who (local_speakers.py): the local speakers stitched across chunks into stretches of one voice, cut into
   segments, the segments clustered by their d-vectors (resemblyzer, as the offline pipeline computes them), never
   two that the network heard apart. Within a chunk the network keeps one voice one speaker, which d-vectors alone
   do not (a voice's d-vectors drift over a few seconds).
3. Frames: where one voice speaks, the offline pipeline's frame-by-frame rule against the speakers' centroids picks
   it (across chunks d-vectors tell voices apart better than the stitched local speakers); where the network counts
   several, the most active speakers of the chunks' local speakers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from mit_annotator.audio.diarization import DiarizationConfig, checked_samples
from mit_annotator.audio.local_speakers import (
    OverlapSettings,
    Segments,
    cluster_segments,
    heard_together,
    pauses_split,
    segment_embeddings,
    split_at_changes,
    stitch,
    stretch_frames,
)
from mit_annotator.audio.speaker_segmentation import SpeakerSegmentation, load_segmentation
from mit_annotator.core.progress import within
from mit_annotator.core.records import SAMPLE_RATE, Diarization, SpeakerTurn
from mit_annotator.core.segments import joined_runs, runs

log = logging.getLogger("mit_annotator")

STAGES = 4  # segmentation, stitching + embeddings, clustering, turns
LONG_RECORDING_S = 900.0  # longer recordings are diarized in blocks (bounded memory)
BLOCK_S = 300.0  # a block's length, cut in the nearest pause (a block's own work grows with its length squared)
IDENTITIES = ("network", "embeddings")


def make_network_identity(options) -> OverlapAwareDiarizer:
    """The "overlap" backend (diarizers.DIARIZERS): voices told apart by the network's local speakers."""
    return _make(options, "network")


def make_embeddings_identity(options) -> OverlapAwareDiarizer:
    """The "overlap-embeddings" backend (diarizers.DIARIZERS): voices told apart by the offline d-vectors."""
    return _make(options, "embeddings")


def _make(options, identity: str) -> OverlapAwareDiarizer:
    segmentation = load_segmentation(options.segmentation_model, options.models_dir, options.device, options.download)
    return OverlapAwareDiarizer(segmentation, OverlapSettings(identity=identity))


class OverlapAwareDiarizer:
    """Called like `Diarizer`: 16 kHz mono samples -> Diarization, turns of different speakers may overlap."""

    def __init__(self, segmentation: SpeakerSegmentation | None = None, settings: OverlapSettings | None = None,
                 device: str = "cpu", models_dir=None, download: bool = False):
        from mit_annotator.audio.diarization import Diarizer

        self.offline = Diarizer(device="cpu")  # its voice activity and d-vectors
        self.segmentation = segmentation or load_segmentation(models_dir=models_dir, device=device,
                                                              download=download)
        self.settings = settings or OverlapSettings()

    def __call__(self, samples: np.ndarray, config: DiarizationConfig | None = None, uri: str = "recording",
                 progress: Callable[[int, int], None] | None = None) -> Diarization:
        """`progress(done, STAGES)` after each stage (a long recording: after each stage of each block, out of
        blocks x STAGES); it may raise to stop between stages (ComfyUI's Cancel)."""
        progress = progress or (lambda done, total: None)
        config = config or DiarizationConfig()
        samples = checked_samples(samples)
        if len(samples) <= LONG_RECORDING_S * SAMPLE_RATE:
            return Diarization(self._block(samples, config, progress)[0], uri=uri)
        return Diarization(self._long(samples, config, progress), uri=uri)

    def _long(self, samples: np.ndarray, config: DiarizationConfig,
              progress: Callable[[int, int], None]) -> list[SpeakerTurn]:
        """A long recording in blocks of about BLOCK_S cut in pauses, each diarized alone (memory stays that of one
        block), the blocks' speakers then linked by their d-vector centroids (two speakers of one block are never
        one)."""
        cuts = block_cuts(self.offline.speech_regions(samples, config), len(samples) / SAMPLE_RATE, BLOCK_S)
        per_block = replace(config, min_speakers=1, num_speakers=None)  # a block may hear fewer voices than the whole
        blocks = []
        for b, (start, end) in enumerate(zip(cuts[:-1], cuts[1:])):
            turns, centroids = self._block(samples[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)], per_block,
                                           within(progress, b * STAGES, (len(cuts) - 1) * STAGES))
            blocks.append((start, turns, centroids))
        return linked_turns(blocks, config, self.settings)

    def _block(self, samples: np.ndarray, config: DiarizationConfig,
               progress: Callable[[int, int], None]) -> tuple[list[SpeakerTurn], dict[str, np.ndarray]]:
        """The turns of one stretch of audio and each speaker's d-vector centroid (for linking blocks)."""
        s, spec = self.settings, self.segmentation.spec
        grid = FrameGrid(spec.frame_step / SAMPLE_RATE, spec.receptive_field / 2 / SAMPLE_RATE)
        speech = self.offline.speech_regions(samples, config)
        starts = chunk_starts(len(samples), spec.chunk_samples, int(round(s.step * SAMPLE_RATE)))
        scores = chunk_scores(self.segmentation, samples, starts, spec.chunk_samples)
        offsets = np.round(starts / spec.frame_step).astype(int)  # each chunk's first frame on the global grid
        num_frames = offsets[-1] + scores.shape[1]
        heard = grid.mask(speech, num_frames)
        scores = scores * np.stack([heard[o:o + scores.shape[1]] for o in offsets])[:, :, None]
        active = local_activity(scores, s.threshold, grid.frames(s.min_local_speech))
        count = speaker_count(active, offsets, num_frames, s.warm_up)
        progress(1, STAGES)
        if s.identity not in IDENTITIES:
            raise ValueError(f"identity must be one of {', '.join(IDENTITIES)}, got {s.identity!r}")
        if not speech or not active.any():
            progress(STAGES, STAGES)
            return [], {}
        times, windows = self.offline.embed(samples, speech, config)
        if s.identity == "embeddings":
            from mit_annotator.audio.diarization import cluster, frame_speakers

            labels = cluster(windows, config)
            starts_s, frame_labels = frame_speakers(speech, times, windows, labels, config)
            first = grid.resample(starts_s, frame_labels, config.frame, num_frames)
            binary = with_overlaps(first, count, scores, active, offsets, int(labels.max()) + 1, s, grid)
            turns = to_turns(binary, grid, s, len(samples) / SAMPLE_RATE)
            progress(STAGES, STAGES)
            return turns, speaker_centroids(turns, times, windows)
        spans = grid.spans(times, config.window, num_frames)
        stretch = stitch(active, offsets, s.stitch_agreement, grid.frames(s.min_part))
        on = stretch_frames(active, offsets, stretch, num_frames)
        alone = on & (on.sum(axis=0) == 1)
        pieces = [split_at_changes(piece, alone[k], windows, spans, s)
                  for k, piece in enumerate(pauses_split(on, grid.frames(s.split_pause)))]
        segments = Segments.from_pieces(pieces, num_frames)
        embeddings, seconds = segment_embeddings(segments, alone, windows, spans, s, grid.step)
        progress(2, STAGES)
        together = heard_together(active, offsets, stretch, segments, s.apart_chunks)
        speaker_of = cluster_segments(embeddings, seconds, together, segments.stretch, config, s)
        progress(3, STAGES)
        by_slots = reconstruct(scores, offsets, stretch, segments, speaker_of, count, num_frames)
        by_frames = resegmented(speech, times, windows, spans, segments, alone, speaker_of,
                                seconds >= s.min_embedding_speech, config, grid, num_frames)
        binary = np.where((count >= 2)[None], by_slots, by_frames) if by_frames is not None else by_slots
        turns = to_turns(binary, grid, s, len(samples) / SAMPLE_RATE)
        progress(STAGES, STAGES)
        return turns, speaker_centroids(turns, times, windows)


def resegmented(speech: list[tuple[float, float]], times: np.ndarray, windows: np.ndarray, spans: np.ndarray,
                segments: Segments, alone: np.ndarray, speaker_of: np.ndarray, reliable: np.ndarray,
                config: DiarizationConfig, grid: FrameGrid, num_frames: int) -> np.ndarray | None:
    """(speakers, frames) one speaker per frame of speech, by the offline pipeline's frame-by-frame rule (the
    d-vector windows around each frame against each speaker's centroid); the centroids from the windows of the
    speakers' reliable segments' one-voice speech. None when no window lies in one."""
    from mit_annotator.audio.diarization import frame_speakers

    centre = (spans[:, 0] + spans[:, 1]) // 2
    labels = np.full(len(times), -1, int)
    for i, (k, a, b) in enumerate(zip(segments.stretch, segments.start, segments.end)):
        if reliable[i] or not reliable.any():
            inside = (centre >= a) & (centre < b)
            labels[inside & alone[k, np.clip(centre, 0, num_frames - 1)]] = speaker_of[i]
    if (labels < 0).all():
        return None
    starts, frame_labels = frame_speakers(speech, times, windows, labels, config)
    first = grid.resample(starts, frame_labels, config.frame, num_frames)
    binary = np.zeros((int(speaker_of.max()) + 1, num_frames), bool)
    binary[first[first >= 0], np.flatnonzero(first >= 0)] = True
    return binary


@dataclass
class FrameGrid:
    """The segmentation network's frames on the whole recording: frame g is centred at g * step + centre s."""

    step: float
    centre: float

    def centres(self, num_frames: int) -> np.ndarray:
        return np.arange(num_frames) * self.step + self.centre

    def mask(self, regions: list[tuple[float, float]], num_frames: int) -> np.ndarray:
        """1.0 on the frames whose centre lies in one of `regions` (seconds), else 0.0."""
        centres = self.centres(num_frames)  # increasing: each region is one slice of them
        out = np.zeros(num_frames, np.float32)
        for start, end in regions:
            out[np.searchsorted(centres, start, "left"):np.searchsorted(centres, end, "left")] = 1.0
        return out

    def frames(self, seconds: float) -> int:
        """How many frames `seconds` last (at least 1)."""
        return max(int(round(seconds / self.step)), 1)

    def spans(self, centres_s: np.ndarray, width_s: float, num_frames: int) -> np.ndarray:
        """(windows, 2) [first, last) frames of windows `width_s` long centred at `centres_s`."""
        first = np.clip(np.round((centres_s - width_s / 2 - self.centre) / self.step), 0, num_frames)
        last = np.clip(np.round((centres_s + width_s / 2 - self.centre) / self.step), 0, num_frames)
        return np.stack([first, last], axis=1).astype(int)

    def resample(self, starts_s: np.ndarray, labels: np.ndarray, frame_s: float, num_frames: int) -> np.ndarray:
        """Labels given per `frame_s` s from `starts_s`, read at this grid's frame centres (-1 beyond them)."""
        index = np.floor((self.centres(num_frames) - starts_s[0]) / frame_s).astype(int) if len(starts_s) else None
        if index is None:
            return np.full(num_frames, -1, int)
        inside = (index >= 0) & (index < len(labels))
        return np.where(inside, labels[np.clip(index, 0, max(len(labels) - 1, 0))], -1)


def chunk_starts(num_samples: int, chunk: int, step: int) -> np.ndarray:
    """Start sample of each chunk: every `step`, the last one ending at the recording's end."""
    if num_samples <= chunk:
        return np.zeros(1, int)
    starts = list(range(0, num_samples - chunk + 1, step))
    if starts[-1] + chunk < num_samples:
        starts.append(num_samples - chunk)
    return np.array(starts)


def chunk_scores(segmentation: SpeakerSegmentation, samples: np.ndarray, starts: np.ndarray, chunk: int,
                 batch: int = 64) -> np.ndarray:
    """The network's scores of each chunk, the chunks cut `batch` at a time: 5 s chunks every second would hold the
    recording five times over."""
    return np.concatenate([segmentation.scores(chunks_of(samples, starts[k:k + batch], chunk))
                           for k in range(0, len(starts), batch)])


def chunks_of(samples: np.ndarray, starts: np.ndarray, chunk: int) -> np.ndarray:
    out = np.zeros((len(starts), chunk), np.float32)
    for row, start in enumerate(starts):
        piece = samples[start:start + chunk]
        out[row, :len(piece)] = piece
    return out


def local_activity(scores: np.ndarray, threshold: float, min_frames: int) -> np.ndarray:
    """(chunks, frames, local speakers) bool: where each local speaker speaks; one that speaks under `min_frames`
    in a chunk does not count there."""
    active = scores > threshold
    active &= active.sum(axis=1, keepdims=True) >= max(min_frames, 1)
    return active


def speaker_count(active: np.ndarray, offsets: np.ndarray, num_frames: int, warm_up: float) -> np.ndarray:
    """(num_frames,) how many speak: the number of local speakers on, averaged over the chunks that see the frame
    away from their ends (`warm_up` of the chunk), rounded. The recording's own ends count where only an end sees
    them."""
    chunks, frames, _ = active.shape
    edge = int(round(warm_up * frames))
    middle = slice(edge, frames - edge) if frames > 2 * edge else slice(0, frames)
    count, seen = np.zeros(num_frames), np.zeros(num_frames)
    for c, offset in enumerate(offsets):
        count[offset + middle.start:offset + middle.stop] += active[c, middle].sum(axis=1)
        seen[offset + middle.start:offset + middle.stop] += 1
    for c, offset in enumerate(offsets):
        unseen = seen[offset:offset + frames] == 0
        count[offset:offset + frames][unseen] += active[c, unseen].sum(axis=1)
        seen[offset:offset + frames][unseen] += 1
    return np.rint(count / np.maximum(seen, 1)).astype(int)


def reconstruct(scores: np.ndarray, offsets: np.ndarray, stretch: np.ndarray, segments: Segments,
                speaker_of: np.ndarray, count: np.ndarray, num_frames: int) -> np.ndarray:
    """(speakers, global frames) bool: per frame, the `count` speakers most active over the chunks (each local
    speaker standing for its segment's speaker)."""
    chunks, frames, local = scores.shape
    speakers = int(speaker_of.max()) + 1 if len(speaker_of) else 0
    if speakers == 0:
        return np.zeros((0, num_frames), bool)
    activation = np.zeros((speakers, num_frames))
    for c, offset in enumerate(offsets):
        span = np.arange(offset, offset + frames)
        for k in np.flatnonzero(stretch[c] >= 0):
            segment = segments.at[stretch[c, k], span]
            known = segment >= 0  # a stretch the chunks' majority never heard has no segment
            np.add.at(activation, (speaker_of[segment[known]], span[known]), scores[c, known, k])
    binary = np.zeros((speakers, num_frames), bool)
    order = np.argsort(-activation, axis=0)
    for rank in range(min(speakers, int(count.max(initial=0)))):
        where = np.flatnonzero(count > rank)
        chosen = order[rank, where]
        ok = activation[chosen, where] > 0
        binary[chosen[ok], where[ok]] = True
    return binary


def with_overlaps(first: np.ndarray, count: np.ndarray, scores: np.ndarray, active: np.ndarray, offsets: np.ndarray,
                  speakers: int, settings: OverlapSettings, grid: FrameGrid) -> np.ndarray:
    """(speakers, frames) bool: each frame's speaker from the embeddings, and where the network counts more voices,
    the speakers that the chunks' other local speakers stand for (most active first); a voice heard only over
    others (no frame of its own) becomes a speaker of its own."""
    num_frames = len(first)
    stand_for, speakers = local_speaker_identities(first, active, offsets, speakers, settings, grid)
    binary = np.zeros((speakers, num_frames), bool)
    heard = first >= 0
    binary[first[heard], np.flatnonzero(heard)] = True
    frames = scores.shape[1]
    others = np.zeros((speakers, num_frames))
    for c, offset in enumerate(offsets):
        for k in np.flatnonzero(stand_for[c] >= 0):
            others[stand_for[c, k], offset:offset + frames] += scores[c, :, k]
    others[first[heard], np.flatnonzero(heard)] = 0.0  # the frame's own speaker is already there
    order = np.argsort(-others, axis=0)
    added = np.zeros_like(binary)
    for rank in range(min(speakers, int(count.max(initial=0))) - 1):
        where = np.flatnonzero((count > rank + 1) & heard)
        chosen = order[rank, where]
        ok = others[chosen, where] > 0
        added[chosen[ok], where[ok]] = True
    shortest = grid.frames(settings.min_overlap)
    for row in added:  # a second voice for a moment only: the network's doubt where one voice hands over to another
        for a, b in runs(row):
            if b - a < shortest:
                row[a:b] = False
    return binary | added


def local_speaker_identities(first: np.ndarray, active: np.ndarray, offsets: np.ndarray, speakers: int,
                             settings: OverlapSettings, grid: FrameGrid) -> tuple[np.ndarray, int]:
    """(chunks, local speakers) the speaker each local speaker stands for (-1: none), and the number of speakers.
    A local speaker stands for the speaker it is on with where it speaks alone (at least `min_local_speech`, most of
    those frames); one that never does takes what the local speakers stitched to it in other chunks stand for, else
    (at least `min_embedding_speech` of speech over others) a new speaker of its own."""
    from mit_annotator.audio.local_speakers import stitch

    chunks, frames, local = active.shape
    stand_for = np.full((chunks, local), -1, int)
    support = grid.frames(settings.min_local_speech)
    for c, offset in enumerate(offsets):
        window = first[offset:offset + frames]
        alone = active[c] & (active[c].sum(axis=1, keepdims=True) == 1) & (window[:, None] >= 0)
        held = np.zeros((local, speakers))
        for k in range(local):
            np.add.at(held[k], window[alone[:, k]], 1)
        held[(held < support) | (held * 2 < alone.sum(axis=0)[:, None])] = 0
        _take_best(stand_for[c], held)
    lost = active.any(axis=1) & (stand_for < 0)
    if lost.any():
        stretch = stitch(active, offsets, settings.stitch_agreement, grid.frames(settings.min_part))
        for s in np.unique(stretch[lost]):
            members = stretch == s
            known = stand_for[members & ~lost]
            if len(known):
                stand_for[members & lost] = np.bincount(known).argmax()
            elif active[members.nonzero()[0], :, members.nonzero()[1]].sum(axis=1).max(initial=0) >= grid.frames(
                    settings.min_embedding_speech):
                stand_for[members & lost] = speakers
                speakers += 1
    return stand_for, speakers


def _take_best(row: np.ndarray, held: np.ndarray) -> None:
    """Fill `row` (local speaker -> speaker) from `held` frames, largest first, each speaker once."""
    held = held.copy()
    while held.max(initial=0) > 0:
        k, speaker = np.unravel_index(np.argmax(held), held.shape)
        row[k] = speaker
        held[k, :] = 0
        held[:, speaker] = 0


def to_turns(binary: np.ndarray, grid: FrameGrid, settings: OverlapSettings, duration: float) -> list[SpeakerTurn]:
    """Turns per speaker (labelled by first appearance), short pauses filled and short turns dropped."""
    pause, shortest = settings.min_pause / grid.step, settings.min_turn / grid.step
    spans = {speaker: [(a, b) for a, b in joined_runs(row, pause) if b - a >= shortest]
             for speaker, row in enumerate(binary)}
    order = sorted((spans[s][0][0], s) for s in spans if spans[s])
    names = {s: f"SPEAKER_{n:02d}" for n, (_, s) in enumerate(order)}

    def time(frame: float) -> float:
        return round(float(min(max(frame * grid.step + grid.centre - grid.step / 2, 0.0), duration)), 3)

    turns = [SpeakerTurn(names[s], time(a), time(b)) for s in names for a, b in spans[s]]
    return sorted((t for t in turns if t.end > t.start), key=lambda t: (t.start, t.speaker))


def block_cuts(speech: list[tuple[float, float]], duration: float, block: float) -> list[float]:
    """Block boundaries (seconds, from 0 to `duration`): about every `block` seconds, each moved to the middle of the
    longest pause within a tenth of a block of it (a cut inside a turn splits that turn only)."""
    count = max(1, int(round(duration / block)))
    cuts = [0.0]
    pauses = [(a, b) for (_, a), (b, _) in zip(speech[:-1], speech[1:])]
    for k in range(1, count):
        nominal = k * duration / count
        near = [(b - a, (a + b) / 2) for a, b in pauses if abs((a + b) / 2 - nominal) <= block / 10]
        cuts.append(max(near)[1] if near else nominal)
    return cuts + [duration]


def speaker_centroids(turns: list[SpeakerTurn], times: np.ndarray, windows: np.ndarray) -> dict[str, np.ndarray]:
    """Each speaker's unit mean d-vector over the windows centred where they alone speak (else where they speak)."""
    centroids = {}
    for name in sorted({t.speaker for t in turns}):
        own = np.zeros(len(times), bool)
        others = np.zeros(len(times), bool)
        for turn in turns:
            inside = (times >= turn.start) & (times < turn.end)
            if turn.speaker == name:
                own |= inside
            else:
                others |= inside
        chosen = own & ~others if (own & ~others).any() else own
        if chosen.any():
            mean = windows[chosen].mean(axis=0)
            centroids[name] = mean / max(float(np.linalg.norm(mean)), 1e-9)
    return centroids


def linked_turns(blocks: list[tuple[float, list[SpeakerTurn], dict[str, np.ndarray]]], config: DiarizationConfig,
                 settings: OverlapSettings) -> list[SpeakerTurn]:
    """The blocks' turns on one time line, the blocks' speakers joined by average linkage of their centroids
    (`same_speaker_across_blocks`; never two that a block heard speak together for a second or more, so a voice
    that a block split in two is joined again; the counts of `config` kept); a turn cut by a block boundary is
    joined again."""
    from mit_annotator.audio.local_speakers import average_linkage

    keys = [(b, name) for b, (_, _, centroids) in enumerate(blocks) for name in centroids]
    if not keys:
        return []
    vectors = np.stack([blocks[b][2][name] for b, name in keys])
    heard_together = np.array([[p[0] == q[0] and p != q and _overlap_seconds(blocks[p[0]][1], p[1], q[1]) >= 1.0
                                for q in keys] for p in keys])
    clusters = average_linkage(vectors @ vectors.T, heard_together, settings.same_speaker_across_blocks,
                               config.min_speakers, config.max_speakers)
    speaker_of = {keys[i]: k for k, cluster in enumerate(clusters) for i in cluster}
    raw = sorted((start + t.start, start + t.end, speaker_of.get((b, t.speaker), -1))
                 for b, (start, turns, _) in enumerate(blocks) for t in turns)
    order = {}
    for _, _, speaker in raw:
        order.setdefault(speaker, len(order))
    joined: list[list] = []
    for a, z, speaker in raw:
        last = next((turn for turn in reversed(joined) if turn[2] == speaker), None)
        if last is not None and a <= last[1] + 1e-6:
            last[1] = max(last[1], z)
        else:
            joined.append([a, z, speaker])
    return [SpeakerTurn(f"SPEAKER_{order[speaker]:02d}", round(a, 3), round(z, 3)) for a, z, speaker in joined]


def _overlap_seconds(turns: list[SpeakerTurn], first: str, second: str) -> float:
    return sum(max(0.0, min(a.end, b.end) - max(a.start, b.start))
               for a in turns if a.speaker == first for b in turns if b.speaker == second)
