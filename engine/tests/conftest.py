"""Shared fixtures: the tiny model generated once per session, loaded by the real loading code."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from kontext_engine.editor import Editor
from kontext_engine.loading import KontextModel, load_model
from kontext_engine.safety import SafetyChecker
from kontext_engine.tiny import generate

CPU = torch.device("cpu")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def model(tiny_dir: Path) -> KontextModel:
    return load_model(tiny_dir, CPU, torch.float32)


@pytest.fixture(scope="session")
def editor(model: KontextModel, tiny_dir: Path) -> Editor:
    return Editor(model, SafetyChecker(tiny_dir / "safety_checker", CPU))


def photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A deterministic (height, width, 3) uint8 test image: smooth gradients plus a little noise."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x / max(width - 1, 1), y / max(height - 1, 1), (x + y) / max(width + height - 2, 1)], axis=-1)
    noise = np.random.default_rng(seed).normal(0, 0.05, rgb.shape)
    return (np.clip(rgb + noise, 0, 1) * 255).round().astype(np.uint8)
