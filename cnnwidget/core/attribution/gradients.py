"""Gradient attributions: saliency, gradient x input, SmoothGrad (and its squared and variance forms), Integrated
Gradients and guided backpropagation.

Every method: ``method(probe_or_model, images, target=None, **options) -> (N, H, W) float32``, one value per input
pixel, for display-space ``images`` (N, H, W, C) or (H, W, C). ``target`` is an int, a list with one class per
image, or None for each image's predicted class. The explained score is the target's pre-softmax logit (see
``_common``). Options out of range raise OptionError; images the model cannot take raise ImageError.

Channels are reduced as each method's authors do: magnitude methods (saliency, SmoothGrad, guided backprop) take
the largest absolute value over channels (Simonyan et al. 2014); signed, additive methods (gradient x input,
Integrated Gradients) sum over channels, so their maps still add up to the score change.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..errors import OptionError
from . import _common as c


def _abs_max(g: np.ndarray) -> np.ndarray:
    return np.abs(g).max(axis=-1).astype(np.float32)


def _gradients(probe, batch, target, batch_size=None, guided=False):
    """(d logit_t / d x (N, H, W, C) numpy, targets used (N,) int32), in chunks of ``batch_size``."""
    fn = c.gradient_fn(probe, guided)
    bs = c.batch_size_of(probe, batch_size)
    grads, used = [], []
    for i in range(0, len(batch), bs):
        g, _, t = fn(tf.constant(batch[i:i + bs]), tf.constant(target[i:i + bs]))
        grads.append(g)
        used.append(t)
    return tf.concat(grads, 0).numpy(), tf.concat(used, 0).numpy()


def _prepare(model, images, target):
    probe = c.as_probe(model)
    batch = probe.images(images)
    return probe, batch, c.targets(probe, len(batch), target)


def saliency(model, images, target=None, batch_size=None) -> np.ndarray:
    """|d logit_t / d x|, the largest over channels: (N, H, W) float32 >= 0, in logit units per display unit."""
    probe, batch, target = _prepare(model, images, target)
    return _abs_max(_gradients(probe, batch, target, batch_size)[0])


def gradient_x_input(model, images, target=None, batch_size=None) -> np.ndarray:
    """(d logit_t / d x) * x summed over channels: (N, H, W) float32, signed, in logit units.

    The first-order Taylor term of the logit around a zero image, so it is only meaningful when 0 means "no
    signal" in display space (black, for images in [0, 1])."""
    probe, batch, target = _prepare(model, images, target)
    return (_gradients(probe, batch, target, batch_size)[0] * batch).sum(-1).astype(np.float32)


def guided_backprop(model, images, target=None, batch_size=None) -> np.ndarray:
    """Guided backpropagation (Springenberg et al. 2015): the gradient with only positive gradients let back
    through every ReLU, |.| largest over channels: (N, H, W) float32 >= 0.

    The rule lives in the probe's own replay of the model's graph (``probe.forward(guided=True)``): no layer of
    the model is changed, even for a moment, so other probes of the same model are never affected."""
    probe, batch, target = _prepare(model, images, target)
    return _abs_max(_gradients(probe, batch, target, batch_size, guided=True)[0])


def _accumulate(probe, batch, base, target, alphas, weights, sigma, seed, batch_size, progress, cancel, name):
    """Sums over S samples per image of w_s g(base + alpha_s (x - base) + noise): ((N,H,W,C), (N,H,W,C)).

    Rows are (image, sample) pairs flattened, so every chunk is full whatever N and S are."""
    n, s = len(batch), len(alphas)
    idx = np.repeat(np.arange(n, dtype=np.int32), s)
    alpha = np.tile(np.asarray(alphas, np.float32), n)
    weight = np.tile(np.asarray(weights, np.float32), n)
    fn = c.accumulate_fn(probe)
    bs = c.batch_size_of(probe, batch_size)
    x, b, t = tf.constant(batch), tf.constant(base), tf.constant(target)
    sum_g = sum_g2 = tf.zeros_like(x)
    for k, start in enumerate(range(0, len(idx), bs)):
        if cancel is not None and cancel.is_set():
            raise c.Cancelled(f"{name} cancelled after {start} of {len(idx)} passes.")
        sl = slice(start, start + bs)
        g, g2 = fn(x, b, t, tf.constant(idx[sl]), tf.constant(alpha[sl]), tf.constant(weight[sl]),
                   tf.constant(sigma, tf.float32), tf.constant([seed, k], tf.int32))
        sum_g, sum_g2 = sum_g + g, sum_g2 + g2
        if progress is not None:
            progress(min(start + bs, len(idx)), len(idx))
    return sum_g.numpy(), sum_g2.numpy()


def smoothgrad(model, images, target=None, samples=50, noise=0.15, variant="mean", seed=0, batch_size=None,
               progress=None, cancel=None) -> np.ndarray:
    """SmoothGrad (Smilkov et al. 2017): gradients averaged over ``samples`` noisy copies of each image.

    noise:    standard deviation of the Gaussian noise as a fraction of the input range (0.15 -> 0.15 for [0, 1]).
    variant:  "mean"     |E[g]|, largest over channels (SmoothGrad);
              "squared"  E[g^2], largest over channels (SmoothGrad-Squared, Hooker et al. 2019);
              "variance" Var[g], largest over channels (VarGrad, Adebayo et al. 2018).
    The noise is drawn inside the compiled pass from ``seed`` (same seed, same map). The predicted class is that
    of the clean image. Returns (N, H, W) float32 >= 0. ``progress(done, total)`` / ``cancel`` as in
    ``_common.masked_scores``.
    """
    probe, batch, target = _prepare(model, images, target)
    samples = c.positive_int("samples", samples)
    lo, hi = probe.input_range
    sigma = c.positive_float("noise", noise, allow_zero=True) * (hi - lo)
    c.choice("variant", variant, ("mean", "squared", "variance"))
    target, _ = c.predicted(probe, batch, target, batch_size, cancel)
    sum_g, sum_g2 = _accumulate(probe, batch, batch, target, np.ones(samples), np.full(samples, 1.0 / samples),
                                sigma, seed, batch_size, progress, cancel, "smoothgrad")
    if variant == "mean":
        return _abs_max(sum_g)
    if variant == "squared":
        return sum_g2.max(-1).astype(np.float32)
    return np.maximum(sum_g2 - sum_g ** 2, 0).max(-1).astype(np.float32)


def _path(steps: int, method: str):
    """Positions alpha in [0, 1] and weights summing to 1 for the path integral, ``steps`` model passes."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1) / 2, weights / 2
    if steps == 1:  # a trapezoid needs both ends; one pass is the midpoint rule
        return np.array([0.5]), np.array([1.0])
    weights = np.full(steps, 1.0 / (steps - 1))
    weights[[0, -1]] /= 2
    return np.linspace(0, 1, steps), weights


BASELINES = ("black", "mean", "blur", "noise")
DEFAULT_BASELINE = "mean"  # chosen by measured faithfulness: see integrated_gradients and benchmarks/ig_baseline.py


def baseline_images(probe, batch: np.ndarray, baseline, seed: int = 0) -> np.ndarray:
    """IG baselines (N, H, W, C) float32 in display space.

    None or "mean" (the default, DEFAULT_BASELINE): each image's mean colour, everywhere; "blur": the image
    blurred with a Gaussian of sigma = side / 16 px (Sturmfels et al. 2020: removes shape and detail, keeps
    colour); "black": the bottom of the input range (0 for [0, 1]), which is blind to dark pixels since their
    x - x' is near 0 (a dark shape gets no attribution); "noise": uniform noise over the input range from
    ``seed``; an array: one image (H, W, C) for all, or one per image (N, H, W, C).
    Why "mean": see ``integrated_gradients``.
    """
    lo, hi = probe.input_range
    if baseline is None:
        baseline = DEFAULT_BASELINE
    if isinstance(baseline, str) and baseline == "black":
        return np.full_like(batch, lo)
    if isinstance(baseline, str):
        c.choice("baseline", baseline, BASELINES)
        if baseline == "blur":
            return c.gaussian_blur(batch, max(batch.shape[1:3]) / 16)
        if baseline == "mean":
            return np.broadcast_to(batch.mean(axis=(1, 2), keepdims=True), batch.shape).astype(np.float32)
        return np.random.default_rng(seed).uniform(lo, hi, batch.shape).astype(np.float32)
    try:
        arr = np.asarray(baseline, np.float32)
        return np.ascontiguousarray(np.broadcast_to(arr, batch.shape))
    except (TypeError, ValueError):
        shape = getattr(baseline, "shape", type(baseline).__name__)
        raise OptionError(f"baseline must be None, 'black', 'mean', 'blur', 'noise', or an array shaped (H, W, C) "
                          f"{batch.shape[1:]} or (N, H, W, C) {batch.shape}; got {shape}.") from None


def integrated_gradients(model, images, target=None, steps=50, baseline=None, method="trapezoid", seed=0,
                         return_gap=False, batch_size=None, progress=None, cancel=None):
    """Integrated Gradients (Sundararajan et al. 2017): (x - x') * integral_0^1 g(x' + a (x - x')) da, summed over
    channels: (N, H, W) float32, signed, in logit units.

    steps:     model passes along the path per image (each a forward and backward pass).
    baseline:  x', see ``baseline_images``: "black", "mean", "blur", "noise" or an array; None = "mean", each
               image's mean colour, chosen by measured faithfulness (``benchmarks/ig_baseline.py``: 48 held-out
               demo images of seed 11, 50 steps, pixels ranked by |map| as the AttributionMap view shows it with
               sign "absolute", AUCs of ``deletion`` / ``insertion`` with removed pixels set to the image's mean
               colour, then to its blur; lower deletion and higher insertion are better):

                   baseline   deletion mean/blur   insertion mean/blur   completeness gap median / max
                   black        0.162 / 0.240        0.491 / 0.674          0.39% / 17%
                   mean         0.139 / 0.181        0.831 / 0.913          0.22% / 0.95%
                   blur         0.152 / 0.174        0.754 / 0.906          0.14% / 0.51%
                   noise        0.154 / 0.244        0.198 / 0.397          0.04% / 6.0%
                   random map   0.168 / 0.320        0.169 / 0.319          (``random_reference``)

               Insertion - deletion over both fills: mean 0.712 ± 0.022, blur 0.667 ± 0.026, black 0.382,
               noise 0.099. "mean" wins on the mean fill, which its path starts from, and ties "blur" on the blur
               fill (0.732 each); "blur" (the default before) keeps a smaller completeness gap, "black" is blind to
               dark shapes and "noise" gives maps barely better than a random one. Ranked by the positive part
               alone (sign "positive") every baseline's insertion is within 0.05 of a random map's (see
               ``metrics.deletion``).
    method:    "trapezoid" (the Riemann trapezoid rule, both ends included) or "gausslegendre" (Captum's default,
               exact for polynomials of degree 2 steps - 1). A ReLU network is piecewise linear, so the
               integrand is piecewise constant and Gauss-Legendre's smoothness buys nothing: on the demo model
               from black at 50 steps its worst gap was 18%, the trapezoid's 8%.
    Completeness: the map sums to f(x) - f(x') (f the target logit) up to the quadrature error.
    return_gap: also return the relative gap (N,) float32, (sum of map - (f(x) - f(x'))) / |f(x) - f(x')|, at
                the cost of one forward pass on images and baselines; ``completeness_gap`` computes it for any map.
    The predicted class is that of the image, not of points on the path.
    """
    probe, batch, target = _prepare(model, images, target)
    steps = c.positive_int("steps", steps)
    c.choice("method", method, ("gausslegendre", "trapezoid"))
    base = baseline_images(probe, batch, baseline, seed)
    target, _ = c.predicted(probe, batch, target, batch_size, cancel)
    alphas, weights = _path(steps, method)
    sum_g, _ = _accumulate(probe, batch, base, target, alphas, weights, 0.0, seed, batch_size, progress, cancel,
                           "integrated_gradients")
    maps = ((batch - base) * sum_g).sum(-1).astype(np.float32)
    if return_gap:
        return maps, completeness_gap(probe, batch, maps, target, base, batch_size)
    return maps


def completeness_gap(model, images, maps, target, baseline=None, seed=0, batch_size=None) -> np.ndarray:
    """(sum of ``maps`` over pixels - (f(x) - f(x'))) / |f(x) - f(x')|, (N,) float32; f the target logit.

    0 for a map that satisfies completeness exactly; ``target`` as for the methods (None = predicted class);
    ``baseline`` and ``seed`` as for ``integrated_gradients``."""
    from .metrics import check_maps

    probe = c.as_probe(model)
    batch = probe.images(images)
    maps = check_maps(maps, *batch.shape[:3])
    base = baseline_images(probe, batch, baseline, seed)
    target, fx = c.predicted(probe, batch, c.targets(probe, len(batch), target), batch_size)
    _, fb = c.predicted(probe, base, target, batch_size)
    delta = fx - fb
    return ((maps.reshape(len(batch), -1).sum(1) - delta) / np.maximum(np.abs(delta), 1e-12)).astype(np.float32)
