"""Where the package's installed files are: a colcon install, a pip install, or the source tree."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

PACKAGE = "moe3d_ros"
SOURCE_ROOT = Path(__file__).resolve().parents[1]


def share_dir() -> Path:
    """The package's share folder (launch/, config/): from the ament index when the package is
    installed there (colcon), else the source tree (pip editable install, tests)."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "share" / PACKAGE
        if prefix and (candidate / "config").is_dir():
            return candidate
    return SOURCE_ROOT


def executable(name: str) -> str:
    """An installed entry point: colcon puts it in <prefix>/lib/moe3d_ros, pip in the
    interpreter's bin folder."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "lib" / PACKAGE / name
        if prefix and candidate.exists():
            return str(candidate)
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"the {name} entry point is not installed: run colcon build, or pip install -e .")
    return found
