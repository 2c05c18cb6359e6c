"""Shared test helpers: where the team's shared fixtures live, and a small torch setup.

The suite runs on two pytest-xdist workers (setup.cfg): each worker, and what it starts, computes
on one thread, so two workers share two cores instead of fighting over them (OpenMP threads
that wait spinning on a busy core slowed single tests tenfold)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("MOE3D_SHARED_DIR", PROJECT_ROOT.parent / "shared"))

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # the scripts and nodes the tests start


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true",
                     help="also run the tests marked slow (torch.compile, ONNX export, training runs); scripts/test.sh does")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked slow are skipped unless --run-slow is given, so `pytest -m "not e2e"` is the fast tier."""
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow (torch.compile, ONNX export or a training run): run with --run-slow, as scripts/test.sh does")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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
