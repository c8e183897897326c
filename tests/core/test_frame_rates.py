"""Records and frames re-counted at another frame rate (VideoTracks.at_rate, SpeakingActivity.at_rate,
media.frames_at_rate), as the nodes do at the graph's edges: what is found at 25 fps lands on the video's own frames at
the same moments in time, whatever the video's rate."""

import numpy as np
import pytest

from mit_annotator.core.media import frames_at_rate
from mit_annotator.core.records import PersonSpeaking, PersonTrack, SpeakingActivity, VideoTracks, nearest_frames


def one_turn(fps, seconds, start_s, end_s):
    """A person who speaks from start_s to end_s, counted at `fps`."""
    count = int(round(seconds * fps))
    t = np.arange(count) / fps
    scores = np.where((t >= start_s) & (t < end_s), 2.0, -2.0).astype(np.float32)
    return SpeakingActivity(fps, count, [PersonSpeaking(1, scores, "SPEAKER_00")])


@pytest.mark.parametrize("fps", [24.0, 30.0, 50.0, 12.5])
def test_a_turn_keeps_its_time_on_the_videos_frames(fps):
    found = one_turn(25.0, 12.0, 4.0, 8.0)  # as found by LR-ASD at 25 fps
    retimed = found.at_rate(fps, int(round(12.0 * fps)))
    person = retimed.people[0]
    assert retimed.fps == fps and len(person.scores) == int(round(12.0 * fps))
    assert len(person.speak) == 1
    start, end = person.speak[0]
    assert abs(start / fps - 4.0) <= 1.0 / fps + 1e-9 and abs(end / fps - 8.0) <= 1.0 / fps + 1e-9
    assert person.voice == "SPEAKER_00" and person.listen  # the rest of the video is listening


def test_the_same_rate_is_left_as_it_is():
    found = one_turn(25.0, 4.0, 1.0, 2.0)
    assert found.at_rate(25.0, found.num_frames) is found


@pytest.mark.parametrize("fps", [24.0, 30.0])
def test_frames_and_tracks_at_25_fps_are_the_nearest_in_time(fps):
    count = int(round(6.0 * fps))
    picks = nearest_frames(count, fps, 25.0)
    assert len(picks) == 150  # 6 s at 25 fps
    assert np.abs(picks / fps - np.arange(150) / 25.0).max() <= 0.5 / fps + 1e-9
    frames = [np.full((2, 2, 3), k, np.uint8) for k in range(count)]
    assert [int(f[0, 0, 0]) for f in frames_at_rate(iter(frames), count, fps, 25.0)] == picks.tolist()
    # a person on screen from 2 s to the end: at 25 fps from frame 50
    on = np.arange(int(round(2.0 * fps)), count)
    boxes = np.tile(np.array([[10.0, 10.0, 50.0, 80.0]], np.float32), (len(on), 1))
    tracks = VideoTracks(320, 240, fps, count, [PersonTrack(3, on, boxes)], [(0, count)])
    at_25 = tracks.at_rate(25.0)
    assert at_25.fps == 25.0 and at_25.num_frames == 150 and at_25.shots == [(0, 150)]
    assert at_25.tracks[0].frames[0] == 50 and at_25.tracks[0].frames[-1] == 149
