"""Speaker binding (Speaker Masks, Split Voices, mit_annotator.speakers.binding): which person becomes speaker 1, 2, ...,
the masks' pixels, the voices' samples, the errors a user sees; and the whole chain on real footage
(interact_11.mp4 as ComfyUI's Load Video gives it: 24 fps frames, 48 kHz stereo audio)."""

import json
import sys

import numpy as np
import pytest
import torch
from conftest import MODELS, PACK_ROOT, SHARED_DATA, shared_path

from mit_annotator.core.records import PersonSpeaking, PersonTrack, SpeakingActivity, VideoTracks
from mit_annotator.speakers import binding

sys.path.insert(0, str(PACK_ROOT))
from nodes.binding_nodes import SpeakerMasks, SplitVoices  # noqa: E402

FPS, FRAMES, W, H = 25.0, 50, 96, 64


def person_track(track_id, x, frames=range(FRAMES), face=True):
    frames = np.asarray(list(frames))
    boxes = np.tile([x, 10, x + 30, 60], (len(frames), 1)).astype(np.float32)
    faces = np.tile([x + 8, 12, x + 22, 28], (len(frames), 1)).astype(np.float32) if face else None
    return PersonTrack(track_id, frames, boxes, face_boxes=faces)


def scene(speak=((0, [(30, 50)]), (1, [(5, 25)])), xs=(5, 60), **kwargs):
    """Person 0 on the left, person 1 on the right; by default person 1 speaks first."""
    tracks = VideoTracks(W, H, FPS, FRAMES, [person_track(t, x, **kwargs) for t, x in enumerate(xs)],
                         [(0, FRAMES)])
    people = []
    for track_id, segments in speak:
        scores = np.full(FRAMES, -2.0, np.float32)
        for a, b in segments:
            scores[a:b] = 2.0
        people.append(PersonSpeaking(track_id, scores, f"V{track_id}" if segments else None, list(segments), []))
    return tracks, SpeakingActivity(FPS, FRAMES, people)


def comfy_audio(samples, rate=16000):
    samples = np.asarray(samples, np.float32)
    return {"waveform": torch.from_numpy(samples if samples.ndim == 2 else samples[None])[None], "sample_rate": rate}


MASK_ARGS = dict(region="face", mode="static", reference_frame=0, order="first_to_speak", grow=0, feather=0)


def test_speaker_one_is_the_first_to_speak_not_the_leftmost():
    tracks, speaking = scene()
    assert binding.speaker_order(speaking, tracks) == [1, 0]
    assert binding.speaker_order(speaking, tracks, "left_to_right") == [0, 1]
    assert binding.speaker_order(speaking, tracks, "track_id") == [0, 1]
    # a listener comes after the speakers, whatever their id
    tracks3 = VideoTracks(W, H, FPS, FRAMES, [person_track(t, x) for t, x in enumerate((0, 30, 60))])
    _, speaking3 = scene(((0, []), (1, [(20, 30)]), (2, [(5, 10)])), xs=(0, 30, 60))
    assert binding.speaker_order(speaking3, tracks3) == [2, 1, 0]

    mask_1, mask_2, mask_3, mask_4, masks, preview, people = SpeakerMasks.execute(tracks, speaking, **MASK_ARGS)
    assert people == 2 and mask_1.shape == (1, H, W) and masks.shape == (2, H, W) and preview.shape == (1, H, W, 3)
    right_face, left_face = (slice(12, 28), slice(68, 82)), (slice(12, 28), slice(13, 27))
    assert (mask_1[0][right_face] == 1).all() and mask_1.sum() == 16 * 14  # the right person's face, nothing else
    assert (mask_2[0][left_face] == 1).all() and mask_2.sum() == 16 * 14
    assert not mask_3.any() and not mask_4.any() and mask_3.shape == (1, H, W)
    torch.testing.assert_close(masks, torch.cat([mask_1, mask_2]))


def test_voices_follow_the_same_order_and_gate_the_mix():
    tracks, speaking = scene()
    rate = 16000
    stereo = np.stack([np.sin(np.arange(2 * rate) / 7.0), 0.5 * np.cos(np.arange(2 * rate) / 5.0)]).astype(np.float32)
    voice_1, voice_2, voice_3, voice_4, people = SplitVoices.execute(comfy_audio(stereo), speaking, "first_to_speak",
                                                                     20)
    assert people == 2
    for voice in (voice_1, voice_2, voice_3, voice_4):
        assert voice["sample_rate"] == rate and voice["waveform"].shape == (1, 2, 2 * rate)  # same length, channels
    one, two = voice_1["waveform"][0].numpy(), voice_2["waveform"][0].numpy()
    first, second = (slice(5 * 640, 25 * 640), slice(30 * 640, 50 * 640))  # frames -> samples at 25 fps, 16 kHz
    fade = 320  # 20 ms
    inner = slice(first.start + fade, first.stop - fade)
    np.testing.assert_array_equal(one[:, inner], stereo[:, inner])  # person 1's turn: the mix as it is
    assert not one[:, :first.start].any() and not one[:, first.stop:].any()  # silence elsewhere
    np.testing.assert_array_equal(two[:, second.start + fade:second.stop - fade],
                                  stereo[:, second.start + fade:second.stop - fade])
    assert not two[:, :second.start].any() and not two[:, second.stop:].any()
    ramp = one[0, first.start:first.start + fade] / stereo[0, first.start:first.start + fade]
    assert np.all(np.diff(ramp[np.isfinite(ramp)]) > 0) and 0 < ramp[1] < 0.02  # a fade in, not a click
    assert not voice_3["waveform"].any() and not voice_4["waveform"].any()
    # per-person recordings pass straight through
    own = comfy_audio(np.ones(2 * rate))
    passed = SplitVoices.execute(comfy_audio(stereo), speaking, "first_to_speak", 20, voice_2=own)
    assert passed[1] is own and passed[0]["waveform"].equal(voice_1["waveform"])


def test_masks_per_frame_grow_feather_and_region():
    tracks = VideoTracks(W, H, FPS, FRAMES, [person_track(0, 5, frames=range(10, 40)), person_track(1, 60)])
    _, speaking = scene()
    masks = binding.speaker_masks(tracks, [0], "face", None)
    assert masks.shape == (1, FRAMES, H, W)
    assert not masks[0, :10].any() and not masks[0, 40:].any()  # not there: empty
    assert (masks[0, 10:40].sum(axis=(1, 2)) == 16 * 14).all()
    body = binding.speaker_masks(tracks, [1], "body", [0])[0, 0]
    assert body.sum() == 30 * 50 and body[10:60, 60:90].all()
    head = binding.speaker_masks(tracks, [1], "head", [0])[0, 0]
    rows, cols = np.nonzero(head)
    assert rows.min() < 12 and cols.min() < 68 and cols.max() >= 82 and head.sum() > 16 * 14 * 2  # hair included
    grown = binding.speaker_masks(tracks, [1], "face", [0], grow=3)[0, 0]
    assert grown.sum() == 22 * 20 and grown[9:31, 65:85].all()
    soft = binding.speaker_masks(tracks, [1], "face", [0], grow=3, feather=4)[0, 0]
    assert (soft[grown == 1] == 1).all() and soft[9:31, 85:89].max() < 1 and soft[20, 85] > 0.5
    assert soft[20, 89] == 0 and 0 < soft[20, 87] < soft[20, 86] < 1  # linear fall-off over 4 px
    # the node's per-frame masks: one per frame, in slot order (person 1 speaks first)
    out = SpeakerMasks.execute(tracks, speaking, **{**MASK_ARGS, "mode": "per_frame"})
    assert out[0].shape == (FRAMES, H, W) and out[0][0].sum() == 16 * 14 and out[0][0, 20, 75] == 1
    assert not out[1][:10].any() and out[1][10, 20, 20] == 1
    # static: a person not seen in the reference frame gets the region of their nearest frame
    static = SpeakerMasks.execute(tracks, speaking, **MASK_ARGS)
    assert static[1][0, 20, 20] == 1 and static[1].sum() == 16 * 14


def test_up_to_four_slots_and_everyone_in_masks():
    xs = (0, 15, 30, 45, 60, 75)
    tracks = VideoTracks(W, H, FPS, FRAMES, [person_track(t, x) for t, x in enumerate(xs)])
    _, speaking = scene([(t, [(40 - 5 * t, 45 - 5 * t)]) for t in range(6)], xs=xs)  # person 5 speaks first
    out = SpeakerMasks.execute(tracks, speaking, **MASK_ARGS)
    assert out[6] == 6 and out[4].shape == (6, H, W)
    for slot in range(4):  # slot k: person 5 - k
        cols = np.nonzero(out[slot][0].numpy().any(axis=0))[0]
        assert cols.min() == xs[5 - slot] + 8, slot
    voices = SplitVoices.execute(comfy_audio(np.ones(FRAMES * 640)), speaking, "first_to_speak", 0)
    assert voices[4] == 6
    for slot in range(4):
        active = np.flatnonzero(voices[slot]["waveform"][0, 0].numpy())
        assert active.min() == (15 + 5 * slot) * 640 and active.max() == (20 + 5 * slot) * 640 - 1


def test_bad_input_gives_a_clear_message():
    tracks, speaking = scene()
    nobody = VideoTracks(W, H, FPS, FRAMES, [], [(0, FRAMES)])
    with pytest.raises(ValueError, match="no people in the tracks"):
        SpeakerMasks.execute(nobody, speaking, **MASK_ARGS)
    stranger = SpeakingActivity(FPS, FRAMES, [*speaking.people, PersonSpeaking(7, np.zeros(FRAMES), "V7")])
    with pytest.raises(ValueError, match="names person 7, whom the tracks do not hold"):
        SpeakerMasks.execute(tracks, stranger, **MASK_ARGS)
    with pytest.raises(ValueError, match=r"the audio lasts 1\.00 s but the video 2\.00 s"):
        SplitVoices.execute(comfy_audio(np.ones(16000)), speaking, "first_to_speak", 20)
    audio = comfy_audio(np.ones(FRAMES * 640))
    with pytest.raises(ValueError, match="voice_3 is given but the assignment has 2 people: more voices than people"):
        SplitVoices.execute(audio, speaking, "first_to_speak", 20, voice_3=audio)
    with pytest.raises(ValueError, match="left_to_right order needs the tracks"):
        SplitVoices.execute(audio, speaking, "left_to_right", 20)
    faceless = VideoTracks(W, H, FPS, FRAMES, [person_track(0, 5, face=False), person_track(1, 60, face=False)])
    with pytest.raises(ValueError, match="person 1 has no face box in any frame: detect their faces"):
        SpeakerMasks.execute(faceless, speaking, **MASK_ARGS)
    with pytest.raises(ValueError, match="reference_frame 99 is outside the video's 50 frames"):
        SpeakerMasks.execute(tracks, speaking, **{**MASK_ARGS, "reference_frame": 99})


# ---------------------------------------------------------------------------------------------------------------------
# Real footage: the nodes as a workflow chains them


INTERACT = SHARED_DATA / "video" / "interact_11.mp4"


@pytest.fixture(scope="module")
def interact():
    """interact_11 through Detect Faces -> Assign Speakers -> Speaker Masks + Split Voices, as the binding
    workflows run it: frames at the video's 24 fps and its 48 kHz stereo audio, as Load Video gives them."""
    import av

    from mit_annotator.core import media
    from nodes.comfy_bridge import frames_to_image
    from nodes.speaker_nodes import ActiveSpeakers, AssignSpeakers
    from nodes.vision_nodes import DetectFaces

    shared_path("video", "interact_11.mp4")
    weights = shared_path("models", "lr_asd", "pretrain_AVA.model")
    frames = media.read_frames(INTERACT)
    with av.open(str(INTERACT)) as container:
        stream = container.streams.audio[0]
        wave = np.concatenate([f.to_ndarray() for f in container.decode(stream)], axis=1).astype(np.float32)
        rate = stream.rate
    images, audio = frames_to_image(frames), {"waveform": torch.from_numpy(wave)[None], "sample_rate": rate}
    tracks, = DetectFaces.execute(images, 24.0, str(MODELS / "face_detection_yunet.onnx"), 0.6)
    # Active Speakers feeding Assign Speakers (the same assignment as Assign Speakers running LR-ASD itself), so the
    # test can read the model's own scores too
    scores, = ActiveSpeakers.execute(tracks, images, audio, str(weights))
    speaking, _ = AssignSpeakers.execute(tracks, audio, 0, "offline", images, "auto", str(weights),
                                          active_speakers=scores)
    masks = SpeakerMasks.execute(tracks, speaking, **{**MASK_ARGS, "mode": "per_frame"})
    static = SpeakerMasks.execute(tracks, speaking, **{**MASK_ARGS, "region": "head", "grow": 16, "feather": 8},
                                 images=images)
    voices = SplitVoices.execute(audio, speaking, "first_to_speak", 20)
    return dict(frames=frames, wave=wave, rate=rate, tracks=tracks, speaking=speaking, masks=masks, static=static,
                voices=voices, scores=scores)


def detected_faces(frames, every=1):
    """YuNet's own face boxes every few frames, split by side of the picture (the right person, the left one)."""
    from mit_annotator.vision.faces import YuNetFaceDetector

    detector = YuNetFaceDetector(MODELS / "face_detection_yunet.onnx")
    sides = {"right": {}, "left": {}}
    for index in range(0, len(frames), every):
        for face in detector(frames[index]):
            side = "right" if (face.box[0] + face.box[2]) / 2 > frames.shape[2] / 2 else "left"
            sides[side].setdefault(index, face.box)
    return sides


def covered(mask, box, share=0.9) -> bool:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    region = mask[max(y1, 0):y2, max(x1, 0):x2]
    return region.size > 0 and float((region > 0.5).mean()) >= share


def test_interact_11_binding(interact):
    """Mask 1 and voice 1 go to the person who speaks first (on the right), mask 2 / voice 2 to the left one;
    the masks cover each detected face in >= 95% of frames; each voice holds its person's speech and silence in
    the other's turn (energy < 1% of its own turn's)."""
    frames, tracks, speaking = interact["frames"], interact["tracks"], interact["speaking"]
    assert len(tracks.tracks) == 2 and tracks.fps == 24.0 and tracks.num_frames == len(frames) == 205
    slots = binding.speaker_order(speaking, tracks)
    centres = {t: float(np.mean(tracks.track(t).boxes[:, 0::2])) for t in slots}
    assert centres[slots[0]] > frames.shape[2] / 2 > centres[slots[1]]  # speaker 1 is on the right
    first = speaking.person(slots[0]).speak
    assert first[0][0] <= 3 and 100 <= first[0][1] <= 115  # the right person's turn: 0 to about 4.4 s (24 fps)

    faces = detected_faces(frames)
    per_frame = interact["masks"]
    static_1, static_2 = interact["static"][0][0].numpy(), interact["static"][1][0].numpy()
    for slot, side in ((0, "right"), (1, "left")):
        seen = faces[side]
        assert len(seen) >= 0.9 * len(frames)  # YuNet finds this face in most frames
        moving = np.mean([covered(per_frame[slot][k].numpy(), box) for k, box in seen.items()])
        still = np.mean([covered((static_1, static_2)[slot], box) for box in seen.values()])
        print(f"{side} face (YuNet's box in {len(seen)} frames): the per-frame face mask covers it in {moving:.1%} "
              f"of them, the static head mask in {still:.1%}")
        assert moving >= 0.95 and still >= 0.95
        other = (per_frame[1 - slot][k].numpy() for k in seen)
        assert not any(covered(m, box, 0.1) for m, box in zip(other, seen.values()))  # never the other's face

    rate, wave = interact["rate"], interact["wave"]
    truth = json.loads(INTERACT.with_suffix(".turns.json").read_text())["speaking_seconds"]
    stretch = 25 / 24  # the turns file counts 25 fps frames (see test_who_speaks_real)
    turn = {side: [(a * stretch, b * stretch) for a, b in spans] for side, spans in truth.items()}
    # The annotated turn change (4.33 s) is early: the right person is still speaking there (LR-ASD scores their
    # face > 1 and the left face < -2 for 0.1 s after it; silero-vad hears speech throughout) and the left person's
    # first syllable comes at 4.67 s. Taken literally, voice 1's energy after 4.33 s is 1.04% of its energy before
    # (all of it 4.33-4.58 s: the right person's last words, quiet). The change is put in the pause between the
    # turns instead: the quietest 100 ms of the mix within 0.4 s of the annotated change.
    change = turn["left"][0][0]
    asd = interact["scores"]
    after = int(round((change + 0.1) * asd["fps"]))
    right_face, left_face = (np.asarray(asd["scores"][t])[after] for t in slots)
    assert right_face > 1.0 and left_face < -1.0, (right_face, left_face)
    mix = wave.astype(np.float64).mean(axis=0) ** 2
    width, hop = int(0.1 * rate), int(0.01 * rate)
    starts = np.arange(int((change - 0.4) * rate), int((change + 0.4) * rate) - width, hop)
    pause = (starts[np.argmin([mix[a:a + width].mean() for a in starts])] + width / 2) / rate
    assert change < pause < change + 0.4
    measured = {"right": [(0.0, pause)], "left": [(pause, turn["left"][0][1])]}
    for slot, (side, other) in enumerate((("right", "left"), ("left", "right"))):
        voice = interact["voices"][slot]
        assert voice["sample_rate"] == rate and voice["waveform"].shape == (1, *wave.shape)
        energy = voice["waveform"][0].numpy().astype(np.float64) ** 2
        own, theirs, annotated = (np.zeros(wave.shape[1], bool) for _ in range(3))
        for a, b in measured[side]:
            own[int(a * rate):int(b * rate)] = True
        for a, b in turn[side]:
            annotated[int(a * rate):int(b * rate)] = True
        for a, b in turn[other]:  # the other's annotated turn, less the pause at the turn change (0.3 s)
            theirs[int((a + 0.3) * rate):int(b * rate)] = True
        inside, outside, leaked = energy[:, own].sum(), energy[:, ~own].sum(), energy[:, theirs].sum()
        literal = energy[:, ~annotated].sum() / energy[:, annotated].sum()
        print(f"{side} voice: energy outside the person's turn {outside / inside:.2%} of inside (the turn change at "
              f"the pause, {pause:.2f} s), in the other's turn {leaked / inside:.2%}; against the annotated turns "
              f"{literal:.2%}")
        assert outside < 0.01 * inside and leaked < 0.01 * inside
        assert inside > 0.99 * (wave.astype(np.float64) ** 2)[:, own].sum()  # the person's speech is all there
    # by construction: outside the person's own segments the voice is exactly silent
    for slot, person in enumerate(slots):
        gate = np.zeros(wave.shape[1], bool)
        for a, b in speaking.person(person).speak:
            gate[int(round(a / 24 * rate)):int(round(b / 24 * rate))] = True
        assert not interact["voices"][slot]["waveform"][0].numpy()[:, ~gate].any()


def test_a_portrait_video_whose_ids_are_not_positions_in_any_order():
    """Portrait frame; ids 7, 5, 2 listed in the tracks as [7, 5, 2] and in the assignment as [5, 2, 7]; first seen
    2, 7, 5; first to speak 5, 7, 2; left to right 7, 2, 5; and the faces at three heights. Each slot must hold the
    right person's face at that person's rows and columns, and their voice at their own turn."""
    width, height = 60, 120
    layout = {7: (3, (0, 70, 20, 118), (4, 80, 16, 96)),  # id: (first frame, body box, face box)
              5: (6, (40, 40, 60, 110), (44, 50, 56, 62)),
              2: (0, (20, 0, 40, 60), (24, 10, 36, 26))}
    tracks = []
    for track_id, (first, body, face) in layout.items():
        frames = np.arange(first, FRAMES)
        tracks.append(PersonTrack(track_id, frames, np.tile(np.float32(body), (len(frames), 1)),
                                  face_boxes=np.tile(np.float32(face), (len(frames), 1))))
    tracks = VideoTracks(width, height, FPS, FRAMES, tracks, [(0, FRAMES)])
    turns = {5: (8, 15), 2: (35, 45), 7: (20, 30)}
    people = []
    for track_id, (a, b) in turns.items():
        scores = np.full(FRAMES, -2.0, np.float32)
        scores[a:b] = 2.0
        people.append(PersonSpeaking(track_id, scores, f"V{track_id}", [(a, b)], []))
    speaking = SpeakingActivity(FPS, FRAMES, people)

    assert binding.speaker_order(speaking, tracks) == [5, 7, 2]
    assert binding.speaker_order(speaking, tracks, "left_to_right") == [7, 2, 5]
    assert binding.speaker_order(speaking, tracks, "track_id") == [2, 5, 7]

    out = SpeakerMasks.execute(tracks, speaking, **MASK_ARGS)  # reference frame 0: only person 2 is there yet
    assert out[6] == 3 and out[0].shape == (1, height, width) and out[4].shape == (3, height, width)
    for slot, track_id in enumerate([5, 7, 2]):
        left, top, right, bottom = layout[track_id][2]
        rows, cols = np.nonzero(out[slot][0].numpy())
        assert (rows.min(), rows.max(), cols.min(), cols.max()) == (top, bottom - 1, left, right - 1), slot
        assert out[slot].sum() == (bottom - top) * (right - left)
    assert not out[3].any()
    per_frame = SpeakerMasks.execute(tracks, speaking, **{**MASK_ARGS, "mode": "per_frame"})
    assert not per_frame[1][:3].any() and per_frame[1][3, 88, 10] == 1  # person 7 comes in at frame 3
    assert not per_frame[0][:6].any() and per_frame[0][6, 56, 50] == 1  # person 5 at frame 6
    assert per_frame[3].shape == (FRAMES, height, width) and not per_frame[3].any()  # the empty slot, per frame too

    mix = np.ones(FRAMES * 640, np.float32)  # 16 kHz at 25 fps: 640 samples a frame
    for order, ids in (("first_to_speak", [5, 7, 2]), ("left_to_right", [7, 2, 5])):
        voices = SplitVoices.execute(comfy_audio(mix), speaking, order, 0, tracks=tracks)
        for slot, track_id in enumerate(ids):
            active = np.flatnonzero(voices[slot]["waveform"][0, 0].numpy())
            a, b = turns[track_id]
            assert (active.min(), active.max() + 1, len(active)) == (a * 640, b * 640, (b - a) * 640), (order, slot)


def test_the_speaking_timeline_shows_each_row_with_that_persons_face():
    """Rows in the speaker order (person 1 speaks first, so row 1 is person 1), each starting with a thumbnail cut
    from that person's face: person 0's face is painted green in the frames, person 1's red."""
    from nodes.speaker_nodes import SpeakingTimeline

    tracks, speaking = scene()
    frames = np.zeros((FRAMES, H, W, 3), np.float32)
    frames[:, 12:28, 13:27, 1] = 1.0  # person 0's face box (x 13..27, y 12..28): green
    frames[:, 12:28, 68:82, 0] = 1.0  # person 1's: red
    picture = SpeakingTimeline.execute(speaking, tracks, torch.from_numpy(frames), "first_to_speak", 1000)[0]
    assert picture.shape[0] == 1 and picture.shape[2] == 1000
    row = 72  # each row starts with a 64 px thumbnail at (4, top + 4)
    for slot, colour in ((0, [1.0, 0.0, 0.0]), (1, [0.0, 1.0, 0.0])):
        centre = picture[0, slot * row + row // 2, row // 2].numpy()
        np.testing.assert_allclose(centre, colour, atol=0.02, err_msg=f"row {slot + 1}")
