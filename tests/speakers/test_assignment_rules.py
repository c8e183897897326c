"""The assignment's rules on evidence built frame by frame: one-to-one matching, thresholds, lags, synchrony, the
model's bounded weight, speaking scores and segments, bad input. Fast: these carry the mutation check of
mit_annotator/speakers/assignment.py (scripts/mutation_check.sh)."""

import numpy as np
import pytest

from mit_annotator.core.records import Diarization, SpeakerTurn
from mit_annotator.speakers.assignment import (
    ACTIVE_SPEAKER,
    LIPS,
    SCORE_SCALE,
    AssignmentConfig,
    Evidence,
    assign_speakers,
    correlate,
    match_voices,
    speaking_in_order,
    synchrony,
)

FPS, FRAMES = 25.0, 500


def turns(speaker, spans):
    return [SpeakerTurn(speaker, a / FPS, b / FPS) for a, b in spans]


def bursts(start, end, on=6, off=6):
    """Frame spans of syllable-like bursts: `on` frames of speech, `off` of pause."""
    return [(s, min(s + on, end)) for s in range(start, end, on + off)]


def activity_of(spans, lag=0, noise=0.05, seed=0):
    values = np.zeros(FRAMES)
    for a, b in spans:
        values[a:b] = 1.0
    return np.roll(values, lag) + np.random.default_rng(seed).normal(0, noise, FRAMES)


def test_one_to_one_beats_greedy():
    agreement = np.array([[0.9, 0.8], [0.85, 0.1]])  # greedy: voice 0 -> person 0, then voice 1 has only 0.1 left
    assert match_voices(agreement, AssignmentConfig()) == {1: [0], 0: [1]}
    assert match_voices(np.array([[0.9, np.nan], [0.1, 0.15]]), AssignmentConfig()) == {0: [0]}
    split = np.array([[0.8, 0.0], [0.5, 0.05], [0.0, 0.7]])  # voice 1: the diarizer split person 0's voice
    assert match_voices(split, AssignmentConfig()) == {0: [0, 1], 1: [2]}


def test_an_off_screen_voice_is_not_given_to_the_listener():
    speaker = bursts(0, 200) + bursts(300, 400)
    narrator = bursts(200, 300) + bursts(400, 500)  # speaks between, on no one's lips
    diarization = Diarization(turns("A", speaker) + turns("X", narrator))
    lips = {0: activity_of(speaker, seed=1), 1: np.random.default_rng(2).normal(0, 1, FRAMES)}  # 1: a listener
    speaking, agreement = assign_speakers(diarization, lips, FPS, FRAMES)
    assert speaking.person(0).voice == "A" and speaking.person(1).voice is None
    assert speaking.unassigned_voices == ["X"] and abs(agreement[1, 1]) < 0.2


def test_lips_lagging_four_frames_still_match():
    speaker = bursts(0, 500)
    lips = {0: activity_of(speaker, lag=4, seed=3), 1: activity_of(bursts(3, 500, on=3, off=9), seed=4)}
    speaking, agreement = assign_speakers(Diarization(turns("A", speaker)), lips, FPS, FRAMES)
    assert speaking.person(0).voice == "A" and agreement[0, 0] > 0.9
    in_step, _ = assign_speakers(Diarization(turns("A", speaker)), lips, FPS, FRAMES, AssignmentConfig(max_lag=0))
    assert in_step.person(0).voice is None  # at lag 0 the bursts are out of phase


def test_the_mouth_that_follows_the_voice_is_the_speakers_when_both_move():
    rng = np.random.default_rng(5)
    loudness = rng.normal(-30, 6, FRAMES)  # syllable by syllable
    first, second = [(0, 250)], [(250, 500)]
    own, other = loudness + rng.normal(0, 3, FRAMES), rng.normal(-30, 6, FRAMES)  # mouths: following / not
    mouths = {0: np.where(np.arange(FRAMES) < 250, own, other), 1: np.where(np.arange(FRAMES) < 250, other, own)}
    moving = np.ones(FRAMES)  # both mouths move all the time: lip activity cannot tell them apart
    evidence = Evidence(lips={0: moving + rng.normal(0, 0.01, FRAMES), 1: moving + rng.normal(0, 0.01, FRAMES)},
                        mouth=mouths, loudness=loudness)
    diarization = Diarization(turns("A", first) + turns("B", second))
    speaking, agreement = assign_speakers(diarization, evidence, FPS, FRAMES)
    assert speaking.person(0).voice == "A" and speaking.person(1).voice == "B"
    assert agreement[0, 0] > 0.7 and abs(agreement[0, 1]) < 0.2
    without, _ = assign_speakers(diarization, Evidence(lips=evidence.lips), FPS, FRAMES)
    assert without.person(0).voice is None and without.person(1).voice is None


def test_a_still_mouth_does_not_follow_a_voice_by_a_few_frames():
    rng = np.random.default_rng(6)
    loudness = rng.normal(-30, 6, FRAMES)
    voice = np.zeros(FRAMES)
    voice[:250] = 1
    mouth = np.zeros(FRAMES)
    mouth[250:] = rng.normal(0.5, 0.2, 250)  # the person talks after the voice ...
    loud = np.argsort(loudness[:250])[-5:]
    mouth[loud] = 0.8  # ... and their mouth opens in the voice's five loudest frames
    assert abs(synchrony(voice, mouth, loudness, 0, 25)) < 0.15
    follows = np.where(voice > 0, 0.5 + 0.02 * (loudness + 30), 0.5)  # opens with the voice, still after it
    assert synchrony(voice, follows, loudness, 0, 25) > 0.9


def test_the_model_refines_turn_edges_but_never_makes_a_silent_person_speak():
    a, b = [(0, 250)], [(250, 500)]
    evidence = Evidence(lips={0: activity_of(a, seed=7), 1: activity_of(b, seed=8)},
                        active_speaker={0: np.full(FRAMES, 5.0), 1: np.full(FRAMES, -5.0)})  # 0 always "talks"
    diarization = Diarization(turns("A", a) + [SpeakerTurn("B", 250 / FPS, 500 / FPS), SpeakerTurn("A", 19.98, 20.0)])
    speaking, _ = assign_speakers(diarization, evidence, FPS, FRAMES)
    zero, one = speaking.person(0), speaking.person(1)
    assert zero.evidence == one.evidence == ACTIVE_SPEAKER
    assert zero.speak == [(0, 250)] and one.speak == [(250, 500)]  # the model's opinion does not override a voice
    np.testing.assert_allclose(zero.scores[:250], 2.0 + 0.25 * 5.0)
    np.testing.assert_allclose(zero.scores[250:499], -2.0 + 0.25 * 5.0)
    assert zero.scores[499] == pytest.approx(0.25 * 5.0)  # A speaks half of the last frame: the model decides


def test_lips_may_lag_the_audio():
    rng = np.random.default_rng(0)
    voice = (rng.random(300) > 0.5).astype(np.float32)
    voice = np.repeat(voice[::10], 10)[:300]
    lips = np.roll(voice, 4) + rng.normal(0, 0.1, 300)
    assert correlate(voice, lips, max_lag_frames=5, min_frames=25) > 0.9
    assert correlate(voice, lips, max_lag_frames=0, min_frames=25) < 0.8
    assert np.isnan(correlate(voice, np.full(300, np.nan), 5, 25))


def test_speaking_in_order_gives_each_person_their_own_voice():
    diarization = Diarization([SpeakerTurn("a", 0.0, 1.0), SpeakerTurn("b", 1.0, 2.0)])
    speaking = speaking_in_order(diarization, ["b", "a", "silent"], [7, 3, 5], 25.0, 50)
    assert (speaking.person(7).scores[25:] > 0).all() and (speaking.person(7).scores[:25] < 0).all()
    assert (speaking.person(3).scores[:25] > 0).all() and (speaking.person(3).scores[25:] < 0).all()
    assert (speaking.person(5).scores < 0).all() and speaking.person(7).voice == "b"
    with pytest.raises(ValueError, match="2 voices for 3 people"):
        speaking_in_order(diarization, ["a", "b"], [7, 3, 5], 25.0, 50)


def test_correlation_needs_enough_seen_frames_and_variation():
    voice = np.tile([1.0, 1, 1, 0, 0, 0], 10)
    lips = voice + np.random.default_rng(9).normal(0, 0.1, 60)
    assert correlate(voice, lips, 0, 60) > 0.9 and np.isnan(correlate(voice, lips, 0, 61))
    hidden = lips.copy()
    hidden[:40] = np.nan  # only 20 frames seen
    assert np.isnan(correlate(voice, hidden, 0, 25)) and correlate(voice, hidden, 0, 20) > 0.9
    assert np.isnan(correlate(np.ones(60), lips, 0, 25)) and np.isnan(correlate(voice, np.ones(60), 0, 25))
    ahead, behind = np.roll(voice, -2), np.roll(voice, 2)  # the lips may lead or trail the voice
    assert correlate(voice, ahead, 2, 25) == pytest.approx(1.0) and correlate(voice, behind, 2, 25) == pytest.approx(1.0)
    assert correlate(voice, behind, 1, 25) < 0.5


def test_synchrony_is_measured_while_the_voice_speaks():
    rng = np.random.default_rng(10)
    loudness = rng.normal(-30, 5, 200)
    voice = np.zeros(200)
    voice[:100] = 1
    mouth = np.where(voice > 0, loudness, rng.normal(-30, 5, 200))  # follows the voice, then moves on its own
    by_hand = np.mean((loudness[:100] - loudness[:100].mean()) / loudness[:100].std()
                      * ((mouth - mouth.mean()) / mouth.std())[:100])
    assert synchrony(voice, mouth, loudness, 0, 25) == pytest.approx(by_hand)
    assert synchrony(voice, np.roll(mouth, 3), loudness, 3, 25) == pytest.approx(by_hand, rel=0.1)
    assert synchrony(1 - voice, mouth, loudness, 0, 25) < 0.2  # the other voice's frames
    assert np.isnan(synchrony(voice, np.full(200, 0.3), loudness, 0, 25))  # a mouth that never moves
    assert np.isnan(synchrony(voice, mouth, np.full(200, np.nan), 0, 25))  # no audio
    assert np.isnan(synchrony(voice, mouth, loudness, 0, 101))


def test_the_agreement_is_the_mean_activity_correlation_plus_synchrony():
    rng = np.random.default_rng(11)
    spans = bursts(0, 500, on=10, off=15)
    voice = activity_of(spans, noise=0.0)
    loudness = np.where(voice > 0, rng.normal(-25, 5, FRAMES), -60.0)
    evidence = Evidence(lips={0: activity_of(spans, seed=12)}, active_speaker={0: activity_of(spans, noise=0.5)},
                        mouth={0: np.where(voice > 0, loudness + rng.normal(0, 2, FRAMES), 0.0)}, loudness=loudness)
    _, agreement = assign_speakers(Diarization(turns("A", spans)), evidence, FPS, FRAMES)
    lag = 5
    expected = (np.mean([correlate(voice, evidence.active_speaker[0], lag, 25), correlate(voice, evidence.lips[0],
                                                                                        lag, 25)])
                + synchrony(voice, evidence.mouth[0], loudness, lag, 25))
    assert agreement[0, 0] == pytest.approx(expected, rel=1e-6)
    only_lips, _ = assign_speakers(Diarization(turns("A", spans)), Evidence(lips=evidence.lips), FPS, FRAMES)
    assert only_lips.person(0).evidence == LIPS


def test_which_evidence_a_person_rests_on():
    spans = bursts(0, 500)
    sparse = np.full(FRAMES, np.nan)
    sparse[:24] = 1.0  # under a second of model scores: too little to rest on
    evidence = Evidence(lips={0: activity_of(spans), 1: activity_of(spans, seed=1)},
                        active_speaker={0: activity_of(spans, seed=2), 1: sparse, 2: sparse})
    speaking, agreement = assign_speakers(Diarization(turns("A", spans)), evidence, FPS, FRAMES)
    assert [p.evidence for p in speaking.people] == [ACTIVE_SPEAKER, LIPS, None]
    assert np.isnan(agreement[0, 2])
    assert speaking.person(2).voice is None and (speaking.person(2).scores == -SCORE_SCALE).all()


def test_speaking_scores():
    spans = [(0, 100), (300, 400)]
    evidence = Evidence(lips={0: activity_of(spans)}, active_speaker={0: np.r_[np.full(250, 10.0),
                                                                               np.full(250, -0.4)]})
    diarization = Diarization(turns("A", spans) + [SpeakerTurn("A", 200 / FPS, 200.5 / FPS)])
    person = assign_speakers(diarization, evidence, FPS, FRAMES)[0].person(0)
    assert person.voice == "A" and person.evidence == ACTIVE_SPEAKER
    np.testing.assert_allclose(person.scores[:100], SCORE_SCALE + 1.5)  # the model's 10 counts as its limit, 6
    np.testing.assert_allclose(person.scores[100:200], -SCORE_SCALE + 1.5)
    assert person.scores[200] == pytest.approx(0.25 * 10 * 0 + 1.5 + SCORE_SCALE * (2 * 0.5 - 1))  # half a frame
    np.testing.assert_allclose(person.scores[300:400], SCORE_SCALE - 0.1)
    assert person.speak == [(0, 100), (300, 400)] and person.listen == [(100, 300), (400, 500)]


def test_joined_voices_are_named_together_and_the_rest_stay_unassigned():
    first, second, third = bursts(0, 150), bursts(150, 300), bursts(300, 500)
    lips = {0: activity_of(first + second, seed=3), 1: activity_of(third, seed=4),
            2: np.random.default_rng(5).normal(0, 1, FRAMES)}
    diarization = Diarization(turns("B", first) + turns("A", second) + turns("C", third) +
                              turns("Z", [(2, 4), (200, 203)]))
    speaking, _ = assign_speakers(diarization, lips, FPS, FRAMES)
    assert speaking.person(0).voice in ("A+B", "B+A") and speaking.person(1).voice == "C"
    assert speaking.person(2).voice is None and speaking.unassigned_voices == ["Z"]


@pytest.mark.parametrize("field, message", [
    ("lips", "lip activity of person 0 has 10 frames, expected 500"),
    ("active_speaker", "active-speaker scores of person 0 has 10 frames, expected 500"),
    ("mouth", "mouth measure of person 0 has 10 frames, expected 500"),
    ("loudness", "loudness has 10 frames, expected 500")])
def test_evidence_of_the_wrong_length_is_named(field, message):
    evidence = Evidence(lips={0: np.zeros(FRAMES)})
    setattr(evidence, field, np.zeros(10) if field == "loudness" else {0: np.zeros(10)})
    with pytest.raises(ValueError, match=message):
        assign_speakers(Diarization(turns("A", [(0, 10)])), evidence, FPS, FRAMES)


def test_no_voices_or_no_people():
    speaking, agreement = assign_speakers(Diarization([]), {0: activity_of([(0, 50)])}, FPS, FRAMES)
    assert agreement.shape == (0, 1) and speaking.person(0).voice is None and speaking.person(0).speak == []
    speaking, agreement = assign_speakers(Diarization(turns("A", [(0, 50)])), {}, FPS, FRAMES)
    assert agreement.shape == (1, 0) and speaking.people == [] and speaking.unassigned_voices == ["A"]


def test_matching_at_its_limits():
    config = AssignmentConfig()
    exact = np.array([[config.min_correlation, -0.5]])
    assert match_voices(exact, config) == {0: [0]}  # the threshold itself is enough
    extra = np.array([[0.0, 0.8], [0.0, config.min_extra_correlation], [0.7, 0.0]])
    assert match_voices(extra, config) == {1: [0, 1], 0: [2]}  # joins the person at column 1 at exactly the limit
    # an unmeasurable pair counts as -1: here it steers voice 1 to person 0 (counted as 0 it would take person 1)
    assert match_voices(np.array([[np.nan, -0.5], [0.6, 0.5]]), config) == {0: [1]}


def test_lag_search_and_frame_counts_at_their_limits():
    from mit_annotator.speakers.assignment import _shifted

    np.testing.assert_array_equal(_shifted(np.arange(5.0), 1), [np.nan, 0, 1, 2, 3])
    np.testing.assert_array_equal(_shifted(np.arange(5.0), -1), [1, 2, 3, 4, np.nan])
    voice = np.tile([1.0, 1, 1, 0, 0, 0], 10)
    lips = voice + np.random.default_rng(13).normal(0, 0.1, 60)
    assert correlate(voice, lips, 2, 60) > 0.9  # lags +-1, +-2 see too few frames; lag 0 sees all 60
    rng = np.random.default_rng(14)
    loudness = rng.normal(-30, 5, 200)
    late = np.zeros(200)
    late[100:] = 1  # the voice speaks in the last 100 frames
    mouth = np.where(late > 0, loudness, rng.normal(-30, 5, 200))
    assert synchrony(late, mouth, loudness, 1, 100) > 0.5  # lag -1 loses the last frame: 99 < 100; lag 0 has 100
    assert np.isnan(synchrony(late, mouth, loudness, 0, 101))
    assert synchrony(late, np.roll(mouth, 4), loudness, 3, 25) < 0.5 < synchrony(late, np.roll(mouth, 4), loudness,
                                                                                4, 25)
    half_seen = np.where(np.arange(200) < 100, np.nan, mouth)
    assert np.isfinite(synchrony(late, half_seen, loudness, 0, 100))  # seen in exactly min_frames frames


def test_what_the_speaking_records_carry():
    spans = [(0, 200)]
    model = np.full(FRAMES, -10.0)
    model[100:120] = np.nan  # the face not scored there
    evidence = Evidence(lips={0: activity_of(spans)}, active_speaker={0: model})
    diarization = Diarization(turns("A", spans) + turns("A", [(300, 310)]))  # a 0.4 s burst: merged into listening
    speaking, _ = assign_speakers(diarization, evidence, FPS, FRAMES)
    person = speaking.person(0)
    assert speaking.fps == FPS and speaking.num_frames == FRAMES
    np.testing.assert_allclose(person.scores[:100], SCORE_SCALE - 1.5)  # -10 counts as the limit, -6
    np.testing.assert_allclose(person.scores[100:120], SCORE_SCALE)  # no score: the voice alone
    assert person.speak == [(0, 200)] and person.listen == [(200, 500)]
    ordered = speaking_in_order(Diarization(turns("b", [(0, 25)])), ["b"], [4], FPS, 50)
    assert ordered.fps == FPS and ordered.unassigned_voices == [] and ordered.person(4).evidence == "own_audio"


def test_a_second_of_model_scores_is_enough_and_audio_without_mouths_is_fine():
    spans = bursts(0, 500)
    second = np.full(FRAMES, np.nan)
    second[:25] = np.linspace(-1, 1, 25)  # exactly min_overlap (1 s) of scores
    evidence = Evidence(lips={0: activity_of(spans)}, active_speaker={0: second},
                        loudness=np.random.default_rng(15).normal(-30, 5, FRAMES))  # no mouth measured for anyone
    speaking, agreement = assign_speakers(Diarization(turns("A", spans)), evidence, FPS, FRAMES)
    assert speaking.person(0).evidence == ACTIVE_SPEAKER and np.isfinite(agreement[0, 0])
