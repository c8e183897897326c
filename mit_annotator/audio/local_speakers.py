"""Who is who across the speaker segmentation's chunks: the network's local speakers stitched into stretches of one
voice, cut into segments, and the segments clustered into speakers by their speaker embeddings.

Consecutive chunks share most of their frames, so a local speaker of one chunk and one of the next that are on in
the same shared frames are one voice (stitching; Bredin and Laurent 2021). The network sometimes keeps one local
speaker across a pause in which the voice changes, and sometimes hears two voices as one: stretches are cut at
pauses and where their d-vectors change, a local speaker that another chunk hears as two voices links to nothing,
and the segments' embeddings, not the stretches, decide who is who. Two segments that the network heard as
different local speakers of one chunk are never one speaker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from mit_annotator.audio.diarization import DiarizationConfig
from mit_annotator.core.segments import joined_runs, runs


@dataclass
class OverlapSettings:
    """The overlap-aware pipeline's own settings (the speaker counts come from DiarizationConfig)."""

    step: float = 1.0  # seconds between chunks (pyannote uses 10% of the chunk; 1 s measured as good, twice faster)
    threshold: float = 0.5  # a local speaker's score above which it speaks
    min_local_speech: float = 0.2  # seconds a local speaker must speak in a chunk to count
    stitch_agreement: float = 0.5  # IoU of two chunks' local speakers over their shared frames that makes them one
    min_part: float = 1.0  # seconds of a local speaker that another chunk must give to two voices to call it two
    split_pause: float = 0.2  # seconds of silence at which a stretch is cut into segments
    min_window_cover: float = 0.8  # share of a window that must be its segment's clean speech
    change_block: int = 5  # windows on each side of a candidate voice change
    change_similarity: float = 0.7  # two blocks less alike than this: the voice changes between them
    same_speaker: float = 0.72  # cosine similarity of two segments' embeddings (average linkage): one speaker
    # of two speakers' centroids over a long recording's blocks (minutes of speech each: the same voice 0.89-0.99,
    # different voices 0.51-0.77 on the tune voices, BENCHMARKS.md)
    same_speaker_across_blocks: float = 0.85
    same_stretch_bonus: float = 0.05  # added to the similarity of two segments of one stretch
    apart_chunks: int = 1  # chunks that must hear two segments as different local speakers to keep them apart
    min_embedding_speech: float = 1.0  # seconds of clean speech a segment needs for a reliable embedding
    # who is who: "network" (the local speakers stitched and clustered: voices counted right in short recordings)
    # or "embeddings" (the offline pipeline's d-vector clustering: voices told apart across long recordings; one
    # voice may come out split, which the speaker-to-person assignment absorbs)
    identity: str = "network"
    min_overlap: float = 0.3  # seconds: a second voice heard for less is dropped ("embeddings" identity)
    warm_up: float = 0.1  # share of each chunk's ends not used for the speaker count (the network sees little)
    min_turn: float = 0.1  # seconds: shorter turns are dropped
    min_pause: float = 0.1  # seconds: shorter pauses inside a speaker's turn are filled


@dataclass
class Segments:
    """Pieces of stretches between pauses: `stretch[i]` and frames [start[i], end[i]) on the global grid;
    `at[s, g]`: the segment of stretch s nearest to global frame g."""

    stretch: np.ndarray
    start: np.ndarray
    end: np.ndarray
    at: np.ndarray

    def __len__(self) -> int:
        return len(self.stretch)

    @classmethod
    def from_pieces(cls, pieces: list[list[tuple[int, int]]], num_frames: int) -> Segments:
        """From each stretch's pieces [first, last) in time order."""
        stretch, start, end = [], [], []
        at = np.full((len(pieces), num_frames), -1, np.int32)
        for s, own in enumerate(pieces):
            if not own:
                continue
            first = len(stretch)
            bounds = [0] + [(own[i][1] + own[i + 1][0]) // 2 for i in range(len(own) - 1)] + [num_frames]
            for i, (a, b) in enumerate(own):  # each frame: the nearest piece (cut half way between two)
                stretch.append(s)
                start.append(a)
                end.append(b)
                at[s, bounds[i]:bounds[i + 1]] = first + i
        return cls(np.array(stretch, int), np.array(start, int), np.array(end, int), at)


def stitch(active: np.ndarray, offsets: np.ndarray, min_agreement: float, min_part: int) -> np.ndarray:
    """(chunks, local speakers) stretch index (-1: silent there): local speakers of overlapping chunks that are on
    in the same shared frames are one voice. Links are taken best first, one-to-one between two chunks, and never
    join two local speakers of one chunk. A local speaker whose shared frames another chunk gives to two of its
    own (each at least `min_part` frames) held two voices as one: it links to nothing."""
    chunks, frames, local = active.shape
    speaking = active.any(axis=1)
    links, merged = [], set()
    for c in range(chunks):
        for d in range(c + 1, chunks):
            shift = offsets[d] - offsets[c]
            if shift >= frames // 2:  # less than half of the chunk shared: too little to compare
                break
            a, b = active[c, shift:], active[d, :frames - shift]
            inter = (a[:, :, None] & b[:, None, :]).sum(axis=0)
            union = (a[:, :, None] | b[:, None, :]).sum(axis=0)
            iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
            rows, cols = linear_sum_assignment(-iou)
            links += [(float(iou[i, j]), (c, i), (d, j)) for i, j in zip(rows, cols) if iou[i, j] >= min_agreement]
            # compared where the other chunk hears one voice only: in overlapped speech two voices are right
            alone_a, alone_b = a & (a.sum(axis=1, keepdims=True) == 1), b & (b.sum(axis=1, keepdims=True) == 1)
            merged |= {(c, i) for i in np.flatnonzero(((a[:, :, None] & alone_b[:, None, :]).sum(axis=0)
                                                        >= min_part).sum(axis=1) >= 2)}
            merged |= {(d, j) for j in np.flatnonzero(((alone_a[:, :, None] & b[:, None, :]).sum(axis=0)
                                                        >= min_part).sum(axis=0) >= 2)}
    links = [link for link in links if link[1] not in merged and link[2] not in merged]
    parent = {(c, k): (c, k) for c in range(chunks) for k in range(local) if speaking[c, k]}
    members = {node: {node[0]: node[1]} for node in parent}  # root -> {chunk: local speaker}

    def root(node):
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for _, first, second in sorted(links, reverse=True):
        a, b = root(first), root(second)
        if a == b or set(members[a]) & set(members[b]):
            continue  # one chunk would hold the same voice twice
        parent[b] = a
        members[a].update(members.pop(b))
    stretch = np.full((chunks, local), -1, int)
    index = {}
    for node in sorted(parent):
        stretch[node] = index.setdefault(root(node), len(index))
    return stretch


def stretch_frames(active: np.ndarray, offsets: np.ndarray, stretch: np.ndarray, num_frames: int) -> np.ndarray:
    """(stretches, global frames) bool: where each stretch speaks, by the majority of the chunks that see it."""
    count = stretch.max() + 1
    votes = np.zeros((max(count, 0), num_frames), np.uint8)  # a frame is seen by at most chunk / step chunks
    seen = np.zeros(num_frames)
    frames = active.shape[1]
    for c, offset in enumerate(offsets):
        seen[offset:offset + frames] += 1
        for k in np.flatnonzero(stretch[c] >= 0):
            votes[stretch[c, k], offset:offset + frames] += active[c, :, k]
    return votes > np.maximum(seen, 1) / 2 if count > 0 else np.zeros((0, num_frames), bool)


def pauses_split(on: np.ndarray, min_pause: int) -> list[list[tuple[int, int]]]:
    """Each stretch's pieces [first, last): its runs of speech, joined across pauses under `min_pause` frames."""
    return [joined_runs(row, min_pause) for row in on]


def split_at_changes(pieces: list[tuple[int, int]], alone: np.ndarray, windows: np.ndarray, spans: np.ndarray,
                     settings: OverlapSettings) -> list[tuple[int, int]]:
    """Pieces cut where the voice changes: where the d-vectors of `change_block` windows before a point and as many
    after it are less than `change_similarity` alike (the least alike point first, then each side again)."""
    out = []
    todo = list(pieces)
    while todo:
        a, b = todo.pop(0)
        inside = _clean_windows(a, b, alone, spans, settings.min_window_cover)
        m = settings.change_block
        if len(inside) < 2 * m:
            out.append((a, b))
            continue
        vectors = windows[inside]
        csum = np.concatenate([np.zeros((1, vectors.shape[1])), np.cumsum(vectors, axis=0)])
        cuts = np.arange(m, len(inside) - m + 1)
        left, right = csum[cuts] - csum[cuts - m], csum[cuts + m] - csum[cuts]
        similarity = (left * right).sum(axis=1) / np.maximum(
            np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1), 1e-9)
        best = int(np.argmin(similarity))
        if similarity[best] >= settings.change_similarity:
            out.append((a, b))
            continue
        i = cuts[best]
        point = _quietest(alone, (spans[inside[i - 1], 0] + spans[inside[i], 1]) // 2, a, b)
        todo[:0] = [(a, point), (point, b)]
    return sorted(out)


def _clean_windows(a: int, b: int, alone: np.ndarray, spans: np.ndarray, cover: float,
                   within: bool = True) -> np.ndarray:
    """Indices of the windows inside [a, b) (`within`; else overlapping it) whose frames are at least `cover` clean
    speech of this stretch inside [a, b)."""
    if not len(spans):
        return np.zeros(0, int)
    inside = np.flatnonzero((spans[:, 0] >= a) & (spans[:, 1] <= b) if within else
                            (spans[:, 1] > a) & (spans[:, 0] < b))
    clean = np.zeros(len(alone) + 1, int)
    clean[1:b + 1] = np.cumsum(alone[:b] & (np.arange(b) >= a))
    clean[b + 1:] = clean[b]
    first, last = spans[inside, 0], spans[inside, 1]
    return inside[(clean[last] - clean[first]) >= cover * (last - first)]


def _quietest(alone: np.ndarray, point: int, a: int, b: int, reach: int = 24) -> int:
    """The middle of the pause nearest to `point` (within `reach` frames), else `point` itself."""
    low, high = max(a + 1, point - reach), min(b - 1, point + reach)
    pauses = [(x + y) // 2 for x, y in runs(~alone[low:high])]
    return low + min(pauses, key=lambda p: abs(low + p - point)) if pauses else point


def segment_embeddings(segments: Segments, alone: np.ndarray, windows: np.ndarray, spans: np.ndarray,
                       settings: OverlapSettings, frame_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Per segment, the unit mean of the d-vectors of its windows that are at least `min_window_cover` its clean
    speech, and the seconds those windows span (its reliability); a segment without such windows takes the windows
    at least half its clean speech, with 0 seconds. Zero vectors where there are none."""
    embeddings = np.zeros((len(segments), 256), np.float32)
    seconds = np.zeros(len(segments))
    for i, (s, a, b) in enumerate(zip(segments.stretch, segments.start, segments.end)):
        inside = _clean_windows(a, b, alone[s], spans, settings.min_window_cover)
        if len(inside):
            seconds[i] = (spans[inside, 1].max() - spans[inside, 0].min()) * frame_s
        else:
            inside = _clean_windows(a, b, alone[s], spans, 0.5, within=False)
        if len(inside):
            mean = windows[inside].mean(axis=0)
            embeddings[i] = mean / max(float(np.linalg.norm(mean)), 1e-9)
    return embeddings, seconds


def heard_together(active: np.ndarray, offsets: np.ndarray, stretch: np.ndarray, segments: Segments,
                   min_chunks: int = 1) -> np.ndarray:
    """(segments, segments) bool: both speak as different local speakers in `min_chunks` chunks or more (so they
    differ)."""
    together = np.zeros((len(segments),) * 2, int)
    for c, offset in enumerate(offsets):
        heard = []
        for k in np.flatnonzero(stretch[c] >= 0):
            found = segments.at[stretch[c, k], np.flatnonzero(active[c, :, k]) + offset]
            heard.append(np.unique(found[found >= 0]))
        for i in range(len(heard)):
            for j in range(len(heard)):
                if i != j:
                    together[np.ix_(heard[i], heard[j])] += 1
    return together >= min_chunks


def cluster_segments(embeddings: np.ndarray, seconds: np.ndarray, together: np.ndarray, stretch: np.ndarray,
                     config: DiarizationConfig, settings: OverlapSettings) -> np.ndarray:
    """Speaker index per segment: average-linkage clustering of the reliably embedded segments, merging the most
    alike pair of compatible clusters while it reaches `same_speaker` (or while there are more than max_speakers),
    never below min_speakers; then each other segment joins its stretch's speaker, else the most alike compatible
    one, else (heard beside every speaker) becomes a speaker of its own."""
    count = len(embeddings)
    if count == 0:
        return np.zeros(0, int)
    reliable = seconds >= settings.min_embedding_speech
    if not reliable.any():
        reliable[np.argmax(seconds)] = True
    similarity = embeddings @ embeddings.T + settings.same_stretch_bonus * (stretch[:, None] == stretch[None, :])
    members = [[int(k)] for k in np.flatnonzero(reliable)]
    clusters = average_linkage(similarity[np.ix_(reliable, reliable)], together[np.ix_(reliable, reliable)],
                               settings.same_speaker, config.min_speakers, config.max_speakers)
    clusters = [[members[i][0] for i in cluster] for cluster in clusters]
    speaker_of = np.full(count, -1, int)
    for index, own in enumerate(clusters):
        speaker_of[own] = index
    for k in sorted(np.flatnonzero(~reliable), key=lambda k: -seconds[k]):
        embedded = bool(embeddings[k].any())
        options = [(similarity[k, own].mean() if embedded and own else 0.0, _stretch_speech(k, own, stretch, seconds),
                    index) for index, own in enumerate(clusters) if not together[k, own].any()]
        if options:
            index = max(options)[2]
        else:  # heard beside every speaker: a voice of its own
            clusters.append([])
            index = len(clusters) - 1
        clusters[index].append(int(k))
        speaker_of[k] = index
    return speaker_of


def average_linkage(similarity: np.ndarray, apart: np.ndarray, threshold: float, min_clusters: int,
                    max_clusters: int) -> list[list[int]]:
    """Agglomerative clustering: the pair of clusters with the highest mean similarity joins, never a pair with an
    `apart` member pair (unless nothing else is left while more than `max_clusters` remain), while that mean reaches
    `threshold` or more than `max_clusters` remain, and never below `min_clusters`. Cluster-level sums are updated in place, so each join costs one pass over the clusters."""
    n = len(similarity)
    clusters = [[i] for i in range(n)]
    total = similarity.astype(np.float64).copy()
    apart = apart.copy()
    alive = np.ones(n, bool)
    sizes = np.ones(n)
    while alive.sum() > max(min_clusters, 1):
        mean = total / np.outer(sizes, sizes)
        gone = ~alive[:, None] | ~alive[None, :] | np.eye(n, dtype=bool)
        allowed = np.where(apart | gone, -np.inf, mean)
        if not np.isfinite(allowed).any() and alive.sum() > max_clusters:  # the caller's count outranks the network
            allowed = np.where(gone, -np.inf, mean)
        i, j = np.unravel_index(np.argmax(allowed), allowed.shape)
        if not np.isfinite(allowed[i, j]) or (allowed[i, j] < threshold and alive.sum() <= max_clusters):
            break
        total[i] += total[j]
        total[:, i] += total[:, j]
        apart[i] |= apart[j]
        apart[:, i] |= apart[:, j]
        sizes[i] += sizes[j]
        alive[j] = False
        clusters[i] += clusters[j]
    return [clusters[i] for i in np.flatnonzero(alive)]


def _stretch_speech(segment: int, members: list[int], stretch: np.ndarray, seconds: np.ndarray) -> float:
    """Seconds of clean speech that `members` share with `segment`'s stretch."""
    return float(sum(seconds[m] for m in members if stretch[m] == stretch[segment]))


