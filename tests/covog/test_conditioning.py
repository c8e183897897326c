import numpy as np
import pytest
import torch

from covog.pipeline.conditioning import face_masks, speaking_scores


def test_face_masks_follow_each_face_at_every_resolution(small_conversation):
    c = small_conversation
    masks = face_masks(c.tracks, range(0, 25), (256, 128))
    assert sorted(masks) == [2, 4, 8]  # the sizes the audio blocks read: 1/2, 1/4 and 1/8 of the latent
    assert masks[2].shape == (25, 3, 8, 16) and masks[8].shape == (25, 3, 2, 4)
    for factor, mask in masks.items():
        assert (mask.sum(dim=(2, 3)) > 0).all(), factor  # every face visible at every resolution
    first = masks[2][0]
    for p, track in enumerate(c.tracks.tracks):  # the mask's centre is the face box's centre, scaled
        sx, sy = 256 / c.tracks.width, 128 / c.tracks.height
        x1, y1, x2, y2 = track.face_boxes[0] * np.array([sx, sy, sx, sy])
        ys, xs = np.nonzero(first[p].numpy())
        assert abs((xs.mean() + 0.5) * 16 - (x1 + x2) / 2) < 16 and abs((ys.mean() + 0.5) * 16 - (y1 + y2) / 2) < 16
    assert (first.sum(dim=0) <= 1).all()  # the faces do not overlap


def test_unknown_faces_get_empty_masks_and_sizes_are_checked(small_conversation):
    import copy

    tracks = copy.deepcopy(small_conversation.tracks)
    tracks.tracks[0].face_boxes[3] = np.nan
    masks = face_masks(tracks, range(0, 5), (256, 128))
    assert masks[2][3, 0].sum() == 0 and masks[2][2, 0].sum() > 0
    with pytest.raises(ValueError, match="multiple of 64"):
        face_masks(tracks, range(0, 5), (250, 128))


def test_speaking_scores_in_track_order(small_conversation):
    c = small_conversation
    scores = speaking_scores(c.speaking, c.tracks, range(10, 60))
    assert scores.shape == (50, 3) and scores.dtype == torch.float32
    for p, track in enumerate(c.tracks.tracks):
        np.testing.assert_allclose(scores[:, p].numpy(), c.speaking.person(track.track_id).scores[10:60])
    only_two = type(c.speaking)(c.speaking.fps, c.speaking.num_frames, c.speaking.people[:2])
    assert (speaking_scores(only_two, c.tracks, range(0, 10))[:, 2] == -2.0).all()  # no scores: a listener
    with pytest.raises(ValueError, match="cover"):
        speaking_scores(c.speaking, c.tracks, range(0, c.spec.num_frames + 1))


def test_speaking_scores_of_a_strided_range(small_conversation):
    c = small_conversation
    scores = speaking_scores(c.speaking, c.tracks, range(10, 60, 3))
    assert scores.shape == (17, 3)
    np.testing.assert_allclose(scores[:, 0].numpy(), c.speaking.person(c.tracks.tracks[0].track_id).scores[10:60:3])


def test_masks_and_scores_follow_ids_on_a_portrait_source_by_hand():
    """A 300x400 (3:4) source generated at 128x192: the tracks list ids [9, 3], the assignment lists [3, 9], person 3
    comes in at frame 2. Cells by hand, from the box scaled by (128/300, 192/400) and cut into 16 px (factor 2) and
    64 px (factor 8) cells, every cell the box touches."""
    from mit_annotator.core.records import PersonSpeaking, PersonTrack, SpeakingActivity, VideoTracks

    def track(track_id, first, face):
        frames = np.arange(first, 6)
        return PersonTrack(track_id, frames, np.tile(np.float32([0, 0, 300, 400]), (len(frames), 1)),
                           face_boxes=np.tile(np.float32(face), (len(frames), 1)))

    tracks = VideoTracks(300, 400, 25.0, 6, [track(9, 0, (150, 100, 225, 175)), track(3, 2, (0, 300, 75, 375))])
    masks = face_masks(tracks, range(0, 6), (128, 192))
    fine, coarse = masks[2].numpy(), masks[8].numpy()
    assert fine.shape == (6, 2, 12, 8) and coarse.shape == (6, 2, 3, 2)
    expected_fine, expected_coarse = np.zeros((2, 12, 8)), np.zeros((2, 3, 2))
    expected_fine[0, 3:6, 4:6] = 1  # person 9: x 64..96, y 48..84 in the generated frame
    expected_fine[1, 9:12, 0:2] = 1  # person 3: x 0..32, y 144..180
    expected_coarse[0, 0:2, 1] = 1
    expected_coarse[1, 2, 0] = 1
    for frame in range(6):
        seen = [True, frame >= 2]
        np.testing.assert_array_equal(fine[frame], expected_fine * np.array(seen)[:, None, None], err_msg=frame)
        np.testing.assert_array_equal(coarse[frame], expected_coarse * np.array(seen)[:, None, None], err_msg=frame)

    three, nine = np.float32([-2, -1, 0, 1, 2, 1.5]), np.float32([2, 2, -2, -2, 0.5, -0.5])
    speaking = SpeakingActivity(25.0, 6, [PersonSpeaking(3, three, "A", [], []), PersonSpeaking(9, nine, "B", [], [])])
    scores = speaking_scores(speaking, tracks, range(1, 6, 2)).numpy()
    np.testing.assert_array_equal(scores, np.stack([nine[[1, 3, 5]], three[[1, 3, 5]]], axis=1))


def test_pose_renders_scale_each_axis_on_its_own():
    """A 300x400 source rendered at 128x192 (another aspect ratio): a nose alone at (150, 100) becomes DWPose's
    body joint, a disc of radius 4 in the nose's colour, centred at (150 * 128/300, 100 * 192/400) = (64, 48); the
    second person (id 2, listed after id 8, arriving at frame 1) is black before it."""
    from covog.pipeline.conditioning import PoseRenders
    from mit_annotator.core.records import PersonTrack, VideoTracks
    from mit_annotator.vision.skeleton import OPENPOSE_COLOURS

    def track(track_id, first, nose):
        frames = np.arange(first, 3)
        points = np.zeros((len(frames), 133, 2), np.float32)
        points[:, 0] = nose
        scores = np.zeros((len(frames), 133), np.float32)
        scores[:, 0] = 0.9
        return PersonTrack(track_id, frames, np.tile(np.float32([0, 0, 300, 400]), (len(frames), 1)),
                           keypoints=points, keypoint_scores=scores)

    tracks = VideoTracks(300, 400, 25.0, 3, [track(8, 0, (150, 100)), track(2, 1, (30, 350))])
    renders = PoseRenders(tracks, (128, 192))[0:3].numpy()  # (frames, people, 3, height, width)
    assert renders.shape == (3, 2, 3, 192, 128)
    lit = renders[0, 0].any(axis=0)
    ys, xs = np.nonzero(lit)
    assert (xs.mean(), ys.mean(), np.ptp(xs), np.ptp(ys)) == (64, 48, 8, 8)
    assert (renders[0, 0][:, lit].T == OPENPOSE_COLOURS[0]).all()
    assert not renders[0, 1].any()  # person 2 is not there yet
    ys, xs = np.nonzero(renders[1, 1].any(axis=0))
    assert (xs.mean(), ys.mean()) == (12, 168)  # (12.8, 168.0), truncated to pixels as DWPose draws
