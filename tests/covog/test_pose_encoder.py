import json

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from covog.models.pose_encoder import ADAPTOR_CHANNELS, GUIDER_CHANNELS, MultiHumanPoseEncoder
from mit_annotator.vision.skeleton import render_person

LAYOUTS = SHARED_DATA / "checkpoint-layouts"


@pytest.mark.parametrize("layout, channels", [("moore_pose_guider.json", GUIDER_CHANNELS),
                                              ("covog_stage1_pose_adaptor.json", ADAPTOR_CHANNELS)])
def test_the_guider_has_the_released_checkpoint_layout(layout, channels):
    path = LAYOUTS / layout
    if not path.is_file():
        pytest.skip("checkpoint layouts missing")
    expected = json.loads(path.read_text())
    state = MultiHumanPoseEncoder(320, channels).guider.state_dict()
    assert {k: list(v.shape) for k, v in state.items()} == expected


def perturbed_encoder(seed=0):
    torch.manual_seed(seed)
    encoder = MultiHumanPoseEncoder(32, (4, 8, 8, 16))
    torch.nn.init.normal_(encoder.guider.conv_out.weight, std=0.1)  # it starts at zero, as trained models do not
    return encoder.eval()


def renders(people, seed=0, size=32):
    return torch.rand(1, people, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("people", [1, 2, 3, 4])
def test_any_number_of_people_without_padding(people):
    encoder = perturbed_encoder()
    x = renders(people)
    with torch.no_grad():
        out = encoder(x)
        alone = sum(encoder(x[:, k:k + 1]) for k in range(people))
    assert out.shape == (1, 32, 4, 4)
    torch.testing.assert_close(out, alone, rtol=1e-5, atol=1e-5)  # the per-person features are summed


def test_person_order_does_not_matter_and_empty_slots_are_ignored():
    encoder = perturbed_encoder()
    x = renders(3)
    with torch.no_grad():
        forward = encoder(x)
        backward = encoder(x.flip(1))
        padded = encoder(torch.cat([x, torch.rand(1, 1, 3, 32, 32)], dim=1), torch.tensor([[True] * 3 + [False]]))
    torch.testing.assert_close(forward, backward, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(forward, padded, rtol=1e-5, atol=1e-5)


def test_a_fresh_encoder_adds_nothing():
    with torch.no_grad():
        assert MultiHumanPoseEncoder(32, (4, 8, 8, 16))(renders(2)).abs().max() == 0


def test_bad_input():
    encoder = perturbed_encoder()
    with pytest.raises(ValueError, match="no person to encode"):
        encoder(torch.zeros(1, 0, 3, 32, 32))
    with pytest.raises(ValueError, match="multiple of 8"):
        encoder(torch.zeros(1, 1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"renders must be \(batch, people"):
        encoder(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="person_mask must be"):
        encoder(torch.zeros(1, 2, 3, 32, 32), torch.ones(1, 3, dtype=torch.bool))


def test_skeleton_renders_stay_inside_the_person_box(small_conversation):
    track = small_conversation.tracks.tracks[1]
    points, scores, box = track.keypoints[10], track.keypoint_scores[10], track.boxes[10]
    render = render_person(points, scores, (small_conversation.spec.width, small_conversation.spec.height), box)
    drawn = np.argwhere(render.any(axis=-1))
    assert len(drawn) > 100
    assert (drawn[:, 1] >= int(box[0])).all() and (drawn[:, 1] <= int(np.ceil(box[2]))).all()
    full = render_person(points, scores, (small_conversation.spec.width, small_conversation.spec.height))
    assert (render <= full).all()  # masking only removes
    half = render_person(points, scores, (128, 72), box, scale=(0.5, 0.5))
    assert half.shape == (72, 128, 3) and half.any()
    hidden = render_person(points, np.zeros(133), (64, 64))
    assert not hidden.any()  # unseen keypoints draw nothing


def test_uint8_renders_read_as_0_to_1():
    encoder = perturbed_encoder()
    pixels = (renders(2) * 255).round().to(torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(encoder(pixels), encoder(pixels.float() / 255.0))


def test_the_renders_memory_layout_changes_no_bit():
    """PoseRenders' renders are channels-last-like views, a batch from a loading worker is contiguous: the same values
    give the same features and the same gradients either way (training resumes and loads with workers exactly)."""
    encoder = perturbed_encoder().train()
    drawn = (torch.rand(2, 2, 64, 64, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    results = []
    for layout in (drawn.permute(0, 1, 4, 2, 3), drawn.permute(0, 1, 4, 2, 3).contiguous()):
        encoder.zero_grad()
        features = encoder(layout)
        (features * torch.linspace(-1, 1, features.numel()).reshape(features.shape)).sum().backward()
        results.append((features.detach(), [p.grad.clone() for p in encoder.parameters()]))
    assert torch.equal(results[0][0], results[1][0])
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1]))
