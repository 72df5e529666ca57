"""Arrays to wire bytes (docs/wire-format.md): uint8 tiles plus the float32 ranges that give back true values."""

from __future__ import annotations

import numpy as np


def quantize(maps: np.ndarray) -> tuple[bytes, bytes]:
    """Quantize a stack of maps (k, h, w), each over its own range, for the ``tiles``/``tile_ranges`` traits.

    Returns (uint8 bytes of (k, h, w), float32 bytes of (k, 2) holding [lo, hi] per tile): the true value of a
    byte q is lo + (hi - lo) * q / 255. Non-finite values (a diverged model) are drawn as the tile's minimum.
    """
    maps = np.asarray(maps, dtype=np.float32)
    flat = maps.reshape(len(maps), -1)
    finite = np.isfinite(flat)
    lo = np.where(finite, flat, np.inf).min(axis=1) if flat.size else np.zeros(len(maps), np.float32)
    hi = np.where(finite, flat, -np.inf).max(axis=1) if flat.size else np.zeros(len(maps), np.float32)
    lo = np.where(np.isfinite(lo), lo, 0.0).astype(np.float32)
    hi = np.where(np.isfinite(hi), hi, 0.0).astype(np.float32)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = (np.where(finite, flat, lo[:, None]) - lo[:, None]) * (255.0 / span[:, None])
    q = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return q.tobytes(), np.stack([lo, hi], axis=1).astype("<f4").tobytes()


def image_bytes(image: np.ndarray, input_range: tuple[float, float]) -> bytes:
    """One display-space image (H, W, C) as uint8 RGB bytes (H, W, 3); one channel is repeated to three."""
    lo, hi = input_range
    scaled = (np.asarray(image, dtype=np.float32) - lo) * (255.0 / (hi - lo))
    rgb = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    return np.ascontiguousarray(rgb[..., :3]).tobytes()
