"""Evaluation data sets: readers for the monocular-depth sets (NYU Depth v2 in `nyu`, MPI-Sintel
depth in `sintel`) and the frame choice of the multi-view ones (`frames`).

Each reader checks the layout and lists the samples up front, then reads one sample's pixels
only when it is indexed (`dataset[i]`), so a loop over a large set holds one image at a time.
A sample is a `DepthSample`: RGB image, ground-truth depth in metres exactly as the dataset
stores it (not zeroed outside `valid`), and `valid`, the pixels an evaluation scores. A missing
or malformed file raises a `DatasetError` naming the file and what was expected.
"""
from __future__ import annotations

from .base import DepthDataset, DepthSample
from .frames import nrgbd_frames, seven_scenes_frames
from .nyu import (
    NYU_INTRINSICS,
    NYUFolderDataset,
    NYUMatDataset,
    eigen_crop_mask,
    nyu_valid,
    read_nyu,
    read_nyu_mat,
    read_nyu_official_splits,
)
from .sintel import SintelDataset, read_cam, read_dpt, read_sintel, sintel_sequences

__all__ = [
    "DepthDataset",
    "DepthSample",
    "NYU_INTRINSICS",
    "NYUMatDataset",
    "NYUFolderDataset",
    "SintelDataset",
    "eigen_crop_mask",
    "nrgbd_frames",
    "nyu_valid",
    "read_cam",
    "read_dpt",
    "read_nyu",
    "read_nyu_mat",
    "read_nyu_official_splits",
    "read_sintel",
    "seven_scenes_frames",
    "sintel_sequences",
]
