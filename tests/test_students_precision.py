"""bf16 autocast for YOLO training on CPUs that have it, and channels-last training, through an
ultralytics trainer subclass."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from afss_utils.datasets import open_coco
from afss_utils.students import YoloStudent, resolve_precision, training
from afss_utils.students.yolo import _student_trainer


def test_resolve_precision(monkeypatch):
    monkeypatch.setattr(training, "cpu_supports_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(training, "cpu_supports_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # asked for: emulated where not native
    # on a GPU, auto is fp32 (mixed precision there is ultralytics' own `amp`)
    assert resolve_precision("auto", "cuda") == resolve_precision("fp32", "cuda:0") == "fp32"
    with pytest.raises(ValueError, match="yolo.precision"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="center.precision"):
        resolve_precision("fp16", "cpu", key="center.precision")
    with pytest.raises(ValueError, match="center.precision"):
        resolve_precision("fp8", "cuda", key="center.precision")


def test_resolve_precision_honours_an_explicit_half_precision_on_cuda():
    """An explicit bf16 / fp16 on a GPU is autocast, not silently fp32."""
    assert resolve_precision("bf16", "cuda:0") == "bf16"
    assert resolve_precision("fp16", "cuda") == "fp16"
    assert training.autocast_dtype("bf16") == torch.bfloat16
    assert training.autocast_dtype("fp16") == torch.float16
    assert training.autocast_dtype("fp32") is None


def test_bf16_trainer_autocasts_on_the_given_device_type(monkeypatch):
    seen = []
    real = torch.autocast

    def spy(device_type, *args, **kwargs):
        seen.append((device_type, kwargs.get("dtype")))
        return real("cpu", dtype=torch.bfloat16)  # no GPU here: the context itself runs on CPU

    monkeypatch.setattr(torch, "autocast", spy)
    trainer = _student_trainer(_Trainer, ("cuda", torch.bfloat16))()
    trainer._setup_train()
    trainer.model.predict(torch.rand(1, 3, 8, 8))
    assert seen == [("cuda", torch.bfloat16)]
    assert type(trainer).__name__ == "CudaBf16_Trainer"


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.seen: list[tuple[bool, torch.dtype]] = []

    def predict(self, x):
        y = self.conv(x)
        self.seen.append((torch.is_autocast_enabled("cpu"), y.dtype))
        return [y, {"aux": y * 2}]


class _Trainer:
    def _setup_train(self):
        self.model = _Net()
        self.ema = _Net()  # ultralytics copies the model into its EMA here

    def preprocess_batch(self, batch):
        return {**batch, "img": batch["img"].float() / 255}


def test_trainer_trains_channels_last_and_keeps_the_ema_contiguous():
    trainer = _student_trainer(_Trainer)()
    trainer._setup_train()
    assert trainer.model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not trainer.model.conv.weight.is_contiguous()
    assert trainer.ema.conv.weight.is_contiguous()  # what is saved and validated
    batch = trainer.preprocess_batch(
        {"img": torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8)}
    )
    assert batch["img"].is_contiguous(memory_format=torch.channels_last)
    assert batch["img"].dtype == torch.float32  # the base class's preprocessing still runs
    trainer.model.predict(batch["img"])
    assert trainer.model.seen == [(False, torch.float32)]  # fp32: no autocast
    assert type(trainer).__name__ == "ChannelsLast_Trainer"


def test_bf16_trainer_runs_the_forward_in_bf16_and_returns_float32():
    trainer = _student_trainer(_Trainer, ("cpu", torch.bfloat16))()
    trainer._setup_train()
    out = trainer.model.predict(torch.rand(1, 3, 8, 8))
    assert trainer.model.seen == [(True, torch.bfloat16)]
    assert out[0].dtype == out[1]["aux"].dtype == torch.float32  # the loss runs in float32
    assert type(trainer).__name__ == "CpuBf16_Trainer"
    assert not torch.is_autocast_enabled("cpu")  # the context ends with the forward pass


@pytest.mark.slow
def test_yolo_bf16_training_saves_plain_checkpoints(tmp_path: Path, make_shapes):
    ds = open_coco(make_shapes(tmp_path / "shapes", n=8))
    s = YoloStudent(
        "segment", epochs=2, imgsz=64, batch=4, nbs=4, workers=0, precision="bf16", save_period=1
    )
    s.train(ds.instances, ds.image_dir, tmp_path / "run")
    assert [round(h["epoch"]) for h in s.history] == [1, 2]
    assert all(h["train/box_loss"] > 0 for h in s.history)
    assert [e for e, _ in s.checkpoints()] == [1, 2, 2]  # epoch0.pt, epoch1.pt, last.pt
    # the bf16 wrapper lives on the training model only: checkpoints are plain float32 models
    reloaded = YoloStudent("segment", imgsz=64).load(s.weights)
    assert "predict" not in vars(reloaded.model.model)
    assert next(reloaded.model.model.parameters()).dtype == torch.float32
    # channels-last is the training model's layout only: checkpoints load as plain NCHW models
    assert all(p.is_contiguous() for p in reloaded.model.model.parameters())
    assert len(reloaded.predict(ds)) == len(ds)
