"""What every attribution method shares: option checks, targets, and the compiled passes they are built on.

Which score is explained: the target's **pre-softmax logit**, from ``probe.forward(logits=True)``. Captum and
Xplique differentiate whatever the model outputs, which for a softmax classifier is a probability; its gradient
``dp_t/dx = p_t (dz_t/dx - sum_j p_j dz_j/dx)`` vanishes when the model is confident (p_t near 1) and mixes in
every other class, so a confident, correct prediction gets the faintest map. The logit has neither problem and
makes completeness (Integrated Gradients) a statement about one number. Methods that are defined on
probabilities (Score-CAM, the deletion and insertion metrics) say so and take a ``score`` option.

The compiled passes (one ``tf.function`` per probe and kind, kept by the probe (``probe.compiled``) and traced
once: batch sizes vary along a ``None`` axis and targets are tensors, so neither a new target nor a new batch
size retraces; a plain Keras model gets the probe remembered for it, ``probe_for``, so its passes are reused):

- ``gradients``: d logit_t / d x for display-space images, the gradient methods' one pass (guided
  backpropagation: the same pass on the probe's guided replay of the model, ``probe.forward(guided=True)``).
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

import time
from typing import Callable

import numpy as np
import tensorflow as tf

from ..errors import Cancelled, CnnWidgetError, OptionError
from ..options import choice, class_indices, positive_float, positive_int  # noqa: F401 - the methods call c.positive_int ...
from ..probe import ModelProbe, probe_for

# Every method takes a model or a probe; a model gets its remembered probe (one per model, weakly held).
as_probe = probe_for

__all__ = ["Cancelled", "as_probe"]


# -- option checks ---------------------------------------------------------------------------------------------

# positive_int, positive_float and choice (imported above from core/options.py) are the option checks.


def batch_size_of(probe: ModelProbe, batch_size) -> int:
    """The chunk size for perturbed passes: ``batch_size``, or the probe's when None."""
    return probe.batch_size if batch_size is None else positive_int("batch_size", batch_size)


# -- targets ---------------------------------------------------------------------------------------------------

PREDICTED = -1  # a target tensor entry that the compiled passes replace with the predicted class


def targets(probe: ModelProbe, n: int, target) -> np.ndarray:
    """``target`` as int32 (n,): an int for every image, a list with one per image, or None for the predicted
    class (encoded as PREDICTED, resolved inside the pass or by ``predicted``). Out of range -> OptionError."""
    if target is None:
        return np.full(n, PREDICTED, np.int32)
    return class_indices("target", target, n, probe.num_classes, also="None (the predicted class), ")


def stop_if_cancelled(cancel, when: str) -> None:
    """Raise Cancelled if the ``cancel`` event (a threading.Event or None) is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"cancelled {when}.")


def predicted(probe: ModelProbe, batch: np.ndarray, target: np.ndarray, batch_size: int | None = None,
              cancel=None):
    """Resolve PREDICTED entries with one forward pass; returns (targets (N,) int32, target logits (N,) float32).

    A ``cancel`` event already set raises Cancelled before the pass: a caller that only wants a method's options
    checked (a widget, before it queues the work) then costs no trace and no pass."""
    stop_if_cancelled(cancel, "before the first pass")
    logits = tf.concat([logit_fn(probe)(tf.constant(batch[i:i + (batch_size or probe.batch_size)]))
                        for i in range(0, len(batch), batch_size or probe.batch_size)], 0).numpy()
    target = np.where(target == PREDICTED, logits.argmax(-1), target).astype(np.int32)
    return target, logits[np.arange(len(batch)), target]


def _resolve(logits, target):
    """Inside a pass: the target per row, the predicted class where it is PREDICTED."""
    return tf.where(target < 0, tf.argmax(logits, -1, output_type=tf.int32), target)


# -- compiled passes, kept by the probe ---------------------------------------------------------------------------

def _cached(probe: ModelProbe, key: tuple, make: Callable):
    """``probe.compiled(("attribution", *key), make)``."""
    return probe.compiled(("attribution",) + key, make)


def _function(probe: ModelProbe, fn: Callable, signature: list):
    """A compiled attribution pass: traces counted by the probe. ``fn`` must not hold the probe."""
    return probe.tf_function(fn, input_signature=signature, family="attribution")


def _spec(probe: ModelProbe, batch=None):
    return tf.TensorSpec((batch,) + tuple(probe.input_shape), tf.float32)


def logit_fn(probe: ModelProbe):
    """Compiled x (N, H, W, C) -> logits (N, classes)."""
    def make():
        forward = probe.forward((), logits=True)
        return _function(probe, lambda x: forward(x)[-1], [_spec(probe)])
    return _cached(probe, ("logits",), make)


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
        forward = probe.forward((), logits=True, guided=guided)
        return _function(probe, lambda x, t: _input_gradient(forward, x, t),
                         [_spec(probe), tf.TensorSpec((None,), tf.int32)])
    return _cached(probe, ("gradient", guided), make)


def accumulate_fn(probe: ModelProbe, guided: bool = False):
    """Compiled sums of gradients over inputs made inside the pass, one row per (image, sample).

    Arguments: x (N, H, W, C) images, base (N, H, W, C) baselines, target (N,), idx (B,) image of each row,
    alpha (B,) path position, weight (B,), sigma () noise standard deviation, seed (2,) for the noise.
    Row b's input is ``base + alpha (x - base) + sigma * normal`` for image idx[b]. Returns (sum_b w g,
    sum_b w g^2), each (N, H, W, C), summed per image: the chunk loop adds them up without leaving TensorFlow.
    """
    def make():
        forward = probe.forward((), logits=True, guided=guided)

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
        return _function(probe, step, signature)
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

        return _function(probe, step, [_spec(probe), tf.TensorSpec((None,), tf.int32)])
    return _cached(probe, ("layer_gradient", path), make)


def masked_fn(probe: ModelProbe, kind: str, build: Callable, context: tuple, params: tuple, score: str):
    """Compiled target scores for masked inputs; see ``masked_scores``. One per (probe, kind, score)."""
    def make():
        forward = probe.forward((), logits=True)

        def step(x, fill, target, idx, context, params):
            m = build(idx, *context, *params)[..., None]
            f = tf.gather(fill, idx)
            inp = f + m * (tf.gather(x, idx) - f)
            out = forward(inp)[-1]
            if score == "probability":
                out = tf.nn.softmax(out, -1)
            return tf.gather(out, tf.gather(target, idx), batch_dims=1)

        def spec(a):  # rank and dtype only: a new size (segments, mask grid) never retraces
            return tf.TensorSpec((None,) * np.ndim(a), tf.as_dtype(np.asarray(a).dtype))

        signature = [_spec(probe), _spec(probe), tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), tf.int32),
                     tuple(spec(c) for c in context), tuple(spec(p) for p in params)]
        # The concrete function of the one signature, traced now (the stream calls it once per chunk): a call
        # skips tf.function's dispatch (binding and hashing the arguments' types to find the trace), about 2 ms a
        # chunk here, 1-3% of a chunk's time on the demo model.
        return _function(probe, step, signature).get_concrete_function()
    return _cached(probe, ("masked", kind, score), make)


def masked_scores(probe: ModelProbe, kind: str, build: Callable, batch: np.ndarray, fill: np.ndarray,
                  target: np.ndarray, idx: np.ndarray, params: tuple = (), context: tuple = (),
                  score: str = "logit", batch_size: int | None = None, progress=None, cancel=None) -> np.ndarray:
    """Scores of the target class for many masked copies of the images, in chunks of ``batch_size``; None: the
    chunk size the probe measured fastest for these images (``best_batch_size``; a long enough stream measures
    it in its first chunks and keeps learning, see ``_ChunkChooser``), the probe's ``batch_size`` until then.

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
    x, f, t = tf.constant(batch), tf.constant(fill), tf.constant(target, tf.int32)
    context = tuple(tf.constant(c) for c in context)
    chooser = None if batch_size is not None else _ChunkChooser(probe, batch.shape[1:], len(idx))
    out, start = [], 0
    while start < len(idx):
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"{kind} cancelled after {start} of {len(idx)} passes.")
        bs = batch_size_of(probe, batch_size) if chooser is None else chooser.next()
        stop = start + bs
        began = time.perf_counter()
        out.append(fn(x, f, t, tf.constant(idx[start:stop], tf.int32), context,
                      tuple(tf.constant(p[start:stop]) for p in params)))  # on the CPU the call returns when done
        if chooser is not None and stop <= len(idx):  # a short last chunk says little about its size
            chooser.timed(bs, time.perf_counter() - began)
        start = stop
        if progress is not None:
            progress(min(stop, len(idx)), len(idx))
    if chooser is not None:
        chooser.settle()
    return tf.concat(out, 0).numpy()


TRIAL_SIZES = (2, 4, 8, 16, 32)
"""Chunk sizes ``masked_scores`` tries (those up to the probe's ``batch_size``) before settling on one."""

EXPLORE_EVERY = 8
"""After the trials, one chunk in this many is scored at a neighbour of the best size (half or double it)."""


class _ChunkChooser:
    """The chunk sizes of one stream of masked passes, and what they teach the probe about its fastest chunk size
    for images of one shape (kept by the probe: ``best_batch_size``).

    Why measure: the fastest chunk is not the largest. MobileNetV2 at 224 on 2 loaded cores scored 170 ms per
    image in chunks of 2-4 and 245 ms in chunks of 32 (benchmarks/attribution.py, load 12-16: 8.1 images/s at 2,
    3.8 at 32; cache-sized activations win), while a small model gains from the largest chunk; only a measurement
    on the machine, the model and the image size knows.

    How: a stream long enough for it, on a probe that has not measured these images yet, starts with two
    interleaved rounds of ``TRIAL_SIZES`` (real work, not extra passes). Each size keeps the least seconds per
    image it has shown (a load burst only slows a chunk down, so the least is the best estimate), and the best is
    the size with the least. Two samples can both meet a burst: on an idle machine the trials once settled on 2
    where 4 was 14% faster (benchmarks/attribution.py: LIME and Kernel SHAP then ran at 1.18x the best
    throughput). So the choice keeps learning: one chunk in ``EXPLORE_EVERY`` goes to a neighbour of the best
    (half or double, in turn), on this stream and every later one, and the best follows the least time seen.
    The exploration costs at most a few percent (a neighbour is rarely much slower than the best)."""

    def __init__(self, probe: ModelProbe, shape, rows: int):
        self.probe = probe
        self.measured = _cached(probe, ("best_batch", tuple(shape)), dict)  # {"best": size, "seconds": {size: s}}
        self.sizes = [b for b in TRIAL_SIZES if b <= probe.batch_size] or [probe.batch_size]
        fresh = "best" not in self.measured
        self.trials = self.sizes * 2 if fresh and rows >= 2 * sum(self.sizes) else []
        self.learn = bool(self.trials) or not fresh  # a short first stream keeps the probe's batch size
        self.seconds = self.measured.setdefault("seconds", {})
        self.count = 0
        self.turn = 0

    def next(self) -> int:
        """The size of the next chunk."""
        if self.trials:
            return self.trials.pop(0)
        if not self.learn:
            return self.probe.batch_size
        self.settle()
        best = self.measured["best"]
        self.count += 1
        if self.count % EXPLORE_EVERY:
            return best
        i = self.sizes.index(best) if best in self.sizes else 0
        near = [self.sizes[j] for j in (i - 1, i + 1) if 0 <= j < len(self.sizes)]
        if not near:
            return best
        self.turn += 1
        return near[self.turn % len(near)]

    def timed(self, size: int, seconds: float):
        """A full chunk of ``size`` rows took ``seconds``."""
        if self.learn and size in self.sizes:
            self.seconds[size] = min(self.seconds.get(size, np.inf), seconds / size)

    def settle(self):
        """The best size: the least seconds per image seen so far."""
        if self.learn and self.seconds:
            self.measured["best"] = min(self.seconds, key=self.seconds.get)


def best_batch_size(probe: ModelProbe, shape) -> int | None:
    """The chunk size ``masked_scores`` measured fastest for images of ``shape`` (H, W, C) on ``probe``, or None
    before a stream long enough to measure it has run."""
    return _cached(probe, ("best_batch", tuple(shape)), dict).get("best")


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
