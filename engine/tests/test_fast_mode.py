"""Fast mode: which steps run the transformer, and how far the output drifts on the tiny model."""

import numpy as np
import pytest
import torch

from kontext_engine import sampler
from kontext_engine.editor import Editor, EditRequest
from kontext_engine.speed import parse_buckets

from .conftest import photo


def test_the_plan_keeps_the_first_three_and_the_last_step_and_one_in_three_between() -> None:
    plan = sampler.fast_plan(28)
    ran = [i for i, run in enumerate(plan) if run]
    assert ran == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27]
    assert len(ran) == 12  # 28 steps for the cost of 12


def test_short_schedules_run_every_step() -> None:
    assert all(sampler.fast_plan(4))


def test_the_forecast_is_linear_in_sigma() -> None:
    v0, v1 = torch.tensor([1.0]), torch.tensor([3.0])
    history = [(torch.tensor(0.9), v0), (torch.tensor(0.8), v1)]
    assert torch.allclose(sampler.forecast(history, torch.tensor(0.7)), torch.tensor([5.0]))
    assert torch.equal(sampler.forecast(history[:1], torch.tensor(0.5)), v0)


def test_fast_mode_runs_the_transformer_only_on_planned_steps(editor: Editor) -> None:
    calls = []
    hook = editor.m.transformer.register_forward_hook(lambda *_: calls.append(1))
    steps: list[int] = []
    try:
        editor.edit(EditRequest(photo(32, 32), "p", num_inference_steps=10, fast=True), lambda s, n, p: steps.append(s))
    finally:
        hook.remove()
    assert len(calls) == sum(sampler.fast_plan(10)) == 6
    assert steps == list(range(1, 11))  # progress still reports every step


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse else float("inf")


def test_fast_output_stays_within_the_bound_on_the_tiny_model(editor: Editor) -> None:
    req = EditRequest(photo(64, 64), "make it winter", "1:1", num_inference_steps=12, seeds=(4,))
    exact = editor.edit(req)
    fast = editor.edit(EditRequest(**{**req.__dict__, "fast": True}))
    # Random weights make the velocity field rougher than the real model's; the bound here is the
    # drift measured on the tiny model (docs/performance.md), not the real-weights quality gate.
    assert psnr(exact.images[0], fast.images[0]) >= 30.0


def test_warmup_buckets_are_parsed_from_the_preferred_resolutions() -> None:
    assert parse_buckets("none") == []
    assert len(parse_buckets("all")) == 17
    assert parse_buckets("1024x1024, 1392x752") == [(1024, 1024), (1392, 752)]
    with pytest.raises(ValueError, match="1000x1000"):
        parse_buckets("1000x1000")
