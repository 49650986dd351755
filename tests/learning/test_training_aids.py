"""Training aids for small visuomotor policies: random-shift augmentation, weight EMA, the privileged
auxiliary scene targets (training only) and the colour keypoints that localise few-pixel objects."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from policy_server.learning.model import ColourKeypoints, VisuomotorPolicy  # noqa: E402
from policy_server.learning.train import WeightAverage, random_shift  # noqa: E402
from sim.tasks.layout import CUBE, ENV_STATE_DIM, TARGET_POS, ZONE, scene_targets  # noqa: E402

PICK = "pick up the blue cube and put it in the yellow zone"


def test_random_shift_crops_the_edge_padded_image_at_a_random_offset_per_sample():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8).repeat(16, 1, 1, 1)
    out = random_shift(images, 2, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2), mode="replicate")
    offsets = set()
    for i in range(len(images)):
        match = [(y, x) for y in range(5) for x in range(5) if torch.equal(out[i], padded[i, :, y:y + 8, x:x + 8])]
        assert match, f"sample {i} is not a crop of its padded image"
        offsets.add(match[0])
    assert len(offsets) > 3  # the offsets differ between samples


def test_weight_average_moves_each_parameter_a_fraction_toward_the_model():
    model = VisuomotorPolicy(cameras=("front",), image_size=16, head="regression", chunk_length=4)
    ema = WeightAverage(model, decay=0.75)
    before = [p.detach().clone() for p in ema.averaged.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    for old, avg, new in zip(before, ema.averaged.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(avg, 0.75 * old + 0.25 * new)


def test_scene_targets_are_the_named_cube_and_zone_or_the_reach_target():
    env = np.zeros((2, ENV_STATE_DIM), np.float32)
    env[:, CUBE["cube_red"]] = (0.1, 0.2, 0.02, 0.3, 0.0)
    env[:, CUBE["cube_blue"]] = (0.15, -0.1, 0.02, -0.2, 1.0)
    env[:, ZONE["zone_green"]] = (0.2, 0.1)
    env[:, ZONE["zone_yellow"]] = (0.25, -0.05)
    env[1, TARGET_POS] = (0.3, 0.0, 0.1)
    out = scene_targets(env, [PICK, "touch the magenta ball"])
    np.testing.assert_allclose(out[0], [0.15, -0.1, 0.02, -0.2, 1.0, 0.25, -0.05], atol=1e-6)
    np.testing.assert_allclose(out[1], [0.3, 0.0, 0.1, 0, 0, 0, 0], atol=1e-6)


def test_colour_keypoints_find_a_few_pixel_object():
    layer = ColourKeypoints(32, channels=1, temperature=0.05)
    with torch.no_grad():  # a "redness" detector: r - g - b
        first, second = layer.detect[1], layer.detect[3]
        first.weight.zero_()
        first.bias.zero_()
        first.weight[0, :, 0, 0] = torch.tensor([1.0, -1.0, -1.0])
        second.weight.zero_()
        second.weight[0, 0] = 5.0
        second.bias.zero_()
    image = torch.full((1, 3, 32, 32), 0.45)
    image[0, :, 20:23, 5:8] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]  # a 3×3 px red cube
    x, y = layer(image * 2 - 1)[0].tolist()
    assert x == pytest.approx(2 * 6 / 31 - 1, abs=0.1) and y == pytest.approx(2 * 21 / 31 - 1, abs=0.1)


def test_the_auxiliary_loss_trains_the_aux_head_and_stays_out_of_the_served_output():
    torch.manual_seed(0)
    model = VisuomotorPolicy(cameras=("front",), image_size=16, head="regression", chunk_length=4, aux_dim=3,
                             colour_keypoints=2)
    state, images, target = torch.zeros(2, 6), [torch.rand(2, 3, 16, 16)], torch.zeros(2, 4, 6)
    plain = model.loss(state, images, None, None, target)
    with_aux = model.loss(state, images, None, None, target, aux_target=torch.full((2, 3), 5.0), aux_weight=2.0)
    assert with_aux.item() > plain.item() + 10  # ~2 × 25
    with_aux.backward()
    assert model.aux_head.weight.grad.abs().sum() > 0
    assert model(state, *images).shape == (2, 4, 6)  # the aux head is not part of the served graph


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_colour_opponent_start_locates_a_red_and_a_blue_cube_from_the_first_step(pool):
    layer = ColourKeypoints(32, channels=8, temperature=0.1, pool=pool, init="opponent")
    image = torch.full((1, 3, 32, 32), 0.45)
    image[0, :, 4:7, 24:27] = torch.tensor([0.85, 0.1, 0.1])[:, None, None]  # red, 3×3 px
    image[0, :, 20:23, 8:11] = torch.tensor([0.1, 0.2, 0.85])[:, None, None]  # blue
    image[0, :, 10:20, 12:22] = torch.tensor([0.9, 0.9, 0.1])[:, None, None]  # a large yellow zone
    kp = ((layer(image * 2 - 1)[0].reshape(8, 2) + 1) / 2 * 31).tolist()
    assert kp[0] == pytest.approx([25, 5], abs=1.5)  # red channel: the red cube, not the zone
    assert kp[2] == pytest.approx([9, 21], abs=1.5)  # blue channel
    assert kp[3] == pytest.approx([16.5, 14.5], abs=1.5)  # yellow channel: the zone


def test_a_colour_keypoints_only_encoder_has_no_conv_trunk_and_its_policy_trains_and_round_trips():
    """`camera_conv=False`: each camera's features are its colour keypoints alone (2 per channel); the model
    is smaller, trains (gradients reach the colour detectors) and is rebuilt from its saved kwargs."""
    from policy_server.learning.model import CameraEncoder, build_policy, parameter_count

    with pytest.raises(ValueError, match="needs colour keypoints"):
        CameraEncoder(16, conv=False)
    kwargs = dict(cameras=("front", "wrist"), image_size=16, head="regression", chunk_length=4, colour_keypoints=3,
                  camera_conv=False)
    model = VisuomotorPolicy(**kwargs)
    full = VisuomotorPolicy(**{**kwargs, "camera_conv": True})
    assert all(e.convs is None and e.out_dim == 6 for e in model.encoders)
    assert parameter_count(model) < parameter_count(full)
    state, images, target = torch.zeros(2, 6), [torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)], torch.ones(2, 4, 6)
    loss = model.loss(state, images, None, None, target)
    loss.backward()
    assert model.encoders[0].colour.detect[1].weight.grad.abs().sum() > 0  # avg pool, then the first 1×1 conv
    again = build_policy(**kwargs)
    again.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(again(state, *images), model(state, *images))


def test_samples_beyond_the_normalisation_are_dropped_by_state_or_label_offset():
    from policy_server.learning.samples import Samples
    from policy_server.learning.train import within_normalisation

    model = VisuomotorPolicy(cameras=("front",), image_size=16, head="regression", chunk_length=4)
    model.set_normalisation(torch.zeros(6), torch.ones(6), torch.zeros(4, 6), torch.full((4, 6), 0.1))
    state = np.zeros((4, 6), np.float32)
    target = np.zeros((4, 4, 6), np.float32)
    state[1, 2] = 12.5  # a joint far beyond the demonstrations (12.5 std)
    target[2, 3, 0] = 1.3  # a label offset of 13 std (std 0.1)
    target[3, 0, 5] = 0.95  # 9.5 std: kept at 10
    s = Samples(np.arange(4), state, np.zeros(4, np.float32), np.zeros((4, 1), np.float32), target)
    assert within_normalisation(model, s, 10.0).tolist() == [True, False, False, True]
    assert within_normalisation(model, s, 9.0).tolist() == [True, False, False, False]
