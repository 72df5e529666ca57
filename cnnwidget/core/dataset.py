"""One streamed pass over a data set: every channel's top-k examples and its statistics.

``channel_examples(probe, data, layers)`` reads each batch once, keeps for every channel (spatial layers) or unit
(vector layers) the k images that excite it most, and gathers per-channel statistics on the way. Memory is
O(layers x channels x k) whatever the data set's size: images are kept by their global index (their position in the
data, counted from 0 in the order the data yields them) and by a patch: for spatial layers the input under the
receptive field of the unit that scored, for vector layers the whole image, resized (see below).

How the pass works (the same with or without a ``tf.distribute.Strategy``): a compiled step per replica computes
the layers' outputs for its share of the batch, each image's score per channel (the spatial max or mean), the
batch's top-k candidates per channel that reach the channel's current k-th best score (so after the first batches
few candidates are sent at all), their patches (cut on the device), and the batch's statistics. Candidates and
statistics of all replicas (on all workers) are gathered with ``strategy.gather`` and merged on the host in numpy,
vectorized: top-k by (score descending, global index ascending), statistics by exact merge formulas (counts and
sums add; means and variances by Chan et al.'s pairwise update in float64).

Ties: equal scores are ordered by the lowest global index first (``tf.math.top_k`` keeps the lower index first,
and the host merge sorts by index within equal scores). The position of a spatial maximum is its first occurrence
in row-major order (``tf.argmax``). For ``score="mean"`` the position is still that of the maximum.

Vector layers (Dense, global pooling, any layer with output (N, C)): a unit's score is its value, and a unit sees
the whole image, so its "patch" is the whole input image, resized (area average) to the layer's patch size: the
input's own size up to ``DENSE_PATCH`` pixels a side, halved (down to ``DENSE_PATCH_MIN``) while the layer's kept
patches would exceed ``DENSE_PATCH_BYTES`` (a wide layer, e.g. 1000 classes x 16 slots), or ``dense_patch`` pixels
when the caller says. ``boxes`` are the whole image, ``receptive_field`` is None and ``patch_note`` says all this in
words. Memory stays O(layers x channels x k).
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view

from . import options as _options
from ._startup import stderr_captured
from .activations import fit_within
from .errors import ImageError, LayerError, OptionError
from .probe import LayerInfo, ModelProbe, probe_for
from .receptive_field import ReceptiveField, receptive_field

SCORES = ("max", "mean")
DEFAULT_BATCH = 64
HISTOGRAM_MARGIN = 0.1  # the histogram's first range: the first batch's [min, max] widened by this share of its width
LEVELS = 64  # the histogram's bins are 2**level base bins wide, level 0..63 (positions are clipped to +-2**60)
PROGRESS_SECONDS = 0.25  # progress is called at most this often (and always after the first and the last batch)
DENSE_PATCH = 64  # vector layers: the longer side of the whole-image patches, at most (the input's, if smaller)
DENSE_PATCH_MIN = 16  # ... halved while the layer's patches would take more than DENSE_PATCH_BYTES, down to this
DENSE_PATCH_BYTES = 32 * 2**20


@dataclass
class LayerExamples:
    """Top-k examples and statistics of one layer's C channels (spatial) or units (vector).

    Top-k, best first, ties by lowest global index (slots beyond the images seen: index -1, score NaN):
      ``indices`` (C, k) int64 global image indices; ``scores`` (C, k) float32 (the channel's spatial max or mean
      for that image); ``positions`` (C, k, 2) int32, (y, x) of the channel's maximum in that image (-1 for vector
      layers); ``boxes`` (C, k, 4) int32, (y0, x0, y1, x1) end-exclusive input pixels of the receptive field at that
      position (it may reach past the image where the layers padded; vector layers: the whole image, (0, 0, H, W));
      ``patches`` (C, k, h, w, channels) float32, the input (display space) inside the box, NaN outside the image and
      in empty slots; for vector layers the whole image resized to (h, w) (see the module docstring).
      ``patch_note``: what a patch is, in words (the receptive field's size, or "the whole image ... resized to ...").
    Statistics over every image and position of the data (float64, (C,)): ``mean``, ``std`` (population, ddof=0),
      ``min``, ``max``, ``zero_fraction`` (share of values exactly 0), ``dead`` (bool: the channel has one value
      everywhere on this data, e.g. a ReLU channel that is always 0).
    Histogram: ``histogram`` (C, bins) int64 over ``histogram_edges`` (C, bins + 1), covering every finite value
      the pass saw (its min and max included): per channel, the first batch's [min, max] widened by
      ``HISTOGRAM_MARGIN`` of its width on each side (not below 0 for a channel whose first batch had no negative
      value; a constant first batch takes the layer's width) cut in ``bins`` base bins; a later value outside the
      range doubles the bins' width (2, 4, ... base bins, aligned on the first range's lower edge, so the counts
      merge exactly) until the range holds it. The same data in the same first batch gives the same histogram
      whatever the batches after it and the replicas; bins past the data's ends may be empty. ``below`` and
      ``above`` (C,) count the values that are not finite (-inf and NaN below, +inf above), so
      ``histogram.sum(1) + below + above`` is the number of values. Bins are half-open, [edge i, edge i + 1).
    With labels: ``class_mean`` (K, C) the mean over images of each class of the channel's per-image spatial mean
      (NaN for a class with no image), ``class_counts`` (K,) images per class; K is the model's class count.
    """

    layer: str
    path: str
    spatial: bool
    score: str
    k: int
    indices: np.ndarray
    scores: np.ndarray
    positions: np.ndarray
    boxes: np.ndarray | None
    patches: np.ndarray | None
    receptive_field: ReceptiveField | None
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    zero_fraction: np.ndarray
    dead: np.ndarray
    histogram: np.ndarray
    histogram_edges: np.ndarray
    below: np.ndarray
    above: np.ndarray
    class_mean: np.ndarray | None = None
    class_counts: np.ndarray | None = None
    patch_note: str = ""

    @property
    def channels(self) -> int:
        return int(self.indices.shape[0])

    @property
    def whole_image(self) -> bool:
        """True for a vector layer: a unit sees the whole image, and its patches are whole images, resized."""
        return not self.spatial

    @property
    def patch_size(self) -> tuple:
        """(h, w) of the patches."""
        return tuple(int(v) for v in self.patches.shape[2:4]) if self.patches is not None else (0, 0)

    @property
    def approximate(self) -> bool:
        """True when the receptive field (and so the patches) is not exact; ``reason`` says why."""
        return bool(self.receptive_field is not None and self.receptive_field.approximate)

    @property
    def reason(self) -> str:
        return self.receptive_field.reason if self.receptive_field is not None else ""


@dataclass
class ChannelExamples:
    """What ``channel_examples`` returns: ``layers`` {key as asked: LayerExamples}; ``images`` seen; ``batches``
    done; ``partial`` True when not every image was seen (a progress snapshot, or a cancelled pass); ``cancelled``
    True when the pass was stopped by its cancel event."""

    layers: dict
    images: int
    batches: int
    k: int
    score: str
    partial: bool = False
    cancelled: bool = False
    labels: bool = False

    def __getitem__(self, layer) -> LayerExamples:
        return self.layers[layer]


def channel_examples(probe, data, layers, k: int = 16, score: str = "max", batch_size: int | None = None,
                     bins: int = 64, strategy: tf.distribute.Strategy | None = None,
                     progress: Callable | None = None, cancel=None, dense_patch: int | None = None) -> ChannelExamples:
    """Top-k images and statistics for every channel of ``layers`` from one streamed pass over ``data``.

    ``probe``: a ModelProbe or a Keras model. ``layers``: a layer (name, path, LayerInfo) or a list of them; the
    result is keyed as given. Spatial layers (N, H, W, C) and vector layers (N, C) (see the module docstring).
    ``data``: display-space images as a numpy array (N, H, W, C) or a tuple (images, labels); a ``tf.data.Dataset``
    of image batches (N, H, W, C), of single images (H, W, C), or of (images, labels) tuples; or a Python iterable /
    generator of batches (arrays or (images, labels) tuples). Labels are class indices (N,) or one-hot (N, K).
    ``k``: examples kept per channel. ``score``: "max" or "mean", the channel's spatial max or mean per image.
    ``batch_size``: images per step for arrays and unbatched data (default 64); a batched data set or a generator
    keeps its own batches unless ``batch_size`` is given. ``bins``: histogram bins. ``dense_patch``: the longer
    side in pixels of the whole-image patches kept for vector layers (default: see the module docstring).
    ``strategy``: a ``tf.distribute.Strategy`` (MirroredStrategy, MultiWorkerMirroredStrategy, ...): the data set is
    distributed by it (``experimental_distribute_dataset``; a batch is the global batch) and candidates and
    statistics are merged across replicas and workers. Default: the current strategy (none: one device, no
    distribution overhead). Under a multi-worker strategy every worker must run the same call on the same data;
    each gets the whole merged result.
    ``progress(done, total, partial)``: after a batch (at most every ``PROGRESS_SECONDS``, always after the first
    and the last), with batches done, the number of batches when known (else None) and a ChannelExamples of
    everything so far (``partial=True``). ``cancel``: a threading.Event checked before each batch; when set, the
    pass stops and returns what it gathered with ``partial`` and ``cancelled`` True (under a multi-worker strategy
    it must be set on every worker).
    """
    probe = probe_for(probe)
    k = _options.positive_int("k", k)
    score = _options.choice("score", score, SCORES)
    bins = _options.positive_int("bins", bins)
    if batch_size is not None:
        batch_size = _options.positive_int("batch_size", batch_size)
    if dense_patch is not None:
        dense_patch = _options.positive_int("dense_patch", dense_patch)
    if progress is not None and not callable(progress):
        raise OptionError(f"progress must be None or a function progress(done, total, partial); got {progress!r}.")
    if cancel is not None and not hasattr(cancel, "is_set"):
        raise OptionError(f"cancel must be None or a threading.Event; got {cancel!r} ({type(cancel).__name__}).")
    if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
        raise OptionError(f"strategy must be None or a tf.distribute.Strategy; got {strategy!r}.")
    keys, infos = _layers(probe, layers)
    if strategy is None and tf.distribute.has_strategy():
        strategy = tf.distribute.get_strategy()
    ds, total, labelled = _batches(probe, data, batch_size, numbered_here=strategy is None)
    plans = [_Plan(probe, info, k, dense_patch) for info in infos]
    _options.fits_in_memory("k", k, 2 * sum(p.nbytes for p in plans), "the kept patches")
    return _Pass(probe, keys, plans, k, score, bins, strategy).run(ds, total, labelled, progress, cancel)


@dataclass
class DataSource:
    """Data a view reads once per layer it shows (see ``data_source``): ``data`` is what ``channel_examples``
    takes, or a function returning it anew; ``size`` the image count when known (arrays), else None;
    ``labelled`` whether it carries labels (None: not known before a pass, for a generator function); ``note``
    the caveat of ``images.range_note`` on a sample of array images ("" when none or not checked)."""

    data: object
    size: int | None
    labelled: bool | None
    note: str = ""

    def get(self):
        """The data for one pass: a new generator for a generator function, else the data itself."""
        return self.data() if callable(self.data) else self.data


def data_source(probe, data, labels=None, strategy=None) -> DataSource:
    """Check ``data`` (and ``labels``, ``strategy``) for views that make several passes over it, one per layer:
    numpy images (N, H, W, C) (with ``labels``, class indices or one-hot), (images, labels), a
    ``tf.data.Dataset`` (images, or (images, labels)), or a function returning a new generator of batches. A
    generator or iterator itself is refused (it can be read once only), and so are ``labels`` with anything but
    numpy images. Raises ImageError / OptionError saying what was expected."""
    from .images import range_note

    probe = probe_for(probe)
    if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
        raise OptionError(f"strategy must be None or a tf.distribute.Strategy; got {strategy!r}.")
    if labels is not None:
        if not isinstance(data, np.ndarray):
            raise ImageError("labels= goes with images given as a numpy array; a tf.data.Dataset or a generator "
                             f"yields (images, labels) itself. Got data of type {type(data).__name__} and labels.")
        data = (data, labels)
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray):
        images, labels = data[0], _label_array(data[1], len(data[0]))
    elif isinstance(data, np.ndarray):
        images, labels = data, None
    elif isinstance(data, tf.data.Dataset):
        return DataSource(data, None, isinstance(data.element_spec, (tuple, list)))
    elif callable(data):
        return DataSource(data, None, None)
    elif hasattr(data, "__iter__") or hasattr(data, "__next__"):
        raise ImageError("data is an iterator or generator, which can be read only once; the view reads the data "
                         "once per layer shown. Give images as a numpy array (with labels=), a tf.data.Dataset, or "
                         "a function that returns a new generator of batches each time it is called.")
    else:
        raise ImageError(f"data must be images (a numpy array (N, H, W, C)), (images, labels), a tf.data.Dataset or "
                         f"a function returning a generator of batches; got {type(data).__name__}.")
    if images.ndim != 4:
        raise ImageError(f"data must be a batch of images (N, H, W, C); got an array of shape {images.shape}.")
    note = range_note(probe.images(images[:256]), probe.input_range) or ""  # a sample: the data may be large
    return DataSource(images if labels is None else (images, labels), len(images), labels is not None, note)


# -- layers and their receptive fields ------------------------------------------------------------------------

def _layers(probe: ModelProbe, layers):
    single = (str, LayerInfo, keras.layers.Layer, int, float, np.number)
    items = [layers] if isinstance(layers, single) else list(layers) if layers is not None else None
    if not items:
        raise LayerError(f"layers must name at least one layer; got {layers!r}. Spatial layers are: "
                         f"{', '.join(repr(i.path) for i in probe.spatial_layers[:12])}")
    infos = [probe.layer(item) for item in items]
    for info in infos:
        if len(info.output_shape) not in (1, 3):
            raise LayerError(f"layer {info.path!r} outputs {info.output_shape} per image; channel_examples takes "
                             "feature maps (H, W, C) and vectors (C,).")
    keys = [item if isinstance(item, str) else info.path for item, info in zip(items, infos)]
    if len(set(keys)) != len(keys):
        raise LayerError(f"layers lists a layer twice: {keys!r}.")
    return keys, infos


class _Plan:
    """What is computed for one layer: its shape, receptive field, and the padding its patches need."""

    def __init__(self, probe: ModelProbe, info: LayerInfo, k: int, dense_patch: int | None = None):
        self.info = info
        self.spatial = info.is_spatial
        self.channels = int(info.output_shape[-1])
        self.k = k
        self.field = None
        self.nbytes = 0
        self.device_patches = False  # patches cut on the replicas (multi-worker), else on the host for winners only
        h_in, w_in, ch = probe.input_shape
        self.image_channels = int(ch)
        if not self.spatial:  # a unit sees the whole image: its patch is the whole image, resized (see _whole)
            self.input_size = (int(h_in), int(w_in))
            self.size = _dense_patch_size(self.input_size, int(ch), self.channels, k, dense_patch)
            self.nbytes = self.channels * k * self.size[0] * self.size[1] * int(ch) * 4
            h, w = self.input_size
            self.note = (f"a unit of this layer sees the whole {h}x{w} image: each patch is the whole image" +
                         ("" if self.size == self.input_size else
                          f", resized to {self.size[0]}x{self.size[1]} (area average)"))
        if self.spatial:
            self.height, self.width = int(info.output_shape[0]), int(info.output_shape[1])
            self.field = receptive_field(probe, info)
            rf = self.field
            self.size = rf.size
            self.note = (f"the input under the receptive field ({rf.size[0]}x{rf.size[1]} px) of the unit that fired "
                         "most" + (f" (approximate: {rf.reason})" if rf.approximate else ""))
            self.pad_before = tuple(max(0, -rf.start[a]) for a in range(2))
            last = ((self.height - 1) * rf.jump[0] + rf.start[0] + rf.size[0],
                    (self.width - 1) * rf.jump[1] + rf.start[1] + rf.size[1])
            self.pad_after = (max(0, last[0] - int(h_in)), max(0, last[1] - int(w_in)))
            self.nbytes = self.channels * k * rf.size[0] * rf.size[1] * int(ch) * 4


def _dense_patch_size(input_size: tuple, image_channels: int, channels: int, k: int, side: int | None) -> tuple:
    """(h, w) of a vector layer's whole-image patches: the longer side ``side`` if given, else the input's up to
    ``DENSE_PATCH``, halved while the layer's patches would exceed ``DENSE_PATCH_BYTES`` (not below
    ``DENSE_PATCH_MIN``); the aspect ratio kept, never larger than the input."""
    h, w = input_size
    if side is None:
        side = min(max(h, w), DENSE_PATCH)

        def nbytes(s):
            ph, pw = fit_within(h, w, s)
            return channels * k * ph * pw * image_channels * 4

        while side > DENSE_PATCH_MIN and nbytes(side) > DENSE_PATCH_BYTES:
            side = max(DENSE_PATCH_MIN, side // 2)
    return fit_within(h, w, side)


def _whole(plan: _Plan, images):
    """Whole images (M, H, W, channels) as a vector layer's patches (M, h, w, channels): resized by area average
    (each patch pixel the mean of the input it covers, exact block means for a whole factor), or the images as
    they are at the input's size. The same TensorFlow op on the replicas and on the host, so both give the same
    values."""
    if plan.size == plan.input_size:
        return images
    return tf.image.resize(images, plan.size, method="area")


# -- data ----------------------------------------------------------------------------------------------------

def _batches(probe: ModelProbe, data, batch_size, numbered_here: bool = False):
    """(a tf.data.Dataset of (images float32, global index int64, labels int64 (-1: none)), batches or None,
    labelled). ``numbered_here``: a data set or generator is numbered (and its images cast, its labels made
    indices) batch by batch as it is read, not by a map and a scan in the pipeline, which are made anew (traced) for
    each pass: about 250 ms of CPU a pass (the first is an iterable of those triples then, not a data set; a
    strategy needs the pipeline's, to number the images before it shares them out)."""
    h, w, c = probe.input_shape
    labelled = False
    if isinstance(data, tf.data.Dataset):
        ds = data
    elif isinstance(data, np.ndarray) or (isinstance(data, tuple) and len(data) == 2
                                          and isinstance(data[0], np.ndarray)):
        images, labels = (data, None) if isinstance(data, np.ndarray) else data
        images = probe.images(images)
        if labels is not None:
            labels = _label_array(labels, len(images))
        n = len(images)
        bs = batch_size or DEFAULT_BATCH
        parts = (images, np.arange(n, dtype=np.int64),
                 labels if labels is not None else np.full(n, -1, np.int64))
        ds = tf.data.Dataset.from_tensor_slices(parts).batch(bs)
        return ds.prefetch(2), -(-n // bs), labels is not None
    elif hasattr(data, "__iter__") or hasattr(data, "__next__"):
        ds = _from_iterable(data)
    else:
        raise ImageError(f"data must be images (a numpy array (N, H, W, C) or (images, labels)), a tf.data.Dataset or "
                         f"a generator of batches; got {type(data).__name__}.")
    spec = ds.element_spec
    if isinstance(spec, (tuple, list)):
        if len(spec) != 2:
            raise ImageError(f"data must yield images or (images, labels); it yields {len(spec)} items: {spec}.")
        labelled = True
        image_spec = spec[0]
    else:
        image_spec = spec
    if not isinstance(image_spec, tf.TensorSpec) or image_spec.shape.rank not in (3, 4):
        raise ImageError(f"data must yield images (H, W, C) or batches (N, H, W, C), alone or with labels; it yields "
                         f"{spec}.")
    if image_spec.shape.rank == 3:
        ds = ds.batch(batch_size or DEFAULT_BATCH)
    elif batch_size is not None:
        ds = ds.rebatch(batch_size)
    got = tuple(ds.element_spec[0].shape[1:] if labelled else ds.element_spec.shape[1:])
    if any(g is not None and g != int(want) for g, want in zip(got, (h, w, c))):
        raise ImageError(f"the model takes images {(h, w, c)}; data yields {got}.")
    cardinality = int(ds.cardinality())
    total = cardinality if cardinality >= 0 else None
    if numbered_here:
        return _Numbered(ds.prefetch(2), labelled), total, labelled

    def parts(*items):
        x = tf.cast(items[0], tf.float32)
        n = tf.shape(x)[0]
        if labelled:
            y = items[1]
            if y.shape.rank == 2:
                y = tf.argmax(y, axis=-1)
            y = tf.reshape(tf.cast(y, tf.int64), [-1])
        else:
            y = tf.fill([n], tf.constant(-1, tf.int64))
        return x, y

    ds = ds.map(parts)

    def number(offset, item):
        x, y = item
        n = tf.cast(tf.shape(x)[0], tf.int64)
        return offset + n, (x, offset + tf.range(n, dtype=tf.int64), y)

    ds = ds.scan(tf.constant(0, tf.int64), number)
    return ds.prefetch(2), total, labelled


class _Numbered:
    """Batches of a data set as (images float32, global index int64, labels int64 (-1: none)), numbered as they
    are read (see ``_batches``): what the pipeline's map and scan make, without them."""

    def __init__(self, ds: tf.data.Dataset, labelled: bool):
        self.ds, self.labelled = ds, labelled

    def __iter__(self):
        offset = 0
        for item in self.ds:
            x = tf.cast(item[0] if self.labelled else item, tf.float32)  # no op when float32 already
            n = int(x.shape[0])
            if self.labelled:
                y = item[1]
                if y.shape.rank == 2:
                    y = tf.argmax(y, axis=-1)
                y = tf.reshape(tf.cast(y, tf.int64), [-1])
            else:
                y = tf.constant(np.full(n, -1, np.int64))
            yield x, tf.constant(np.arange(offset, offset + n, dtype=np.int64)), y
            offset += n


def _from_iterable(data) -> tf.data.Dataset:
    it = iter(data)
    try:
        first = next(it)
    except StopIteration:
        raise ImageError("data gave no images: pass a non-empty data set.") from None

    def spec_of(item):
        a = np.asarray(item)
        if a.dtype == object:
            raise ImageError(f"data's generator must yield arrays or (images, labels); got {type(item).__name__}.")
        dtype = tf.float32 if a.dtype.kind == "f" else tf.as_dtype(a.dtype)
        return tf.TensorSpec((None,) + a.shape[1:], dtype)

    if isinstance(first, (tuple, list)):
        if len(first) != 2:
            raise ImageError(f"data's generator must yield images or (images, labels); it yielded {len(first)} items.")
        signature = (spec_of(first[0]), spec_of(first[1]))

        def gen():
            for images, labels in itertools.chain([first], it):
                yield np.asarray(images, signature[0].dtype.as_numpy_dtype), np.asarray(labels)
    else:
        signature = spec_of(first)

        def gen():
            for images in itertools.chain([first], it):
                yield np.asarray(images, signature.dtype.as_numpy_dtype)

    return tf.data.Dataset.from_generator(gen, output_signature=signature)


def _label_array(labels, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(-1)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise ImageError(f"labels must be class indices (N,) or one-hot (N, K) for the {n} images; got an array "
                         f"{labels.shape} of {labels.dtype}.")
    return labels.astype(np.int64)


# -- the compiled steps --------------------------------------------------------------------------------------

def _steps(probe: ModelProbe, plans: list, k: int, score: str, bins: int, classes: int):
    paths = tuple(p.info.path for p in plans)
    key = ("dataset", paths, tuple((p.device_patches, p.size) for p in plans), k, score, bins, classes)
    return probe.compiled(key, lambda: _make_steps(probe, plans, k, score, bins, classes))


def _make_steps(probe: ModelProbe, plans: list, k: int, score: str, bins: int, classes: int):
    forward = probe.forward(tuple(p.info.path for p in plans))
    h, w, c = (int(v) for v in probe.input_shape)
    image = tf.TensorSpec((None, h, w, c), tf.float32)
    ints = tf.TensorSpec((None,), tf.int64)
    per_layer = [tf.TensorSpec((p.channels,), tf.float32) for p in plans]
    rows_per_layer = [tf.TensorSpec((), tf.int32) for _ in plans]

    def ranges(x):  # one float64 packet per replica: per layer, the C minima then the C maxima
        out = []
        for plan, a in zip(plans, forward(x)):
            v = tf.reshape(a, (-1, plan.channels))
            out += [tf.reduce_min(v, 0), tf.reduce_max(v, 0)]
        return tf.cast(tf.concat(out, 0), tf.float64)

    def step(x, index, labels, thresholds, lows, highs, xla_rows):
        # One float64 packet per replica (see _unpack): one transfer, and one all-gather across workers.
        finite = tf.reduce_all(tf.math.is_finite(tf.reshape(x, (tf.shape(x)[0], -1))), 1)
        bad = tf.reduce_sum(tf.cast(~finite, tf.int64))
        # A batch with a bad image is refused after the step (see _Pass._absorb): nothing below needs finite values
        # (the histogram's slots put NaN below its range), so the batch is not masked (a copy of it: 3 ms of CPU).
        pieces = [bad]
        for plan, a, threshold, lo, hi, rows in zip(plans, forward(x), thresholds, lows, highs, xla_rows):
            cand, stats = _layer_step(plan, x, a, index, labels, threshold, lo, hi, rows, k, score, bins, classes)
            pieces += [tf.size(cand["channel"])] + [cand[name] for name in _candidate_names(plan)]
            pieces += [stats[name] for name in _stat_names(classes)]
        return tf.concat([tf.reshape(tf.cast(t, tf.float64), [-1]) for t in pieces], 0)

    return (probe.tf_function(ranges, input_signature=[image], family="dataset", autograph=False),
            probe.tf_function(step, input_signature=[image, ints, ints, per_layer, per_layer, per_layer,
                                                     rows_per_layer], family="dataset", autograph=False))


def _layer_step(plan: _Plan, x, a, index, labels, threshold, lo, hi, rows, k, score, bins, classes):
    n = tf.shape(a)[0]
    C = plan.channels
    positions = plan.height * plan.width if plan.spatial else 1
    flat = tf.reshape(a, (n, positions, C))
    # The statistics' loops over the layer's output in XLA, padded to ``rows`` images, or as TensorFlow ops (rows
    # 0: a pass too small to pay for a compilation; see _Pass._xla_rows).
    xla = (rows >= n) & (n > 0)
    # Each image's sum, max and min over its positions, shared by the scores and the statistics.
    per = tf.cond(xla, lambda: _padded(_per_image, rows, flat), lambda: _per_image_ops(flat))
    scores = per["max"] if score == "max" or not plan.spatial else per["sum"] / float(positions)
    per_image = per["sum"] / float(positions)
    # Candidates: each channel's best k of this batch that reach its current k-th best score.
    top, local = tf.math.top_k(tf.transpose(scores), tf.minimum(k, n))  # (C, kk); ties: lower index first
    chosen = tf.where(top >= threshold[:, None])  # (M, 2): channel, rank
    channel = tf.cast(chosen[:, 0], tf.int32)
    image = tf.gather_nd(local, chosen)
    cand = {"channel": channel, "index": tf.gather(index, image), "score": tf.gather_nd(top, chosen),
            "where": _argmax_positions(flat, image, channel) if plan.spatial else tf.fill(tf.shape(channel), -1)}
    if plan.device_patches:
        cand["patch"] = _patches(plan, x, image, cand["where"])
    # Statistics of this batch, each with a leading axis of 1 (one row per replica once gathered).
    count, mean, m2, zeros, vmin, vmax, hist, level, start, lo, hi = _batch_stats(flat, per, lo, hi, bins, xla, rows)
    stats = {"count": tf.cast(count, tf.int64)[None], "mean": mean[None], "m2": m2[None], "zeros": zeros[None],
             "min": vmin[None], "max": vmax[None], "hist": tf.reshape(hist, (1, C, bins + 2)), "level": level[None],
             "start": start[None], "lo": lo[None], "hi": hi[None]}
    if classes:
        known = (labels >= 0) & (labels < classes)
        segment = tf.where(known, labels, tf.cast(classes, tf.int64))
        sums = tf.math.unsorted_segment_sum(per_image, segment, classes + 1)
        counts = tf.math.unsorted_segment_sum(tf.ones_like(labels), segment, classes + 1)
        stats["class_sum"] = sums[None, :classes]
        stats["class_count"] = counts[None, :classes]
        stats["bad_labels"] = tf.reduce_sum(tf.cast((labels >= classes) | (labels < -1), tf.int64))[None]
    return cand, stats


def _argmax_positions(flat, image, channel):
    """The position (flat y * W + x; the first maximum in row-major order) of the largest value of each candidate's
    map ``flat[image[m], :, channel[m]]``: (M,) int32. Taken for the candidates only: an argmax over the whole
    batch cost 10-12 ms of CPU a batch of block4 of the demo model, and after the first batches only a few
    candidates reach the running top-k."""
    m = tf.shape(image)[0]
    p = tf.shape(flat)[1]
    shape = tf.stack([m, p])
    idx = tf.stack([tf.broadcast_to(image[:, None], shape), tf.broadcast_to(tf.range(p)[None, :], shape),
                    tf.broadcast_to(channel[:, None], shape)], -1)
    return tf.argmax(tf.gather_nd(flat, idx), axis=1, output_type=tf.int32)


def _per_image_ops(f) -> dict:
    """Per image and channel of ``f`` (n images, P positions, C channels), over its positions: sum, max and min,
    each (n, C) float32. ``_per_image`` is the same in one XLA loop over ``f`` (block4 of the demo model, 128 x 16
    x 16 x 128 a batch: 6-8 ms of CPU against 9-13 ms as three TensorFlow reductions)."""
    return {"sum": tf.reduce_sum(f, 1), "max": tf.reduce_max(f, 1), "min": tf.reduce_min(f, 1)}


_per_image = tf.function(_per_image_ops, jit_compile=True, reduce_retracing=True, autograph=False)


def _padded(loop, rows, f, *args):
    """``loop`` (an XLA function of per-image rows) on ``f`` (n, P, C) padded with zeros to ``rows`` >= n images,
    its outputs cut back to the first n: XLA compiles a loop for each shape it meets, and a pass's smaller batches
    (its last, ragged) take the shape compiled for its first."""
    n = tf.shape(f)[0]
    out = loop(tf.pad(f, [[0, rows - n], [0, 0], [0, 0]]), *args)  # no copy when rows == n
    return tf.nest.map_structure(lambda t: t[:n], out)


def _batch_stats(f, per: dict, lo, hi, bins: int, xla, xla_rows):
    """Per channel of ``f`` (n images, P positions, C channels; P = 1 for a dense layer), given its per-image
    reductions ``per`` (``_per_image``): count, mean, sum of squared deviations, zeros, min, max, and the histogram
    of this batch on the lattice of the base range [lo, hi) (``_window``): C * (bins + 2) counts, slot 0 for -inf
    and NaN, 1..bins the window's bins, bins + 1 for +inf; with its ``level`` and ``start`` (C,) int32.

    Every reduction runs over the positions of each image first, then over the images: reducing the (n * P, C)
    matrix down its columns in one go is slow on CPU for the few channels of an early layer (block1 of the demo
    model, 64 x 64 x 16: 59 ms for a batch of 64, against 19 ms this way; in XLA too: the sum of squares of a block4
    batch over both axes in one XLA computation took 13 ms of CPU, over the positions 5-7 ms). After ``_per_image``,
    one more XLA loop over ``f`` (``_slots_and_deviations``) gives the histogram's slots, with the zeros in a slot
    of their own, and each image's sum of squared deviations from the batch's mean; then a bincount of the slots.
    (Block4, at load ~7: 19-23 ms of CPU for ``_per_image`` and that loop together, against 31-38 ms for the three
    TensorFlow reductions, the sum of squares and the slots with the zeros counted by a reduction. A one-loop
    shifted form, the sums of f - ref and of its squares together, made XLA give up fusing the sibling reductions:
    45-55 ms.)"""
    rows = tf.shape(f)[0] * tf.shape(f)[1]
    count = tf.cast(rows, tf.float32)
    mean = tf.reduce_sum(per["sum"], 0) / tf.maximum(count, 1.0)
    vmin = tf.reduce_min(per["min"], 0)
    vmax = tf.reduce_max(per["max"], 0)
    # A NaN base range: this is the pass's first batch (one device), whose range is the base (``_base_range``).
    first_lo, first_hi = _base_range_tf(vmin, vmax)
    first = tf.math.is_nan(lo)
    lo, hi = tf.where(first, first_lo, lo), tf.where(first, first_hi, hi)
    C = f.shape[-1]
    level, start = _window(vmin, vmax, lo, hi, bins)
    zero_bin = tf.cast(_bins(tf.zeros_like(lo), lo, hi, level, start, bins), tf.int32)
    args = (f, lo, hi, level, start, mean, bins)
    slots, deviations = tf.cond(xla, lambda: _padded(_slots_and_deviations, xla_rows, *args),
                                lambda: _slots_and_deviations_plain(per["sum"], *args))
    m2 = tf.reduce_sum(deviations, 0)
    zeros, hist = _histogram(slots, zero_bin, C, bins)
    return count, mean, m2, zeros, vmin, vmax, hist, level, start, lo, hi


def _slots_and_deviations_ops(f, lo, hi, level, start, mean, bins):
    """Each value of ``f`` (n, P, C)'s histogram slot (n, P, C) int32 in its channel's window (``level``,
    ``start``: ``_window``; see ``_slots``), and each image's sum of squared deviations from ``mean`` (n, C)
    float32. ``_slots_and_deviations`` is the same in one XLA loop over ``f``. Pure arithmetic on its inputs, no
    model state: the XLA loop's compilations are keyed by shape only (and ``bins``). The window (a few operations
    on (C, LEVELS) values) stays outside: in the loop it doubled the compilation's time (0.3-0.5 s of CPU)."""
    return _slots(f, lo, hi, level, start, bins), tf.reduce_sum(tf.square(f - mean), 1)


_slots_and_deviations = tf.function(_slots_and_deviations_ops, jit_compile=True, reduce_retracing=True,
                                    autograph=False)


def _slots_and_deviations_plain(sums, f, lo, hi, level, start, mean, bins):
    """``_slots_and_deviations_ops`` as TensorFlow ops, each a pass over ``f`` (these ops are memory-bound: their
    cost is the passes): when every value is finite (each image's ``sums`` (n, C) is) and so is every channel's
    lattice scale, the slots skip the not-finite cases (``_lattice`` and ``_slots`` less six passes, the same
    slots: no value can be NaN or infinite on the way but a product clipped to +-2**60 as there). Process CPU, a
    batch of 64 of the demo model at load 15: block1 64 ms against 102, block3 9 against 14, block4 20 against 34."""
    scale = tf.cast(bins, tf.float32) / (hi - lo)  # as _lattice has it

    def finite():
        t = tf.clip_by_value((f - lo) * scale, -2.0 ** 60, 2.0 ** 60)
        j = tf.clip_by_value(tf.floor(t * tf.gather(tf.constant(_LEVEL_SCALES), level)) - tf.cast(start, tf.float32),
                             0.0, tf.cast(bins - 1, tf.float32))  # as _bins has it
        j = tf.where(tf.equal(f, 0.0), tf.cast(bins + 1, tf.float32), j)
        offset = tf.cast(tf.range(tf.shape(f)[-1]) * (bins + 3) + 1, tf.float32)
        return tf.cast(j + offset, tf.int32)

    ok = (tf.reduce_all(tf.math.is_finite(sums)) & tf.reduce_all(tf.math.is_finite(scale) & (scale > 0))
          & tf.reduce_all(tf.math.is_finite(lo)))
    slots = tf.cond(ok, finite, lambda: _slots(f, lo, hi, level, start, bins))
    return slots, tf.reduce_sum(tf.math.squared_difference(f, mean), 1)


def _bins(f, lo, hi, level, start, bins: int):
    """Each finite value's bin in its channel's window (``level``, ``start``; see ``_window``), float32 0..bins - 1.
    The window holds every finite value of the batch: the clip only guards the end bins against rounding."""
    scale = tf.gather(tf.constant(_LEVEL_SCALES), level)
    return tf.clip_by_value(tf.floor(_lattice(f, lo, hi, bins) * scale) - tf.cast(start, tf.float32), 0.0,
                            tf.cast(bins - 1, tf.float32))


def _slots(f, lo, hi, level, start, bins: int):
    """Each value's histogram slot, channel c's at c * (bins + 3): 0 for -inf and NaN (an image refused after the
    step; its cast to an integer is undefined), 1 + its bin (``_bins``) for a finite value other than 0, bins + 1
    for +inf, bins + 2 for a value exactly 0 (so the zeros are counted by the histogram's bincount: a reduction of
    their own cost 6 ms of CPU a block4 batch). int32, the shape of ``f``."""
    j = _bins(f, lo, hi, level, start, bins)
    j = tf.where(tf.math.is_finite(f), j, tf.where(f > 0, tf.cast(bins, tf.float32), -1.0))
    j = tf.where(tf.equal(f, 0.0), tf.cast(bins + 1, tf.float32), j)
    offset = tf.cast(tf.range(tf.shape(f)[-1]) * (bins + 3) + 1, tf.float32)
    return tf.cast(j + offset, tf.int32)


def _histogram(slots, zero_bin, C: int, bins: int):
    """The zeros (C,) int64 and the histogram (C, bins + 2) int64 (slot 0 for -inf and NaN, 1..bins the window's
    bins, bins + 1 for +inf) of a batch's ``slots`` (``_slots``): one bincount over them (7-9 ms of CPU a block4
    batch; XLA's scatter took 41), the zeros then added to the bin of 0, ``zero_bin`` (C,). The op itself:
    ``tf.math.bincount`` first takes the slots' maximum for the output's size, a loop over them (2-3 ms) for a
    size its minlength and maxlength fix anyway."""
    counts = tf.raw_ops.DenseBincount(input=tf.reshape(slots, [-1]), size=C * (bins + 3),
                                      weights=tf.zeros([0], tf.int64), binary_output=False)
    counts = tf.reshape(counts, (C, bins + 3))
    zeros = counts[:, bins + 2]
    hist = counts[:, :bins + 2] + tf.one_hot(zero_bin + 1, bins + 2, dtype=tf.int64) * zeros[:, None]
    return zeros, hist


_LEVEL_SCALES = 2.0 ** -np.arange(LEVELS, dtype=np.float32)  # exact powers of two: a level's bins nest in the next


def _lattice(v, lo, hi, bins: int):
    """Where values ``v`` (..., C) lie on channel c's lattice, in base bins from ``lo[c]`` (a base bin is
    (hi - lo) / bins wide): float32, clipped to +-2**60, NaN as 0. The value's bin at level k is
    floor(position * 2**-k): the multiplication by a power of two is exact, so a bin at level k + 1 is exactly two
    bins of level k, and counts rebin exactly (``_Stats.merge``)."""
    t = tf.clip_by_value((v - lo) * (tf.cast(bins, tf.float32) / (hi - lo)), -2.0 ** 60, 2.0 ** 60)
    return tf.where(tf.math.is_nan(t), tf.zeros_like(t), t)


def _window(vmin, vmax, lo, hi, bins: int):
    """Per channel, the histogram window of a batch whose values lie in [vmin, vmax]: the lowest level k (bins
    2**k base bins wide) at which ``bins`` bins from min(its lowest bin, 0) hold its highest bin and bin 0 (the
    base range's first: every window holds it, so windows of any batches overlap and merge into one no wider
    than needed), and that first bin's index. (C,) int32 each; the same for the same values on any device."""
    scales = tf.constant(_LEVEL_SCALES)
    low = tf.minimum(tf.floor(_lattice(vmin, lo, hi, bins)[:, None] * scales), 0.0)  # (C, LEVELS)
    high = tf.maximum(tf.floor(_lattice(vmax, lo, hi, bins)[:, None] * scales), 0.0)
    # fitting is monotone in the level (halving the bins' index keeps the span or shrinks it): the first level that
    # fits is the count of those that do not
    level = tf.reduce_sum(tf.cast(high - low > bins - 1, tf.int32), 1)
    level = tf.minimum(level, LEVELS - 1)
    return level, tf.cast(tf.gather(low, level, batch_dims=1), tf.int32)


# When the statistics' loops run in XLA. XLA compiles them for each shape of a layer's output it meets, and its first
# compilation in a process starts XLA itself: a small pass never pays that back (a user's first pass over 256 images
# took 0.9 s of CPU longer, the tests twice as long). A layer's loops run in XLA once the CPU they save on its output's
# values (XLA_SAVES seconds a value, against the plain TensorFlow ops) reaches what compiling them costs (XLA_COMPILE,
# plus XLA_START in a process that has not started XLA): counting the values of that shape done with the plain ops in
# this process so far, this batch's, and when the pass's number of batches is known those left (a compilation then
# pays at the first batch of a long pass; else it costs at most about twice what it saves, once the plain ops would
# have paid for it). A shape compiled before, by any pass of the process, is used at once; a smaller batch (a pass's
# ragged last) is padded to it unless it has less than 1 / XLA_PAD of its images. See ``_Pass._xla_rows``.
# Measured (process CPU at load 13, /tmp/t1/calib.py, not in the repo): on the demo model's blocks 1-4 the loops
# saved 11-20 ns a value at batches of 128 and 7-9 at 64 (the plain ops 12-29 ns, the loops 5-8); compiling both
# took 0.3-0.5 s for a shape, starting XLA 0.1 s. On the tests' tiny layers the saving is the ops' fixed cost, 1-1.6
# ms a batch.
XLA_SAVES = 8e-9
XLA_COMPILE = 0.4
XLA_START = 0.1
XLA_PAD = 4
_XLA_LOCK = threading.Lock()
_XLA_STARTED = False  # True once _start_xla_quietly has run in this process
_XLA_SHAPES: dict = {}  # (positions, channels, bins): the batch sizes whose XLA loops were asked for in this process
_PLAIN_VALUES: dict = {}  # (positions, channels, bins): values done with the plain ops in this process
_TF_INFO_LINE = re.compile(rb"^I\d{4} [\d:.]+ +\d+ [^\]]+\] ")  # TensorFlow's C++ INFO log line


@tf.function(jit_compile=True, autograph=False)
def _xla_first(v):
    return v + 1.0


def _start_xla_quietly() -> None:
    """The first XLA compilation of a process writes TensorFlow INFO lines straight to descriptor 2 ("XLA service
    ... initialized", "StreamExecutor [0]: Host", "Compiled cluster using XLA!"), which ipykernel puts in the cell
    of the first pass. Once per process, before a pass's first XLA loop, a tiny function is compiled here inside
    ``stderr_captured`` (as TensorFlow's import is); what was written meanwhile is written back, less TensorFlow's
    C++ INFO lines (another thread's output is delayed, not lost)."""
    global _XLA_STARTED
    with _XLA_LOCK:
        if _XLA_STARTED:
            return
        with stderr_captured() as captured:
            _xla_first(tf.zeros((1,)))
        _XLA_STARTED = True
        rest = b"".join(line for line in captured[0].splitlines(True) if not _TF_INFO_LINE.match(line)) \
            if captured else b""
        if rest:
            os.write(2, rest)


def _candidate_names(plan: _Plan) -> tuple:
    return ("channel", "index", "score", "where") + (("patch",) if plan.device_patches else ())


def _stat_names(classes: int) -> tuple:
    return ("count", "mean", "m2", "zeros", "min", "max", "hist", "level", "start", "lo", "hi") + (
        ("class_sum", "class_count", "bad_labels") if classes else ())


def _unpack(packets: np.ndarray, plans: list, bins: int, classes: int):
    """The steps' packets (one per replica, concatenated) as (bad image count, [(candidates, stats)] per layer):
    candidates of all replicas concatenated, statistics with one row per replica. Exact: float32 values, int32 and
    int64 counts and indices below 2**53 all fit a float64."""
    bad, layers, offset = 0, [([], []) for _ in plans], 0
    while offset < len(packets):
        bad += int(packets[offset])
        offset += 1
        for plan, (cands, stats) in zip(plans, layers):
            m = int(packets[offset])
            offset += 1
            cand = {}
            for name in _candidate_names(plan):
                size = m * (int(np.prod(plan.size)) * plan.image_channels if name == "patch" else 1)
                cand[name] = packets[offset:offset + size]
                offset += size
            if "patch" in cand:
                cand["patch"] = cand["patch"].astype(np.float32).reshape(
                    (m, plan.size[0], plan.size[1], plan.image_channels))
            cands.append(cand)
            C = plan.channels
            sizes = {"count": 1, "mean": C, "m2": C, "zeros": C, "min": C, "max": C, "hist": C * (bins + 2),
                     "level": C, "start": C, "lo": C, "hi": C,
                     "class_sum": classes * C, "class_count": classes, "bad_labels": 1}
            stat = {}
            for name in _stat_names(classes):
                stat[name] = packets[offset:offset + sizes[name]]
                offset += sizes[name]
            stat["hist"] = stat["hist"].reshape(C, bins + 2).astype(np.int64)
            stat["level"] = stat["level"].astype(np.int64)
            stat["start"] = stat["start"].astype(np.int64)
            if classes:
                stat["class_sum"] = stat["class_sum"].reshape(classes, C)
                stat["class_count"] = stat["class_count"].astype(np.int64)
            stats.append(stat)
    out = []
    for plan, (cands, stats) in zip(plans, layers):
        cand = {name: np.concatenate([c[name] for c in cands]) for name in _candidate_names(plan)}
        cand["channel"] = cand["channel"].astype(np.int64)
        cand["index"] = cand["index"].astype(np.int64)
        cand["where"] = cand["where"].astype(np.int32)
        cand["score"] = cand["score"].astype(np.float32)
        stat = {name: np.stack([s[name] for s in stats]) for name in stats[0]}
        stat["count"] = stat["count"][:, 0].astype(np.int64)
        stat["zeros"] = stat["zeros"].astype(np.int64)
        out.append((cand, stat))
    return bad, out


def _patches(plan: _Plan, x, image, where):
    """The input under the receptive field of unit ``where`` (flat y * W + x) of image ``image`` of the batch:
    (M, h, w, channels), NaN outside the image; for a vector layer the whole image, resized (``_whole``)."""
    if not plan.spatial:
        return _whole(plan, tf.gather(x, tf.cast(image, tf.int32)))
    rf = plan.field
    (pt, pl), (pb, pr) = plan.pad_before, plan.pad_after
    padded = tf.pad(x, [[0, 0], [pt, pb], [pl, pr], [0, 0]], constant_values=float("nan"))
    y = where // plan.width
    xx = where % plan.width
    y0 = y * rf.jump[0] + rf.start[0] + pt
    x0 = xx * rf.jump[1] + rf.start[1] + pl
    rows = y0[:, None] + tf.range(rf.size[0])[None]  # (M, h)
    cols = x0[:, None] + tf.range(rf.size[1])[None]  # (M, w)
    m = tf.shape(image)[0]
    shape = (m, rf.size[0], rf.size[1])
    idx = tf.stack([tf.broadcast_to(tf.cast(image, tf.int32)[:, None, None], shape),
                    tf.broadcast_to(rows[:, :, None], shape), tf.broadcast_to(cols[:, None, :], shape)], -1)
    return tf.gather_nd(padded, idx)


# -- the pass ------------------------------------------------------------------------------------------------

class _Top:
    """One layer's running top-k: unsorted slots per channel (a slot keeps its patch until a better image takes it)."""

    def __init__(self, plan: _Plan, k: int):
        C = plan.channels
        self.plan, self.k = plan, k
        self.scores = np.full((C, k), -np.inf, np.float32)
        self.index = np.full((C, k), -1, np.int64)
        self.where = np.full((C, k), -1, np.int32)
        self.patches = np.full((C, k, plan.size[0], plan.size[1], plan.image_channels), np.nan, np.float32)

    def thresholds(self) -> np.ndarray:
        full = (self.index >= 0).all(1)
        return np.where(full, self.scores.min(1), -np.inf).astype(np.float32)

    def merge(self, cand: dict):
        """Merge candidates; returns (slots, candidate numbers) of the winners, whose patches the caller cuts
        when the candidates came without them."""
        none = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        if not len(cand["channel"]):
            return none
        C, k = self.scores.shape
        old = self.index.reshape(-1) >= 0
        old_slot = np.flatnonzero(old)
        channel = np.concatenate([old_slot // k, cand["channel"].astype(np.int64)])
        score = np.concatenate([self.scores.reshape(-1)[old], cand["score"]])
        index = np.concatenate([self.index.reshape(-1)[old], cand["index"]])
        order = np.lexsort((index, -score.astype(np.float64), channel))
        ch_sorted = channel[order]
        rank = np.arange(len(order)) - np.searchsorted(ch_sorted, ch_sorted, side="left")
        kept = order[rank < k]
        n_old = len(old_slot)
        occupied = np.zeros(C * k, bool)
        occupied[old_slot[kept[kept < n_old]]] = True
        new = kept[kept >= n_old] - n_old  # candidates that made it, channel-major (kept is sorted by channel)
        if not len(new):
            return none
        new_channel = cand["channel"][new].astype(np.int64)
        free = np.flatnonzero(~occupied)  # channel-major, slot ascending
        free_channel = free // k
        need = np.bincount(new_channel, minlength=C)
        ordinal = np.arange(len(free)) - np.searchsorted(free_channel, free_channel, side="left")
        slots = free[ordinal < need[free_channel]]  # as many free slots per channel as winners, in channel order
        flat_scores, flat_index, flat_where = (a.reshape(-1) for a in (self.scores, self.index, self.where))
        flat_scores[slots] = cand["score"][new]
        flat_index[slots] = cand["index"][new]
        flat_where[slots] = cand["where"][new]
        if self.patches is not None and "patch" in cand:
            self.patches.reshape((C * k,) + self.patches.shape[2:])[slots] = cand["patch"][new]
        return slots, new

    def put_patches(self, slots, patches) -> None:
        C, k = self.scores.shape
        self.patches.reshape((C * k,) + self.patches.shape[2:])[slots] = patches

    def sorted(self):
        order = np.lexsort((np.where(self.index < 0, np.iinfo(np.int64).max, self.index),
                            -self.scores.astype(np.float64)), axis=-1)
        take = lambda a: np.take_along_axis(a, order, 1)  # noqa: E731
        scores, index, where = take(self.scores), take(self.index), take(self.where)
        patches = None
        if self.patches is not None:
            patches = self.patches[np.arange(len(order))[:, None], order]  # whole patches: take_along_axis went
            # value by value (0.7 s for block4's 128 x 16 patches of 42 x 42 x 3)
        return scores, index, where, patches


class _Stats:
    """One layer's running statistics, merged exactly (float64)."""

    def __init__(self, plan: _Plan, bins: int, classes: int):
        C = plan.channels
        self.count = 0
        self.mean = np.zeros(C)
        self.m2 = np.zeros(C)
        self.zeros = np.zeros(C, np.int64)
        self.min = np.full(C, np.inf)
        self.max = np.full(C, -np.inf)
        self.bins = bins
        self.hist = np.zeros((C, bins + 2), np.int64)  # on the lattice: bins 2**level base bins wide, from start
        self.level = np.zeros(C, np.int64)
        self.start = np.zeros(C, np.int64)
        self.class_sum = np.zeros((classes, C)) if classes else None
        self.class_count = np.zeros(classes, np.int64) if classes else None

    def merge(self, stats: dict) -> None:
        for r in range(len(stats["count"])):  # one row per replica (a few)
            n = int(stats["count"][r])
            if n == 0:
                continue
            mean, m2 = stats["mean"][r].astype(np.float64), stats["m2"][r].astype(np.float64)
            total = self.count + n
            delta = mean - self.mean
            self.mean = self.mean + delta * (n / total)
            self.m2 = self.m2 + m2 + delta ** 2 * (self.count * n / total)
            self.count = total
        self.zeros += stats["zeros"].sum(0)
        self.min = np.minimum(self.min, stats["min"].min(0))
        self.max = np.maximum(self.max, stats["max"].max(0))
        for r in range(len(stats["hist"])):
            self._merge_histogram(stats["hist"][r], stats["level"][r], stats["start"][r])
        if self.class_sum is not None:
            self.class_sum += stats["class_sum"].sum(0)
            self.class_count += stats["class_count"].sum(0)

    def _merge_histogram(self, hist: np.ndarray, level: np.ndarray, start: np.ndarray) -> None:
        """Add one replica's batch histogram (C, bins + 2) at its ``level`` and ``start`` (C,) to the running one:
        both rebinned to the lowest level whose window (from min(the lowest filled bin, 0)) holds the filled bins
        of both and bin 0. Exact: a bin of level k + 1 is two bins of level k. The result depends on the values
        only, not on how they were batched (a batch's window is chosen by the same rule, ``_window``)."""
        bins = self.bins
        parts = [(self.hist[:, 1:bins + 1], self.level, self.start),
                 (hist[:, 1:bins + 1], np.asarray(level, np.int64), np.asarray(start, np.int64))]
        spans = [_filled(counts, first) for counts, _, first in parts]
        new_level = np.max([np.where(filled, lvl, 0) for (_, lvl, _), (filled, _, _) in zip(parts, spans)], 0)
        while True:  # at most LEVELS rounds: at level 63 every bin index is 0 or -1
            low, high = np.zeros_like(new_level), np.zeros_like(new_level)
            for (_, lvl, _), (filled, lo, hi) in zip(parts, spans):
                shift = np.clip(new_level - lvl, 0, 63)
                low = np.where(filled, np.minimum(low, lo >> shift), low)
                high = np.where(filled, np.maximum(high, hi >> shift), high)
            wide = high - low > bins - 1
            if not wide.any():
                break
            new_level = np.where(wide, new_level + 1, new_level)
        C, width = self.hist.shape
        rows = np.arange(C)[:, None] * width
        flat = [rows[:, 0], rows[:, 0] + bins + 1]  # the not-finite slots stay where they are
        weights = [self.hist[:, 0] + hist[:, 0], self.hist[:, bins + 1] + hist[:, bins + 1]]
        for counts, lvl, first in parts:
            shift = np.clip(new_level - lvl, 0, 63)[:, None]
            target = ((first[:, None] + np.arange(bins)) >> shift) - low[:, None] + 1
            keep = counts > 0  # an empty bin may fall outside the merged window
            flat.append((rows + target)[keep])
            weights.append(counts[keep])
        # one bincount over flat slots (np.add.at took 27 ms a batch of block4's 128 channels); float64 weights
        # are exact for counts below 2**53
        merged = np.bincount(np.concatenate(flat), np.concatenate(weights).astype(np.float64), minlength=C * width)
        self.hist, self.level, self.start = merged.astype(np.int64).reshape(C, width), new_level, low

    def edges(self, lo: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """The running histogram's edges (C, bins + 1), float64, on the lattice of base range ``lo`` and ``scale``
        (float32 base bins per unit, as the step computed it)."""
        steps = (self.start[:, None] + np.arange(self.bins + 1)) * np.ldexp(1.0, self.level)[:, None]
        return lo.astype(np.float64)[:, None] + steps / scale.astype(np.float64)[:, None]


def _filled(counts: np.ndarray, start: np.ndarray):
    """(any bin filled, index of the first filled bin, of the last) per row of ``counts`` (C, bins) whose first bin
    is ``start``: (C,) bool, int64, int64."""
    filled = counts > 0
    first = filled.argmax(1)
    last = counts.shape[1] - 1 - filled[:, ::-1].argmax(1)
    return filled.any(1), start + first, start + last


class _Pass:
    def __init__(self, probe, keys, plans, k, score, bins, strategy):
        # bins are counted on a lattice of at least two (one bin cannot hold values both sides of the first range's
        # lower edge); a pass asked for one bin sums them at the end
        self.probe, self.keys, self.plans, self.k, self.score = probe, keys, plans, k, score
        self.bins, self.out_bins = max(bins, 2), bins
        self.strategy = strategy
        self.classes = 0

    def run(self, ds, total, labelled, progress, cancel) -> ChannelExamples:
        self.labelled = labelled
        self.classes = (2 if self.probe.num_classes == 1 else self.probe.num_classes) if labelled else 0
        strategy = self.strategy
        device_patches = strategy is not None and not _all_local(strategy)
        for plan in self.plans:
            plan.device_patches = device_patches
        ranges, step = _steps(self.probe, self.plans, self.k, self.score, self.bins, self.classes)
        if strategy is not None:
            ds = strategy.experimental_distribute_dataset(ds)
            # strategy.run inside one tf.function: called eagerly, MirroredStrategy starts a thread per replica for
            # every batch (4x slower than one device on two logical CPUs) and TensorFlow warns about it in the
            # cell. A Python function per replica calls the compiled step (given the tf.function itself, the
            # strategy would call it once with the per-replica values, which its input signature refuses).
            def replica_step(*args):
                return step(*args)

            distributed_step = tf.function(lambda *args: strategy.run(replica_step, args=args), autograph=False,
                                           reduce_retracing=True)
        self.tops = [_Top(p, self.k) for p in self.plans]
        self.stats = [_Stats(p, self.bins, self.classes) for p in self.plans]
        self.lattice = None  # per layer, the histogram's base range: (lo, base bins per unit), float32 (C,) each
        self.images = 0

        def compute(*args) -> np.ndarray:
            if strategy is None:
                return step(*args).numpy()
            return _gathered(strategy, distributed_step(*args))

        # On one device, batch i + 1's step runs on a helper thread while this thread merges batch i (candidates,
        # patches, statistics) and reads batch i + 2: the host's share of a batch no longer adds to the device's
        # (block4 of the demo model: a 186 ms step and 25 ms on the host per batch of 128). The thresholds a step
        # filters with are then one batch old: lower than the current ones or equal, so the step sends a superset
        # of the candidates that could still win and the merge (a total order: score, then index) keeps the same
        # top-k. Under a strategy the steps stay on this thread (collectives across workers run in one order).
        pool = ThreadPoolExecutor(1, thread_name_prefix="cnnwidget-pass") if strategy is None else None
        done, last_report, reported, cancelled, started = 0, 0.0, -1, False, 0
        pending = None  # (packets or their future, x, index) of the batch whose step is running or ran
        # A cancel keeps the batches whose step had started when it was set. Set while a step runs or the next batch
        # is read: that step's batch is merged, the batch read is not started, and the pass stops.
        # Set during the merge or the report of batch i (say, by ``progress``): batch i + 1's step, started just
        # before, is left out, so a cancel from ``progress(i, ...)`` keeps exactly i batches.
        keep_pending = False
        try:
            iterator = iter(ds)
            while True:
                if cancel is not None and cancel.is_set():
                    cancelled, keep_pending = True, True
                    break
                try:
                    x, index, labels = next(iterator)
                except StopIteration:
                    break
                if cancel is not None and cancel.is_set():  # set while this batch was read: it is not started
                    cancelled, keep_pending = True, True
                    break
                if self.lattice is None:
                    if strategy is not None:  # the replicas' first batches together make the base range
                        lows, highs = self._ranges(ranges, x)
                    elif pending is None:  # the first batch's step takes the base range from its own values
                        lows = highs = [tf.constant(np.full(p.channels, np.nan, np.float32)) for p in self.plans]
                    else:  # ... which the next batches' steps need: wait for that step (a forward less than a
                        # pass of its own over the first batch, 1 of 32 batches of 4,000 images)
                        packets = pending[0].result() if isinstance(pending[0], Future) else pending[0]
                        pending = (packets,) + pending[1:]
                        lows, highs = self._lattice_of(packets)
                thresholds = [tf.constant(t.thresholds()) for t in self.tops]
                xla_rows = self._xla_rows(self._replica_rows(x), started, total)
                args = (x, index, labels, thresholds, lows, highs, xla_rows)
                running = pool.submit(compute, *args) if pool is not None else compute(*args)
                started += 1
                if pending is not None:
                    done = self._absorb(done, *pending)
                    last_report, reported = self._maybe_report(progress, done, total, last_report, reported)
                    if cancel is not None and cancel.is_set():
                        cancelled, pending = True, None  # set during that merge or report: this step is left out
                        break
                pending = (running, x, index)
            if pending is not None and (keep_pending or not cancelled):
                done = self._absorb(done, *pending)
                last_report, reported = self._maybe_report(progress, done, total, last_report, reported)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        if done == 0 and not cancelled:
            raise ImageError("data gave no images: pass a non-empty data set.")
        result = self._result(done, partial=cancelled, cancelled=cancelled)
        if progress is not None and done and (reported != done or cancelled):
            progress(done, total, result)
        return result

    def _absorb(self, done: int, packets, x, index) -> int:
        """Merge one batch's step output (its packets, or a future of them) into the top-k and statistics; returns
        the batches done."""
        if isinstance(packets, Future):
            packets = packets.result()
        bad, out = _unpack(packets, self.plans, self.bins, self.classes)
        if self.lattice is None:
            self._lattice_of(packets, out)
        host = None
        if bad:
            raise ImageError(f"batch {done} of data has {bad} image(s) with NaN or infinite pixels.")
        for top, stat, (cand, stats) in zip(self.tops, self.stats, out):
            if self.classes and int(np.sum(stats["bad_labels"])):
                raise ImageError(f"batch {done} of data has labels outside [0, {self.classes - 1}]: the model has "
                                 f"{self.classes} classes.")
            slots, new = top.merge(cand)
            if len(slots) and top.patches is not None and "patch" not in cand:
                if host is None:
                    host = _host_batch(self.strategy, x, index)
                top.put_patches(slots, _host_patches(top.plan, host, cand["index"][new], cand["where"][new]))
            stat.merge(stats)
        self.images = self.stats[0].count // max(1, self._positions(self.plans[0]))
        return done + 1

    def _lattice_of(self, packets, out=None):
        """Fix the base ranges from a first batch's step (one device; see ``_batch_stats``); returns them as the
        steps take them."""
        out = out if out is not None else _unpack(packets, self.plans, self.bins, self.classes)[1]
        return self._set_lattice([stats["lo"][0].astype(np.float32) for _, stats in out],
                                 [stats["hi"][0].astype(np.float32) for _, stats in out])

    def _maybe_report(self, progress, done: int, total, last_report: float, reported: int) -> tuple[float, int]:
        now = time.monotonic()
        if progress is not None and (done == 1 or now - last_report >= PROGRESS_SECONDS):
            progress(done, total, self._result(done, partial=True, cancelled=False))
            return now, done
        return last_report, reported

    def _replica_rows(self, x) -> int:
        """The most images a replica gets of batch ``x``."""
        if self.strategy is None:
            return int(x.shape[0])
        return max((int(t.shape[0]) for t in self.strategy.experimental_local_results(x)), default=0)

    def _xla_rows(self, n: int, started: int, total) -> list:
        """Per layer, the images (int32 scalar) to which a batch of ``n`` images a replica is padded for the
        statistics' XLA loops, or 0 for TensorFlow ops (see XLA_SAVES): the batch is the pass's ``started``-th (from
        0) of ``total`` (None: not known)."""
        out = []
        for i, plan in enumerate(self.plans):
            positions = self._positions(plan)
            key = (positions, plan.channels, self.bins)
            with _XLA_LOCK:  # compiled: padded to the nearest size, unless a much smaller batch costs less in ops
                fit = min((r for r in _XLA_SHAPES.get(key, ()) if n <= r <= XLA_PAD * n), default=0)
            rows = fit
            if n and not fit:
                values = n * positions * plan.channels
                with _XLA_LOCK:  # values of this shape done with the plain ops in this process, this batch's too
                    done = _PLAIN_VALUES[key] = _PLAIN_VALUES.get(key, 0) + values
                # with this pass's batches left (if as large) when known
                todo = done + (max(total - started, 1) - 1) * values if total is not None else done
                if XLA_SAVES * todo >= XLA_COMPILE + (0.0 if _XLA_STARTED else XLA_START):
                    _start_xla_quietly()
                    with _XLA_LOCK:
                        _XLA_SHAPES.setdefault(key, set()).add(n)
                    rows = n
            out.append(tf.constant(rows, tf.int32))
        return out

    @staticmethod
    def _positions(plan: _Plan) -> int:
        return plan.height * plan.width if plan.spatial else 1

    def _ranges(self, ranges, x):
        if self.strategy is None:
            packets = ranges(x).numpy()
        else:  # inside one tf.function, as the step: run eagerly, strategy.run warns in the cell about its overhead
            strategy = self.strategy
            distributed = tf.function(lambda a: strategy.run(lambda b: ranges(b), args=(a,)), autograph=False)
            packets = _gathered(strategy, distributed(x))
        packets = packets.reshape(-1, 2 * sum(p.channels for p in self.plans))  # a row per replica
        lows, highs, offset = [], [], 0
        for plan in self.plans:
            C = plan.channels
            lo32, hi32 = _base_range(packets[:, offset:offset + C].min(0), packets[:, offset + C:offset + 2 * C].max(0))
            offset += 2 * C
            lows.append(lo32)
            highs.append(hi32)
        return self._set_lattice(lows, highs)

    def _set_lattice(self, lows: list, highs: list):
        """Fix the histograms' base ranges [lo, hi) (float32 (C,) per layer); returns them as the steps take them."""
        self.lattice = [(lo, np.float32(self.bins) / (hi - lo)) for lo, hi in zip(lows, highs)]  # as _lattice has it
        return [tf.constant(lo) for lo in lows], [tf.constant(hi) for hi in highs]

    def _result(self, done: int, partial: bool, cancelled: bool) -> ChannelExamples:
        layers = {}
        for key, plan, top, stat, lattice in zip(self.keys, self.plans, self.tops, self.stats, self.lattice or
                                                 [None] * len(self.plans)):
            scores, index, where, patches = top.sorted()
            empty = index < 0
            scores = np.where(empty, np.nan, scores).astype(np.float32)
            if plan.spatial:
                positions = np.stack([np.where(empty, -1, where // plan.width),
                                      np.where(empty, -1, where % plan.width)], -1).astype(np.int32)
                rf = plan.field
                y0 = positions[..., 0] * rf.jump[0] + rf.start[0]
                x0 = positions[..., 1] * rf.jump[1] + rf.start[1]
                boxes = np.stack([y0, x0, y0 + rf.size[0], x0 + rf.size[1]], -1).astype(np.int32)
                boxes[empty] = -1
            else:
                positions = np.full(index.shape + (2,), -1, np.int32)
                boxes = np.zeros(index.shape + (4,), np.int32)
                boxes[..., 2], boxes[..., 3] = plan.input_size
                boxes[empty] = -1
            count = max(stat.count, 1)
            with np.errstate(invalid="ignore", divide="ignore"):
                std = np.sqrt(np.maximum(stat.m2 / count, 0.0))
                class_mean = (stat.class_sum / stat.class_count[:, None]) if stat.class_sum is not None else None
            nan = np.full(plan.channels, np.nan)
            seen = stat.count > 0
            histogram = stat.hist[:, 1:self.bins + 1].copy()
            edges = stat.edges(*lattice) if lattice is not None else np.full((plan.channels, self.bins + 1), np.nan)
            if self.out_bins == 1:  # one bin over the window
                histogram, edges = histogram.sum(1, keepdims=True), edges[:, [0, -1]]
            layers[key] = LayerExamples(
                layer=key, path=plan.info.path, spatial=plan.spatial, score=self.score, k=self.k,
                indices=index, scores=scores, positions=positions, boxes=boxes,
                patches=patches, receptive_field=plan.field,
                mean=stat.mean.copy() if seen else nan, std=std if seen else nan,
                min=stat.min.copy() if seen else nan, max=stat.max.copy() if seen else nan,
                zero_fraction=stat.zeros / count if seen else nan,
                dead=(stat.max == stat.min) if seen else np.zeros(plan.channels, bool),
                histogram=histogram, histogram_edges=edges,
                below=stat.hist[:, 0].copy(), above=stat.hist[:, self.bins + 1].copy(),
                class_mean=class_mean, class_counts=None if stat.class_count is None else stat.class_count.copy(),
                patch_note=plan.note)
        return ChannelExamples(layers=layers, images=self.images, batches=done, k=self.k, score=self.score,
                               partial=partial, cancelled=cancelled, labels=self.labelled)


def _base_range(mn: np.ndarray, mx: np.ndarray):
    """A layer's histogram base range [lo, hi) from its first batch's per-channel minimum and maximum (C,): that
    range widened by ``HISTOGRAM_MARGIN`` of its width each side, not below 0 for a channel with no negative value;
    a constant channel takes the layer's width (or max(|value|, 1) when the whole layer is constant); not finite
    values count as 0. Computed in float64, returned as float32 (C,) each. ``_base_range_tf`` is its twin on the
    device, bit for bit the same (a test checks it): TensorFlow's CPU kernels flush float32 subnormals to 0 (and
    read them as 0), so they are flushed here too, in and out."""
    mn, mx = _flushed(mn).astype(np.float64), _flushed(mx).astype(np.float64)
    finite = np.isfinite(mn) & np.isfinite(mx)
    mn, mx = np.where(finite, mn, 0.0), np.where(finite, mx, 0.0)
    width = mx - mn
    layer_width = float(np.max(mx) - np.min(mn)) if mx.size else 0.0
    width = np.where(width > 0, width, layer_width if layer_width > 0 else np.maximum(np.abs(mn), 1.0))
    lo = mn - HISTOGRAM_MARGIN * width
    lo = np.where(mn >= 0, np.maximum(lo, 0.0), lo)
    hi = mx + HISTOGRAM_MARGIN * width
    hi = np.where(hi > lo, hi, lo + width)
    return _flushed(lo), _flushed(hi)


def _flushed(v) -> np.ndarray:
    """``v`` as float32 with subnormal values set to 0 (sign kept), as TensorFlow's CPU kernels do."""
    v = np.asarray(v).astype(np.float32)
    return np.where(np.abs(v) < np.finfo(np.float32).tiny, v * np.float32(0), v)


def _base_range_tf(mn, mx):
    """``_base_range`` in TensorFlow, the same float64 operations in the same order: (lo, hi) float32 (C,)."""
    mn, mx = tf.cast(mn, tf.float64), tf.cast(mx, tf.float64)
    finite = tf.math.is_finite(mn) & tf.math.is_finite(mx)
    mn, mx = tf.where(finite, mn, 0.0), tf.where(finite, mx, 0.0)
    width = mx - mn
    layer_width = tf.reduce_max(mx) - tf.reduce_min(mn)
    fallback = tf.where(layer_width > 0, layer_width * tf.ones_like(mn), tf.maximum(tf.abs(mn), 1.0))
    width = tf.where(width > 0, width, fallback)
    lo = mn - HISTOGRAM_MARGIN * width
    lo = tf.where(mn >= 0, tf.maximum(lo, 0.0), lo)
    hi = mx + HISTOGRAM_MARGIN * width
    hi = tf.where(hi > lo, hi, lo + width)
    return tf.cast(lo, tf.float32), tf.cast(hi, tf.float32)


def _all_local(strategy: tf.distribute.Strategy) -> bool:
    """True when every replica is on this machine (no other worker holds images)."""
    try:
        return len(strategy.extended.worker_devices) == strategy.num_replicas_in_sync
    except (AttributeError, NotImplementedError, RuntimeError):
        return False


def _host_batch(strategy, x, index):
    """The batch's images (display space, float32) and global indices on the host, replicas concatenated. On one
    device the images stay a tensor: ``_host_patches`` copies only the images it cuts from (a copy of the whole
    batch, 6 MB a batch of 128 demo images, was 1-1.7 ms of CPU a batch when a few images had winners)."""
    if strategy is None:
        return x, index.numpy()
    xs = [t.numpy() for t in strategy.experimental_local_results(x)]
    ids = [t.numpy() for t in strategy.experimental_local_results(index)]
    return np.concatenate(xs), np.concatenate(ids)


def _host_patches(plan: _Plan, host, index: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Patches of the winners, cut from the host copy of the batch (see ``_patches``): (M, h, w, channels)."""
    images, ids = host
    order = np.argsort(ids, kind="stable")
    used, b = np.unique(order[np.searchsorted(ids[order], index)], return_inverse=True)
    picked = tf.gather(images, used).numpy() if tf.is_tensor(images) else images[used]
    if not plan.spatial:
        return np.asarray(_whole(plan, picked[b]), np.float32)
    rf = plan.field
    (pt, pl), (pb, pr) = plan.pad_before, plan.pad_after
    u, h, w, channels = picked.shape
    padded = np.full((u, h + pt + pb, w + pl + pr, channels), np.nan, np.float32)  # np.pad took twice as long
    padded[:, pt:pt + h, pl:pl + w] = picked
    y0 = (where // plan.width) * rf.jump[0] + rf.start[0] + pt
    x0 = (where % plan.width) * rf.jump[1] + rf.start[1] + pl
    # Each patch is one block of a windowed view, copied whole: indexing every pixel with three index arrays took
    # 160-300 ms a batch of block4's 42 x 42 patches when most channels had winners (the first batches).
    windows = sliding_window_view(padded, tuple(rf.size), axis=(1, 2))  # (images, rows, cols, channels, h, w)
    return np.moveaxis(windows[b, y0, x0], 1, -1)


def _gathered(strategy: tf.distribute.Strategy, packets) -> np.ndarray:
    """Every replica's packet (on every worker), concatenated, as numpy: read from the local replicas when all are
    local (MirroredStrategy, one device), else one all-gather across workers (``strategy.gather`` traces a function
    per call, hence one packet per step)."""
    local = strategy.experimental_local_results(packets)
    if len(local) == strategy.num_replicas_in_sync:
        return np.concatenate([t.numpy() for t in local])
    return strategy.gather(packets, axis=0).numpy()
