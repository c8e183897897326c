"""media.prefetched: frames made ahead by a thread, as the caller would have had them."""

import threading

import numpy as np
import pytest

from mit_annotator.core import media


def test_frames_come_in_order_and_errors_where_they_happened():
    def frames():
        for k in range(20):
            yield np.full((2, 2, 3), k, np.uint8)
        raise media.MediaError("clip.mp4", "truncated")

    seen = []
    with pytest.raises(media.MediaError, match="truncated"):
        for frame in media.prefetched(frames(), depth=3):
            seen.append(int(frame[0, 0, 0]))
    assert seen == list(range(20))


def test_stopping_early_stops_the_thread_and_closes_the_source():
    closed = threading.Event()

    def frames():
        try:
            for k in range(10_000):
                yield np.full((2, 2, 3), k % 256, np.uint8)
        finally:
            closed.set()

    taken = media.prefetched(frames(), depth=2)
    assert [int(next(taken)[0, 0, 0]) for _ in range(3)] == [0, 1, 2]
    taken.close()
    assert closed.is_set()
    assert not any(t.name == "prefetch-frames" for t in threading.enumerate())
