"""Activation atlas of one layer (Carter, Armstrong, Schubert, Johnson, Olah, "Activation Atlas", Distill 2019).

``activation_atlas(probe, data, layer)`` runs four stages:

1. **Collect** (one streamed pass over ``data``): for every image, ``per_image`` spatial positions of the layer are
   drawn at random (vector layers such as ``gap`` have one "position") and their activation vectors (C,) kept in a
   fixed-size uniform random sample of ``samples`` vectors, the reservoir. The sample is a *bottom-k* sample: each
   drawn vector gets a random key in [0, 1) and the ``samples`` vectors of smallest key are kept. Positions and keys
   are a hash (splitmix64) of (seed, the image's global index, the draw number), computed inside the compiled step,
   so the sample is the same for any batch size, data form (numpy, tf.data, generator) or number of replicas, and
   merging replicas' candidates is exact. Memory is O(samples x (C + thumbnail pixels)) whatever the data's size;
   once the reservoir is full, a step only sends the host the vectors whose key beats the current largest kept key.
   Each kept vector remembers its image's index, label (if given), the model's predicted class for the image (from
   the same forward pass) and a small thumbnail of the image (uint8).
2. **Layout**: the vectors are placed in 2-D. UMAP (``umap-learn``, metric cosine, as Carter et al.) when it is
   importable; else the fallback, implemented here in numpy: the vectors are scaled to unit length (the atlas is
   about directions: its icons render the direction of a cell's mean, and UMAP's cosine metric measures the same),
   reduced to at most 50 dimensions by PCA (an SVD), then laid out by exact t-SNE (van der Maaten and Hinton 2008,
   perplexity min(30, (n - 1) / 3), early exaggeration 12 for the first quarter of 400 steps, learning rate
   max(n / 12, 50), momentum and gains as in the reference implementation). t-SNE is the fallback because, like UMAP,
   it keeps neighbourhoods (similar activations land in nearby cells, which is what makes an atlas readable); a 2-D
   PCA keeps only the two largest linear directions and piles most clusters on each other (it is offered as
   ``layout="pca"``, fast but coarse). Exact t-SNE costs O(n^2) time and memory, so it lays out at most
   ``TSNE_MAX`` (1,000) vectors, evenly spaced in the (random) sample; each other vector is placed at the
   distance-weighted mean of its 5 nearest laid-out vectors. Measured on a 2-core machine shared by other work
   (load ~11): 300 vectors in 3.5 s, 500 in 4.5 s, 2,000 (1,000 exact) in 21 s; UMAP scales much further, hence
   the optional extra ``cnnwidget[atlas]``. The layout is then normalized as Lucid's atlas does: each axis clipped
   to its 1st..99th percentile (outliers land on the border) and scaled to [0, 1].
3. **Binning** into a ``grid`` x ``grid`` layout; per non-empty cell: its count, mean activation vector, the class it
   most supports (the most frequent label of its vectors' images when labels are given, else the most frequent
   predicted class of its vectors' images; ``support`` is that class's share) and up to ``examples`` images
   behind it (distinct images whose vectors point most along the cell's mean first).
4. **Render**: each cell's feature visualization of its mean direction (``fv.direction(layer, mean, cossim_pow)``'s
   objective, one image per cell, ``render_batch`` cells per compiled render: ``directions_objective``), streamed
   through ``progress``.

Cancel (a ``threading.Event``) is checked before every data batch, every 25 t-SNE iterations and every
optimization step; a cancelled atlas keeps what was made (the sample; the layout and cells if they were made; the
icons of whole render batches) with ``partial`` and ``cancelled`` True and ``stage`` the stage it stopped in.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import tensorflow as tf

from . import options as _options
from .dataset import PROGRESS_SECONDS, _batches, _gathered
from .errors import LayerError, OptionError
from .probe import LayerInfo, ModelProbe, probe_for

LAYOUTS = ("auto", "umap", "tsne", "pca")
MIN_VECTORS = 16  # fewer vectors than this give no meaningful 2-D layout (t-SNE's perplexity needs n > 3 * 5)
DEFAULT_SAMPLES = 2000
DEFAULT_EXAMPLES = 8
PCA_DIMS = 50
TSNE_MAX = 1000  # exact t-SNE on at most this many vectors; the rest placed by their nearest laid-out ones
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_MASK = (1 << 64) - 1


@dataclass
class AtlasCells:
    """The non-empty cells of a grid x grid atlas, m of them, in row-major order (row = y from the top).

    ``row``, ``col`` (m,) int32 cell coordinates in [0, grid); ``count`` (m,) int64 vectors in the cell (they sum
    to the sample's size); ``mean`` (m, C) float32 the mean activation vector; ``label`` (m,) int64 the class the
    cell most supports (-1 when none is known), ``support`` (m,) float64 that class's share of the cell's vectors
    (0..1); ``examples`` (m, E) int64 global indices of up to E distinct images behind the cell, best first (-1
    pads); ``example_samples`` (m, E) int64 the sample rows (index into ``Atlas.vectors``) they came from, -1 pads;
    ``renderable`` (m,) bool: the mean is non-zero, so it has a direction to render.
    """

    row: np.ndarray
    col: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    label: np.ndarray
    support: np.ndarray
    examples: np.ndarray
    example_samples: np.ndarray
    renderable: np.ndarray

    def __len__(self) -> int:
        return int(len(self.count))


@dataclass
class Atlas:
    """What ``activation_atlas`` returns (and what ``progress`` receives while it works).

    The sample, n vectors of the layer's C channels: ``vectors`` (n, C) float32; ``image_index`` (n,) int64 global
    image indices (position in the data, from 0, in the order it yields them); ``position`` (n, 2) int32 the (y, x)
    of each vector in the layer's map (-1 for vector layers); ``label`` (n,) int64 the image's label (-1 without
    labels); ``predicted`` (n,) int64 the model's class for the image; ``thumbnails`` (n, t, t, 3) uint8 RGB
    thumbnails of the images (None when ``thumbnail=0``). ``images`` images read, ``drawn`` vectors drawn (images
    x per_image): the sample is a uniform random sample of those.
    The layout: ``coords`` (n, 2) float32 (x, y) in [0, 1] (None before the layout); ``method`` the layout used
    ("umap", "tsne" or "pca"); ``cell_of`` (n,) int64 the cell (row * grid + col) of each vector.
    ``cells`` an :class:`AtlasCells` (None before binning); ``class_source``: "labels" or "predictions".
    The icons: ``icons`` (m, s, s, channels) float32 images in the probe's display range, NaN until rendered;
    ``rendered`` (m,) bool.
    ``stage``: "collect", "layout", "render" or "done"; ``partial`` True until done (a progress snapshot or a
    cancelled atlas); ``cancelled`` True when stopped by the cancel event.
    """

    layer: str
    path: str
    spatial: bool
    grid: int
    vectors: np.ndarray
    image_index: np.ndarray
    position: np.ndarray
    label: np.ndarray
    predicted: np.ndarray
    thumbnails: np.ndarray | None
    images: int
    drawn: int
    class_names: list
    labelled: bool = False
    coords: np.ndarray | None = None
    method: str = ""
    cell_of: np.ndarray | None = None
    cells: AtlasCells | None = None
    icons: np.ndarray | None = None
    rendered: np.ndarray | None = None
    stage: str = "collect"
    partial: bool = True
    cancelled: bool = False

    @property
    def class_source(self) -> str:
        return "labels" if self.labelled else "predictions"

    @property
    def samples(self) -> int:
        return int(len(self.vectors))

    def count_grid(self) -> np.ndarray:
        """(grid, grid) int64 vectors per cell (zeros before binning)."""
        out = np.zeros((self.grid, self.grid), np.int64)
        if self.cells is not None:
            out[self.cells.row, self.cells.col] = self.cells.count
        return out


# -- the whole atlas -----------------------------------------------------------------------------------------------

def activation_atlas(probe, data, layer, grid: int = 20, samples: int = DEFAULT_SAMPLES, strategy=None,
                     progress: Callable | None = None, cancel=None, *, per_image: int = 1, layout: str = "auto",
                     seed: int = 0, examples: int = DEFAULT_EXAMPLES, thumbnail: int = 32,
                     batch_size: int | None = None, render: bool = True, size: int | None = None, steps: int = 128,
                     render_batch: int = 16, cossim_pow: float = 1.0) -> Atlas:
    """The activation atlas of ``layer`` over ``data`` (see the module docstring for the method).

    ``probe``: a ModelProbe or Keras model. ``data``: display-space images as numpy (N, H, W, C) or (images,
    labels), a ``tf.data.Dataset`` of images or (images, labels), or a generator of batches (as
    ``dataset.channel_examples`` takes them). ``layer``: a spatial (H, W, C) or vector (C,) layer.
    ``grid``: cells a side (2..256). ``samples``: the reservoir's size, vectors kept (>= 16). ``per_image``:
    positions drawn per image (spatial layers; 1 for vector layers). ``layout``: "auto" (UMAP if importable, else
    t-SNE), "umap", "tsne" or "pca". ``seed``: the sample, layout and renders are the same for the same seed and
    data. ``examples``: images kept per cell. ``thumbnail``: side in pixels of the kept thumbnails (0: none).
    ``strategy``: a ``tf.distribute.Strategy`` under which the pass runs (as ``channel_examples``). ``render``:
    False stops after binning. ``size``, ``steps``: of each icon's render (``fv.render``), ``render_batch`` icons
    per render, ``cossim_pow`` of ``fv.direction``.
    ``progress(stage, done, total, atlas)``: stage "collect" (batches done, of total or None), "layout" (0 or 1 of
    1), "render" (icons done, of renderable cells), with the Atlas so far (``partial=True``).
    ``cancel``: a threading.Event; see the module docstring. Raises OptionError for bad options and for too few
    vectors for a layout (expected at least ``MIN_VECTORS``), LayerError for a layer of another kind.
    """
    probe = probe_for(probe)
    grid = _check_grid(grid)
    examples = _options.positive_int("examples", examples)
    steps = _options.positive_int("steps", steps)
    render_batch = _options.positive_int("render_batch", render_batch)
    _options.choice("layout", layout, LAYOUTS)
    cossim_pow = _options.positive_float("cossim_pow", cossim_pow, allow_zero=True)
    _check_callbacks(progress, cancel)
    say = progress or (lambda *a: None)
    atlas = collect(probe, data, layer, samples=samples, per_image=per_image, thumbnail=thumbnail, seed=seed,
                    batch_size=batch_size, strategy=strategy, grid=grid,
                    progress=lambda done, total, partial: say("collect", done, total, partial), cancel=cancel)
    if atlas.cancelled:
        return atlas
    say("layout", 0, 1, atlas)
    coords, method = layout_2d(atlas.vectors, layout, seed=seed, cancel=cancel)
    if coords is None:
        return replace(atlas, stage="layout", cancelled=True)
    atlas = place(atlas, coords, method, grid, examples)
    say("layout", 1, 1, atlas)
    if not render:
        return replace(atlas, stage="done", partial=False)
    return render_atlas(probe, atlas, size=size, steps=steps, batch=render_batch, seed=seed, cossim_pow=cossim_pow,
                        progress=(lambda done, total, a: say("render", done, total, a)), cancel=cancel)


def place(atlas: Atlas, coords: np.ndarray, method: str, grid: int, examples: int = DEFAULT_EXAMPLES) -> Atlas:
    """``atlas`` with its layout ``coords`` (n, 2) in [0, 1] binned into a ``grid`` x ``grid`` layout (no icons
    yet): the cells, each vector's cell, and empty icons."""
    grid = _check_grid(grid)
    classes = atlas.label if atlas.labelled else atlas.predicted
    cells, cell_of = bin_cells(coords, atlas.vectors, classes, grid, atlas.image_index, examples)
    return replace(atlas, grid=grid, coords=coords, method=method, cells=cells, cell_of=cell_of, icons=None,
                   rendered=np.zeros(len(cells), bool), stage="layout", partial=True, cancelled=False)


# -- 1. collect: one streamed pass, a bottom-k reservoir ------------------------------------------------------

def collect(probe, data, layer, samples: int = DEFAULT_SAMPLES, per_image: int = 1, thumbnail: int = 32,
            seed: int = 0, batch_size: int | None = None, strategy=None, progress: Callable | None = None,
            cancel=None, grid: int = 20) -> Atlas:
    """Stage 1 alone: a uniform random sample of ``samples`` activation vectors of ``layer`` from one pass over
    ``data`` (see the module docstring), as an Atlas with no layout. ``progress(done, total, atlas)`` after
    batches (at most every 0.25 s, and after the last). A cancelled pass returns what it gathered, flagged."""
    probe = probe_for(probe)
    samples = _options.positive_int("samples", samples, MIN_VECTORS)
    per_image = _options.positive_int("per_image", per_image)
    thumbnail = _options.positive_int("thumbnail", thumbnail, 0)
    seed = _options.seed(seed)
    if batch_size is not None:
        batch_size = _options.positive_int("batch_size", batch_size)
    _check_callbacks(progress, cancel)
    if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
        raise OptionError(f"strategy must be None or a tf.distribute.Strategy; got {strategy!r}.")
    info = _layer(probe, layer)
    if not info.is_spatial:
        per_image = 1
    channels = int(info.output_shape[-1])
    _options.fits_in_memory("samples", samples,
                            3 * samples * (8 * (channels + 6) + 3 * thumbnail * thumbnail), "the reservoir")
    ds, total, labelled = _batches(probe, data, batch_size)
    if strategy is None and tf.distribute.has_strategy():
        strategy = tf.distribute.get_strategy()
    step = _step(probe, info, per_image, thumbnail)
    if strategy is not None:
        ds = strategy.experimental_distribute_dataset(ds)
    res = _Reservoir(samples, channels, thumbnail)
    key = layer if isinstance(layer, str) else info.path
    images = done = 0
    last, reported, cancelled = 0.0, -1, False

    def snapshot(partial, was_cancelled):
        return Atlas(layer=key, path=info.path, spatial=info.is_spatial, grid=grid, images=images,
                     drawn=images * per_image, class_names=list(probe.class_names), labelled=labelled,
                     stage="collect", partial=partial, cancelled=was_cancelled, **res.arrays())

    seed_t = tf.constant(seed, tf.int64)
    for x, index, labels in _iterate(ds, cancel):
        if x is None:
            cancelled = True
            break
        threshold = tf.constant(res.threshold(), tf.float64)
        if strategy is None:
            packet = step(x, index, labels, seed_t, threshold).numpy()
        else:
            packet = _gathered(strategy, strategy.run(lambda *a: step(*a), args=(x, index, labels, seed_t,
                                                                                    threshold)))
        rows, counted = _unpack(packet, 7 + channels + thumbnail * thumbnail * int(probe.input_shape[-1]))
        images += counted
        res.merge(rows)
        done += 1
        now = time.monotonic()
        if progress is not None and (done == 1 or now - last >= PROGRESS_SECONDS):
            progress(done, total, snapshot(True, False))
            last, reported = now, done
    if done == 0 and not cancelled:
        raise OptionError("data gave no images: pass a non-empty data set.")
    result = snapshot(cancelled, cancelled)
    if progress is not None and done and (reported != done or cancelled):
        progress(done, total, result)
    if not cancelled and len(result.vectors) < MIN_VECTORS:
        raise OptionError(f"an activation atlas needs at least {MIN_VECTORS} activation vectors for its layout; "
                          f"the data gave {len(result.vectors)} ({images} images x {per_image} position(s) each). "
                          f"Pass more images, or a larger per_image for a spatial layer.")
    if not cancelled:
        result = replace(result, partial=True)
    return result


def _iterate(ds, cancel):
    iterator = iter(ds)
    while True:
        if cancel is not None and cancel.is_set():
            yield None, None, None
            return
        try:
            yield next(iterator)
        except StopIteration:
            return


def _layer(probe: ModelProbe, layer) -> LayerInfo:
    info = probe.layer(layer)
    if len(info.output_shape) not in (1, 3):
        raise LayerError(f"layer {info.path!r} outputs {info.output_shape} per image; an activation atlas takes a "
                         "feature map (H, W, C) or a vector layer (C,).")
    return info


def _mix(z):
    """splitmix64's finalizer on uint64 tensors (wrapping arithmetic)."""
    z = (z ^ tf.bitwise.right_shift(z, tf.constant(30, tf.uint64))) * tf.constant(_M1, tf.uint64)
    z = (z ^ tf.bitwise.right_shift(z, tf.constant(27, tf.uint64))) * tf.constant(_M2, tf.uint64)
    return z ^ tf.bitwise.right_shift(z, tf.constant(31, tf.uint64))


def _unit(z):
    """uint64 -> float64 uniform in [0, 1) from the top 53 bits (exact)."""
    return tf.cast(tf.bitwise.right_shift(z, tf.constant(11, tf.uint64)), tf.float64) * (2.0 ** -53)


def _step(probe: ModelProbe, info: LayerInfo, per_image: int, thumbnail: int):
    key = ("atlas", info.path, per_image, thumbnail)
    return probe.compiled(key, lambda: _make_step(probe, info, per_image, thumbnail))


def _make_step(probe: ModelProbe, info: LayerInfo, per_image: int, thumbnail: int):
    forward = probe.forward((info.path,), logits=True)
    h, w, c = (int(v) for v in probe.input_shape)
    lo, hi = probe.input_range
    spatial = info.is_spatial
    C = int(info.output_shape[-1])
    positions = int(info.output_shape[0]) * int(info.output_shape[1]) if spatial else 1
    width = int(info.output_shape[1]) if spatial else 1
    P = per_image

    def step(x, index, labels, seed, threshold):
        """One float64 packet: [rows m, images n, then m rows of (key, draw, index, y, x, label, predicted,
        C values, thumbnail pixels)]."""
        a, logits = forward(x)
        n = tf.shape(x)[0]
        draws = tf.cast(tf.range(P, dtype=tf.int64), tf.uint64)[None]  # (tf.range has no uint64 kernel)
        draw = tf.cast(index, tf.uint64)[:, None] * tf.constant(P, tf.uint64) + draws
        salt = tf.cast(seed, tf.uint64) * tf.constant(_GOLDEN, tf.uint64)
        h1 = _mix(draw + salt + tf.constant(_GOLDEN, tf.uint64))
        h2 = _mix(h1 + tf.constant(_GOLDEN, tf.uint64))
        keys = _unit(h2)  # (n, P)
        if spatial:
            pos = tf.cast(tf.floor(_unit(h1) * positions), tf.int32)  # (n, P) flat y * W + x
            vectors = tf.gather(tf.reshape(a, (n, positions, C)), pos, batch_dims=1)  # (n, P, C)
        else:
            pos = tf.fill((n, P), -1)
            vectors = a[:, None, :]
        if logits.shape[-1] == 1:
            predicted = tf.cast(logits[:, 0] > 0, tf.int64)
        else:
            predicted = tf.argmax(logits, axis=-1)
        chosen = tf.where(keys < threshold)  # (m, 2): image, draw
        img = chosen[:, 0]
        m = tf.shape(chosen)[0]
        cpos = tf.gather_nd(pos, chosen)
        y = tf.where(cpos >= 0, cpos // width, -1)
        xx = tf.where(cpos >= 0, cpos % width, -1)
        cols = [tf.gather_nd(keys, chosen)[:, None], tf.cast(tf.gather_nd(draw, chosen), tf.float64)[:, None],
                tf.cast(tf.gather(index, img), tf.float64)[:, None], tf.cast(y, tf.float64)[:, None],
                tf.cast(xx, tf.float64)[:, None], tf.cast(tf.gather(labels, img), tf.float64)[:, None],
                tf.cast(tf.gather(predicted, img), tf.float64)[:, None],
                tf.cast(tf.gather_nd(vectors, chosen), tf.float64)]
        if thumbnail:
            pics = tf.image.resize(tf.gather(x, img), (thumbnail, thumbnail), antialias=True)
            pics = tf.clip_by_value(tf.round((pics - lo) * (255.0 / (hi - lo))), 0.0, 255.0)
            cols.append(tf.cast(tf.reshape(pics, (m, thumbnail * thumbnail * c)), tf.float64))
        rows = tf.concat(cols, 1)
        head = tf.cast(tf.stack([m, n]), tf.float64)
        return tf.concat([head, tf.reshape(rows, [-1])], 0)

    image = tf.TensorSpec((None, h, w, c), tf.float32)
    ints = tf.TensorSpec((None,), tf.int64)
    scalar = tf.TensorSpec((), tf.int64)
    return probe.tf_function(step, input_signature=[image, ints, ints, scalar, tf.TensorSpec((), tf.float64)],
                             family="atlas", autograph=False)


def _unpack(packet: np.ndarray, width: int):
    """The packets of one step (one per replica, concatenated) as (rows (M, width) float64, images in them)."""
    out, offset, images = [], 0, 0
    while offset < len(packet):
        m, n = int(packet[offset]), int(packet[offset + 1])
        offset += 2
        out.append(packet[offset:offset + m * width].reshape(m, width))
        offset += m * width
        images += n
    return (np.concatenate(out) if out else np.zeros((0, width))), images


class _Reservoir:
    """The ``size`` drawn vectors of smallest key (ties: lower draw number first), and what came with them."""

    def __init__(self, size: int, channels: int, thumbnail: int):
        self.size, self.channels, self.thumbnail = size, channels, thumbnail
        self.rows = np.zeros((0, 7 + channels), np.float64)
        self.thumbs = None

    def threshold(self) -> float:
        if len(self.rows) < self.size:
            return 2.0  # keys are < 1: every vector is a candidate
        return float(self.rows[:, 0].max())

    def merge(self, rows: np.ndarray):
        if not len(rows):
            return
        width = 7 + self.channels
        values, pics = rows[:, :width], rows[:, width:]
        both = np.concatenate([self.rows, values])
        order = np.lexsort((both[:, 1], both[:, 0]))[:self.size]
        if self.thumbnail:
            t = self.thumbnail
            image_channels = pics.shape[1] // (t * t)
            new = pics.reshape(len(pics), t, t, image_channels).astype(np.uint8)
            if self.thumbs is None:
                self.thumbs = np.zeros((0, t, t, image_channels), np.uint8)
            self.thumbs = np.concatenate([self.thumbs, new])[order]
        self.rows = both[order]

    def arrays(self) -> dict:
        r = self.rows
        thumbs = None
        if self.thumbnail:
            t = self.thumbnail
            thumbs = self.thumbs if self.thumbs is not None else np.zeros((0, t, t, 3), np.uint8)
            if thumbs.shape[-1] == 1:
                thumbs = np.repeat(thumbs, 3, axis=-1)
            thumbs = np.ascontiguousarray(thumbs[..., :3])
        return dict(vectors=r[:, 7:].astype(np.float32), image_index=r[:, 2].astype(np.int64),
                    position=r[:, 3:5].astype(np.int32), label=r[:, 5].astype(np.int64),
                    predicted=r[:, 6].astype(np.int64), thumbnails=thumbs)


# -- 2. layout ---------------------------------------------------------------------------------------------------

def umap_available() -> bool:
    """Whether ``umap-learn`` can be imported (the "auto" layout then uses UMAP)."""
    try:
        import umap  # noqa: F401
    except Exception:  # ImportError, or a broken numba underneath
        return False
    return True


def layout_2d(vectors: np.ndarray, method: str = "auto", seed: int = 0, cancel=None,
              iterations: int = 400) -> tuple[np.ndarray | None, str]:
    """A 2-D layout of ``vectors`` (n, C): ((n, 2) float32 (x, y) in [0, 1], the method used), or (None, method)
    when cancelled. ``method``: "auto" (UMAP if importable, else t-SNE), "umap", "tsne", "pca" (see the module
    docstring). Deterministic for a seed (on one machine). Refuses fewer than ``MIN_VECTORS`` vectors."""
    method = _options.choice("layout", method, LAYOUTS)
    seed = _options.seed(seed)
    x = np.asarray(vectors, np.float64)
    if x.ndim != 2:
        raise OptionError(f"vectors must be an array (n, C); got shape {x.shape}.")
    if len(x) < MIN_VECTORS:
        raise OptionError(f"a 2-D layout needs at least {MIN_VECTORS} activation vectors; got {len(x)}. Pass more "
                          "images (or a larger samples / per_image).")
    if not np.isfinite(x).all():
        raise OptionError("the activation vectors hold NaN or infinite values: the model diverged on this data.")
    if method == "auto":
        method = "umap" if umap_available() else "tsne"
    if method == "umap":
        if not umap_available():
            raise OptionError("layout='umap' needs the umap-learn package (pip install umap-learn); "
                              "layout='tsne' needs nothing more.")
        import umap

        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(x) - 1), min_dist=0.01, metric="cosine",
                            random_state=seed)
        y = reducer.fit_transform(x.astype(np.float32))
    else:
        unit = _unit_rows(x)
        if method == "pca":
            y = _pca(unit, 2)
        else:
            y = tsne(_pca(unit, PCA_DIMS), seed=seed, iterations=iterations, cancel=cancel)
            if y is None:
                return None, method
    return normalize_layout(y), method


def normalize_layout(y: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Each axis clipped to its [low, high] percentiles and scaled to [0, 1] (a constant axis becomes 0.5):
    (n, 2) float32."""
    y = np.asarray(y, np.float64)
    lo, hi = np.percentile(y, low, axis=0), np.percentile(y, high, axis=0)
    span = hi - lo
    out = np.where(span > 0, (np.clip(y, lo, hi) - lo) / np.where(span > 0, span, 1.0), 0.5)
    return out.astype(np.float32)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norm > 0, x / np.where(norm > 0, norm, 1.0), 0.0)


def _pca(x: np.ndarray, dims: int) -> np.ndarray:
    """``x`` centred and projected on its ``dims`` leading principal axes (fewer if it has fewer), with the signs
    fixed (largest loading positive) so the result does not depend on the SVD's sign choice."""
    x = x - x.mean(0)
    dims = min(dims, x.shape[0], x.shape[1])
    if x.shape[1] <= dims:
        return x
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    vt = vt[:dims]
    signs = np.sign(vt[np.arange(dims), np.abs(vt).argmax(1)])
    return x @ (vt * np.where(signs == 0, 1.0, signs)[:, None]).T


def tsne(x: np.ndarray, seed: int = 0, perplexity: float = 30.0, iterations: int = 400, cancel=None,
         most: int = TSNE_MAX):
    """t-SNE of ``x`` (n, d) to (n, 2) float64, in numpy; None when cancelled.

    Exact t-SNE (O(m^2) time and memory) on at most ``most`` of the points (an evenly spaced subset when there
    are more; the sample is random already); each other point is put at the distance-weighted mean of the layout
    of its 5 nearest laid-out points in ``x`` (weights 1 / (distance + eps)), as an out-of-sample extension.
    ``iterations`` gradient steps, the first quarter (at most 250) with early exaggeration 12."""
    n = len(x)
    if n > most:
        base = np.linspace(0, n - 1, most).round().astype(np.int64)
        y_base = tsne(x[base], seed, perplexity, iterations, cancel, most)
        if y_base is None:
            return None
        rest = np.setdiff1d(np.arange(n), base)
        y = np.zeros((n, 2))
        y[base] = y_base
        for chunk in np.array_split(rest, max(1, len(rest) // 500)):
            d = np.sqrt(np.maximum((x[chunk] ** 2).sum(1)[:, None] + (x[base] ** 2).sum(1)[None]
                                   - 2.0 * x[chunk] @ x[base].T, 0.0))
            near = np.argsort(d, axis=1, kind="stable")[:, :5]
            w = 1.0 / (np.take_along_axis(d, near, 1) + 1e-6)
            y[chunk] = (w[:, :, None] * y_base[near]).sum(1) / w.sum(1, keepdims=True)
        return y
    perplexity = min(perplexity, (n - 1) / 3.0)
    p = _joint_p(_sq_distances(x), perplexity).astype(np.float32)
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0, 1e-4, (n, 2)).astype(np.float32)
    velocity = np.zeros_like(y)
    gains = np.ones_like(y)
    rate = np.float32(max(n / 12.0, 50.0))
    early = min(250, iterations // 4)
    diagonal = np.arange(n)
    for it in range(iterations):
        if cancel is not None and it % 25 == 0 and cancel.is_set():
            return None
        exaggeration = np.float32(12.0 if it < early else 1.0)
        momentum = np.float32(0.5 if it < early else 0.8)
        # 1 / (1 + |y_i - y_j|^2), from the coordinate differences (a (n, 2) x (2, n) BLAS product is slow on a
        # busy machine, and less exact)
        num = np.subtract.outer(y[:, 0], y[:, 0])
        num *= num
        dy = np.subtract.outer(y[:, 1], y[:, 1])
        dy *= dy
        num += dy
        num += 1.0
        np.reciprocal(num, out=num)
        num[diagonal, diagonal] = 0.0
        total = max(float(num.sum()), 1e-12)
        pq = p * exaggeration
        pq -= num * np.float32(1.0 / total)
        pq *= num
        # pq @ y without BLAS (whose threads thrash on a busy machine: 10x slower for this (n, n) x (n, 2))
        grad = 4.0 * (pq.sum(1)[:, None] * y - np.stack([(pq * y[:, 0]).sum(1), (pq * y[:, 1]).sum(1)], 1))
        same = np.sign(grad) == np.sign(velocity)
        gains = np.maximum(np.where(same, gains * 0.8, gains + 0.2), 0.01).astype(np.float32)
        velocity = momentum * velocity - rate * gains * grad
        y = y + velocity
        y -= y.mean(0)
    return y.astype(np.float64)


def _sq_distances(x: np.ndarray) -> np.ndarray:
    s = (x * x).sum(1)
    d = np.maximum(s[:, None] + s[None, :] - 2.0 * (x @ x.T), 0.0)
    np.fill_diagonal(d, 0.0)
    return d


def _joint_p(d: np.ndarray, perplexity: float) -> np.ndarray:
    """Symmetric joint probabilities of t-SNE: per row a Gaussian over the other points whose entropy is
    log(perplexity), its precision found by bisection (all rows at once), then (P + P^T) / 2n."""
    n = len(d)
    target = math.log(perplexity)
    off = ~np.eye(n, dtype=bool)
    scale = float(np.median(d[off])) if n > 1 else 1.0
    dd = (d / (scale if scale > 0 else 1.0)).astype(np.float64)
    dd[~off] = np.inf
    lo, hi = np.full(n, 0.0), np.full(n, np.inf)
    beta = np.ones(n)
    for _ in range(50):
        logits = -dd * beta[:, None]
        logits -= logits.max(1, keepdims=True)
        e = np.exp(logits)
        z = e.sum(1)
        # entropy of p = e / z: log z - sum(p * logits)
        entropy = np.log(z) - (e * np.where(np.isfinite(logits), logits, 0.0)).sum(1) / z
        too_flat = entropy > target  # raise the precision
        lo = np.where(too_flat, beta, lo)
        hi = np.where(too_flat, hi, beta)
        beta = np.where(np.isfinite(hi), (lo + hi) / 2.0, beta * 2.0)
    p = e / z[:, None]
    p = (p + p.T) / (2.0 * n)
    return np.maximum(p, 1e-12)


# -- 3. binning --------------------------------------------------------------------------------------------------

def bin_cells(coords: np.ndarray, vectors: np.ndarray, classes: np.ndarray, grid: int,
              image_index: np.ndarray | None = None, examples: int = DEFAULT_EXAMPLES):
    """Bin a layout into a ``grid`` x ``grid`` layout: (AtlasCells of the non-empty cells, cell of each vector
    (n,) int64 = row * grid + col). ``coords`` (n, 2) (x, y) in [0, 1] (1.0 falls in the last cell); ``classes``
    (n,) int64 the class each vector stands for (-1 unknown); ``image_index`` (n,) its image (default: its row)."""
    grid = _check_grid(grid)
    coords = np.asarray(coords, np.float64)
    vectors = np.asarray(vectors, np.float32)
    n = len(coords)
    classes = np.asarray(classes, np.int64)
    image_index = np.arange(n, dtype=np.int64) if image_index is None else np.asarray(image_index, np.int64)
    col = np.clip(np.floor(coords[:, 0] * grid), 0, grid - 1).astype(np.int64)
    row = np.clip(np.floor(coords[:, 1] * grid), 0, grid - 1).astype(np.int64)
    cell_of = row * grid + col
    ids, inverse, counts = np.unique(cell_of, return_inverse=True, return_counts=True)
    m = len(ids)
    sums = np.zeros((m, vectors.shape[1]), np.float64)
    np.add.at(sums, inverse, vectors)
    means = (sums / counts[:, None]).astype(np.float32)
    label = np.full(m, -1, np.int64)
    support = np.zeros(m, np.float64)
    ex = np.full((m, examples), -1, np.int64)
    ex_rows = np.full((m, examples), -1, np.int64)
    unit = _unit_rows(vectors.astype(np.float64))
    mean_unit = _unit_rows(means.astype(np.float64))
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    for i in range(m):
        members = order[starts[i]:starts[i + 1]]
        known = classes[members]
        known = known[known >= 0]
        if len(known):
            votes = np.bincount(known)
            label[i] = int(votes.argmax())  # ties: the lowest class index
            support[i] = votes.max() / len(members)
        cos = unit[members] @ mean_unit[i]
        ranked = members[np.lexsort((image_index[members], -cos))]
        _, first = np.unique(image_index[ranked], return_index=True)
        kept = ranked[np.sort(first)][:examples]
        ex[i, :len(kept)] = image_index[kept]
        ex_rows[i, :len(kept)] = kept
    renderable = np.linalg.norm(means, axis=1) > 0
    cells = AtlasCells(row=(ids // grid).astype(np.int32), col=(ids % grid).astype(np.int32),
                       count=counts.astype(np.int64), mean=means, label=label, support=support, examples=ex,
                       example_samples=ex_rows, renderable=renderable)
    return cells, cell_of


# -- 4. render ---------------------------------------------------------------------------------------------------

def directions_objective(layer, vectors: np.ndarray, cossim_pow: float = 1.0):
    """A batch objective: image i encourages the direction ``vectors[i]`` of ``layer`` (vectors (B, C)), with
    exactly ``fv.direction``'s term (at each position ``dot(a, v / |v|) * max(cos(a, v), 0.1) ** cossim_pow``,
    averaged over positions), summed over the images. One term on a (B, C) array of directions instead of B
    ``fv.batch(fv.direction(...), i)`` terms: the same value, but one small graph (B composed terms took most of
    a render's time to trace). Equal batch sizes share one compiled render step (the vectors are values)."""
    from .featurevis.objectives import Objective, _layer as _fv_layer, _mean_per_image

    vecs = np.asarray(vectors, np.float32)
    if vecs.ndim != 2 or not len(vecs):
        raise OptionError(f"vectors must be an array (B, C) of directions, B >= 1; got shape {vecs.shape}.")

    def bind(probe):
        info = _fv_layer(probe, layer, what="direction")
        n = int(info.output_shape[-1])
        if vecs.shape[1] != n:
            raise OptionError(f"the direction vectors for {info.path!r} need one entry per channel, shape "
                              f"({len(vecs)}, {n}); got shape {vecs.shape}.")
        norms = np.linalg.norm(vecs, axis=1)
        if not (np.isfinite(norms).all() and (norms > 0).all()):
            raise OptionError("every direction vector must be finite and non-zero.")
        return [vecs / norms[:, None], np.float32(cossim_pow)]

    def fn(T, v):
        act, unit, power = T[layer], v[0], v[1]
        u = unit[:, None, None, :] if act.shape.rank == 4 else unit
        dot = tf.reduce_sum(act * u, axis=-1)
        cos = dot / tf.sqrt(tf.reduce_sum(tf.square(act), axis=-1) + 1e-8)
        return tf.reduce_sum(_mean_per_image(dot * tf.pow(tf.maximum(cos, 0.1), power)))

    return Objective(fn, f"directions({layer!r}, <{len(vecs)} vectors>)", ("atlas_directions", layer, len(vecs)),
                     bind, 2, [layer], batch=len(vecs))


def render_atlas(probe, atlas: Atlas, size: int | None = None, steps: int = 128, batch: int = 16, seed: int = 0,
                 cossim_pow: float = 1.0, param=None, transforms=None, progress: Callable | None = None,
                 cancel=None, only=None) -> Atlas:
    """Stage 4: the icons of ``atlas``'s renderable cells (those of indices ``only`` if given), ``batch`` cells a
    render, each the feature visualization of its cell's mean direction. ``progress(done, total, atlas)`` after
    each batch, with the icons so far. A cancel keeps the icons of whole batches (a batch cut short is dropped, its
    cells stay ``rendered`` False). Returns the atlas with ``icons`` and ``rendered`` filled in."""
    from . import featurevis as fv

    probe = probe_for(probe)
    if atlas.cells is None:
        raise OptionError("this atlas has no cells yet: lay it out first (activation_atlas, or place()).")
    steps = _options.positive_int("steps", steps)
    batch = _options.positive_int("render_batch", batch)
    seed = _options.seed(seed)
    _check_callbacks(progress, cancel)
    cells = atlas.cells
    todo = np.flatnonzero(cells.renderable) if only is None else np.asarray(only, np.int64)
    todo = np.array([i for i in todo if cells.renderable[i]], np.int64)
    icons, rendered = atlas.icons, (atlas.rendered.copy() if atlas.rendered is not None
                                    else np.zeros(len(cells), bool))
    done, total = 0, len(todo)
    current = replace(atlas, stage="render", partial=True, cancelled=False, rendered=rendered)
    start = 0
    while start < total:
        if cancel is not None and cancel.is_set():
            return replace(current, cancelled=True)
        chunk = todo[start:start + batch]
        vecs = cells.mean[chunk]
        if len(vecs) < batch:  # the same batch size every time: one compiled step
            vecs = np.concatenate([vecs, np.repeat(vecs[-1:], batch - len(vecs), 0)])
        images = fv.render(probe, directions_objective(atlas.path, vecs, cossim_pow), size=size, steps=steps,
                           batch=batch, seed=seed, param=param, transforms=transforms, cancel=cancel)
        if cancel is not None and cancel.is_set():
            return replace(current, cancelled=True)
        if icons is None or icons.shape[1:] != images.shape[1:]:
            # a new icon array: icons rendered before (outside ``todo``, e.g. before a cancel) are lost with the
            # old one, so they join the work instead of staying marked rendered with no image (a resumed atlas
            # ended with its first icons blank and rendered False)
            icons = np.full((len(cells),) + images.shape[1:], np.nan, np.float32)
            lost = np.flatnonzero(rendered & ~np.isin(np.arange(len(cells)), todo))
            rendered[:] = False
            if len(lost):
                todo = np.concatenate([todo, lost])
                total = len(todo)
        icons[chunk] = images[:len(chunk)]
        rendered[chunk] = True
        done += len(chunk)
        start += batch
        current = replace(current, icons=icons, rendered=rendered)
        if progress is not None:
            progress(done, total, current)
    if icons is None:
        icons = np.zeros((len(cells), 0, 0, 3), np.float32)
    return replace(current, icons=icons, rendered=rendered, stage="done", partial=False)


# -- checks -------------------------------------------------------------------------------------------------------

def _check_grid(grid) -> int:
    grid = _options.positive_int("grid", grid, 2)
    if grid > 256:
        raise OptionError(f"grid must be a whole number from 2 to 256 (cells a side); got {grid}.")
    return grid


def _check_callbacks(progress, cancel):
    if progress is not None and not callable(progress):
        raise OptionError(f"progress must be None or a function; got {progress!r}.")
    if cancel is not None and not hasattr(cancel, "is_set"):
        raise OptionError(f"cancel must be None or a threading.Event; got {cancel!r} ({type(cancel).__name__}).")
