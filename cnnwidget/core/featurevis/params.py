"""Image parameterizations: how the optimized images are made from trainable variables.

Optimizing raw pixels gives high-frequency noise that excites a network strongly without showing anything; Lucid's
answer (Olah et al., "Feature Visualization", Distill 2017) is to optimize in a space where natural images are
easy to reach: a Fourier spectrum scaled by 1/frequency (so all frequencies learn at a similar pace) and colours
expressed in decorrelated components (so the optimizer does not fight the colour statistics of natural images),
put through a sigmoid into the valid range.

A parameterization here is a recipe, independent of size: ``render`` asks it for variable shapes, initial values
(from a seeded ``tf.random.Generator``) and the images as a differentiable function of the variables, in [0, 1].
Called directly, ``param(batch, size, channels, seed, input_range)`` returns the pair
``(variables, images_fn)``, with ``images_fn()`` -> (B, size, size, C) float32 in ``input_range``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .. import _graph, options
from ..errors import ImageError, OptionError
from ..images import as_image_batch

# Lucid's colour correlation of ImageNet ("color_correlation_svd_sqrt" in lucid/optvis/param/color.py): the
# square root, via SVD (U * sqrt(S)), of the 3x3 covariance of RGB pixels in [0, 1]; rows are R, G, B, columns the
# components (the first is luminance).
IMAGENET_COLOR_CORRELATION = np.array(
    [[0.26, 0.09, 0.02],
     [0.27, 0.00, -0.05],
     [0.27, -0.09, 0.03]], np.float32)


def color_correlation(images, input_range=(0.0, 1.0)) -> np.ndarray:
    """The 3x3 colour correlation of ``images`` (N, H, W, 3) in ``input_range``, for ``fft_image(color=...)``.

    Computed as Lucid computed its ImageNet default: the covariance of RGB pixels mapped to [0, 1], and its square
    root by SVD, ``U @ diag(sqrt(S))`` (rows R, G, B; columns principal components). Images of your own domain
    (say, microscopy) give colours closer to that domain than ImageNet's statistics do.
    """
    lo, hi = options.input_range(input_range)
    x = as_image_batch(images, input_range=(lo, hi), warn=False).astype(np.float64)  # numeric, finite, not empty
    if x.shape[-1] != 3:
        raise ImageError(f"color_correlation needs RGB images (N, H, W, 3); got shape {x.shape}.")
    pixels = ((x - lo) / (hi - lo)).reshape(-1, 3)
    u, s, _ = np.linalg.svd(np.cov(pixels, rowvar=False))
    if s[0] <= 0:
        raise ImageError("color_correlation needs images with some colour variation; these are uniform.")
    return (u * np.sqrt(s)).astype(np.float32)


def _init_images(init) -> np.ndarray:
    """``pixel_image(init=...)`` as float32 images, refused (ImageError) when not numeric, NaN or infinite."""
    try:
        return as_image_batch(init, warn=False)
    except ImageError as exc:
        raise ImageError(f"pixel_image(init=...) must be images (size, size, C) or (B, size, size, C) in the display "
                         f"range: {exc}") from None


# What a render keeps per pixel and channel of its images, in float32 values: the variables, Adam's two slots and
# the gradient, the sigmoid and colour stages, the transforms' resampled copies and their gradients. A generous
# count, for refusing sizes that cannot fit (check_size), not for predicting use.
_RENDER_VALUES_PER_PIXEL = 16
_FREE_SIZE_PROBE = 64  # a free-size model's layer sizes are measured at this input size, then scaled


def render_bytes(probe, size: int, batch: int = 1) -> float:
    """Estimated working memory (bytes) of rendering ``batch`` images of ``size`` px a side on ``probe``'s model:
    the image stages, plus, for a model that takes any size, every spatial layer's output and its gradient at
    that size (a fixed-size model gets the images resized into its input, so its share does not grow)."""
    h, w, channels = probe.input_shape
    image = float(batch) * size * size * channels * 4 * _RENDER_VALUES_PER_PIXEL
    if h is not None and w is not None:
        return image
    per_pixel = probe.compiled(("featurevis", "bytes_per_pixel"), lambda: _layer_bytes_per_pixel(probe))
    return image + float(batch) * size * size * per_pixel


def _layer_bytes_per_pixel(probe) -> float:
    """Bytes of all layer outputs (and their gradients) per input pixel, from a symbolic replay at a small size."""
    n = _FREE_SIZE_PROBE
    graph = _graph.flatten(probe.model, (n, n, probe.input_shape[-1]))  # symbolic: no computation
    values = sum(float(np.prod([d or 1 for d in t.shape[1:]])) for t in graph.outputs.values())
    return 2 * 4 * values / (n * n)


def check_size(probe, size: int, batch: int = 1) -> int:
    """``size`` unchanged, or an OptionError when rendering ``batch`` images of that size would need more than
    ``options.MEMORY_FRACTION`` of this machine's memory (see ``render_bytes``): said before anything is
    allocated, rather than as TensorFlow's out-of-memory error."""
    options.fits_in_memory("size", size, render_bytes(probe, size, batch),
                           f"rendering {batch} image{'s' if batch > 1 else ''} of {size}x{size} px")
    return size


class Parameterization:
    """Base of parameterizations. ``key`` says what changes the compiled step (options that only change the
    initial values, like ``sd``, are left out of it)."""

    key: tuple = ()

    def shapes(self, batch: int, size: int, channels: int) -> list[tuple]:
        """Shapes of the trainable variables."""
        raise NotImplementedError

    def initial(self, generator: tf.random.Generator, batch: int, size: int, channels: int,
                input_range=(0.0, 1.0)) -> list[tf.Tensor]:
        """Initial values of the variables, drawn from ``generator``."""
        raise NotImplementedError

    def unit_images(self, variables: list, size: int, channels: int) -> tf.Tensor:
        """The images (B, size, size, channels) in [0, 1], a differentiable function of ``variables``."""
        raise NotImplementedError

    def __call__(self, batch: int = 1, size: int = 128, channels: int = 3, seed: int = 0, input_range=(0.0, 1.0)):
        """``(variables, images_fn)``: new tf.Variables and ``images_fn()`` -> (B, size, size, C) in
        ``input_range``, for use in your own optimization loop."""
        generator = tf.random.Generator.from_seed(seed)
        variables = [tf.Variable(v) for v in self.initial(generator, batch, size, channels, input_range)]
        lo, hi = input_range

        def images_fn():
            return lo + (hi - lo) * self.unit_images(variables, size, channels)

        return variables, images_fn


class _Colour:
    """The shared last stage: decorrelated colour components -> RGB -> sigmoid into [0, 1]."""

    def __init__(self, decorrelate: bool, color):
        self.decorrelate = bool(decorrelate)
        try:
            matrix = IMAGENET_COLOR_CORRELATION if color is None else np.asarray(color, np.float32)
        except (TypeError, ValueError):
            matrix = np.zeros(0, np.float32)  # refused just below, with what is expected
        if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
            raise OptionError(f"color must be a finite 3x3 colour correlation matrix (see color_correlation); got "
                              f"shape {matrix.shape}.")
        if abs(np.linalg.det(matrix)) < 1e-8:
            raise OptionError("color must be an invertible 3x3 matrix; this one is singular.")
        # Lucid scales the matrix so its largest column has unit norm, keeping the sigmoid's input near the scale
        # of the raw parameters.
        self.matrix = matrix / np.max(np.linalg.norm(matrix, axis=0))
        self.custom = color is not None

    def key(self):
        return (self.decorrelate, self.matrix.tobytes() if self.decorrelate else None)

    def applies(self, channels: int) -> bool:
        if self.decorrelate and channels != 3 and self.custom:
            raise OptionError(f"a colour correlation matrix is for RGB images; this model takes {channels} "
                              "channel(s). Leave color=None (decorrelation is then skipped).")
        return self.decorrelate and channels == 3  # grey or other channel counts: nothing to decorrelate

    def to_unit(self, latent, channels: int):
        """(B, H, W, C) latent values -> images in [0, 1]."""
        if self.applies(channels):
            latent = tf.tensordot(latent, tf.constant(self.matrix.T), axes=1)
        return tf.sigmoid(latent)

    def to_latent(self, unit: np.ndarray, channels: int) -> np.ndarray:
        """The inverse of ``to_unit``, for starting from given images (clipped off 0 and 1, where logit is
        infinite)."""
        u = np.clip(unit, 0.01, 0.99)
        latent = np.log(u / (1 - u))
        if self.applies(channels):
            latent = latent @ np.linalg.inv(self.matrix.T)
        return latent.astype(np.float32)


class PixelImage(Parameterization):
    """Each pixel is a variable (see :func:`pixel_image`)."""

    def __init__(self, sd=0.01, decorrelate=False, color=None, init=None):
        self.sd, self.colour = options.positive_float("sd", sd, allow_zero=True), _Colour(decorrelate, color)
        # Numeric, finite, not empty; in the display range (uint8 taken as 0..255 of [0, 1]). The shape is checked
        # against the render's in initial().
        self.init = None if init is None else _init_images(init)
        self.key = ("pixel",) + self.colour.key()

    def shapes(self, batch, size, channels):
        return [(batch, size, size, channels)]

    def initial(self, generator, batch, size, channels, input_range=(0.0, 1.0)):
        shape = (batch, size, size, channels)
        if self.init is None:
            return [generator.normal(shape) * self.sd]
        init = self.init[None] if self.init.ndim == 3 else self.init
        if init.ndim != 4 or init.shape[1:] != shape[1:] or init.shape[0] not in (1, batch):
            raise ImageError(f"pixel_image(init=...) needs images of shape ({batch} or 1, {size}, {size}, "
                             f"{channels}) for this render; got {self.init.shape}.")
        lo, hi = input_range
        latent = self.colour.to_latent((init - lo) / (hi - lo), channels)
        return [tf.constant(np.broadcast_to(latent, shape))]

    def unit_images(self, variables, size, channels):
        return self.colour.to_unit(variables[0], channels)


# How much faster than Lucid's scaling the mean colour of an FFT image learns (see FFTImage.spectrum_scale).
MEAN_BOOST = 4.0


class FFTImage(Parameterization):
    """Fourier coefficients per image and channel, scaled by 1 / frequency (see :func:`fft_image`)."""

    def __init__(self, sd=0.01, decay_power=1.0, decorrelate=True, color=None):
        self.sd = options.positive_float("sd", sd, allow_zero=True)
        self.decay_power = options.positive_float("decay_power", decay_power, allow_zero=True)
        self.colour = _Colour(decorrelate, color)
        self.key = ("fft", self.decay_power) + self.colour.key()

    def shapes(self, batch, size, channels):
        return [(batch, channels, size, size)]

    def initial(self, generator, batch, size, channels, input_range=(0.0, 1.0)):
        return [generator.normal(self.shapes(batch, size, channels)[0]) * self.sd]

    def spectrum_scale(self, size: int) -> np.ndarray:
        """(size, size) factors for the coefficients: Lucid's ``size / max(f, 1 / size) ** decay_power`` (f the
        frequency in cycles per pixel), divided by 4 as Lucid's, times sqrt(2) / size, the norm of a real part of
        an ``irfft2d`` coefficient's image, so the images start with the spread Lucid's start with.

        The constant coefficient (f = 0: each colour component's mean over the image) gets MEAN_BOOST (4) times
        that: with Lucid's factor a unit of it moves every pixel's sigmoid input by sqrt(2) / 4 whatever the size,
        and Adam moves each coefficient by about the learning rate per step, so the mean colour drifts 0.018 a
        step while the many higher frequencies build contrast. Units that want a flat colour (the demo model's
        block1 brightness and colour channels, maximal on a uniform black or white image) then ended weaker than
        the best of 500 data images (6 of 16 at 0.74-0.78x at 256 steps, 7 at 0.57-0.63x at 128); with 4x every
        block1 channel reaches 1.08x or more at 256 steps. 8x reached 1.12x but drove some pattern units to a flat
        colour instead (block2_relu channel 9: 0.61-0.72x for seeds 1 and 2, against 3.2-3.4x with 4x)."""
        f = _real_fourier_frequencies(size)
        freqs = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
        scale = size / np.maximum(freqs, 1.0 / size) ** self.decay_power / 4.0 * np.sqrt(2) / size
        scale[0, 0] *= MEAN_BOOST
        return scale.astype(np.float32)

    def unit_images(self, variables, size, channels):
        # Frequency scaling and colour mixing are linear, like the transform to pixels, so they are applied to the
        # coefficients: one multiply and one 3x3 matmul.
        w = variables[0] * self.spectrum_scale(size)  # (B, C, size, size)
        if self.colour.applies(channels):
            w = tf.reshape(tf.matmul(self.colour.matrix, tf.reshape(w, [-1, channels, size * size])), tf.shape(w))
        basis = tf.constant(_real_fourier_basis(size))
        image = tf.matmul(tf.matmul(basis, w), basis, transpose_b=True)  # (B, C, size, size)
        return tf.transpose(tf.sigmoid(image), [0, 2, 3, 1])


def _real_fourier_frequencies(size: int) -> np.ndarray:
    """Frequency (cycles per pixel) of each function of ``_real_fourier_basis(size)``."""
    k = [0] + [j for j in range(1, (size + 1) // 2) for _ in (0, 1)] + ([size // 2] if size % 2 == 0 else [])
    return np.array(k, np.float64) / size


def _real_fourier_basis(size: int) -> np.ndarray:
    """(size pixels, size functions): the orthonormal real Fourier basis: constant, then cos and sin of each
    frequency 1 .. size/2 - 1, then (even sizes) the alternating Nyquist function.

    An image is ``basis @ W @ basis.T``. Each product of a row and a column function mixes the 2-D Fourier modes
    (ky, kx) and (ky, -kx), which have the same frequency, so scaling by 1/f means what it does for Lucid's
    ``irfft2d`` spectrum, and i.i.d. normal coefficients give the same distribution of images. Two matmuls are
    cheaper on a CPU than TensorFlow's inverse FFT and its gradient, most of all for batches.
    """
    n = np.arange(size)
    functions = [np.full(size, 1.0 / np.sqrt(size))]
    for k in range(1, (size + 1) // 2):
        functions += [np.cos(2 * np.pi * k * n / size) * np.sqrt(2.0 / size),
                      np.sin(2 * np.pi * k * n / size) * np.sqrt(2.0 / size)]
    if size % 2 == 0:
        functions.append(np.cos(np.pi * n) / np.sqrt(size))
    return np.stack(functions, axis=1).astype(np.float32)


def pixel_image(sd: float = 0.01, decorrelate: bool = False, color=None, init=None) -> PixelImage:
    """Plain pixels through a sigmoid: variables (B, size, size, C) drawn from N(0, sd), images sigmoid(v).

    The simplest parameterization, and the noisiest result (high frequencies are as easy to change as low ones).
    ``init``: images (size, size, C) or (B, size, size, C) in the display range to start from instead of grey
    noise, e.g. for DeepDream on a photo. ``decorrelate``/``color`` as in :func:`fft_image` (off by default here).
    """
    return PixelImage(sd, decorrelate, color, init)


def fft_image(decorrelate: bool = True, sd: float = 0.01, decay_power: float = 1.0, color=None) -> FFTImage:
    """Lucid's default: Fourier coefficients with 1/f^decay_power frequency scaling, and decorrelated colour.

    Variables: (B, C, size, size) coefficients of the real Fourier basis (cos and sin of each frequency along
    each axis; see ``_real_fourier_basis``), drawn from N(0, sd); each is multiplied by
    ``size / max(f, 1 / size) ** decay_power / 4`` (f in cycles per pixel), as Lucid scales its ``irfft2d``
    spectrum, with the same spread of starting images; the constant term MEAN_BOOST (4) times more, so that the
    mean colour can move as fast as the detail (see ``FFTImage.spectrum_scale``). With ``decorrelate`` (RGB only)
    the three channels are colour components mixed into RGB by ``color``: a 3x3 matrix from
    :func:`color_correlation` on your images, or by default Lucid's documented ImageNet matrix
    (IMAGENET_COLOR_CORRELATION), scaled to unit largest column. A sigmoid maps the result into [0, 1]. Models
    with other channel counts (e.g. grey, C = 1) get the spectrum without colour decorrelation.
    """
    return FFTImage(sd, decay_power, decorrelate, color)
