"""Resampling, slice levels and the slab-wise sliding-window argmax."""

import numpy as np
import torch

from calcdetect.anatomy.regions import structure, vertebra_label
from calcdetect.device import Device
from calcdetect.nets.inference import predict_classes, slice_levels_from_labels
from calcdetect.nets.resample import nearest_indices, resample_image, resample_labels, resampled_affine, target_shape


def test_resampling_keeps_extent_and_labels():
    assert target_shape((10, 20, 20), (3.0, 0.75, 0.75), (3.0, 3.0, 3.0)) == (10, 5, 5)
    lab = np.zeros((10, 20, 20), np.uint8)
    lab[:, :10, :] = 7
    small = resample_labels(lab, (10, 5, 5))
    assert small.dtype == np.uint8 and set(np.unique(small)) == {0, 7}
    back = resample_labels(small, lab.shape)
    assert np.mean(back == lab) >= 0.9  # one boundary row of coarse voxels may flip
    img = resample_image(np.ones((10, 20, 20), np.float32) * 5, (10, 5, 5))
    assert torch.allclose(img, torch.full((10, 5, 5), 5.0))
    assert list(nearest_indices(4, 2)) == [0, 2]  # ties (voxel centre between two inputs) round to even
    assert list(nearest_indices(2, 4)) == [0, 0, 1, 1]


def test_resampled_affine_maps_centres():
    aff = np.diag([3.0, 0.75, 0.75, 1.0])
    a2 = resampled_affine(aff, (10, 20, 20), (10, 5, 5))
    # centre of the first coarse voxel = centre of input voxels 0..3 (1.5 in input index)
    assert np.allclose(a2 @ [0, 0, 0, 1], aff @ [0, 1.5, 1.5, 1])


def test_slice_levels_with_disc_gap():
    lab = np.zeros((12, 4, 4), np.uint8)
    lab[0:4, 1:3, 1:3] = vertebra_label("L4")  # caudal (k grows superior)
    lab[5:6, 1:3, 1:3] = structure("intervertebral_disc").label
    lab[7:11, 1:3, 1:3] = vertebra_label("L3")
    levels = slice_levels_from_labels(lab, 3.0)
    assert levels[:4] == ("L4",) * 4
    assert levels[4:7] == ("L3-L4",) * 3
    assert levels[7:11] == ("L3",) * 4
    assert levels[11] is None


class _Echo(torch.nn.Module):
    """Fake 3-class net: class 2 where the input is > 0, class 1 elsewhere."""

    def forward(self, x):
        return torch.cat([torch.zeros_like(x) - 5, torch.zeros_like(x), (x > 0).float() * 10], dim=1)


def test_slab_wise_prediction_matches_whole_volume():
    img = torch.zeros(40, 12, 12)
    img[10:30, 4:8, 4:8] = 1.0
    whole = predict_classes(img, _Echo(), Device("cpu"), roi_size=(16, 16, 16), n_classes=3, divisor=4)
    slabs = predict_classes(img, _Echo(), Device("cpu"), roi_size=(16, 16, 16), n_classes=3, divisor=4,
                            memory_budget_bytes=12 * 12 * 4 * 3 * 16)
    assert whole.dtype == np.uint8
    assert np.array_equal(whole, slabs)
    assert np.array_equal(whole == 2, img.numpy() > 0)


class _WindowMean(torch.nn.Module):
    """Fake 2-class net: class 0's logit is the mean of the whole window (it sees what the window is
    padded with), class 1's is -1 (wins where the window is darker than -1, i.e. air)."""

    def forward(self, x):
        m = x.mean(dim=(2, 3, 4), keepdim=True).expand_as(x)
        return torch.cat([m, torch.full_like(x, -1.0)], dim=1)


def test_windows_past_the_image_are_padded_with_air():
    """A scan smaller than the window is segmented as if surrounded by air, as in training
    (``crop_patch`` pads with the image minimum), not by a frame of the normalised mean (0)."""
    from calcdetect.nets.inference import predict_logits

    air = -1.2
    img = torch.full((10, 20, 20), air)
    logits = predict_logits(img, _WindowMean(), Device("cpu"), roi_size=(16, 32, 32), divisor=16)
    assert torch.allclose(logits[0].float(), torch.full((10, 20, 20), air), atol=1e-2)
    classes = predict_classes(img, _WindowMean(), Device("cpu"), roi_size=(16, 32, 32), n_classes=2, divisor=16)
    assert (classes == 1).all()  # no window saw a brighter frame
