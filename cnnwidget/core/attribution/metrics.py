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


SIGNS = ("positive", "negative", "absolute", "both")
"""How a signed map is shown, and so how the curves rank its pixels (the AttributionMap view's sign setting)."""


def shown(maps, sign: str = "both") -> np.ndarray:
    """The values a map is drawn with under ``sign``, as the AttributionMap view draws them (js/heatmaps.js
    ``signed``): "positive" max(m, 0), "negative" max(-m, 0), "absolute" |m|, "both" m itself. float32, same shape.

    The deletion and insertion curves rank pixels by these values, so a score describes the map on the screen.
    For a map with no negative values "positive", "absolute" and "both" are the same ranking."""
    c.choice("sign", sign, SIGNS)
    m = np.asarray(maps, np.float32)
    if sign == "positive":
        return np.maximum(m, 0)
    if sign == "negative":
        return np.maximum(-m, 0)
    if sign == "absolute":
        return np.abs(m)
    return m


def check_maps(maps, n: int, h: int, w: int, name: str = "maps") -> np.ndarray:
    """``maps`` as float32 (N, H, W) for N images of H x W pixels ((H, W) is taken for a single image), finite;
    otherwise an OptionError saying what was expected and what was given."""
    try:
        arr = np.asarray(maps, np.float32)
    except (TypeError, ValueError):
        raise OptionError(f"{name} must be a numeric array shaped (N, H, W) {(n, h, w)}, one value per pixel of "
                          f"each image; got {type(maps).__name__}.") from None
    if arr.shape == (h, w) and n == 1:
        arr = arr[None]
    if arr.shape != (n, h, w):
        raise OptionError(f"{name} must be one value per pixel of each image, shaped (N, H, W) {(n, h, w)} for "
                          f"{n} image{'s' if n != 1 else ''} of {h}x{w}; got {arr.shape}.")
    bad = ~np.isfinite(arr)
    if bad.any():
        per_map = bad.reshape(n, -1).sum(1)
        first = int(np.flatnonzero(per_map)[0])
        nans = int(np.isnan(arr[first]).sum())
        raise OptionError(f"{name} must be finite: map {first} has {nans} NaN and {int(per_map[first]) - nans} "
                          f"infinite values of {h * w} ({int((per_map > 0).sum())} of {n} maps have some); a map "
                          "cannot rank pixels it has no value for. A method that returns NaN failed on its input.")
    return arr


NEGLIGIBLE = 1e-6
"""A map whose values, summed over the image as departures from its median, add up to less than this (in the
explained score's units: logit or probability) says the score does not depend on the pixels: see ``map_warning``."""
GRADIENT_UNITS = ("saliency", "smoothgrad", "guided_backprop")
"""Methods whose values are gradients (score per unit of input): their size is taken times the input's span."""


def map_warning(amap, method: str = "", input_span: float = 1.0) -> str:
    """Why one (H, W) map should not be trusted, in plain words, or "" if nothing is wrong with it.

    Refused: NaN or infinite values; a map with one value everywhere (it ranks no pixel above another); a map whose
    total departure from its median, sum |m - median(m)| (times ``input_span`` for gradient maps, to be in score
    units), is below ``NEGLIGIBLE``: the explained score hardly depends on the image at all (an untrained model,
    a saturated output, inputs far outside what the model was made for; an untrained MobileNetV2 gave gradient x
    input maps peaking at 1e-12). Drawn normalized, such a map would look as confident as a real one."""
    a = np.asarray(amap, np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        return (f"{int(bad.sum())} of its {a.size} values are NaN or infinite: the method failed on this input, "
                "so the map cannot be trusted")
    spread = float(np.abs(a - np.median(a)).sum()) * (float(input_span) if method in GRADIENT_UNITS else 1.0)
    if spread == 0.0:
        return "the map has one value everywhere: it ranks no pixel above another, so it shows no evidence"
    if spread < NEGLIGIBLE:
        return (f"the map's values are negligible (they add up to {spread:.2g} of the explained score): the score "
                "hardly depends on the image (an untrained model, or inputs unlike the model's?); its pattern is "
                "numerical noise drawn at full contrast")
    return ""


def _ranks(maps: np.ndarray, seed: int) -> np.ndarray:
    """(N, H, W) int32 rank of each pixel by decreasing map value (0 = most important); ties in random order, so
    a flat region is not removed from the top-left corner first (and a constant map is a random ranking)."""
    n = len(maps)
    flat = maps.reshape(n, -1)
    jitter = np.random.default_rng(seed).random(flat.shape)
    order = np.lexsort((jitter, -flat), axis=-1)
    ranks = np.empty_like(order, dtype=np.int32)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1], dtype=np.int32)[None].repeat(n, 0), -1)
    return ranks.reshape(maps.shape)


def _options(probe, batch, target, steps, baseline, score, batch_size, cancel=None):
    steps = c.positive_int("steps", steps)
    c.choice("score", score, ("logit", "probability"))
    fill = c.fill_images(probe, batch, baseline, name="baseline")
    target, _ = c.predicted(probe, batch, c.targets(probe, len(batch), target), batch_size, cancel)
    return target, steps, fill


def _scores(probe, kind, batch, fill, target, ranks, steps, score, batch_size, progress, cancel):
    """The curves (N, steps + 1) and their AUCs (N,) for pixel ``ranks`` (N, H, W) of ``batch``."""
    n, h, w = ranks.shape
    counts = np.round(np.linspace(0, h * w, steps + 1)).astype(np.int32)
    delete = kind == "deletion"

    def build(idx, ranks, count):  # keep the pixels not yet deleted / already inserted
        r = tf.gather(ranks, idx)
        k = count[:, None, None]
        return tf.cast(r >= k if delete else r < k, tf.float32)

    scores = c.masked_scores(probe, kind, build, batch, fill, target, np.repeat(np.arange(n, dtype=np.int32),
                             steps + 1), params=(np.tile(counts, n),), context=(ranks,), score=score,
                             batch_size=batch_size, progress=progress, cancel=cancel).reshape(n, steps + 1)
    auc = ((scores[:, 1:] + scores[:, :-1]) / 2).mean(1).astype(np.float32)  # trapezoid over fraction 0..1
    return auc, scores


def _curve(kind, model, images, maps, target, steps, baseline, score, sign, seed, return_curves, batch_size,
           progress, cancel):
    probe = c.as_probe(model)
    batch = probe.images(images)
    n, h, w = batch.shape[:3]
    maps = shown(check_maps(maps, n, h, w), sign)
    target, steps, fill = _options(probe, batch, target, steps, baseline, score, batch_size, cancel)
    auc, scores = _scores(probe, kind, batch, fill, target, _ranks(maps, seed), steps, score, batch_size, progress,
                          cancel)
    return (auc, scores) if return_curves else auc


def deletion(model, images, maps, target=None, steps=10, baseline="mean", score="probability", sign="absolute",
             seed=0, return_curves=False, batch_size=None, progress=None, cancel=None):
    """Deletion AUC (N,) float32: the target score as the map's most important pixels are replaced by
    ``baseline``, ``steps`` equal fractions at a time (0 to all pixels), area under that curve over the
    fraction removed (trapezoid rule). **Lower is better**: a faithful map finds the pixels the score needs first.

    maps: (N, H, W) finite, one value per pixel ((H, W) for one image); anything else raises OptionError.
    sign: which part of a signed map ranks the pixels, as the AttributionMap view shows it (``shown``):
    "absolute" (default, as the widget's default) |m|; "both" the value itself, larger = more important;
    "positive" max(m, 0); "negative" max(-m, 0). Pixels of equal value (all the zeros of "positive") come in
    random order from ``seed``.
    A signed pixel map is judged by how it is shown: on 16 demo images (seed 5) Integrated Gradients' insertion
    AUC is 0.168 ranked by value and 0.185 by its positive part, at a random map's 0.177, but 0.659 by |map|
    (gradient x input: 0.174, 0.175, 0.510): half the pixels of either are negative, interleaved with the
    positive ones. Compare with ``random_reference``.
    baseline: what removed pixels become (see ``_common.fill_images``; default each image's mean colour: black
    would keep a dark shape's silhouette). score: "probability" (Xplique's, in [0, 1]) or "logit". steps + 1
    passes per image. return_curves: also return the curves (N, steps + 1), at fractions 0, 1/steps, ..., 1.
    """
    return _curve("deletion", model, images, maps, target, steps, baseline, score, sign, seed, return_curves,
                  batch_size, progress, cancel)


def insertion(model, images, maps, target=None, steps=10, baseline="mean", score="probability", sign="absolute",
              seed=0, return_curves=False, batch_size=None, progress=None, cancel=None):
    """Insertion AUC (N,) float32: as ``deletion``, but starting from the baseline and putting the most important
    pixels back first. **Higher is better**."""
    return _curve("insertion", model, images, maps, target, steps, baseline, score, sign, seed, return_curves,
                  batch_size, progress, cancel)


def random_reference(model, images, target=None, draws=4, steps=10, baseline="mean", score="probability", seed=0,
                     return_curves=False, batch_size=None, progress=None, cancel=None) -> dict:
    """What a map that knows nothing scores: deletion and insertion of pixels in random order, averaged over
    ``draws`` random orders per image (seeded: same ``seed``, same figures). The reference to show beside the
    methods' AUCs: a map is only informative where it beats it (deletion below, insertion above).

    Options as for ``deletion`` (the same ``steps``, ``baseline`` and ``score`` must be used for the figures to
    compare); the reference depends on the image and class, not on a method or a sign setting.
    Returns ``{"deletion": (N,) float32, "insertion": (N,) float32}``, and with ``return_curves`` also
    ``"deletion_curves"`` and ``"insertion_curves"``, (N, steps + 1) means over the draws.
    Costs 2 * draws * (steps + 1) passes per image; ``progress(done, total)`` counts both curves.
    """
    probe = c.as_probe(model)
    batch = probe.images(images)
    n, h, w = batch.shape[:3]
    draws = c.positive_int("draws", draws)
    target, steps, fill = _options(probe, batch, target, steps, baseline, score, batch_size, cancel)
    rows = np.tile(np.arange(n), draws)  # draw-major: row r is image r % n
    ranks = _ranks(np.zeros((n * draws, h, w), np.float32), seed)  # all ties: a random order per row
    total = 2 * len(rows) * (steps + 1)
    out = {}
    for k, kind in enumerate(("deletion", "insertion")):
        step = None if progress is None else (lambda done, _, base=k * total // 2: progress(base + done, total))
        auc, curves = _scores(probe, kind, batch[rows], fill[rows], target[rows], ranks, steps, score, batch_size,
                              step, cancel)
        out[kind] = auc.reshape(draws, n).mean(0).astype(np.float32)
        if return_curves:
            out[f"{kind}_curves"] = curves.reshape(draws, n, steps + 1).mean(0).astype(np.float32)
    return out


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
    randomized = _randomized_probe(probe, layers)
    before = method(probe, batch, target, **options)
    after = method(randomized, batch, target, **options)
    return spearman(before, after)


def _randomized_probe(probe: ModelProbe, layers) -> ModelProbe:
    """The probe of ``probe``'s randomized copy for ``layers``, kept by ``probe`` (``probe.compiled``) so that a
    second check traces nothing: the copy's random weights are drawn once per (probe, layers), and the weights it
    keeps are copied from the model again on every call (the model may have been trained since). The copy and
    its probe hold nothing of the user's model, and go with ``probe``."""
    key = ("randomization", None if layers is None else tuple(layers))
    randomized = probe.compiled(key, lambda: ModelProbe(randomized_model(probe.model, layers),
                                                        preprocess=probe.preprocess, input_range=probe.input_range,
                                                        batch_size=probe.batch_size))
    if layers is not None:
        original, wanted = dict(_walk(probe.model)), set(layers)
        for path, layer in _walk(randomized.model):
            if path not in wanted and layer.weights:
                layer.set_weights(original[path].get_weights())
    return randomized
