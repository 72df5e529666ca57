"""How faithful a map is: deletion and insertion curves (Petsiuk et al. 2018, as Xplique computes them) and the
model-randomization sanity check (Adebayo et al. 2018).

The curves take the same ``(probe_or_model, images, ...)`` inputs as the methods, plus the maps to judge.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from ..errors import OptionError
from ..probe import ModelProbe
from . import _common as c


def _ranks(maps: np.ndarray, seed: int) -> np.ndarray:
    """(N, H, W) int32 rank of each pixel by decreasing map value (0 = most important); ties in random order, so
    a flat region is not removed from the top-left corner first."""
    n = len(maps)
    flat = maps.reshape(n, -1)
    jitter = np.random.default_rng(seed).random(flat.shape)
    order = np.lexsort((jitter, -flat), axis=-1)
    ranks = np.empty_like(order, dtype=np.int32)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1], dtype=np.int32)[None].repeat(n, 0), -1)
    return ranks.reshape(maps.shape)


def _curve(kind, model, images, maps, target, steps, baseline, score, seed, return_curves, batch_size, progress,
           cancel):
    probe = c.as_probe(model)
    batch = probe.images(images)
    n, h, w = batch.shape[:3]
    maps = np.asarray(maps, np.float32)
    if maps.shape != (n, h, w):
        raise OptionError(f"maps must be one value per pixel, shaped (N, H, W) {(n, h, w)}; got {maps.shape}.")
    steps = c.positive_int("steps", steps)
    c.choice("score", score, ("logit", "probability"))
    target, _ = c.predicted(probe, batch, c.targets(probe, n, target), batch_size)
    fill = c.fill_images(probe, batch, baseline, name="baseline")
    counts = np.round(np.linspace(0, h * w, steps + 1)).astype(np.int32)
    delete = kind == "deletion"

    def build(idx, ranks, count):  # keep the pixels not yet deleted / already inserted
        r = tf.gather(ranks, idx)
        k = count[:, None, None]
        return tf.cast(r >= k if delete else r < k, tf.float32)

    scores = c.masked_scores(probe, kind, build, batch, fill, target, np.repeat(np.arange(n, dtype=np.int32),
                             steps + 1), params=(np.tile(counts, n),), context=(_ranks(maps, seed),), score=score,
                             batch_size=batch_size, progress=progress, cancel=cancel).reshape(n, steps + 1)
    auc = ((scores[:, 1:] + scores[:, :-1]) / 2).mean(1).astype(np.float32)  # trapezoid over fraction 0..1
    return (auc, scores) if return_curves else auc


def deletion(model, images, maps, target=None, steps=10, baseline="mean", score="probability", seed=0,
             return_curves=False, batch_size=None, progress=None, cancel=None):
    """Deletion AUC (N,) float32: the target score as the map's most important pixels are replaced by
    ``baseline``, ``steps`` equal fractions at a time (0 to all pixels), area under that curve over the
    fraction removed (trapezoid rule). **Lower is better**: a faithful map finds the pixels the score needs first.

    maps: (N, H, W), larger = more important (pass |map| to rank by magnitude). baseline: what removed pixels
    become (see ``_common.fill_images``; default each image's mean colour: black would keep a dark shape's
    silhouette). score: "probability" (Xplique's, in [0, 1]) or "logit". steps + 1 passes per image.
    return_curves: also return the curves (N, steps + 1), at fractions 0, 1/steps, ..., 1.
    """
    return _curve("deletion", model, images, maps, target, steps, baseline, score, seed, return_curves, batch_size,
                  progress, cancel)


def insertion(model, images, maps, target=None, steps=10, baseline="mean", score="probability", seed=0,
              return_curves=False, batch_size=None, progress=None, cancel=None):
    """Insertion AUC (N,) float32: as ``deletion``, but starting from the baseline and putting the most important
    pixels back first. **Higher is better**."""
    return _curve("insertion", model, images, maps, target, steps, baseline, score, seed, return_curves, batch_size,
                  progress, cancel)


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation per row of two (N, ...) arrays (ties get their mean rank): (N,) float32.
    A constant map correlates with nothing: 0."""
    ra = np.stack([_average_ranks(x) for x in np.asarray(a).reshape(len(a), -1)])
    rb = np.stack([_average_ranks(x) for x in np.asarray(b).reshape(len(b), -1)])
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    denom = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    return np.where(denom > 0, (ra * rb).sum(1) / np.where(denom > 0, denom, 1), 0).astype(np.float32)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - (counts - 1) / 2) - 1)[inverse].astype(np.float64)


def randomized_model(model: keras.Model, layers=None) -> keras.Model:
    """A copy of ``model`` with the weights of ``layers`` (paths as in ``probe.layers``; None = all) re-drawn from
    their initializers and every other weight copied. ``model`` itself is never touched."""
    clone = keras.models.clone_model(model)  # new layers, freshly initialized
    if layers is None:
        return clone
    wanted = set(layers)
    original = dict(_walk(model))
    known = set(original)
    if wanted - known:
        from ..errors import unknown_layer

        raise unknown_layer(sorted(wanted - known)[0], sorted(known))
    for path, layer in _walk(clone):
        if path not in wanted and layer.weights:
            layer.set_weights(original[path].get_weights())
    return clone


def _walk(model, prefix=""):
    """(path, layer) for every layer, nested models' layers under "outer/inner" paths like the probe's."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk(layer, prefix + layer.name + "/")
        else:
            yield prefix + layer.name, layer


def randomization(model, images, method: Callable, target=None, layers=None, **options) -> np.ndarray:
    """Model-randomization sanity check: Spearman correlation (N,) between ``method``'s maps for the model and for
    a copy with randomly re-initialized weights (``randomized_model``; ``layers`` = None for all, or some
    paths to randomize, e.g. top-down in a cascade). Both explain the class the trained model predicts.

    A map that explains the model should change: a correlation near 0 passes, near 1 means the map shows the
    image more than the model (Adebayo et al. 2018). ``method`` is any attribution function of this package;
    ``options`` go to it. The randomized copy gets its own probe with the same ``preprocess`` and range.
    """
    probe = c.as_probe(model)
    batch = probe.images(images)
    target, _ = c.predicted(probe, batch, c.targets(probe, len(batch), target))
    if not callable(method):
        raise OptionError(f"method must be an attribution function such as attr.grad_cam; got {method!r}.")
    randomized = ModelProbe(randomized_model(probe.model, layers), preprocess=probe.preprocess,
                            input_range=probe.input_range, batch_size=probe.batch_size)
    before = method(probe, batch, target, **options)
    after = method(randomized, batch, target, **options)
    return spearman(before, after)
