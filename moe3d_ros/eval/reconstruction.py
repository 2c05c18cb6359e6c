"""Multi-view reconstruction metrics: accuracy, completeness and normal consistency of a predicted
point cloud against the ground truth's, after a similarity (Umeyama) and ICP alignment.
Conventions as in `metrics`; definitions: shared/design/EVALUATION.md."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .metrics import Array, _as_float, nearest_neighbours


def umeyama(source: np.ndarray, target: np.ndarray, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (scale, R, t) with target ~ scale * R @ source + t (Umeyama 1991).

    source, target: corresponding points [N, 3] (any consistent unit). R is a proper rotation
    (det +1): when the best orthogonal fit would be a reflection, the smallest singular direction
    is flipped instead. with_scale=False gives the rigid (Kabsch) fit with scale 1.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    mean_source, mean_target = source.mean(axis=0), target.mean(axis=0)
    centred_source, centred_target = source - mean_source, target - mean_target
    covariance = centred_target.T @ centred_source / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    signs = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        signs[2] = -1.0
    rotation = (u * signs) @ vt
    scale = 1.0
    if with_scale:
        scale = float((singular * signs).sum() / (centred_source**2).sum(axis=1).mean())
    translation = mean_target - scale * rotation @ mean_source
    return scale, rotation, translation


_NORMALS_CHUNK = 65536  # points per k-NN batch: bounds the [chunk, k, 3] neighbour array to ~50 MB


def estimate_normals(points: np.ndarray, k: int = 30, tree: cKDTree | None = None) -> np.ndarray:
    """Unit normals [N, 3] by PCA of each point's k nearest neighbours (itself included).

    The normal is the covariance's least-variance direction, as Open3D's default KNN-30 estimate;
    its sign is arbitrary, which is why normal consistency uses |cos|.
    """
    points = np.asarray(points, dtype=np.float64)
    tree = cKDTree(points) if tree is None else tree
    k = min(k, len(points))
    normals = np.empty_like(points)
    for start in range(0, len(points), _NORMALS_CHUNK):
        _, index = tree.query(points[start:start + _NORMALS_CHUNK], k=k, workers=-1)
        neighbours = np.take(points, index.reshape(len(index), k), axis=0)  # much faster than fancy indexing
        centred = neighbours - neighbours.mean(axis=1, keepdims=True)
        _, vectors = np.linalg.eigh(centred.transpose(0, 2, 1) @ centred)
        normals[start:start + _NORMALS_CHUNK] = vectors[..., 0]
    return normals


def icp_point_to_point(
    source: np.ndarray,
    target: np.ndarray | cKDTree,
    threshold: float = 0.1,
    max_iterations: int = 30,
    tolerance: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray]:
    """Rigid point-to-point ICP from the identity: (R, t) with target ~ R @ source + t.

    Each iteration pairs every moved source point with its nearest target point within
    `threshold` (same units as the points) and refits R, t over those pairs (Kabsch). It stops after
    `max_iterations`, or when the inlier fraction and inlier RMSE both change by less than
    `tolerance` (Open3D's registration_icp defaults: 30 iterations, 1e-6).
    """
    source = np.asarray(source, dtype=np.float64)
    tree = target if isinstance(target, cKDTree) else cKDTree(target)
    rotation, translation = np.eye(3), np.zeros(3)
    previous = None
    for _ in range(max_iterations):
        distance, index = tree.query(source @ rotation.T + translation, distance_upper_bound=threshold, workers=-1)
        inliers = np.isfinite(distance)
        if inliers.sum() < 3:
            break
        current = np.array([inliers.mean(), np.sqrt(np.mean(distance[inliers] ** 2))])
        if previous is not None and np.all(np.abs(current - previous) < tolerance):
            break
        previous = current
        _, rotation, translation = umeyama(source[inliers], tree.data[index[inliers]], with_scale=False)
    return rotation, translation


def surface_metrics(pred_points: np.ndarray, gt_points: np.ndarray, normals_k: int = 30) -> dict[str, float]:
    """Acc / Comp / NC between two already aligned clouds [N, 3] and [M, 3] (point units).

    Acc: distance from each predicted point to its nearest ground-truth point; Comp: from each
    ground-truth point to its nearest predicted point; mean and median of each. NC: |cos| between
    the PCA normals (estimate_normals, k = normals_k) of each nearest-neighbour pair, in both
    directions; nc_mean / nc_median average the two directions' means / medians.
    """
    pred = np.asarray(pred_points, dtype=np.float64)
    gt = np.asarray(gt_points, dtype=np.float64)
    pred_tree, gt_tree = cKDTree(pred), cKDTree(gt)
    accuracy, to_gt = nearest_neighbours(pred, gt_tree)
    completeness, to_pred = nearest_neighbours(gt, pred_tree)
    pred_normals = estimate_normals(pred, normals_k, pred_tree)
    gt_normals = estimate_normals(gt, normals_k, gt_tree)
    nc_pred = np.abs(np.sum(pred_normals * gt_normals[to_gt], axis=1))
    nc_gt = np.abs(np.sum(gt_normals * pred_normals[to_pred], axis=1))
    return {
        "acc_mean": float(accuracy.mean()),
        "acc_median": float(np.median(accuracy)),
        "comp_mean": float(completeness.mean()),
        "comp_median": float(np.median(completeness)),
        "nc_mean": float(0.5 * (nc_pred.mean() + nc_gt.mean())),
        "nc_median": float(0.5 * (np.median(nc_pred) + np.median(nc_gt))),
    }


def reconstruction_metrics(
    pred_points: Array,
    gt_points: Array,
    icp_threshold: float = 0.1,
    normals_k: int = 30,
    max_points: int | None = None,
    seed: int = 0,
    icp_iterations: int = 30,
) -> dict[str, float | np.ndarray]:
    """7-Scenes / NRGBD reconstruction quality of predicted points against ground truth.

    pred_points and gt_points are corresponding [N, 3] points (same pixels; metres); rows with a
    non-finite coordinate in either are dropped, and with `max_points` a random subset of the
    pairs (deterministic by `seed`) is kept. The prediction is aligned by an Umeyama similarity
    from the correspondences, then refined by rigid point-to-point ICP (identity start,
    `icp_threshold` metres), and scored by surface_metrics. Returns acc_mean, acc_median,
    comp_mean, comp_median, nc_mean, nc_median, num_points, scale (of the similarity) and
    transform: the [4, 4] matrix [s R | t] mapping the given predicted points onto the aligned ones.
    """
    pred = _as_float(pred_points).reshape(-1, 3)
    gt = _as_float(gt_points).reshape(-1, 3)
    if pred.shape != gt.shape:
        raise ValueError(f"need corresponding points: {pred.shape} vs {gt.shape}")
    finite = np.isfinite(pred).all(axis=1) & np.isfinite(gt).all(axis=1)
    pred, gt = pred[finite], gt[finite]
    if max_points is not None and len(pred) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(pred), max_points, replace=False))
        pred, gt = pred[keep], gt[keep]
    scale, rotation, translation = umeyama(pred, gt)
    similar = scale * pred @ rotation.T + translation
    icp_rotation, icp_translation = icp_point_to_point(similar, gt, icp_threshold, icp_iterations)
    transform = np.eye(4)
    transform[:3, :3] = scale * icp_rotation @ rotation
    transform[:3, 3] = icp_rotation @ translation + icp_translation
    aligned = pred @ transform[:3, :3].T + transform[:3, 3]
    return {
        **surface_metrics(aligned, gt, normals_k),
        "num_points": len(pred),
        "scale": scale,
        "transform": transform,
    }
