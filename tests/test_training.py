"""students.training.fit: the one training loop of the hand-written students."""

from __future__ import annotations

import itertools

import pytest
import torch

from afss_utils.distill import optimiser_steps
from afss_utils.students.training import fit


def _regression(epochs: int, steps: int):
    """Fit y = 3x with a one-weight linear model; returns (model, history, steps taken)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    x = torch.linspace(-1, 1, 8)[:, None]

    def step_losses(batch):
        xb, yb = batch
        return {"loss": ((model(xb) - yb) ** 2).mean(), "constant": torch.tensor(2.0)}

    history = []
    taken = optimiser_steps(
        lambda: history.extend(
            fit(model, step_losses, itertools.repeat((x, 3 * x)), epochs, steps, lr=0.1,
                weight_decay=0.0, warmup_epochs=1)
        )
    )  # fmt: skip
    return model, history, taken


def test_fit_takes_epochs_times_steps_and_learns():
    model, history, taken = _regression(epochs=30, steps=4)
    assert taken == 120  # one AdamW step per batch
    assert [h["epoch"] for h in history] == list(range(1, 31))
    assert all(h["constant"] == pytest.approx(2.0) for h in history)  # per-epoch means
    assert history[-1]["loss"] < history[0]["loss"] / 10
    assert model.weight.item() == pytest.approx(3.0, abs=0.3)


def test_fit_trains_in_training_mode_and_clips_the_gradient_to_norm_10(monkeypatch):
    model = torch.nn.Sequential(torch.nn.Linear(1, 1), torch.nn.Dropout(0.5))
    model.eval()
    modes, clips = [], []

    def step_losses(_):
        modes.append(model.training)
        return {"loss": 1e6 * model[0].weight.sum()}  # a gradient of norm 1e6

    clip = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *a, **k):
        clips.append((float(clip(params, max_norm, *a, **k)), max_norm))
        return clips[-1][0]

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    fit(model, step_losses, itertools.repeat(None), 1, 2, lr=0.01, weight_decay=0.0,
        warmup_epochs=0)  # fmt: skip
    assert modes == [True, True]
    assert clips == [(pytest.approx(1e6), 10.0)] * 2
    assert model[0].weight.grad.norm() == pytest.approx(10.0, rel=1e-4)  # after the clip


def test_fit_with_no_epochs_trains_nothing():
    _, history, taken = _regression(epochs=0, steps=4)
    assert history == [] and taken == 0
