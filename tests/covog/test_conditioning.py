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
