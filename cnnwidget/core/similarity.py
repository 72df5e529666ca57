"""Layer similarity and transfer learning: linear CKA between layers (one model with itself, or a base model and
its fine-tuned copy), streamed over a ``tf.data`` set of any size; weight drift; a "generic"/"specific" verdict per
layer; and ``freeze_until`` to act on it.

Linear CKA (Kornblith et al. 2019, "Similarity of neural network representations revisited") compares two
representations of the same n inputs, x (n, d1) and y (n, d2): HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with linear
Gram matrices K = x x^T, L = y y^T. It is 1 for identical representations and is invariant to orthogonal
transforms and isotropic scaling of either, so layers of different widths, or two models, can be compared.

Over a data set too large for one Gram matrix, the minibatch estimator of Nguyen, Raghu and Kornblith (2021, "Do
wide and deep networks learn the same things?") sums the unbiased HSIC estimator (Song et al. 2012) of each
minibatch: CKA = sum_i HSIC_1(K_i, L_i) / sqrt(sum_i HSIC_1(K_i, K_i) sum_i HSIC_1(L_i, L_i)). Memory depends on the
batch size and the layer sizes, never on the number of images.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from . import options
from .errors import Cancelled, CnnWidgetWarning, ImageError, LayerError, ModelError, OptionError
from .probe import ModelProbe
from .probe import probe_for as as_probe  # a Keras model gets the probe remembered for it: its passes are reused

GENERIC_THRESHOLD = 0.9

# How many images CKA needs. The unbiased HSIC estimator divides by n (n - 3), so a minibatch needs 4 images; at 4
# it is a cosine in the 2-dimensional space of 4x4 U-centered Gram matrices, right or wrong by chance. Measured on
# the demo model by benchmarks/cka_min_images.py (every other spatial layer and gap, 40 draws of n images per n,
# error = |CKA on n images - CKA on 512 images| per off-diagonal entry):
#     n              4     5     6     8    10    12    16    24    32
#     mean error  0.52  0.29  0.24  0.16  0.12  0.10  0.08  0.05  0.04
#     90th pct.   1.00  0.68  0.54  0.41  0.28  0.23  0.16  0.11  0.08
#     > 0.5 off    50%   21%   13%    5%  1.7%  0.6%    0%    0%    0%
# MIN_IMAGES is the first n with under 2% of entries off by more than 0.5 (below it a matrix is mostly noise, and
# is refused); STABLE_IMAGES the first with 90% of entries within 0.1 (below it the pass runs with a
# CnnWidgetWarning, see ``stability_note``).
MIN_IMAGES = 10
STABLE_IMAGES = 32


def stability_note(n_images: int) -> str | None:
    """A sentence saying that a CKA estimate from ``n_images`` images is unstable, or None from STABLE_IMAGES on;
    what ``layer_similarity`` warns with and what the LayerSimilarity widget shows."""
    if n_images >= STABLE_IMAGES:
        return None
    return (f"CKA from {n_images} images is unstable: with other images of the same kind its entries move by 0.1 "
            f"to 0.3 (measured on the demo model). Use {STABLE_IMAGES} images or more for a stable estimate.")


def check_image_count(n_images: int, batch_size: int | None = None) -> int:
    """ImageError unless ``n_images`` images, cut into batches of ``batch_size`` (None: one batch), give CKA at
    least MIN_IMAGES images in batches of 4 or more (a smaller batch has no unbiased estimate and adds nothing).
    Returns how many images count."""
    size = n_images if batch_size is None else min(int(batch_size), n_images)
    full, rest = divmod(n_images, max(size, 1))
    used = full * size + (rest if rest >= 4 else 0)
    if used < MIN_IMAGES:
        dropped = (f" ({n_images - used} of them in a last batch of fewer than 4, which adds nothing: choose another "
                   "batch_size)" if 0 < used < n_images else "")
        raise ImageError(f"CKA needs at least {MIN_IMAGES} images; got {n_images}{dropped}. Its estimator is "
                         f"undefined below 4 images and mostly noise below {MIN_IMAGES}; pass {STABLE_IMAGES} or "
                         "more images for a stable estimate.")
    return used


# -- CKA on arrays in memory ---------------------------------------------------------------------------------

def linear_cka(x, y, unbiased: bool = False) -> float:
    """Linear CKA of two representations of the same n inputs: float in [0, 1] (1 = same up to rotation and scale).

    ``x`` (n, d1), ``y`` (n, d2); more axes (feature maps (n, H, W, C)) are flattened. ``unbiased=False`` is the
    standard (biased) HSIC form of Kornblith et al. 2019; ``unbiased=True`` uses the unbiased HSIC estimator, what
    the minibatch estimator sums (it can be slightly negative for unrelated representations, and needs n >= 4).
    Computed in float64, through n x n Gram matrices or d x d feature products, whichever is smaller.
    NaN when either representation is constant over the n inputs.
    """
    x, y = _features(x, "x"), _features(y, "y")
    if len(x) != len(y):
        raise OptionError(f"x and y must describe the same inputs: x has {len(x)} rows, y has {len(y)}.")
    need = 4 if unbiased else 2
    if len(x) < need:
        raise OptionError(f"linear_cka needs at least {need} inputs{' (unbiased)' if unbiased else ''}; got {len(x)}.")
    # Every HSIC form here is invariant to shifting the features; centering first avoids cancellation.
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    n, d1, d2 = len(x), x.shape[1], y.shape[1]
    if n * n <= d1 * d2 + d1 * d1 + d2 * d2:
        k, l_ = x @ x.T, y @ y.T
        xy, xx, yy = _gram_hsic(k, l_, unbiased), _gram_hsic(k, k, unbiased), _gram_hsic(l_, l_, unbiased)
    else:
        xy, xx, yy = _feature_hsic(x, y, unbiased), _feature_hsic(x, x, unbiased), _feature_hsic(y, y, unbiased)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(xy / np.sqrt(xx * yy))


def _features(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim < 2:
        raise OptionError(f"{name} must be (n, features) or (n, H, W, C); got shape {a.shape}.")
    return a.reshape(len(a), -1)


def _gram_hsic(k: np.ndarray, l_: np.ndarray, unbiased: bool) -> float:
    """HSIC of two Gram matrices of centered features: biased (up to a constant factor shared by all three
    terms of CKA) or the unbiased estimator (Song et al. 2012, eq. 5)."""
    if not unbiased:
        return float((k * l_).sum())  # tr(K H L H) with H the centering matrix; the features are centered
    n = len(k)
    k, l_ = k - np.diag(np.diag(k)), l_ - np.diag(np.diag(l_))
    kl = k.sum(axis=1) @ l_.sum(axis=1)
    return float(((k * l_).sum() + k.sum() * l_.sum() / ((n - 1) * (n - 2)) - 2 * kl / (n - 2)) / (n * (n - 3)))


def _feature_hsic(x: np.ndarray, y: np.ndarray, unbiased: bool) -> float:
    """The same as _gram_hsic(x x^T, y y^T), through d1 x d2 products: for many inputs of few features."""
    cross = float(np.square(x.T @ y).sum())  # sum_ij K_ij L_ij
    if not unbiased:
        return cross
    n = len(x)
    nx, ny = np.square(x).sum(axis=1), np.square(y).sum(axis=1)  # diagonals of K and L
    sx, sy = x.sum(axis=0), y.sum(axis=0)
    trace = cross - nx @ ny
    sum_k, sum_l = sx @ sx - nx.sum(), sy @ sy - ny.sum()
    kl = (x @ sx - nx) @ (y @ sy - ny)  # 1^T K~ L~ 1 with K~, L~ the Gram matrices with zero diagonals
    return float((trace + sum_k * sum_l / ((n - 1) * (n - 2)) - 2 * kl / (n - 2)) / (n * (n - 3)))


# -- the streaming minibatch estimator ----------------------------------------------------------------------

def _centered_grams(features: list) -> tf.Tensor:
    """Feature tensors (n, ...) -> (L, n * n) float64 Gram matrices, centered for the unbiased HSIC estimator.

    With this centering (Kornblith's ``center_gram(unbiased=True)``), sum(Kc * Lc) / (n (n - 3)) is HSIC_1(K, L).
    Features are centered over the batch first (HSIC_1 does not change; float32 Gram products lose less).
    """
    n = tf.shape(features[0])[0]
    nf = tf.cast(n, tf.float64)
    off_diagonal = 1.0 - tf.eye(n, dtype=tf.float64)
    grams = []
    for f in features:
        f = tf.reshape(tf.cast(f, tf.float32), [n, -1])
        f = f - tf.reduce_mean(f, axis=0)
        g = tf.cast(tf.matmul(f, f, transpose_b=True), tf.float64) * off_diagonal
        means = tf.reduce_sum(g, axis=0) / (nf - 2)
        means = means - tf.reduce_sum(means) / (2 * (nf - 1))
        g = (g - means[:, None] - means[None, :]) * off_diagonal
        grams.append(tf.reshape(g, [-1]))
    return tf.stack(grams)


def _batch_hsic(features_a: list, features_b: list | None):
    """Unbiased HSIC of one minibatch: (La, Lb) cross terms, (La,) and (Lb,) self terms, float64.

    ``features_b`` None means b is a (the same layers). A batch of fewer than 4 inputs has no unbiased estimate
    and adds zeros.
    """
    n = tf.cast(tf.shape(features_a[0])[0], tf.float64)
    valid = tf.cast(n >= 4, tf.float64)
    scale = valid / tf.maximum(n * (n - 3), 1.0)
    ga = _centered_grams(features_a)
    gb = ga if features_b is None else _centered_grams(features_b)
    cross = tf.matmul(ga, gb, transpose_b=True) * scale
    self_a = tf.reduce_sum(tf.square(ga), axis=1) * scale
    self_b = self_a if features_b is None else tf.reduce_sum(tf.square(gb), axis=1) * scale
    return cross, self_a, self_b


def _cka_from_sums(cross, self_a, self_b) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return cross / np.sqrt(np.outer(self_a, self_b))


def minibatch_cka(batches) -> float:
    """The minibatch CKA estimator over an iterable (or ``tf.data`` set) of (x, y) feature batches.

    Each x (n_i, d1), y (n_i, d2) (more axes flattened) describes the same n_i inputs; the d must stay the same
    across batches, the n_i may vary (batches of fewer than 4 add nothing). Returns a float. Equal in expectation
    to ``linear_cka(x, y, unbiased=True)`` on all the data, with more variance the smaller the batches.
    """
    sums = None
    for x, y in batches:
        out = _hsic_pair_fn(tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(y, tf.float32))
        out = [t.numpy() for t in out]
        sums = out if sums is None else [s + o for s, o in zip(sums, out)]
    if sums is None:
        raise OptionError("minibatch_cka got no batches.")
    return float(_cka_from_sums(*sums)[0, 0])


@tf.function(reduce_retracing=True)
def _hsic_pair_fn(x, y):
    return _batch_hsic([x], [y])


# -- layers of models ----------------------------------------------------------------------------------------

def layer_similarity(probe_a, probe_b, data, layers=None, strategy: tf.distribute.Strategy | None = None,
                     batch_size: int = 128, progress=None, cancel=None) -> np.ndarray:
    """CKA between every layer of ``probe_a`` and every layer of ``probe_b``: float64 (La, Lb).

    ``probe_a``, ``probe_b``: ModelProbes or Keras models; ``probe_b`` None (or the same) compares a model with
    itself (one forward pass per batch, and a unit diagonal). ``layers``: names or paths, resolved in each model
    (default: every layer; two different models must then have the same layer names in the same order, else
    LayerError); rows and columns follow it.
    ``data``: display-space images, as a ``tf.data.Dataset`` of batches (N, H, W, C) or of tuples whose first item
    is that (e.g. (images, labels)), streamed, or a numpy array (cut into ``batch_size`` batches). Each batch is a
    minibatch of the estimator (see the module docstring); use batches of 64 or more, the same size throughout.
    ``strategy``: a tf.distribute.Strategy to run under (default: the current one); each replica's share of a
    batch is a minibatch, and the sums are reduced across replicas. NaN where a layer is constant on the data.
    ``progress(done, total)`` is called after each batch (``total`` None when the data set's length is unknown);
    ``cancel``, a threading.Event, is checked before each batch and raises ``Cancelled``.
    Fewer than MIN_IMAGES images (in batches of 4 or more) raise ImageError, before the pass for arrays; fewer
    than STABLE_IMAGES give a CnnWidgetWarning (see ``stability_note``).
    """
    pa, pb, paths_a, paths_b = paired_layers(probe_a, probe_b, layers)
    same = pb is pa and paths_a == paths_b
    step = _similarity_step(pa, None if same else pb, tuple(paths_a), tuple(paths_b))
    strategy = strategy or tf.distribute.get_strategy()
    sums, used = None, 0
    batches = _image_batches(data, pa, batch_size)
    total = int(batches.cardinality()) if int(batches.cardinality()) >= 0 else None
    for done, batch in enumerate(strategy.experimental_distribute_dataset(batches)):
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"the CKA pass was cancelled after {done} batches.")
        used += sum(n for n in (int(tf.shape(b)[0]) for b in strategy.experimental_local_results(batch)) if n >= 4)
        out = [strategy.reduce(tf.distribute.ReduceOp.SUM, t, axis=None).numpy()
               for t in strategy.run(step, args=(batch,))]
        sums = out if sums is None else [s + o for s, o in zip(sums, out)]
        if progress is not None:
            progress(done + 1, total)
    if sums is None:
        raise ImageError("data gave no images: pass a non-empty data set.")
    if used < MIN_IMAGES:
        check_image_count(used)  # raises, saying how many are needed
    note = stability_note(used)
    if note:
        warnings.warn(note, CnnWidgetWarning, stacklevel=2)
    return _cka_from_sums(*sums)


def _similarity_step(pa: ModelProbe, pb: ModelProbe | None, paths_a: tuple, paths_b: tuple):
    """The compiled step, kept by probe a: a second pass over the same layers (another data set, a strategy)
    reuses the trace. Probe b is in the key by weak reference, and its entry is dropped when probe b goes, so
    probe a never keeps another model alive."""
    key = ("similarity", None if pb is None else weakref.ref(pb), paths_a, paths_b)

    def make():
        step = _make_similarity_step(pa, pb, paths_a, paths_b)
        if pb is not None:
            weakref.finalize(pb, _forget, weakref.ref(pa), key)
        return step

    return pa.compiled(key, make)


def _forget(probe_ref, key):
    probe = probe_ref()
    if probe is not None:
        probe.forget(key)


def _make_similarity_step(pa: ModelProbe, pb: ModelProbe | None, paths_a: tuple, paths_b: tuple):
    forward_a = pa.forward(paths_a)
    forward_b = None if pb is None else pb.forward(paths_b)
    spec = tf.TensorSpec((None,) + tuple(pa.input_shape), tf.float32)

    def step(x):
        feats_a = forward_a(x)
        return _batch_hsic(feats_a, None if forward_b is None else forward_b(x))

    return pa.tf_function(step, input_signature=[spec], family="similarity")


def _image_batches(data, probe: ModelProbe, batch_size: int) -> tf.data.Dataset:
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if isinstance(spec, (tuple, list)):
            data = data.map(lambda *items: items[0])
            spec = spec[0]
        if not isinstance(spec, tf.TensorSpec) or spec.shape.rank != 4:
            raise ImageError(f"data must yield batches of images (N, H, W, C) (or tuples starting with them); it "
                             f"yields {spec}. Batch an image data set first: data.batch(128).")
        want = tuple(probe.input_shape)
        got = tuple(spec.shape[1:])
        if any(g is not None and w is not None and g != w for g, w in zip(got, want)):
            raise ImageError(f"the model takes images {want}; data yields {got}.")
        return data.map(lambda x: tf.cast(x, tf.float32))
    images = probe.images(data)  # ImageError for a wrong shape
    batch_size = options.positive_int("batch_size", batch_size, 4)  # 4: the unbiased estimator's minimum
    check_image_count(len(images), batch_size)  # before any pass
    return tf.data.Dataset.from_tensor_slices(images).batch(batch_size)


def paired_layers(probe_a, probe_b, layers):
    """Pair ``layers`` (names, a name, or None for every layer) between two models, checked in both.

    Returns (probe a, probe b, paths in a, paths in b), the two path lists of equal length and in the same order;
    probe b is probe a when ``probe_b`` is None or the same model. Raises LayerError naming what is only in either
    model, ModelError when the two take different inputs, OptionError for an empty list.
    """
    pa = as_probe(probe_a)
    pb = pa if probe_b is None or probe_b is probe_a or probe_b is pa.model else as_probe(probe_b)
    if pb is not pa and tuple(pa.input_shape) != tuple(pb.input_shape):
        raise ModelError(f"the two models take different inputs: {pa.input_shape} and {pb.input_shape}; CKA compares "
                         "them on the same images.")
    if layers is None:
        infos_a, infos_b = pa.layers, pb.layers
        names_a, names_b = [i.name for i in infos_a], [i.name for i in infos_b]
        if names_a != names_b:
            only_a = [n for n in names_a if n not in names_b][:6]
            only_b = [n for n in names_b if n not in names_a][:6]
            raise LayerError(
                f"the layers of {pa.model.name!r} and {pb.model.name!r} do not match ({len(names_a)} and "
                f"{len(names_b)} layers; only in the first: {only_a}, only in the second: {only_b}). Pass "
                "layers=[names in both] to compare those.")
        return pa, pb, [i.path for i in infos_a], [i.path for i in infos_b]
    single = isinstance(layers, (str, int, float, np.number))  # a number: probe.layer's LayerError says to use names
    layers = [layers] if single else list(layers)
    if not layers:
        raise OptionError("layers is empty: pass None for every layer, or at least one layer name.")
    return pa, pb, [_resolve(pa, n, "first") for n in layers], [_resolve(pb, n, "second") for n in layers]


def _resolve(probe: ModelProbe, name, which: str) -> str:
    try:
        return probe.layer(name).path
    except LayerError as exc:
        raise LayerError(f"in the {which} model ({probe.model.name!r}): {exc}") from None


# -- transfer learning ---------------------------------------------------------------------------------------

def weight_drift(model_a, model_b, layers=None) -> dict[str, float]:
    """Relative change of each layer's weights from ``model_a`` (base) to ``model_b`` (fine-tuned):
    ||W_b - W_a||_F / ||W_a||_F over all the layer's weights (kernel, bias, batch-norm scale, shift and
    statistics), a float >= 0 per layer path of ``model_a`` (0 for a frozen layer).

    ``layers`` None: every layer with weights; a layer whose weights differ in shape between the two (a replaced
    head) gets NaN. Named ``layers`` must exist in both with the same weight shapes, else LayerError.
    """
    pa, pb = as_probe(model_a), as_probe(model_b)
    strict = layers is not None
    if layers is None:
        names = [i.path for i in pa.layers if pa.keras_layer(i.path).weights]
        paths_b = [_resolve(pb, n, "second") if _has(pb, n) else None for n in names]
    else:
        _, _, names, paths_b = paired_layers(pa, pb, layers)
    drift = {}
    for path_a, path_b in zip(names, paths_b):
        wa = pa.keras_layer(path_a).weights
        wb = pb.keras_layer(path_b).weights if path_b is not None else []
        if [tuple(w.shape) for w in wa] != [tuple(w.shape) for w in wb]:
            if strict:
                raise LayerError(f"{path_a!r} has weights {[tuple(w.shape) for w in wa]} in the first model and "
                                 f"{[tuple(w.shape) for w in wb]} in the second: they cannot be compared.")
            drift[path_a] = float("nan")
            continue
        if not wa:
            drift[path_a] = float("nan")
            continue
        a = np.concatenate([np.asarray(w, np.float64).ravel() for w in wa])
        b = np.concatenate([np.asarray(w, np.float64).ravel() for w in wb])
        drift[path_a] = float(np.linalg.norm(b - a) / max(np.linalg.norm(a), 1e-12))
    return drift


@dataclass(frozen=True, eq=False)
class Comparison:
    """A base model against its fine-tuned copy, layer by layer (all lists follow ``layers``).

    layers:    paths in the base model.
    cka:       (L, L) float64, CKA of base layer i to fine-tuned layer j on the data; the diagonal is each layer
               against itself.
    drift:     (L,) relative weight change (weight_drift), NaN for layers without weights or replaced ones.
    trainable: per layer of the fine-tuned model, True/False, or None for a layer without weights.
    verdict:   per layer, "generic" when its diagonal CKA >= threshold (its representation survived fine-tuning:
               it transfers, freezing it loses little), "specific" below (the task reshaped it: fine-tune it),
               "unknown" when CKA is NaN.
    threshold: the CKA threshold used.
    """

    layers: list
    cka: np.ndarray
    drift: np.ndarray
    trainable: list
    verdict: list
    threshold: float


def compare_models(base, tuned, data, layers=None, threshold: float = GENERIC_THRESHOLD,
                   strategy: tf.distribute.Strategy | None = None, batch_size: int = 128, progress=None,
                   cancel=None) -> Comparison:
    """CKA matrix, weight drift and a generic/specific verdict per layer, for ``base`` and its fine-tuned copy
    ``tuned`` (models or probes) on ``data`` (as in layer_similarity), in one pass over the data.

    The default threshold, 0.9, follows what CKA studies of fine-tuning report: lower layers stay at CKA
    0.9-1.0 to their pre-trained selves while the task-specific top layers fall well below.
    """
    if not 0.0 <= float(threshold) <= 1.0:
        raise OptionError(f"threshold must be a CKA value in [0, 1]; got {threshold!r}.")
    pa, pb, paths_a, paths_b = paired_layers(base, tuned, layers)
    cka = layer_similarity(pa, pb, data, layers=layers, strategy=strategy, batch_size=batch_size, progress=progress,
                           cancel=cancel)
    drift_by_path = weight_drift(pa, pb)
    drift = np.array([drift_by_path.get(p, np.nan) for p in paths_a])
    trainable = [bool(pb.keras_layer(p).trainable_weights) if pb.keras_layer(p).weights else None
                 for p in paths_b]
    diagonal = np.diag(cka)
    verdict = ["unknown" if not np.isfinite(c) else "generic" if c >= threshold else "specific" for c in diagonal]
    return Comparison(list(paths_a), cka, drift, trainable, verdict, float(threshold))


def freeze_until(model, layer) -> list[str]:
    """Freeze every layer up to and including ``layer`` (model order, nested models flattened); make every later
    layer trainable. Returns the frozen paths.

    Acts on the Keras model in place (a probe's model for a probe): call ``model.compile(...)`` again before
    ``fit`` so training picks the change up. Frozen BatchNormalization layers also run in inference mode
    (Keras 3 behaviour). LayerError (with suggestions) for an unknown layer.
    """
    probe = as_probe(model)
    target = probe.layer(layer).path
    _unfreeze(probe.model)
    frozen = []
    for info in probe.layers:
        probe.keras_layer(info.path).trainable = False
        frozen.append(info.path)
        if info.path == target:
            break
    return frozen


def _unfreeze(model: keras.Model):
    """Make a model, every nested model (a container must be trainable for its layers to train) and every layer
    trainable. Done by hand: a functional model's trainable setter does not reach the layers of its graph."""
    model.trainable = True
    for layer in model.layers:
        layer.trainable = True
        if isinstance(layer, keras.Model):
            _unfreeze(layer)


def _has(probe: ModelProbe, name: str) -> bool:
    try:
        probe.layer(name)
    except LayerError:
        return False
    return True
