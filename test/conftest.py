"""Shared test helpers: where the team's shared fixtures live, and a small torch setup."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("MOE3D_SHARED_DIR", PROJECT_ROOT.parent / "shared"))


def shared_file(relative: str) -> Path:
    """A file under ../shared, or skip the test with a reason when the folder is absent."""
    path = SHARED_DIR / relative
    if not path.exists():
        pytest.skip(f"{path} not found: the shared fixtures sit beside the project root (set MOE3D_SHARED_DIR)")
    return path


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
