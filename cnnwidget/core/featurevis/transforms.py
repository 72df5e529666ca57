"""Random transforms applied to the images at every step, so that only patterns robust to small shifts, scalings
and rotations survive (Lucid's "transformation robustness"); without them the optimizer finds high-frequency
patterns that excite the network from exactly one position.

Transforms run inside the compiled step, on images (B, H, W, C) in [0, 1] (before they are mapped to the display
range), drawing from the step's ``tf.random.Generator``, so a render repeats exactly for a seed. All are
differentiable. Pad and jitter change the size (the render fits the result to the model's input at the end);
scale and rotation keep it, and consecutive ones are fused into a single bilinear resampling (one interpolation
blurs less than two, and costs half as much).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from ..errors import OptionError

GREY = 0.5  # what padding and the corners uncovered by rotation are filled with: mid-grey in [0, 1]


class Transform:
    """One step of the pipeline. ``key`` is hashable and identifies the transform in the compiled-step cache.

    ``fn(images, generator) -> images`` for image transforms; for affine ones (``affine=True``),
    ``fn(batch, size, generator) -> (B, 3, 3)`` matrices mapping output pixel coordinates (x, y, 1) to input ones.
    ``resize(size) -> size`` gives the output side for an input side.
    """

    def __init__(self, key: tuple, fn: Callable, resize: Callable[[int], int] = lambda s: s, affine: bool = False):
        self.key, self.fn, self.resize, self.affine = key, fn, resize, affine

    def __repr__(self):
        return f"{self.key[0]}{self.key[1:]}"


def pad(width: int, mode: str = "constant", value: float = GREY) -> Transform:
    """Pads ``width`` pixels on every side, with ``value`` (mode "constant", default mid-grey, in [0, 1]) or by
    reflecting the image (mode "reflect"). Gives the jitters room, so the image's borders are not special."""
    width = _count(width, "pad width")
    mode = str(mode).lower()
    if mode not in ("constant", "reflect"):
        raise OptionError(f"pad mode must be 'constant' or 'reflect'; got {mode!r}.")
    paddings = [[0, 0], [width, width], [width, width], [0, 0]]

    def fn(x, generator):
        if mode == "reflect":
            return tf.pad(x, paddings, mode="REFLECT")
        return tf.pad(x, paddings, constant_values=float(value))

    return Transform(("pad", width, mode, float(value)), fn, lambda s: s + 2 * width)


def jitter(d: int) -> Transform:
    """Crops ``d`` pixels off at a random offset (0..d in each direction, the same for the whole batch): a random
    translation by up to ``d`` pixels. The image shrinks by ``d``."""
    d = _count(d, "jitter")

    def fn(x, generator):
        offset = generator.uniform([2], 0, d + 1, dtype=tf.int32)
        h, w = x.shape[1] - d, x.shape[2] - d
        return tf.slice(x, tf.stack([0, offset[0], offset[1], 0]), [-1, h, w, -1])

    def resize(s):
        return s - d

    return Transform(("jitter", d), fn, resize)


def random_scale(scales: Sequence[float]) -> Transform:
    """Scales each image about its centre by a factor drawn from ``scales`` (e.g. 0.9 to 1.1), keeping its size:
    content scaled down leaves a grey border, content scaled up loses its border."""
    values = [float(s) for s in scales]
    if not values or min(values) <= 0:
        raise OptionError(f"random_scale needs a non-empty list of positive factors; got {list(scales)!r}.")

    def matrices(batch, size, generator):
        s = tf.gather(tf.constant(values), generator.uniform([batch], 0, len(values), dtype=tf.int32))
        inv, zero = 1.0 / s, tf.zeros_like(s)
        c = (size - 1) / 2.0  # the centre of the image in pixel coordinates
        return _stack(inv, zero, c * (1 - inv), zero, inv, c * (1 - inv))

    return Transform(("random_scale", tuple(values)), matrices, affine=True)


def random_rotate(degrees: Sequence[float]) -> Transform:
    """Rotates each image about its centre by an angle drawn from ``degrees``, keeping its size (the uncovered
    corners are grey)."""
    values = [float(a) for a in degrees]
    if not values:
        raise OptionError("random_rotate needs a non-empty list of angles in degrees.")

    def matrices(batch, size, generator):
        a = tf.gather(tf.constant(values) * (math.pi / 180), generator.uniform([batch], 0, len(values), tf.int32))
        cos, sin = tf.cos(a), tf.sin(a)
        c = (size - 1) / 2.0
        # input = centre + R(-a) (output - centre)
        return _stack(cos, sin, c - c * cos - c * sin, -sin, cos, c + c * sin - c * cos)

    return Transform(("random_rotate", tuple(values)), matrices, affine=True)


def standard_transforms() -> list[Transform]:
    """Lucid's published defaults (``lucid.optvis.transform.standard_transforms``): pad 12 (constant 0.5),
    jitter 8, random scale 0.90 to 1.10 in steps of 0.02, random rotation -10 to 10 degrees with 0 drawn six times
    in 26, jitter 4. A render of size S is seen by the model at S + 12 pixels before fitting."""
    return [
        pad(12, mode="constant", value=GREY),
        jitter(8),
        random_scale([1 + (i - 5) / 50.0 for i in range(11)]),
        random_rotate(list(range(-10, 11)) + 5 * [0]),
        jitter(4),
    ]


def output_size(transforms: Sequence[Transform], size: int) -> int:
    """The side of the images after ``transforms`` for images of side ``size`` (raises OptionError if nothing is
    left)."""
    out = size
    for t in transforms:
        out = t.resize(out)
        if out < 1:
            raise OptionError(f"size {size} is too small for the transforms {list(transforms)}: nothing is left "
                              f"after {t!r}. Use a larger size or smaller pad/jitter.")
    return out


def compose(transforms: Sequence[Transform]) -> Callable:
    """One function ``f(images, generator) -> images`` applying ``transforms`` in order, runs of affine
    transforms fused into one bilinear resampling."""
    stages: list = []
    for t in transforms:
        if not isinstance(t, Transform):
            raise OptionError(f"transforms must be made by fv.pad, fv.jitter, fv.random_scale, fv.random_rotate "
                              f"(or fv.standard_transforms()); got {t!r}.")
        if t.affine and stages and isinstance(stages[-1], list):
            stages[-1].append(t)
        else:
            stages.append([t] if t.affine else t)

    def apply(x, generator):
        for stage in stages:
            x = _resample(x, stage, generator) if isinstance(stage, list) else stage.fn(x, generator)
        return x

    return apply


def _resample(x, affines: list, generator):
    batch, size = x.shape[0], x.shape[1]
    matrix = None
    for t in affines:  # output -> input maps compose from the first transform outwards: M1 @ M2 @ ...
        m = t.fn(batch, size, generator)
        matrix = m if matrix is None else tf.matmul(matrix, m)
    flat = tf.reshape(matrix, [-1, 9])[:, :8]  # the projective op's 8 parameters (the last row is 0, 0, 1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=flat, output_shape=tf.constant([x.shape[1], x.shape[2]]), fill_value=GREY,
        interpolation="BILINEAR", fill_mode="CONSTANT")


def _stack(a0, a1, a2, b0, b1, b2):
    """(B, 3, 3) matrices [[a0, a1, a2], [b0, b1, b2], [0, 0, 1]] from (B,) tensors or scalars."""
    a0 = tf.convert_to_tensor(a0)
    full = [tf.broadcast_to(tf.cast(v, tf.float32), tf.shape(a0)) for v in (a0, a1, a2, b0, b1, b2)]
    zero, one = tf.zeros_like(a0), tf.ones_like(a0)
    return tf.reshape(tf.stack(full + [zero, zero, one], axis=1), [-1, 3, 3])


def _count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise OptionError(f"{what} must be a whole number of pixels >= 0; got {value!r}.")
    return int(value)
