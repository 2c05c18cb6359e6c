"""Which frames of 7-Scenes and NRGBD sequences the multi-view protocols use (Pi3's sparse and dense steps)."""
from __future__ import annotations

PI3_FRAME_STEPS = {"7scenes": {"sparse": 200, "dense": 40}, "nrgbd": {"sparse": 500, "dense": 100}}


def _protocol_frames(dataset: str, num_frames: int, density: str) -> list[int]:
    steps = PI3_FRAME_STEPS[dataset]
    if density not in steps:
        raise ValueError(f"density must be one of {tuple(steps)}, got {density!r}")
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    return list(range(0, num_frames, steps[density]))


def seven_scenes_frames(num_frames: int, density: str) -> list[int]:
    """pi3 protocol frames of a 7-Scenes sequence of `num_frames`: 0, step, 2*step, ...

    step = 200 ("sparse") or 40 ("dense"). Indices are positions in the reader's source, which
    are the file numbers unless the reader dropped frames without a finite pose.
    """
    return _protocol_frames("7scenes", num_frames, density)


def nrgbd_frames(num_frames: int, density: str) -> list[int]:
    """pi3 protocol frames of an NRGBD scene of `num_frames`: 0, step, 2*step, ...

    step = 500 ("sparse") or 100 ("dense"). Indices are positions in the reader's source, which
    skips frames whose pose is NaN / inf, so they equal image numbers only when none was skipped.
    """
    return _protocol_frames("nrgbd", num_frames, density)
