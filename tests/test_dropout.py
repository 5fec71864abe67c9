"""The cheaper dropout (models/dropout.py) against what ``nn.Dropout`` promises."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from polyrec.models.dropout import Dropout, dropout


@pytest.mark.parametrize("p", [0.1, 0.4, 0.5, 0.9])
def test_dropout_keeps_the_share_one_minus_p_and_scales_the_kept_values_by_its_inverse(p: float) -> None:
    torch.manual_seed(0)
    x = torch.full((1_000_003,), 2.0)  # not a multiple of four draws per 64-bit word
    y = dropout(x, p)
    kept = y != 0
    # 1,000,003 draws: the kept share's standard error is under 0.0005.
    assert abs(kept.float().mean().item() - (1 - p)) < 0.003
    levels = round((1 - p) * 65536)
    assert torch.all(y[kept] == 2.0 * 65536 / levels)  # the exact inverse of the keep probability
    assert abs(y.mean().item() - 2.0) < 0.02  # the expectation is unchanged


def test_every_bit_of_the_draws_is_used_evenly() -> None:
    """Each 64-bit word gives four draws: each of the four slots keeps its share."""
    torch.manual_seed(1)
    y = dropout(torch.ones(400_000), 0.5).view(-1, 4)
    for slot in range(4):
        assert abs((y[:, slot] != 0).float().mean().item() - 0.5) < 0.01


def test_the_gradient_is_the_mask_times_the_scale() -> None:
    torch.manual_seed(2)
    x = torch.randn(8, 50, 16, requires_grad=True)
    y = dropout(x, 0.3)
    y.backward(torch.ones_like(y))
    scale = 65536 / round(0.7 * 65536)
    assert torch.equal(x.grad, (y != 0).float() * scale)
    assert torch.allclose(y, x.detach() * x.grad)


def test_the_module_is_a_drop_in_for_nn_dropout() -> None:
    layer = Dropout(0.4)
    x = torch.randn(3, 7)
    assert torch.equal(layer.eval()(x), x)  # evaluation: the identity
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))
    assert not torch.equal(layer.train()(x), x)
    assert layer.state_dict() == nn.Dropout(0.4).state_dict() == {}  # saved models are unchanged
    with pytest.raises(ValueError, match="between 0 and 1"):
        Dropout(1.5)


def test_the_masks_repeat_under_the_same_seed() -> None:
    x = torch.randn(64, 33)
    torch.manual_seed(3)
    first = dropout(x, 0.4)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.4), first)
    assert not torch.equal(dropout(x, 0.4), first)  # and differ from one call to the next
