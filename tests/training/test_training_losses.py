"""The training loss: which classes enter the soft Dice (calcdetect.training.losses)."""

import pytest
import torch

from calcdetect.training.losses import marginal_dice_ce


def _scene():
    """Two patches, 3 classes; class 2 is in the first patch only, and predicted in both."""
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[0, 2:4, 2:4] = 2
    target[:, 5:7, 5:7] = 1
    logits = torch.zeros(2, 3, 8, 8)
    logits[:, 0] = 2.0
    logits[:, 1, 5:7, 5:7] = 4.0
    logits[:, 2, 2:4, 2:4] = 4.0  # in patch 1 class 2 is absent: a false positive there
    return logits, target, torch.ones(2, 3, dtype=torch.bool)


def test_present_dice_leaves_a_class_absent_from_the_patch_to_the_cross_entropy():
    logits, target, ann = _scene()
    annotated = marginal_dice_ce(logits, target, ann)
    present = marginal_dice_ce(logits, target, ann, dice_over="present")
    assert present < annotated  # the absent class's 1 / (1 + mass) term is gone
    # the absent class's prediction gets a gradient from the cross-entropy only: still pushed down
    logits.requires_grad_(True)
    marginal_dice_ce(logits, target, ann, dice_over="present").backward()
    assert logits.grad[1, 2, 2:4, 2:4].min() > 0


def test_present_and_annotated_agree_when_every_class_is_in_every_patch():
    logits, target, ann = _scene()
    target[1, 2:4, 2:4] = 2
    assert torch.isclose(marginal_dice_ce(logits, target, ann),
                         marginal_dice_ce(logits, target, ann, dice_over="present"))
    with pytest.raises(ValueError, match="dice_over"):
        marginal_dice_ce(logits, target, ann, dice_over="all")
