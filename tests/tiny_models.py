"""Tiny random-init Grounding DINO, SAM 2 and OWLv2 checkpoints, built offline from configs.

Each builder writes a ``save_pretrained`` directory (model + processor/tokenizer) that the real
teacher classes load exactly like a downloaded checkpoint, so the VLM code paths are tested end to
end with no network and in seconds. Weights are random: outputs have the right types, shapes and
coordinate frames, not meaning.

Pitfalls these configs encode (see DESIGN.md):
- Grounding DINO hard-codes bert-base-uncased token ids ([CLS]=101, [SEP]=102, '.'=1012,
  '?'=1029, [PAD]=0) to split phrases, so the tiny BERT vocabulary puts those tokens at those ids;
  ``decoder_layers`` must be >= 2.
- SAM 2's processor takes boxes in original-image pixels and rescales them itself.
- OWLv2 pads images to a square before resizing.

Usage: ``paths = build_all(tmp_dir)`` -> {"grounding_dino": dir, "sam2": dir, "owlv2": dir}.
"""

from __future__ import annotations

from pathlib import Path

import torch

# Words the tests' prompts use; everything else maps to [UNK].
_WORDS = ["spacecraft", "satellite", "a", "photo", "of", "the", "an", "object"]

TINY_IMAGE = 64  # square side the tiny processors resize to


def _bert_vocab() -> dict[str, int]:
    """A 1,100-entry BERT vocab with bert-base-uncased's special ids at their real positions."""
    vocab = {f"[unused{i}]": i for i in range(1100)}
    fixed = {
        "[PAD]": 0,
        "[UNK]": 100,
        "[CLS]": 101,
        "[SEP]": 102,
        "[MASK]": 103,
        ".": 1012,
        "?": 1029,
    }
    for tok, i in fixed.items():
        del vocab[f"[unused{i}]"]
        vocab[tok] = i
    for j, word in enumerate(_WORDS):
        del vocab[f"[unused{200 + j}]"]
        vocab[word] = 200 + j
    return vocab


def build_grounding_dino(out_dir: str | Path, seed: int = 0) -> Path:
    """Tiny Grounding DINO (Swin embed 8, d_model 32, 2+2 layers, 10 queries) + processor."""
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    out = Path(out_dir)
    torch.manual_seed(seed)
    backbone = SwinConfig(
        window_size=7,
        embed_dim=8,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        image_size=TINY_IMAGE,
        out_features=["stage2", "stage3", "stage4"],
        out_indices=[2, 3, 4],
    )
    text = {
        "model_type": "bert",
        "vocab_size": 1100,
        "hidden_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 8,
        "max_position_embeddings": 32,
    }
    config = GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        d_model=32,  # GroupNorm(32, d_model)
        encoder_layers=1,
        decoder_layers=2,  # >= 2: the two-stage decoder indexes layer -2
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_queries=10,
        num_feature_levels=4,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=16,
    )
    GroundingDinoForObjectDetection(config).eval().save_pretrained(out)
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(
            size={"shortest_edge": TINY_IMAGE, "longest_edge": 2 * TINY_IMAGE}
        ),
        tokenizer=BertTokenizer(vocab=_bert_vocab(), do_lower_case=True, model_max_length=16),
    )
    processor.save_pretrained(out)
    return out


def build_sam2(out_dir: str | Path, seed: int = 0) -> Path:
    """Tiny SAM 2 (Hiera width 12 at 64 px, mask decoder width 32) + processor."""
    from transformers import (
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2ImageProcessor,
        Sam2MaskDecoderConfig,
        Sam2Model,
        Sam2Processor,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    out = Path(out_dir)
    torch.manual_seed(seed)
    s = TINY_IMAGE
    backbone = Sam2HieraDetConfig(
        hidden_size=12,
        image_size=s,
        patch_stride=4,
        patch_kernel_size=7,
        patch_padding=3,
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[12, 24, 48, 96],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        window_size_per_stage=[4, 4, 2, 2],
        window_positional_embedding_background_size=[4, 4],
        global_attention_blocks=[3],  # never the first block of a stage (q-pooling)
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[96, 48, 24, 12],
        backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
        fpn_hidden_size=32,
    )
    config = Sam2Config(
        vision_config=vision,
        prompt_encoder_config=Sam2PromptEncoderConfig(
            hidden_size=32, image_size=s, patch_size=16, mask_input_channels=8
        ),
        mask_decoder_config=Sam2MaskDecoderConfig(
            hidden_size=32, mlp_dim=64, num_attention_heads=4, iou_head_hidden_dim=32
        ),
        memory_attention_hidden_size=12,
        memory_encoder_hidden_size=32,
        image_size=s,
        mask_downsampler_embed_dim=32,
        memory_fuser_embed_dim=32,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=32,
    )
    Sam2Model(config).eval().save_pretrained(out)
    image_processor = Sam2ImageProcessor(
        size={"height": s, "width": s}, mask_size={"height": s // 4, "width": s // 4}
    )
    Sam2Processor(image_processor=image_processor, target_size=s).save_pretrained(out)
    return out


def _clip_vocab() -> tuple[dict[str, int], list[str]]:
    """Character-level CLIP BPE vocab: '!' pad 0, bos 1, eos 3; letters with/without '</w>'."""
    vocab = {"!": 0, "<|startoftext|>": 1, "<unused>": 2, "<|endoftext|>": 3}
    for c in "abcdefghijklmnopqrstuvwxyz.":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    return vocab, []


def build_owlv2(out_dir: str | Path, seed: int = 0) -> Path:
    """Tiny OWLv2 (ViT width 16, patch 16 at 64 px -> 16 box queries; text width 16) + processor."""
    from transformers import (
        CLIPTokenizer,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
    )

    out = Path(out_dir)
    torch.manual_seed(seed)
    vocab, merges = _clip_vocab()
    config = Owlv2Config(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": 3,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": TINY_IMAGE,
            "patch_size": 16,
        },
        projection_dim=16,
    )
    Owlv2ForObjectDetection(config).eval().save_pretrained(out)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, pad_token="!", model_max_length=16)
    processor = Owlv2Processor(
        image_processor=Owlv2ImageProcessor(size={"height": TINY_IMAGE, "width": TINY_IMAGE}),
        tokenizer=tokenizer,
    )
    processor.save_pretrained(out)
    return out


def build_all(root: str | Path) -> dict[str, Path]:
    """Build all three under ``root``; returns {"grounding_dino", "sam2", "owlv2"} -> directory."""
    root = Path(root)
    return {
        "grounding_dino": build_grounding_dino(root / "grounding_dino"),
        "sam2": build_sam2(root / "sam2"),
        "owlv2": build_owlv2(root / "owlv2"),
    }
