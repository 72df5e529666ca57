"""What every attribution method shares: option checks, targets, and the compiled passes they are built on.

Which score is explained: the target's **pre-softmax logit**, from ``probe.forward(logits=True)``. Captum and
Xplique differentiate whatever the model outputs, which for a softmax classifier is a probability; its gradient
``dp_t/dx = p_t (dz_t/dx - sum_j p_j dz_j/dx)`` vanishes when the model is confident (p_t near 1) and mixes in
every other class, so a confident, correct prediction gets the faintest map. The logit has neither problem and
makes completeness (Integrated Gradients) a statement about one number. Methods that are defined on
probabilities (Score-CAM, the deletion and insertion metrics) say so and take a ``score`` option.

The compiled passes (one ``tf.function`` per probe and kind, traced once: batch sizes vary along a ``None`` axis
and targets are tensors, so neither a new target nor a new batch size retraces):

- ``gradients``: d logit_t / d x for display-space images, the gradient methods' one pass.
- ``accumulated_gradients``: sums of (weighted) gradients over many inputs made inside the pass from a few
  numbers per input (a path position, a noise seed), for SmoothGrad and Integrated Gradients.
- ``layer_gradients``: a layer's output and d logit_t / d output, for the CAMs.
- ``masked_scores``: target scores of ``x * m + fill * (1 - m)`` for many masks ``m`` built inside the pass from a
  compact description (a box, a coalition of superpixels, a rank threshold), for every perturbation method and
  the faithfulness metrics.

Each runs its inputs in chunks of at most ``batch_size`` images, keeps partial results as tensors, and fetches
to numpy once at the end.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import weakref
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from ..errors import Cancelled, CnnWidgetError, OptionError
from ..probe import ModelProbe, as_probe

__all__ = ["Cancelled", "as_probe"]


# -- option checks ---------------------------------------------------------------------------------------------

def positive_int(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or an OptionError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise OptionError(f"{name} must be an integer >= {minimum}; got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise OptionError(f"{name} must be an integer >= {minimum}; got {value}.")
    return int(value)


def positive_float(name: str, value, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (or >= 0), or an OptionError."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = float("nan")
    if not np.isfinite(out) or out < 0 or (out == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise OptionError(f"{name} must be a finite number {bound}; got {value!r}.")
    return out


def choice(name: str, value, choices) -> str:
    if value not in choices:
        raise OptionError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}.")
    return value


def batch_size_of(probe: ModelProbe, batch_size) -> int:
    """The chunk size for perturbed passes: ``batch_size``, or the probe's when None."""
    return probe.batch_size if batch_size is None else positive_int("batch_size", batch_size)


# -- targets ---------------------------------------------------------------------------------------------------

PREDICTED = -1  # a target tensor entry that the compiled passes replace with the predicted class


def targets(probe: ModelProbe, n: int, target) -> np.ndarray:
    """``target`` as int32 (n,): an int for every image, a list with one per image, or None for the predicted
    class (encoded as PREDICTED, resolved inside the pass or by ``predicted``). Out of range -> OptionError."""
    classes = probe.num_classes
    if target is None:
        return np.full(n, PREDICTED, np.int32)
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        out = np.full(n, int(target), np.int64)
    else:
        try:
            out = np.asarray(target)
        except Exception:  # noqa: BLE001 - anything unconvertible is a bad target
            out = np.asarray([object()])
        if out.dtype == bool or not np.issubdtype(out.dtype, np.integer) or out.ndim != 1:
            raise OptionError(f"target must be None (the predicted class), an int, or a list of {n} ints (one per "
                              f"image); got {target!r}.")
        if len(out) != n:
            raise OptionError(f"target has {len(out)} entries but there are {n} images; give one class per image, "
                              "or a single int for all.")
    bad = (out < 0) | (out >= classes)
    if bad.any():
        raise OptionError(f"target {int(out[bad][0])} is out of range: this model has {classes} outputs, so a target "
                          f"is an int in [0, {classes - 1}].")
    return out.astype(np.int32)


def predicted(probe: ModelProbe, batch: np.ndarray, target: np.ndarray, batch_size: int | None = None):
    """Resolve PREDICTED entries with one forward pass; returns (targets (N,) int32, target logits (N,) float32)."""
    logits = tf.concat([logit_fn(probe)(tf.constant(batch[i:i + (batch_size or probe.batch_size)]))
                        for i in range(0, len(batch), batch_size or probe.batch_size)], 0).numpy()
    target = np.where(target == PREDICTED, logits.argmax(-1), target).astype(np.int32)
    return target, logits[np.arange(len(batch)), target]


def _resolve(logits, target):
    """Inside a pass: the target per row, the predicted class where it is PREDICTED."""
    return tf.where(target < 0, tf.argmax(logits, -1, output_type=tf.int32), target)


# -- compiled passes, cached per probe ---------------------------------------------------------------------------

_CACHE: "weakref.WeakKeyDictionary[ModelProbe, dict]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _cached(probe: ModelProbe, key, make: Callable):
    with _LOCK:
        fns = _CACHE.setdefault(probe, {})
        if key not in fns:
            fns[key] = make()
        return fns[key]


def _spec(probe: ModelProbe, batch=None):
    return tf.TensorSpec((batch,) + tuple(probe.input_shape), tf.float32)


def _counted(probe: ModelProbe, fn: Callable) -> Callable:
    """``fn`` that adds one to ``probe.trace_count`` each time it runs, i.e. each time its tf.function traces."""
    def traced(*args):
        probe.trace_count += 1
        return fn(*args)
    # A partial per pass, as in the probe: TF counts traces per Python function, and would warn of "retracing"
    # once a person has tried a few layers or methods, though each pass is traced once.
    return functools.partial(traced)


def logit_fn(probe: ModelProbe):
    """Compiled x (N, H, W, C) -> logits (N, classes)."""
    def make():
        forward = probe.forward((), logits=True)
        return tf.function(_counted(probe, lambda x: forward(x)[-1]), input_signature=[_spec(probe)])
    return _cached(probe, "logits", make)


def _input_gradient(forward, x, target):
    """(d logit_t / d x, logit_t, t) for a batch; ``forward`` from probe.forward(logits=True)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = forward(x)[-1]
        t = _resolve(logits, target)
        score = tf.gather(logits, t, batch_dims=1)
    # Rows are independent (inference mode), so the gradient of the sum is each row's own gradient.
    return tape.gradient(score, x), score, t


def gradient_fn(probe: ModelProbe, guided: bool = False):
    """Compiled (x (B, H, W, C), target (B,) int32) -> (gradient (B, H, W, C), logit_t (B,), t (B,))."""
    def make():
        forward = probe.forward((), logits=True)
        fn = tf.function(_counted(probe, lambda x, t: _input_gradient(forward, x, t)),
                         input_signature=[_spec(probe), tf.TensorSpec((None,), tf.int32)])
        return _concrete(probe, fn, guided)
    return _cached(probe, ("gradient", guided), make)


def accumulate_fn(probe: ModelProbe, guided: bool = False):
    """Compiled sums of gradients over inputs made inside the pass, one row per (image, sample).

    Arguments: x (N, H, W, C) images, base (N, H, W, C) baselines, target (N,), idx (B,) image of each row,
    alpha (B,) path position, weight (B,), sigma () noise standard deviation, seed (2,) for the noise.
    Row b's input is ``base + alpha (x - base) + sigma * normal`` for image idx[b]. Returns (sum_b w g,
    sum_b w g^2), each (N, H, W, C), summed per image: the chunk loop adds them up without leaving TensorFlow.
    """
    def make():
        forward = probe.forward((), logits=True)

        def step(x, base, target, idx, alpha, weight, sigma, seed):
            xi, bi = tf.gather(x, idx), tf.gather(base, idx)
            inp = bi + alpha[:, None, None, None] * (xi - bi)
            inp += sigma * tf.random.stateless_normal(tf.shape(inp), seed)
            g, _, _ = _input_gradient(forward, inp, tf.gather(target, idx))
            wg = weight[:, None, None, None] * g
            n = tf.shape(x)[0]
            return tf.math.unsorted_segment_sum(wg, idx, n), tf.math.unsorted_segment_sum(wg * g, idx, n)

        signature = [_spec(probe), _spec(probe), tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), tf.int32),
                     tf.TensorSpec((None,), tf.float32), tf.TensorSpec((None,), tf.float32),
                     tf.TensorSpec((), tf.float32), tf.TensorSpec((2,), tf.int32)]
        return _concrete(probe, tf.function(_counted(probe, step), input_signature=signature), guided)
    return _cached(probe, ("accumulate", guided), make)


def layer_gradient_fn(probe: ModelProbe, path: str):
    """Compiled (x, target) -> (A (B, h, w, k) output of layer ``path``, d logit_t / d A, logit_t (B,), t (B,)).

    The input is watched rather than the weights, so the gradient reaches a frozen (non-trainable) base model.
    """
    def make():
        forward = probe.forward((path,), logits=True)

        def step(x, target):
            with tf.GradientTape() as tape:
                tape.watch(x)
                act, logits = forward(x)
                t = _resolve(logits, target)
                score = tf.gather(logits, t, batch_dims=1)
            return act, tape.gradient(score, act), score, t

        return tf.function(_counted(probe, step), input_signature=[_spec(probe), tf.TensorSpec((None,), tf.int32)])
    return _cached(probe, ("layer_gradient", path), make)


def masked_fn(probe: ModelProbe, kind: str, build: Callable, context: tuple, params: tuple, score: str):
    """Compiled target scores for masked inputs; see ``masked_scores``. One per (probe, kind, score)."""
    def make():
        forward = probe.forward((), logits=True)

        def step(x, fill, target, idx, context, params):
            m = build(idx, *context, *params)[..., None]
            inp = tf.gather(x, idx) * m + tf.gather(fill, idx) * (1.0 - m)
            out = forward(inp)[-1]
            if score == "probability":
                out = tf.nn.softmax(out, -1)
            return tf.gather(out, tf.gather(target, idx), batch_dims=1)

        def spec(a):  # rank and dtype only: a new size (segments, mask grid) never retraces
            return tf.TensorSpec((None,) * np.ndim(a), tf.as_dtype(np.asarray(a).dtype))

        signature = [_spec(probe), _spec(probe), tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), tf.int32),
                     tuple(spec(c) for c in context), tuple(spec(p) for p in params)]
        return tf.function(_counted(probe, step), input_signature=signature)
    return _cached(probe, ("masked", kind, score), make)


def masked_scores(probe: ModelProbe, kind: str, build: Callable, batch: np.ndarray, fill: np.ndarray,
                  target: np.ndarray, idx: np.ndarray, params: tuple = (), context: tuple = (),
                  score: str = "logit", batch_size: int | None = None, progress=None, cancel=None) -> np.ndarray:
    """Scores of the target class for many masked copies of the images, in chunks of ``batch_size``.

    batch, fill:  (N, H, W, C) images and what masked-out pixels become (same shape).
    target:       (N,) int32 resolved classes (no PREDICTED entries).
    idx:          (R,) int32, the image each row masks; ``params`` are arrays with R rows, chunked with ``idx``.
    context:      arrays given whole to every chunk (segment maps, pixel ranks).
    build:        a TensorFlow function ``build(idx_chunk, *context, *params_chunk) -> m (B, H, W)`` in [0, 1],
                  1 = keep the pixel. ``kind`` names it in the cache: one compiled pass per (kind, score).
    score:        "logit" (pre-softmax) or "probability" (softmax of the logits).
    progress:     ``progress(done_rows, total_rows)`` after each chunk; ``cancel`` a threading.Event checked
                  before each chunk (raises Cancelled).
    Returns (R,) float32.
    """
    fn = masked_fn(probe, kind, build, context, params, score)
    bs = batch_size_of(probe, batch_size)
    x, f, t = tf.constant(batch), tf.constant(fill), tf.constant(target, tf.int32)
    context = tuple(tf.constant(c) for c in context)
    out = []
    for start in range(0, len(idx), bs):
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"{kind} cancelled after {start} of {len(idx)} passes.")
        stop = start + bs
        out.append(fn(x, f, t, tf.constant(idx[start:stop], tf.int32), context,
                      tuple(tf.constant(p[start:stop]) for p in params)))
        if progress is not None:
            progress(min(stop, len(idx)), len(idx))
    return tf.concat(out, 0).numpy()


# -- guided backpropagation: a ReLU gradient override while the pass is traced -----------------------------------

def _concrete(probe: ModelProbe, fn, guided: bool):
    """Trace ``fn`` now (with guided ReLUs if asked) and return the concrete function, which never retraces."""
    if not guided:
        return fn
    with _guided_relus(probe):
        return fn.get_concrete_function()


def _guided(relu: Callable) -> Callable:
    """``relu`` whose backward pass lets only positive gradients through (Springenberg et al. 2015)."""
    @tf.custom_gradient
    def guided(x):
        y = relu(x)

        def grad(dy):
            with tf.GradientTape() as tape:  # the layer's own derivative (0 below 0, and above a ReLU6's cap)
                tape.watch(x)
                inner = relu(x)
            return tape.gradient(inner, x, output_gradients=tf.nn.relu(dy))
        return y, grad
    return guided


@contextlib.contextmanager
def _guided_relus(probe: ModelProbe):
    """Swap every ReLU of the probed model for a guided one while a pass is traced, then put them back.

    The traced graph keeps the guided gradient; the layers themselves are restored in ``finally``, so the user's
    model is unchanged afterwards. The swap lasts only for the trace, under the cache lock's caller.
    """
    relu = keras.activations.relu
    restore = []
    try:
        for info in probe.layers:
            layer = probe.keras_layer(info.path)
            if isinstance(layer, keras.layers.ReLU):
                layer.call = _guided(layer.call)  # an instance attribute shadows the method; deleted below
                restore.append((layer, "call", None))
            elif getattr(layer, "activation", None) is relu:
                restore.append((layer, "activation", layer.activation))
                layer.activation = _guided(relu)
        yield
    finally:
        for layer, name, original in restore:
            if original is None:
                del layer.__dict__[name]
            else:
                setattr(layer, name, original)


# -- small image operations used by several methods ---------------------------------------------------------------

def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Blur (N, H, W, C) images with a Gaussian of ``sigma`` pixels (reflected edges); same shape, float32."""
    h, w = images.shape[1:3]
    radius = int(min(3 * sigma, h - 1, w - 1))
    if radius < 1:
        return images.copy()
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k = (k / k.sum()).astype(np.float32)
    c = images.shape[-1]
    x = tf.pad(tf.constant(images), [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    x = tf.nn.depthwise_conv2d(x, np.tile(k[:, None, None, None], (1, 1, c, 1)), [1, 1, 1, 1], "VALID")
    x = tf.nn.depthwise_conv2d(x, np.tile(k[None, :, None, None], (1, 1, c, 1)), [1, 1, 1, 1], "VALID")
    return x.numpy()


def fill_images(probe: ModelProbe, batch: np.ndarray, fill, name: str = "fill") -> np.ndarray:
    """What hidden pixels become, (N, H, W, C) float32: a number (or one per channel) in display units,
    "black" (the bottom of the input range), "mean" (each image's mean colour), or "blur" (the image blurred with
    sigma = side / 16 px)."""
    if isinstance(fill, str):
        choice(name, fill, ("black", "mean", "blur"))
        if fill == "black":
            return np.full_like(batch, probe.input_range[0])
        if fill == "mean":
            return np.broadcast_to(batch.mean(axis=(1, 2), keepdims=True), batch.shape).astype(np.float32)
        return gaussian_blur(batch, max(batch.shape[1:3]) / 16)
    try:
        value = np.asarray(fill, np.float32)
        out = np.broadcast_to(value, batch.shape).astype(np.float32)
    except (TypeError, ValueError):
        raise OptionError(f"{name} must be a number, one number per channel ({batch.shape[-1]}), an array shaped "
                          f"like the images {batch.shape}, 'black', 'mean' or 'blur'; got {fill!r}.") from None
    if not np.isfinite(out).all():
        raise OptionError(f"{name} must be finite; got {fill!r}.")
    return out


def upsample(maps: np.ndarray | tf.Tensor, size: tuple) -> np.ndarray:
    """(N, h, w) maps -> (N, H, W) float32, bilinear (half-pixel centres, as the maps' cells tile the input)."""
    return tf.image.resize(tf.convert_to_tensor(maps, tf.float32)[..., None], size, "bilinear")[..., 0].numpy()
