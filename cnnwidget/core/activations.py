"""Feature maps made ready to show: per-channel statistics, resizing, and per-layer summary thumbnails."""

from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf

from .errors import OptionError


def channel_stats(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean activation and fraction of activations that are exactly zero or below.

    ``maps``: one image's layer output, (H, W, C) or (C,). Returns two float32 arrays of shape (C,); the second is
    the "dead" fraction a ReLU leaves (values <= 0).
    """
    flat = maps.reshape(-1, maps.shape[-1])
    return flat.mean(axis=0).astype(np.float32), (flat <= 0).mean(axis=0).astype(np.float32)


def channel_order(means: np.ndarray, sort: str) -> np.ndarray:
    """Channel indices in display order: ``"index"`` (0..C-1) or ``"mean"`` (descending mean activation)."""
    if sort == "index":
        return np.arange(len(means))
    if sort == "mean":
        return np.argsort(-means, kind="stable")
    raise OptionError(f"sort must be 'index' or 'mean'; got {sort!r}.")


def resize(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (..., H, W) maps to (..., height, width): area averages when shrinking, nearest when enlarging.

    Area averaging keeps a small bright spot visible at its true mean, which nearest-neighbour sampling would
    skip or exaggerate.
    """
    out = maps
    for axis, size in ((-2, height), (-1, width)):
        n = out.shape[axis]
        if n == size:
            continue
        starts = (np.arange(size) * n) // size
        sums = np.add.reduceat(out, starts, axis=axis)
        counts = np.diff(np.append(starts, n))
        # reduceat gives the single element for empty bins (enlarging): count 1 there.
        counts = np.maximum(counts, 1).astype(np.float32)
        shape = [1] * out.ndim
        shape[axis] = size
        out = sums / counts.reshape(shape)
    return out.astype(np.float32, copy=False)


def fit_within(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(h, w) scaled down to at most ``max_side`` on the longer side, keeping the aspect ratio."""
    scale = max(height, width) / max_side
    if scale <= 1:
        return height, width
    return max(1, round(height / scale)), max(1, round(width / scale))


@functools.lru_cache(maxsize=None)
def thumbnail_reducer(size: int):
    """An in-graph summary of one layer output as a (N, size, size) image, for ``ModelProbe.activations(reduce=)``.

    Spatial outputs (N, H, W, C): the mean absolute activation over channels, area-resized (nearest when
    enlarging). Sequences (N, T, D): the mean absolute value over D, laid out as a vector. Vectors (N, C): the
    values laid out row by row in a square of side ceil(sqrt(C)), zero-padded. The same ``size`` returns the same
    function, so compiled passes are reused.
    """

    def reduce(out):
        out = tf.cast(out, tf.float32)
        if out.shape.rank == 4:
            img = tf.reduce_mean(tf.abs(out), axis=-1, keepdims=True)
        else:
            vec = out if out.shape.rank == 2 else tf.reduce_mean(tf.abs(out), axis=-1)
            n = int(vec.shape[-1])
            side = max(1, math.isqrt(n - 1) + 1)
            vec = tf.pad(vec, [[0, 0], [0, side * side - n]])
            img = tf.reshape(vec, (-1, side, side, 1))
        shrinking = img.shape[1] is None or img.shape[1] > size or img.shape[2] > size
        img = tf.image.resize(img, (size, size), method="area" if shrinking else "nearest")
        return img[..., 0]

    return reduce


def depth_strip(probe, images, size: int = 32) -> tuple[np.ndarray, list[str]]:
    """One thumbnail per layer, in model order, for each image: how the representation changes with depth.

    Returns (thumbs (N, L, size, size) float32, layer paths (L,)), from one compiled pass that keeps only the
    thumbnails, never the full feature maps.
    """
    out = probe.activations(images, None, reduce=thumbnail_reducer(size))
    paths = list(out)
    return np.stack([out[p] for p in paths], axis=1), paths
