"""Superpixels for LIME and Kernel SHAP: SLIC-style k-means in (colour, position), numpy only.

No new dependency: scikit-image's SLIC or quickshift would do, but pull in scipy and a compiled package for one
function, and LIME/SHAP need segments that group similar neighbouring pixels, not the best boundaries.
"""

from __future__ import annotations

import numpy as np

from ..errors import ImageError, OptionError
from . import _common as c


def superpixels(images, n_segments: int = 50, compactness: float = 0.1, iterations: int = 10) -> np.ndarray:
    """Segment (N, H, W, C) or (H, W, C) images into about ``n_segments`` superpixels each.

    SLIC (Achanta et al. 2012) simplified: centres start on a regular grid of cells of side S = sqrt(HW / n);
    each pixel joins the nearest of the 3 x 3 grid cells' centres around its own cell under
    d^2 = |colour - colour_k|^2 + (compactness * |xy - xy_k| / S)^2, colours scaled to [0, 1] per image;
    centres move to their pixels' means; ``iterations`` rounds. Segments need not be connected (no
    post-processing), which LIME and SHAP do not require.

    Returns (N, H, W) int32 labels 0 .. P_i - 1 per image (P_i <= the grid's cell count, empty clusters dropped).
    """
    arr = np.asarray(images, np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or 0 in arr.shape:
        raise ImageError(f"superpixels takes images (N, H, W, C) or (H, W, C); got shape {np.shape(images)}.")
    c.positive_int("n_segments", n_segments)
    c.positive_float("compactness", compactness, allow_zero=True)
    c.positive_int("iterations", iterations)
    n, h, w, ch = arr.shape
    step = np.sqrt(h * w / n_segments)
    gy, gx = max(1, int(round(h / step))), max(1, int(round(w / step)))
    k = gy * gx

    lo = arr.min(axis=(1, 2, 3), keepdims=True)
    span = np.maximum(arr.max(axis=(1, 2, 3), keepdims=True) - lo, 1e-12)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Position scaled so that one cell side weighs ``compactness``, as one colour unit weighs 1.
    pos = np.stack([yy, xx], -1).reshape(-1, 2) * (compactness / step)
    feats = np.concatenate([((arr - lo) / span).reshape(n, h * w, ch), np.broadcast_to(pos, (n, h * w, 2))], -1)

    # Each pixel's own grid cell and its 3 x 3 neighbourhood (out-of-grid neighbours marked -1).
    cy = np.minimum((yy.ravel() * gy / h).astype(int), gy - 1)
    cx = np.minimum((xx.ravel() * gx / w).astype(int), gx - 1)
    ny = cy[:, None] + np.repeat([-1, 0, 1], 3)[None]
    nx = cx[:, None] + np.tile([-1, 0, 1], 3)[None]
    cand = np.where((ny >= 0) & (ny < gy) & (nx >= 0) & (nx < gx), ny * gx + nx, -1)  # (HW, 9)

    own = cy * gx + cx
    centres = _means(feats, np.broadcast_to(own, (n, h * w)), k, None)
    rows = np.arange(n)[:, None, None]
    for _ in range(iterations):
        d = ((feats[:, :, None, :] - centres[rows, np.maximum(cand, 0)[None]]) ** 2).sum(-1)  # (N, HW, 9)
        d[:, cand < 0] = np.inf
        labels = np.take_along_axis(np.broadcast_to(cand, d.shape), d.argmin(-1)[..., None], -1)[..., 0]
        centres = _means(feats, labels, k, centres)
    out = np.empty((n, h * w), np.int32)
    for i in range(n):  # consecutive labels per image
        out[i] = np.unique(labels[i], return_inverse=True)[1]
    return out.reshape(n, h, w)


def _means(feats, labels, k, previous):
    """Per image and cluster, the mean feature (N, k, F); clusters with no pixel keep ``previous``."""
    n, _, f = feats.shape
    flat = (labels + np.arange(n)[:, None] * k).ravel()
    counts = np.bincount(flat, minlength=n * k).reshape(n, k, 1)
    sums = np.stack([np.bincount(flat, feats[..., j].ravel(), minlength=n * k) for j in range(f)], -1)
    means = sums.reshape(n, k, f) / np.maximum(counts, 1)
    if previous is not None:
        means = np.where(counts > 0, means, previous)
    return means.astype(np.float32)


def as_segments(segments, n: int, shape: tuple) -> np.ndarray:
    """User-given segments (H, W) for all images or (N, H, W), as consecutive int32 labels per image."""
    arr = np.asarray(segments)
    if arr.ndim == 2:
        arr = np.broadcast_to(arr, (n,) + arr.shape)
    if arr.shape != (n,) + tuple(shape) or not np.issubdtype(arr.dtype, np.integer):
        raise OptionError(f"segments must be integer labels shaped (H, W) {tuple(shape)} or (N, H, W) "
                            f"{(n,) + tuple(shape)}; got {arr.dtype} {arr.shape}.")
    out = np.empty(arr.shape, np.int32)
    for i in range(n):
        out[i] = np.unique(arr[i], return_inverse=True)[1].reshape(shape)
    return out
