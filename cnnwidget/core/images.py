"""Checking and normalizing the images a user passes, before any model sees them."""

from __future__ import annotations

import warnings

import numpy as np

from .errors import CnnWidgetWarning, ImageError

# Float images whose values reach this share of input_range's span beyond it are "far outside": 0..255 pixels given
# with the default [0, 1], or mean/std-normalized ones; a little overshoot (augmentation, noise) is not.
FAR_OUTSIDE = 0.5


def as_image_batch(images, *, height=None, width=None, channels=None, input_range=(0.0, 1.0),
                   size_note: str = "", warn: bool = True) -> np.ndarray:
    """Return ``images`` as a float32 batch (N, H, W, C) in display space, or raise :class:`ImageError`.

    ``images``: array-like (N, H, W, C), one image (H, W, C), or, when the model takes one channel, (H, W) or
    (N, H, W). uint8 images are scaled from [0, 255] to ``input_range``. ``height``, ``width`` and ``channels`` are
    what the model takes (None: any). Non-numeric or complex values, None, NaN, infinity and empty batches are
    refused; ``size_note`` is added to the message for a wrong size. Float images far outside ``input_range``
    (see ``range_note``) are accepted with a CnnWidgetWarning (``warn=False``: silently).
    """
    if images is None:
        raise ImageError("no images were given (None): pass a numeric array of images (N, H, W, C) or (H, W, C).")
    try:
        arr = np.asarray(images)
    except Exception as exc:  # ragged lists and the like
        raise ImageError(f"images must be a numeric array (N, H, W, C); could not convert it: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ImageError(f"images must be a numeric array (N, H, W, C); got an array of dtype {arr.dtype}.")
    if np.iscomplexobj(arr):
        raise ImageError(f"images must be real pixel values; got complex numbers (dtype {arr.dtype}). Pass "
                         "images.real, or np.abs(images) for magnitudes.")
    if arr.ndim == 2 and channels == 1:
        arr = arr[None, :, :, None]
    elif arr.ndim == 3 and channels == 1 and arr.shape[-1] != 1:
        arr = arr[..., None]
    elif (arr.ndim == 3 and height is not None and width is not None and tuple(arr.shape[1:]) == (height, width)
          and (tuple(arr.shape[:2]) != (height, width) or arr.shape[2] != channels)):
        # (N, H, W) for a model of C > 1 channels: taken as one image it would be "2x64 pixels", which misleads
        raise ImageError(
            f"images must have shape (N, H, W, C){_expected(height, width, channels)}; got shape {arr.shape}: "
            f"{arr.shape[0]} image(s) of {height}x{width} with no channel axis. Add it: np.repeat(images[..., None], "
            f"{channels or 3}, axis=-1) for grey images, images[..., None] for a one-channel model."
        )
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
            f"(shape {arr.shape}). Resize them first, e.g. with keras.ops.image.resize.{size_note}"
        )
    if channels is not None and c != channels:
        raise ImageError(
            f"the model takes images with {channels} channel(s); got {c} (shape {arr.shape}). "
            "Images must be channels-last (N, H, W, C)."
        )
    scaled = arr.dtype == np.uint8
    if scaled:
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
    note = None if scaled or not warn else range_note(arr, input_range)
    if note:
        # Attributed to this line, not the caller's: Python's default filter then shows one text once, where a
        # widget's worker passing the same images through five core functions printed it five times.
        warnings.warn(note, CnnWidgetWarning, stacklevel=1)
    return arr


def range_note(batch: np.ndarray, input_range=(0.0, 1.0)) -> str | None:
    """A sentence saying that ``batch``'s values lie far outside ``input_range`` (more than ``FAR_OUTSIDE`` of its
    span beyond it), with the range seen and what to do; None when they do not. What ``as_image_batch`` warns
    with, and what a widget shows beside its images."""
    lo, hi = float(input_range[0]), float(input_range[1])
    seen_lo, seen_hi = float(batch.min()), float(batch.max())
    margin = FAR_OUTSIDE * (hi - lo)
    if seen_lo >= lo - margin and seen_hi <= hi + margin:
        return None
    hint = (" If they are 0..255 pixels, divide them by 255 or pass input_range=(0, 255) (uint8 arrays are "
            "scaled for you)." if seen_hi > 2 * hi and seen_lo >= lo - margin else
            " If they were normalized for the model (e.g. mean/std), pass the raw images and do that in preprocess=.")
    return (f"the images' values span [{seen_lo:.4g}, {seen_hi:.4g}], far outside input_range [{lo:g}, {hi:g}]: "
            f"the model sees inputs unlike the ones it was made for.{hint}")


def _expected(height, width, channels) -> str:
    if height is None and width is None and channels is None:
        return ""
    return f" with H, W, C = {height or 'any'}, {width or 'any'}, {channels or 'any'}"
