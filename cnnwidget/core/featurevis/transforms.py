"""Random transforms applied to the images at every step, so that only patterns robust to small shifts, scalings
and rotations survive (Lucid's "transformation robustness"); without them the optimizer finds high-frequency
patterns that excite the network from exactly one position.

Transforms run inside the compiled step, on images (B, H, W, C) in [0, 1] (before they are mapped to the display
range), drawing from the step's ``tf.random.Generator``, so a render repeats exactly for a seed. All are
differentiable. Pad and jitter change the size, scale and rotation keep it; the render fits the result to the
model's input at the end. Consecutive geometric transforms, that fit included, are composed into one matrix per
image and applied as a single bilinear resampling (``compose``): one interpolation blurs less than several, and
on a CPU it is most of the cost of the whole pipeline.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from .. import options
from ..errors import OptionError

GREY = 0.5  # what padding and the corners uncovered by rotation are filled with: mid-grey in [0, 1]


class Transform:
    """One step of the pipeline. ``key`` is hashable and identifies the transform in the compiled-step cache;
    ``resize(side) -> side`` gives the output side for an input side.

    Geometric transforms give ``geometry(batch, side, generator) -> (B, 3, 3)`` matrices mapping output pixel
    coordinates (x, y, 1) to input ones, and ``fill``, the value outside the input (None: never reads outside);
    other transforms give ``image_fn(images, generator) -> images``.
    """

    def __init__(self, key: tuple, geometry: Callable | None = None, image_fn: Callable | None = None,
                 resize: Callable[[int], int] = lambda s: s, fill: float | None = None):
        self.key, self.geometry, self.image_fn, self.resize, self.fill = key, geometry, image_fn, resize, fill

    def __repr__(self):
        return f"{self.key[0]}{self.key[1:]}"


def pad(width: int, mode: str = "constant", value: float = GREY) -> Transform:
    """Pads ``width`` pixels on every side, with ``value`` (mode "constant", default mid-grey, in [0, 1]) or by
    reflecting the image (mode "reflect"). Gives the jitters room, so the image's borders are not special."""
    width = _count(width, "pad width")
    mode = str(mode).lower()
    if mode not in ("constant", "reflect"):
        raise OptionError(f"pad mode must be 'constant' or 'reflect'; got {mode!r}.")
    value = options.fraction("pad value", value)  # a grey level in [0, 1]
    key, resize = ("pad", width, mode, float(value)), (lambda s: s + 2 * width)
    if mode == "reflect":
        paddings = [[0, 0], [width, width], [width, width], [0, 0]]
        return Transform(key, image_fn=lambda x, generator: tf.pad(x, paddings, mode="REFLECT"), resize=resize)

    def geometry(batch, side, generator):  # output pixel (x, y) shows input pixel (x - width, y - width)
        return _translation(tf.fill([batch], -float(width)), tf.fill([batch], -float(width)))

    return Transform(key, geometry, resize=resize, fill=float(value))


def jitter(d: int) -> Transform:
    """Crops ``d`` pixels off at a random offset, 0..d in each direction, drawn per image: a random translation
    by up to ``d`` pixels. The image shrinks by ``d``."""
    d = _count(d, "jitter")

    def geometry(batch, side, generator):
        offset = tf.cast(generator.uniform([2, batch], 0, d + 1, dtype=tf.int32), tf.float32)
        return _translation(offset[0], offset[1])

    return Transform(("jitter", d), geometry, resize=lambda s: s - d)


def random_scale(scales: Sequence[float]) -> Transform:
    """Scales each image about its centre by a factor drawn from ``scales`` (e.g. 0.9 to 1.1), keeping its size:
    content scaled down shows the surroundings (grey after a pad), content scaled up loses its border."""
    values = options.numbers("random_scale factors", scales, positive=True)

    def geometry(batch, side, generator):
        inv = 1.0 / tf.gather(tf.constant(values), generator.uniform([batch], 0, len(values), dtype=tf.int32))
        return _about_centre(inv, tf.zeros_like(inv), side)

    return Transform(("random_scale", tuple(values)), geometry, fill=GREY)


def random_rotate(degrees: Sequence[float]) -> Transform:
    """Rotates each image about its centre by an angle drawn from ``degrees``, keeping its size (the uncovered
    corners show the surroundings)."""
    values = options.numbers("random_rotate angles (degrees)", degrees)

    def geometry(batch, side, generator):
        radians = tf.constant(values) * (math.pi / 180)
        a = tf.gather(radians, generator.uniform([batch], 0, len(values), dtype=tf.int32))
        return _about_centre(tf.cos(a), tf.sin(a), side)

    return Transform(("random_rotate", tuple(values)), geometry, fill=GREY)


def standard_transforms() -> list[Transform]:
    """Lucid's published defaults (``lucid.optvis.transform.standard_transforms``): pad 12 (constant 0.5),
    jitter 8, random scale 0.90 to 1.10 in steps of 0.02, random rotation -10 to 10 degrees with 0 drawn six times
    in 26, jitter 4. A render of side S comes out at S + 12 pixels (before render fits it to the model)."""
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
    _check(transforms)
    out = size
    for t in transforms:
        out = t.resize(out)
        if out < 1:
            raise OptionError(f"size {size} is too small for the transforms {list(transforms)}: nothing is left "
                              f"after {t!r}. Use a larger size or smaller pad/jitter.")
    return out


def compose(transforms: Sequence[Transform], output: tuple[int, int] | None = None) -> Callable:
    """One function ``f(images, generator) -> images`` applying ``transforms`` in order to square images, then, if
    ``output`` (H, W) is given, resizing to it (bilinear, half-pixel centres, as tf.image.resize).

    Runs of geometric transforms (constant pads, jitters, scales, rotations and the final resize) are composed into
    one matrix per image and applied as a single bilinear resampling: pad and crop become reads outside or inside
    the input, so the padded canvas is never built.
    """
    _check(transforms)

    def apply(x, generator):
        batch, side = x.shape[0], x.shape[1]
        matrix, fill = None, None  # the pending geometric run: output -> input map and the value outside
        for t in transforms:
            if t.geometry is None or (fill is not None and t.fill is not None and t.fill != fill):
                x, matrix, fill = _resample(x, matrix, (side, side), fill), None, None
                if t.geometry is None:
                    x = t.image_fn(x, generator)
                    side = x.shape[1]
                    continue
            m = t.geometry(batch, side, generator)
            matrix = m if matrix is None else tf.matmul(matrix, m)  # later transforms' maps apply first
            fill = t.fill if fill is None else fill
            side = t.resize(side)
        shape = (side, side)
        if output is not None and tuple(output) != shape:
            shape = tuple(output)
            m = _scaling(side / shape[1], side / shape[0], batch)
            matrix = m if matrix is None else tf.matmul(matrix, m)
        return _resample(x, matrix, shape, fill)

    return apply


def _check(transforms):
    for t in transforms:
        if not isinstance(t, Transform):
            raise OptionError(f"transforms must be made by fv.pad, fv.jitter, fv.random_scale, fv.random_rotate "
                              f"(or fv.standard_transforms()); got {t!r}.")


def _resample(x, matrix, shape, fill):
    """x resampled bilinearly at the input coordinates ``matrix`` gives for each output pixel; x when no matrix."""
    if matrix is None:
        return x
    flat = tf.reshape(matrix, [-1, 9])[:, :8]  # the projective op's 8 parameters (the last row is 0, 0, 1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=flat, output_shape=tf.constant(shape, tf.int32),
        fill_value=GREY if fill is None else fill, interpolation="BILINEAR", fill_mode="CONSTANT")


def _matrices(a0, a1, a2, b0, b1, b2):
    """(B, 3, 3) matrices [[a0, a1, a2], [b0, b1, b2], [0, 0, 1]] from (B,) tensors."""
    zero, one = tf.zeros_like(a0), tf.ones_like(a0)
    return tf.reshape(tf.stack([a0, a1, a2, b0, b1, b2, zero, zero, one], axis=1), [-1, 3, 3])


def _translation(dx, dy):
    """Output (x, y) reads input (x + dx, y + dy)."""
    one, zero = tf.ones_like(dx), tf.zeros_like(dx)
    return _matrices(one, zero, dx, zero, one, dy)


def _about_centre(cos, sin, side):
    """Output (x, y) reads input centre + [[cos, sin], [-sin, cos]] ((x, y) - centre): for cos = 1/s, sin = 0 a
    scaling by s, for cos(a), sin(a) a rotation by a (clockwise on screen, y pointing down), about the image's
    centre."""
    c = (side - 1) / 2.0
    return _matrices(cos, sin, c - c * cos - c * sin, -sin, cos, c + c * sin - c * cos)


def _scaling(sx, sy, batch):
    """Output (x, y) reads input ((x + 0.5) sx - 0.5, (y + 0.5) sy - 0.5): a resize with half-pixel centres."""
    one = tf.ones([batch])
    zero = tf.zeros([batch])
    return _matrices(one * sx, zero, one * (0.5 * sx - 0.5), zero, one * sy, one * (0.5 * sy - 0.5))


def _count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise OptionError(f"{what} must be a whole number of pixels >= 0; got {value!r}.")
    return int(value)
