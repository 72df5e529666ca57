"""Checking and normalizing the images a user passes, before any model sees them."""

from __future__ import annotations

import numpy as np

from .errors import ImageError


def as_image_batch(images, *, height=None, width=None, channels=None, input_range=(0.0, 1.0)) -> np.ndarray:
    """Return ``images`` as a float32 batch (N, H, W, C) in display space, or raise :class:`ImageError`.

    ``images``: array-like (N, H, W, C), one image (H, W, C), or, when the model takes one channel, (H, W) or
    (N, H, W). uint8 images are scaled from [0, 255] to ``input_range``. ``height``, ``width`` and ``channels`` are
    what the model takes (None: any). Non-numeric values, NaN, infinity and empty batches are refused.
    """
    try:
        arr = np.asarray(images)
    except Exception as exc:  # ragged lists and the like
        raise ImageError(f"images must be a numeric array (N, H, W, C); could not convert it: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ImageError(f"images must be a numeric array (N, H, W, C); got an array of dtype {arr.dtype}.")
    if arr.ndim == 2 and channels == 1:
        arr = arr[None, :, :, None]
    elif arr.ndim == 3 and channels == 1 and arr.shape[-1] != 1:
        arr = arr[..., None]
    elif arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ImageError(
            f"images must have shape (N, H, W, C) or (H, W, C){_expected(height, width, channels)}; "
            f"got shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise ImageError(f"the image batch is empty: got shape {arr.shape}; pass at least one image.")
    n, h, w, c = arr.shape
    if (height is not None and h != height) or (width is not None and w != width):
        raise ImageError(
            f"the model takes images of {height or 'any'}x{width or 'any'} pixels; got {h}x{w} "
            f"(shape {arr.shape}). Resize them first, e.g. with keras.ops.image.resize."
        )
    if channels is not None and c != channels:
        raise ImageError(
            f"the model takes images with {channels} channel(s); got {c} (shape {arr.shape}). "
            "Images must be channels-last (N, H, W, C)."
        )
    if arr.dtype == np.uint8:
        lo, hi = input_range
        arr = arr.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)
    arr = arr.astype(np.float32, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.argmax(bad.reshape(n, -1).any(axis=1)))
        raise ImageError(
            f"images contain {int(bad.sum())} NaN or infinite value(s) (first in image {first}); "
            "replace them with finite values."
        )
    return arr


def _expected(height, width, channels) -> str:
    if height is None and width is None and channels is None:
        return ""
    return f" with H, W, C = {height or 'any'}, {width or 'any'}, {channels or 'any'}"
