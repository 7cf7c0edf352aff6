"""Offline ImageNet EfficientNet-Lite0: the lukemelas checkpoint remapped onto timm."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from afss_utils.backbones import (
    TIMM_LITE0,
    efficientnet_lite0_state_dict,
    lite0_checkpoint_path,
    lukemelas_to_timm,
)


def test_checkpoint_ships_with_the_package():
    assert lite0_checkpoint_path().suffix == ".pth"


def test_remapped_weights_load_strictly_and_are_the_checkpoints():
    model = timm.create_model(TIMM_LITE0, pretrained=False, features_only=True)
    state = efficientnet_lite0_state_dict()
    model.load_state_dict(state, strict=True)
    raw = torch.load(lite0_checkpoint_path(), map_location="cpu")
    assert torch.equal(state["conv_stem.weight"], raw["_conv_stem.weight"])
    assert torch.equal(state["blocks.0.0.conv_dw.weight"], raw["_blocks.0._depthwise_conv.weight"])
    assert not any(k.startswith(("_fc", "_conv_head")) for k in state)


def test_pretrained_features_differ_from_random_init_and_respond_to_content():
    """ImageNet filters see structure: a striped image and a flat one give feature maps
    further apart than under random init (a weak but real check that the weights are used)."""
    torch.manual_seed(0)
    pre = timm.create_model(TIMM_LITE0, pretrained=False, features_only=True, out_indices=(4,))
    pre.load_state_dict(efficientnet_lite0_state_dict((4,)), strict=True)
    rand = timm.create_model(TIMM_LITE0, pretrained=False, features_only=True, out_indices=(4,))
    flat = torch.zeros(1, 3, 64, 64)
    stripes = flat.clone()
    stripes[..., ::4, :] = 2.0
    with torch.no_grad():
        d_pre = (pre.eval()(stripes)[0] - pre(flat)[0]).abs().mean().item()
        d_rand = (rand.eval()(stripes)[0] - rand(flat)[0]).abs().mean().item()
    assert np.isfinite(d_pre) and d_pre > 0 and d_pre != pytest.approx(d_rand)


def test_mismatched_architecture_is_named():
    model = timm.create_model("resnet18", pretrained=False, features_only=True)
    raw = torch.load(lite0_checkpoint_path(), map_location="cpu")
    with pytest.raises(ValueError, match="not the same architecture|does not fit"):
        lukemelas_to_timm(raw, model.state_dict())
    assert lukemelas_to_timm({}, {}) == {}


def test_efficientdet_lite0_uses_the_offline_imagenet_backbone():
    from afss_utils.students import EfficientDetStudent

    raw = torch.load(lite0_checkpoint_path(), map_location="cpu")
    pre = EfficientDetStudent("tf_efficientdet_lite0", imgsz=128, backbone_weights="imagenet_lite0")
    stem = pre._create().model.backbone.state_dict()["conv_stem.weight"]
    assert torch.equal(stem, raw["_conv_stem.weight"])
    scratch = EfficientDetStudent("tf_efficientdet_lite0", imgsz=128)._create()
    assert not torch.equal(scratch.model.backbone.state_dict()["conv_stem.weight"], stem)
    with pytest.raises(ValueError, match="tf_efficientdet_lite0"):
        EfficientDetStudent("efficientdet_d0", backbone_weights="imagenet_lite0")
    with pytest.raises(ValueError, match="backbone_weights"):
        EfficientDetStudent("tf_efficientdet_lite0", backbone_weights="imagenet")
