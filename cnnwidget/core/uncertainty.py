"""How sure is the model: Monte Carlo dropout done right, deep ensembles, the spread of an explanation, and
calibration with temperature scaling. numpy out; no widgets here.

    from cnnwidget.core import uncertainty
    result = uncertainty.mc_dropout(probe, images, samples=50, seed=0)
    result.mean, result.mutual_information          # (N, K), (N,)

**The usual recipe is wrong.** ``model(x, training=True)`` in a loop samples dropout, but it also switches every
BatchNormalization layer to the statistics of the batch at hand (and, in Keras 3, updates its moving averages:
it changes the model). The predictions then move with the batch's composition, not only with dropout: on a model
with BatchNormalization and Dropout(rate=0) its "samples" differ from the prediction although nothing is random
(tests/unit/test_uncertainty.py shows it). Here only the Dropout family is sampled (Dropout, SpatialDropout1D/2D/3D,
GaussianDropout, AlphaDropout, and GaussianNoise with ``noise=True``); every other layer runs in inference, and
the user's model and layers are never changed: the probe's graph replay (``_graph.flatten(replace=...)``) calls a
sampled stand-in of the replay's own in place of each dropout layer.

**Cost.** The model is split at its stochastic layers: the part that does not depend on any of them (for a
classifier with a dropout head, the whole backbone) runs once per image; only the rest runs ``samples`` times, on
samples x images rows per call (as many as a memory budget allows). Both parts are compiled once per probe through
``probe.compiled`` (family "uncertainty"); the number of samples per call and the seed are tensor values, so a
new ``samples`` or ``seed`` never retraces. Random numbers are stateless (``tf.random.stateless_*``) and seeded
from ``seed``: the same call gives the same result.

Summaries (natural logarithms, nats), for probabilities p_s (S samples or ensemble members):
predictive entropy H[mean_s p_s] (total uncertainty), expected entropy mean_s H[p_s] (aleatoric), mutual
information = their difference (epistemic: how much the samples disagree; 0 without stochastic layers), and the
per-class variance across samples.
"""

from __future__ import annotations

import heapq
import math
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from . import _graph, options
from .errors import Cancelled, CnnWidgetError, ImageError, ModelError, OptionError
from .probe import ModelProbe, _probability_fn, probe_for

__all__ = ["Calibration", "ExplanationSpread", "Metrics", "ResultError", "Uncertainty", "calibration", "ensemble",
           "explanation_spread", "mc_dropout", "prediction_warning", "reading", "stochastic_layers"]

# Layers sampled by MC dropout (GaussianNoise only with noise=True): their training-time behaviour, nothing else.
DROPOUT_LAYERS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
                  "AlphaDropout")
NOISE_LAYERS = ("GaussianNoise",)
# Activations of the sampled part per call (samples x images rows). Small on purpose: on CPU a convolution's time
# per row grows with the batch once its maps leave the cache (demo model, block 4 on 16x16x64 maps, 2 cores:
# 1.1 ms a row at 8 rows a call, 2.9 ms at 32, 4.9 ms at 64, 11 ms at 200), so many small calls beat one big
# one; a head on pooled vectors (GAP -> Dropout -> Dense) still takes every sample in one call.
HEAD_BUDGET_BYTES = 8 * 2**20
MIN_CALIBRATION_IMAGES = 100  # fewer, and a 15-bin reliability diagram and a fitted temperature are noise
MIN_SPLIT_IMAGES = 50  # in each of the two splits (fit / evaluate)
MAX_SAMPLES = 10000
TEMPERATURES = 10.0 ** (np.arange(-130, 131) / 100.0)  # 0.05 .. 20, steps of 2.3%; T = 1 exactly at index 130
_SALIENCY_METHODS = ("saliency", "grad_cam")


class ResultError(CnnWidgetError, ValueError):
    """A result that would mislead (NaN probabilities, too few images for calibration): refused, with why."""


# -- sampled stand-ins for the dropout family ---------------------------------------------------------------------

def _kind(layer, noise: bool) -> str | None:
    """The sampled kind of a Keras layer, or None for a layer that stays in inference."""
    names = {cls.__name__ for cls in type(layer).__mro__}
    for name in ("SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout", "AlphaDropout"):
        if name in names and isinstance(layer, getattr(keras.layers, name)):
            return name
    if isinstance(layer, keras.layers.Dropout):
        return "Dropout"
    if noise and isinstance(layer, keras.layers.GaussianNoise):
        return "GaussianNoise"
    return None


class _Sampled(keras.layers.Layer):
    """A layer of the replay only (never of the model): ``layer``'s training-time noise, drawn with stateless ops
    from the replay's seed variable folded with this layer's index, so every row of a batch gets its own draw."""

    def __init__(self, layer, kind: str, index: int, seed_var):
        super().__init__(name=f"cnnwidget_sampled_{index}", dtype=layer.dtype_policy)
        self._kind, self._index, self._seed_var = kind, index, seed_var
        self._rate = float(getattr(layer, "rate", 0.0) or 0.0)
        self._stddev = float(getattr(layer, "stddev", 0.0) or 0.0)
        self._noise_shape = getattr(layer, "noise_shape", None)
        # SpatialDropout's noise shape (N, 1, 1, C) comes from the layer's own rule (channels first or last).
        self._shape_of = getattr(layer, "_get_noise_shape", None) if kind.startswith("Spatial") else None

    def compute_output_spec(self, x, *args, **kwargs):
        return keras.KerasTensor(x.shape, x.dtype)

    def call(self, x, *args, **kwargs):
        kind = self._kind
        if (kind != "GaussianNoise" and self._rate <= 0) or (kind == "GaussianNoise" and self._stddev <= 0):
            return x  # as Keras: nothing is drawn, the value passes unchanged
        seed = tf.random.experimental.stateless_fold_in(self._seed_var, self._index)
        shape = tf.shape(x)
        if kind in ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "AlphaDropout"):
            if self._shape_of is not None:
                noise_shape = self._shape_of(x)
            elif self._noise_shape is not None:
                noise_shape = [shape[i] if d is None else d for i, d in enumerate(self._noise_shape)]
            else:
                noise_shape = shape
            keep = tf.random.stateless_uniform(tf.stack(noise_shape) if isinstance(noise_shape, (list, tuple))
                                               else noise_shape, seed) >= self._rate
            keep = tf.cast(keep, x.dtype)
            if kind == "AlphaDropout":  # Keras' AlphaDropout formula (self-normalizing networks)
                alpha_p = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
                a = ((1 - self._rate) * (1 + self._rate * alpha_p ** 2)) ** -0.5
                b = -a * alpha_p * self._rate
                return a * (x * keep + alpha_p * (1 - keep)) + b
            return x * keep / tf.cast(1.0 - self._rate, x.dtype)
        if kind == "GaussianDropout":
            std = math.sqrt(self._rate / (1.0 - self._rate))
            return x * tf.cast(1.0 + std * tf.random.stateless_normal(shape, seed), x.dtype)
        return x + tf.cast(self._stddev * tf.random.stateless_normal(shape, seed), x.dtype)  # GaussianNoise


class _Sampler:
    """The model replayed with sampled dropout, split into the deterministic prefix (run once) and the head (run
    per sample), with their compiled passes. Kept in the probe's cache; holds no reference to the probe."""

    def __init__(self, probe: ModelProbe, noise: bool):
        self.lock = threading.Lock()  # the seed variable is shared by the passes: one call at a time
        self.seed_var = tf.Variable([0, 0], dtype=tf.int64, trainable=False, name="cnnwidget_mc_seed")
        stand_ins = {}

        def replace(layer):
            kind = _kind(layer, noise)
            if kind is None:
                return None
            stand_ins[id(layer)] = _Sampled(layer, kind, len(stand_ins), self.seed_var)
            return stand_ins[id(layer)]

        source = probe._source or probe.model
        self.graph = graph = _graph.flatten(source, tuple(probe._graph.input.shape[1:]), replace=replace)
        self.stochastic = [path for path, layer in graph.layers.items() if _kind(layer, noise) is not None]
        sampled_ids = {id(s) for s in stand_ins.values()}
        frontier = _frontier(graph.output, graph.input, sampled_ids)
        self.deterministic = frontier is None
        preprocess = probe.preprocess
        probabilities = _probability_fn(probe._last_layer())
        spec = tf.TensorSpec((None,) + tuple(graph.input.shape[1:]), tf.float32)
        if self.deterministic:  # nothing random: one pass gives every sample
            full = keras.Model(graph.input, graph.output)
            self.prefix = probe.tf_function(lambda x: [probabilities(full(_pre(preprocess, x), training=False))],
                                            input_signature=[spec], family="uncertainty")
            self.head = None
            self.row_bytes = 0
            return
        inputs = [t for t in frontier if t is not graph.input]
        prefix_model = keras.Model(graph.input, inputs) if inputs else None
        suffix = keras.Model(frontier, graph.output)

        def prefix(x):
            x = _pre(preprocess, x)
            outs = prefix_model(x, training=False) if prefix_model is not None else []
            outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
            it = iter(outs)
            return [x if t is graph.input else next(it) for t in frontier]

        seed_var = self.seed_var

        def head(features, reps, seed):
            seed_var.assign(seed)
            with tf.control_dependencies([seed_var.read_value()]):
                tiled = [tf.tile(f, tf.concat([[reps], tf.ones([tf.rank(f) - 1], tf.int32)], 0)) for f in features]
            return probabilities(suffix(tiled if len(tiled) > 1 else tiled[0], training=False))

        self.prefix = probe.tf_function(prefix, input_signature=[spec], family="uncertainty")
        feature_specs = [tf.TensorSpec((None,) + tuple(t.shape[1:]), t.dtype) for t in frontier]
        self.head = probe.tf_function(head, input_signature=[feature_specs, tf.TensorSpec((), tf.int32),
                                                             tf.TensorSpec((2,), tf.int64)], family="uncertainty")
        # Memory per row of the head: every sampled-side layer output (float32), twice for temporaries.
        random_outputs = [graph.outputs[p] for p in graph.outputs if _depends_on(graph.outputs[p], sampled_ids)]
        self.row_bytes = 8 * sum(int(np.prod([d or 1 for d in t.shape[1:]])) for t in random_outputs) or 8

    def sampled_probe(self, probe: ModelProbe) -> ModelProbe:
        """A probe on the sampled replay (every pass samples dropout from ``seed_var``), for the attribution
        methods: the same gradient code, with dropout drawn. Holds the model weakly, and not ``probe``."""
        made = getattr(self, "_sampled_probe", None)
        if made is not None:
            return made
        sp = ModelProbe.__new__(ModelProbe)
        sp._model, sp._model_ref = None, weakref.ref(probe.model)
        sp._source, sp._size_note = None, ""
        sp.preprocess, sp.input_range, sp.batch_size = probe.preprocess, probe.input_range, probe.batch_size
        sp._class_names = probe._class_names
        sp._graph, sp._layers = self.graph, list(probe._layers)
        sp._fns, sp._building, sp._lock, sp.trace_count = OrderedDict(), {}, threading.Lock(), 0
        self._sampled_probe = sp
        return sp


def _pre(preprocess, x):
    return preprocess(x) if preprocess is not None else x


def _history(t):
    """(operation, its input tensors) that made KerasTensor ``t``; the model input has no inputs."""
    op, node_index, _ = t._keras_history
    node = op._inbound_nodes[node_index]
    return op, list(node.input_tensors)


def _depends_on(tensor, sampled_ids: set, memo: dict | None = None) -> bool:
    """Whether ``tensor`` depends on the output of a sampled stand-in (iterative: deep models do not recurse)."""
    memo = {} if memo is None else memo
    stack = [tensor]
    while stack:
        t = stack[-1]
        if id(t) in memo:
            stack.pop()
            continue
        op, inputs = _history(t)
        pending = [u for u in inputs if id(u) not in memo]
        if pending:
            stack.extend(pending)
            continue
        memo[id(t)] = id(op) in sampled_ids or any(memo[id(u)] for u in inputs)
        stack.pop()
    return memo[id(tensor)]


def _frontier(output, model_input, sampled_ids: set):
    """The deterministic tensors the random part of the graph reads (in a stable order), or None when the output
    does not depend on any sampled layer."""
    memo: dict = {}
    if not _depends_on(output, sampled_ids, memo):
        return None
    frontier, seen, stack = [], set(), [output]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if not memo.get(id(t), _depends_on(t, sampled_ids, memo)):
            frontier.append(t)
            continue
        stack.extend(reversed(_history(t)[1]))
    return frontier


def _sampler(probe: ModelProbe, noise: bool) -> _Sampler:
    probe._require_built()
    return probe.compiled(("uncertainty", "sampler", bool(noise)), lambda: _Sampler(probe, bool(noise)))


def stochastic_layers(model, noise: bool = False) -> list[str]:
    """Paths of the layers MC dropout samples in ``model`` (a model or probe), in model order."""
    probe = probe_for(model)
    probe._require_built()
    return [info.path for info in probe.layers if _kind(probe.keras_layer(info.path), _bool("noise", noise))]


# -- results ----------------------------------------------------------------------------------------------------

@dataclass
class Uncertainty:
    """What ``mc_dropout`` and ``ensemble`` return. Entropies are in nats (natural log); ``max_entropy`` = log K.

    probabilities:       (S, N, K) float32, one row of class probabilities per sample (or ensemble member)
    mean:                (N, K) the predictive mean
    predictive_entropy:  (N,) H[mean]: the total uncertainty
    expected_entropy:    (N,) mean over samples of H[p_s]: the aleatoric part
    mutual_information:  (N,) predictive - expected entropy >= 0: the epistemic part (samples disagreeing)
    variance:            (N, K) per-class variance across samples (``std`` its square root)
    stochastic:          the sampled layer paths (MC dropout) or the members' names (ensemble)
    note:                "" or what the reader must know (no stochastic layer: zero epistemic uncertainty)
    """

    probabilities: np.ndarray
    mean: np.ndarray
    predictive_entropy: np.ndarray
    expected_entropy: np.ndarray
    mutual_information: np.ndarray
    variance: np.ndarray
    kind: str = "mc_dropout"
    stochastic: list = field(default_factory=list)
    note: str = ""
    samples: int = 0
    seed: int = 0

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.variance)

    @property
    def predicted(self) -> np.ndarray:
        return self.mean.argmax(-1)

    @property
    def max_entropy(self) -> float:
        return float(np.log(self.mean.shape[-1]))

    @property
    def has_epistemic(self) -> bool:
        """False when nothing was sampled (no stochastic layer, one ensemble member): MI is 0 by construction."""
        return bool(self.stochastic) and not self.note.startswith("no ")

    def __repr__(self):
        s, n, k = self.probabilities.shape
        return (f"Uncertainty({self.kind}, {s} samples x {n} images x {k} classes, mean MI "
                f"{float(self.mutual_information.mean()):.4f} nats{'; ' + self.note if self.note else ''})")


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, np.float64)
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1)


UNIFORM_ENTROPY = 0.98  # a prediction whose entropy is above this share of log(K) says (almost) nothing
CONSTANT_SPREAD = 0.005  # probabilities that move less than this between different images do not depend on them
CONSTANT_IMAGES = 3  # ... read from at least this many different images
CONSTANT_TOP = 0.9  # ... and not saturated: a confident model gives ~1.0 to every image of one class


def prediction_warning(probabilities, class_names=None, images=None) -> str:
    """Why a model's predictions on these images say nothing, in plain words, or "" if nothing is wrong with them.

    ``probabilities``: (N, K) class probabilities (``probe.predict``); ``class_names``: K names (default the
    indices); ``images``: the N images, to tell different images from copies of one (optional).
    Flagged: NaN or infinite probabilities; every image's prediction nearly uniform (entropy above
    ``UNIFORM_ENTROPY`` of log K: each class near 1/K, as from an untrained model, whose demo-architecture copy
    gave 10.9% at most over 10 classes); or, over at least ``CONSTANT_IMAGES`` different images, the same
    prediction for all, below ``CONSTANT_TOP`` and varying by less than ``CONSTANT_SPREAD`` (the output does not
    depend on the image). A confident model that gives ~1.0 to images of one class is not flagged: its
    probabilities saturate and cannot tell that apart from an output that ignores the image."""
    p = np.asarray(probabilities, np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        return ""
    n, k = p.shape
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(k)]
    bad = ~np.isfinite(p).all(1)
    if bad.any():
        return (f"the model's probabilities are NaN or infinite for {int(bad.sum())} of the {n} images: its "
                "predictions (and the top classes shown) cannot be trusted; check its weights and the images' range")
    top = p.argmax(1)
    same = bool((top == top[0]).all())
    images_word = "the image" if n == 1 else f"all {n} images"
    if (_entropy(p) >= UNIFORM_ENTROPY * math.log(k)).all():
        what = (f"{images_word} {'is' if n == 1 else 'are'} predicted {names[top[0]]!r}" if same
                else f"{images_word} {'is' if n == 1 else 'are'} predicted")
        return (f"{what} with a probability of about 1/{k} ({p.max():.1%} at most; every class near {1 / k:.1%}): "
                "the model's output hardly depends on the image, so its predictions and the top classes shown say "
                "nothing. Is the model trained?")
    distinct = n if images is None else len(np.unique(np.asarray(images).reshape(n, -1), axis=0))
    spread = float((p.max(0) - p.min(0)).max())
    if same and distinct >= CONSTANT_IMAGES and spread < CONSTANT_SPREAD and p[:, top[0]].max() < CONSTANT_TOP:
        return (f"all {n} images are predicted {names[top[0]]!r} with the same probabilities (its "
                f"{p[0, top[0]]:.1%} moves by less than {CONSTANT_SPREAD:.1%} between them): the model's output does "
                "not depend on the image. Is the model trained, and are the images what it expects (their range, "
                "the preprocessing)?")
    return ""


def summarize(probabilities: np.ndarray, *, kind: str, stochastic: list, note: str = "", samples: int = 0,
              seed: int = 0, deterministic: bool = False) -> Uncertainty:
    """The summaries of (S, N, K) probabilities; ``deterministic``: every sample is the same, so MI is exactly 0."""
    p = np.asarray(probabilities)
    bad = ~np.isfinite(p).all(axis=(0, 2))
    if bad.any():
        raise ResultError(f"the model gave NaN or infinite probabilities for {int(bad.sum())} of {p.shape[1]} images "
                          f"(first: image {int(np.flatnonzero(bad)[0])}); no uncertainty can be read from them. "
                          "Check the images (their range, input_range, preprocess) and the model's weights.")
    p64 = p.astype(np.float64)
    mean = p64.mean(0)
    if deterministic:
        mean = p64[0]
        predictive = expected = _entropy(mean)
        mi = np.zeros(p.shape[1])
        var = np.zeros(p.shape[1:])
    else:
        predictive, expected = _entropy(mean), _entropy(p64).mean(0)
        mi = np.maximum(predictive - expected, 0.0)
        var = p64.var(0)
    return Uncertainty(p.astype(np.float32), mean.astype(np.float32), predictive.astype(np.float32),
                       expected.astype(np.float32), mi.astype(np.float32), var.astype(np.float32), kind=kind,
                       stochastic=list(stochastic), note=note, samples=int(p.shape[0]), seed=int(seed))


# -- MC dropout ----------------------------------------------------------------------------------------------------

def _bool(name, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise OptionError(f"{name} must be True or False; got {value!r} ({type(value).__name__}).")
    return bool(value)


def check_samples(samples) -> int:
    """``samples`` as an int in [1, MAX_SAMPLES], or an OptionError."""
    samples = options.positive_int("samples", samples)
    if samples > MAX_SAMPLES:
        raise OptionError(f"samples must be an integer in [1, {MAX_SAMPLES}]; got {samples}.")
    return samples


def _plan(sampler: _Sampler, n: int, samples: int, batch_size: int | None = None) -> int:
    """Samples per head call: as many as HEAD_BUDGET_BYTES of activations allow (at least 1)."""
    if batch_size is not None:
        return max(1, int(batch_size) // max(n, 1))
    return int(max(1, min(samples, HEAD_BUDGET_BYTES // max(1, sampler.row_bytes * n))))


def mc_dropout(model, images, samples: int = 50, seed: int = 0, noise: bool = False, progress=None,
               cancel=None) -> Uncertainty:
    """Monte Carlo dropout (Gal & Ghahramani 2016) with only the dropout family sampled: see the module docstring.

    model:    a Keras model or ModelProbe.   images: display-space (N, H, W, C) or (H, W, C).
    samples:  dropout samples per image (1..10000).   seed: a whole number >= 0; the same seed, the same result.
    noise:    also sample GaussianNoise layers (they are training-time noise too, but not dropout).
    progress: ``progress(done, total)`` in samples; ``cancel``: a threading.Event, checked between calls.
    Returns an :class:`Uncertainty`; a model with no stochastic layer gives zero mutual information and says so
    in ``note`` (not an error).
    """
    probe = probe_for(model)
    batch = probe.images(images)
    samples, seed, noise = check_samples(samples), options.seed(seed), _bool("noise", noise)
    options.fits_in_memory("samples", samples, 4.0 * samples * len(batch) * max(probe.num_classes, 2),
                           "the per-sample probabilities")
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled before the first pass.")
    sampler = _sampler(probe, noise)
    n = len(batch)
    with sampler.lock:
        features = [probe_run(sampler.prefix, batch, probe.batch_size)]
        if sampler.deterministic:
            p = features[0][0]
            probs = np.broadcast_to(p, (samples,) + p.shape)
            kinds = "Dropout, SpatialDropout, GaussianDropout, AlphaDropout" + (", GaussianNoise" if noise else "")
            note = (f"no stochastic layer: {probe.model.name!r} has no {kinds} layer, so every sample is the same "
                    "prediction and the epistemic uncertainty (mutual information) is zero by construction.")
            if progress is not None:
                progress(samples, samples)
            return summarize(probs, kind="mc_dropout", stochastic=[], note=note, samples=samples, seed=seed,
                             deterministic=True)
        feats = [tf.constant(f) for f in features[0]]
        per_call = _plan(sampler, n, samples)
        out, done, call = [], 0, 0
        while done < samples:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled after {done} of {samples} samples.")
            reps = min(per_call, samples - done)
            p = sampler.head(feats, tf.constant(reps, tf.int32), tf.constant([seed, call], tf.int64))
            out.append(p.numpy().reshape(reps, n, -1))
            done, call = done + reps, call + 1
            if progress is not None:
                progress(done, samples)
    return summarize(np.concatenate(out), kind="mc_dropout", stochastic=sampler.stochastic, samples=samples,
                     seed=seed)


def probe_run(fn, batch: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """``fn`` over ``batch`` in chunks of ``batch_size``, each output concatenated: a list of arrays."""
    chunks = [fn(tf.constant(batch[i:i + batch_size])) for i in range(0, len(batch), batch_size)]
    return [np.concatenate([np.asarray(c[j]) for c in chunks]) for j in range(len(chunks[0]))]


def ensemble(models, images) -> Uncertainty:
    """A deep ensemble (Lakshminarayanan et al. 2017): each model's probabilities for ``images`` as one sample.

    ``models``: a list of Keras models or probes with the same input and classes. One member gives zero mutual
    information and says so in ``note``. Returns an :class:`Uncertainty` (``kind`` "ensemble", ``stochastic`` the
    members' names)."""
    if isinstance(models, (keras.Model, ModelProbe)) or not hasattr(models, "__iter__"):
        raise OptionError(f"models must be a list of Keras models or ModelProbes (the ensemble's members); got "
                          f"{type(models).__name__}.")
    probes = [probe_for(m) for m in models]
    if not probes:
        raise OptionError("models must list at least one model; got an empty list.")
    batch = probes[0].images(images)
    classes = probes[0].num_classes
    probs = []
    for i, probe in enumerate(probes):
        if probe.num_classes != classes:
            raise ModelError(f"ensemble members must have the same classes: member 0 outputs {classes}, member {i} "
                             f"({probe.model.name!r}) outputs {probe.num_classes}.")
        probs.append(probe.predict(probe.images(batch)))
    names = [p.model.name for p in probes]
    note = "" if len(probes) > 1 else ("no spread: an ensemble of one model has zero epistemic uncertainty (mutual "
                                       "information) by construction; give two or more members.")
    return summarize(np.stack(probs), kind="ensemble", stochastic=names, note=note, samples=len(probes),
                     deterministic=len(probes) == 1)


# -- the spread of an explanation ------------------------------------------------------------------------------

@dataclass
class ExplanationSpread:
    """Per-pixel spread of an attribution map across dropout samples: where a map is stable and where not.

    mean, std: (N, H, W) float32 across the samples; maps: (S, N, H, W) float32 each sample's map;
    target: (N,) the class explained (the model's deterministic prediction unless given); method: "saliency"
    or "grad_cam"; note: as in Uncertainty."""

    mean: np.ndarray
    std: np.ndarray
    maps: np.ndarray
    target: np.ndarray
    method: str
    samples: int
    seed: int
    note: str = ""

    @property
    def relative_std(self) -> np.ndarray:
        """std / (|mean| + a small floor): 1 or more where the map is mostly noise across samples."""
        scale = np.abs(self.mean).max(axis=(1, 2), keepdims=True)
        return self.std / (np.abs(self.mean) + 1e-3 * np.where(scale > 0, scale, 1.0))


def explanation_spread(model, images, method: str = "saliency", samples: int = 20, seed: int = 0, target=None,
                       layer=None, noise: bool = False, progress=None, cancel=None) -> ExplanationSpread:
    """Maps of ``method`` ("saliency" or "grad_cam", from ``core.attribution``: the same gradient code) under
    ``samples`` dropout samples, and their per-pixel mean and std. ``target`` as for attribution (None: the
    deterministic prediction, the same class for every sample); ``layer``: Grad-CAM's layer (default as there)."""
    from . import attribution as attr
    from .attribution import _common

    probe = probe_for(model)
    batch = probe.images(images)
    options.choice("method", method, _SALIENCY_METHODS)
    samples, seed, noise = check_samples(samples), options.seed(seed), _bool("noise", noise)
    n, (h, w) = len(batch), batch.shape[1:3]
    options.fits_in_memory("samples", samples, 4.0 * samples * n * h * w * 2, "the per-sample maps")
    targets = _common.targets(probe, n, target)
    if (targets < 0).any():
        targets = np.where(targets < 0, probe.predict(batch).argmax(-1), targets).astype(np.int32)
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled before the first pass.")
    fn = attr.saliency if method == "saliency" else attr.grad_cam
    kwargs = {} if method == "saliency" else {"layer": layer}
    sampler = _sampler(probe, noise)
    if sampler.deterministic:
        one = fn(probe, batch, target=targets, **kwargs)
        maps = np.broadcast_to(one, (samples,) + one.shape)
        if progress is not None:
            progress(samples, samples)
        return ExplanationSpread(one, np.zeros_like(one), maps, targets, method, samples, seed,
                                 note="no stochastic layer: every sample gives the same map (zero spread).")
    sp = sampler.sampled_probe(probe)
    # One call per group of whole samples, at most one internal chunk each, with its own seed: rows of different
    # chunks never share a draw for the same image.
    per_call = max(1, probe.batch_size // n)
    out, done, call = [], 0, 0
    with sampler.lock:
        while done < samples:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled after {done} of {samples} samples.")
            reps = min(per_call, samples - done)
            sampler.seed_var.assign(tf.constant([seed, call], tf.int64))
            m = fn(sp, np.tile(batch, (reps, 1, 1, 1)), target=np.tile(targets, reps), **kwargs)
            out.append(m.reshape(reps, n, *m.shape[1:]))
            done, call = done + reps, call + 1
            if progress is not None:
                progress(done, samples)
    maps = np.concatenate(out).astype(np.float32)
    return ExplanationSpread(maps.mean(0), maps.std(0), maps, targets, method, samples, seed)


# -- plain words -----------------------------------------------------------------------------------------------

MI_LOW, MI_HIGH = 0.02, 0.10  # mutual information as a share of log K: below "the samples agree", above "disagree"
NEAR_UNIFORM = 0.95  # predictive entropy as a share of log K from which the mean prediction is (near) uniform


def reading(result: Uncertainty, index: int, class_names=None) -> str:
    """One paragraph saying what the numbers for image ``index`` mean, for a person who does not read entropies."""
    index = options.index("index", index, result.mean.shape[0], "the images")
    k = result.mean.shape[-1]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    c = int(result.mean[index].argmax())
    p, sd = float(result.mean[index, c]), float(result.std[index, c])
    h, mi, hmax = float(result.predictive_entropy[index]), float(result.mutual_information[index]), result.max_entropy
    what = "dropout samples" if result.kind == "mc_dropout" else "ensemble members"
    text = (f"Predicts {names[c]!r} with mean probability {p:.2f} (± {sd:.2f} across {result.samples} {what}). "
            f"Total uncertainty (predictive entropy) {h:.3f} nats of at most {hmax:.3f}. ")
    uniform = k > 1 and h >= NEAR_UNIFORM * hmax
    flat = (f"The mean prediction is (near) uniform ({100 * h / hmax:.0f}% of the maximum entropy; top class "
            f"{p:.2f} against 1/{k} = {1 / k:.2f}): the model does not distinguish the classes at all for this "
            "image (untrained, or the image is outside its domain): not a sign that the image itself is ambiguous."
            ) if uniform else ""
    if not result.has_epistemic:
        return text + ("The model has no stochastic layer, so the part due to the model's own ignorance "
                       "(mutual information) cannot be measured: it is 0 by construction, not because the model is "
                       "sure.") + (" " + flat if flat else "")
    share = mi / hmax if hmax > 0 else 0.0
    text += f"Model uncertainty (mutual information) {mi:.3f} nats: "
    if share < MI_LOW:
        if uniform:
            return text + f"the {what} agree, but on no class. " + flat
        text += (f"the {what} agree, so what uncertainty there is lies in the image itself (ambiguous, "
                 f"aleatoric)." if h / max(hmax, 1e-12) > 0.2 else f"the {what} agree, and the model is sure.")
    elif share < MI_HIGH:
        text += f"the {what} disagree somewhat; the model has seen images like this, but not many."
    else:
        text += (f"the {what} disagree strongly: the model has not learned images like this one (out of "
                 f"distribution?), so do not trust its answer.")
    return text + (" " + flat if flat else "")


# -- calibration -----------------------------------------------------------------------------------------------

@dataclass
class Metrics:
    """Calibration of a set of predictions. bins: equal-width confidence bins over [0, 1] (bin b holds
    confidences in (b/B, (b+1)/B], bin 0 also 0); per bin ``count``, mean ``confidence`` and ``accuracy`` (NaN
    where empty). ece = sum_b n_b/N |acc_b - conf_b|; mce = max over non-empty bins; nll = mean -log p_y;
    brier = mean sum_k (p_k - [k = y])^2; accuracy over all."""

    ece: float
    mce: float
    nll: float
    brier: float
    accuracy: float
    count: np.ndarray
    confidence: np.ndarray
    bin_accuracy: np.ndarray
    n: int


@dataclass
class Calibration:
    """What ``calibration`` returns. ``overall``: every image at T = 1 (the model as it is). ``before`` and
    ``after``: the evaluation split (the images not used to fit T) at T = 1 and at the fitted ``temperature``.
    ``fit_nll``: the fit split's NLL (before, after). ``edges``: (B + 1,) bin edges. ``split``: (N,) bool, True
    for images in the fit split. ``most_uncertain``: [(index, entropy, label, predicted)], highest entropy first,
    with ``uncertain_images`` (k, H, W, C) those images."""

    overall: Metrics
    before: Metrics
    after: Metrics
    temperature: float
    fit_nll: tuple
    edges: np.ndarray
    split: np.ndarray
    most_uncertain: list
    uncertain_images: np.ndarray
    holdout: float
    note: str = ""

    def __repr__(self):
        return (f"Calibration({self.overall.n} images, ECE {self.overall.ece:.4f}; evaluation split ECE "
                f"{self.before.ece:.4f} -> {self.after.ece:.4f} at T = {self.temperature:.3f}, NLL "
                f"{self.before.nll:.4f}"
                f" -> {self.after.nll:.4f})")


class _Bins:
    """Streaming sums for G temperatures at once: per bin count, confidence and correct; NLL and Brier sums."""

    def __init__(self, g: int, bins: int):
        self.bins = bins
        self.count = np.zeros((g, bins))
        self.conf = np.zeros((g, bins))
        self.correct = np.zeros((g, bins))
        self.nll = np.zeros(g)
        self.brier = np.zeros(g)
        self.n = 0

    def add(self, p: np.ndarray, logp_y: np.ndarray, correct: np.ndarray, y: np.ndarray):
        """p (G, B, K) probabilities; logp_y (G, B); correct (B,) bool."""
        conf = p.max(-1)
        b = np.clip(np.ceil(conf * self.bins).astype(np.int64) - 1, 0, self.bins - 1)  # (G, B)
        g = np.arange(p.shape[0])[:, None]
        np.add.at(self.count, (g, b), 1.0)
        np.add.at(self.conf, (g, b), conf)
        np.add.at(self.correct, (g, b), np.broadcast_to(correct, conf.shape).astype(np.float64))
        self.nll -= logp_y.sum(1)
        py = np.take_along_axis(p, np.broadcast_to(y[None, :, None], (p.shape[0], len(y), 1)), -1)[..., 0]
        self.brier += ((p ** 2).sum(-1) - 2 * py + 1).sum(1)
        self.n += p.shape[1]

    def metrics(self, i: int) -> Metrics:
        count, n = self.count[i], max(self.n, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            conf, acc = self.conf[i] / count, self.correct[i] / count
        gap = np.abs(acc - conf)
        full = count > 0
        mce = float(gap[full].max()) if full.any() else 0.0
        return Metrics(ece=float((count[full] / n * gap[full]).sum()), mce=mce,
                       nll=float(self.nll[i] / n), brier=float(self.brier[i] / n),
                       accuracy=float(self.correct[i].sum() / n), count=count.astype(np.int64),
                       confidence=conf, bin_accuracy=acc, n=int(self.n))


def _batches(probe: ModelProbe, data, batch_size: int):
    """(images, labels, total batches or None) from (images, labels) arrays or a tf.data.Dataset of pairs."""
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise OptionError(f"data must be a tf.data.Dataset of (images, labels) pairs; its elements are {spec}.")
        if spec[0].shape.rank == 3:  # unbatched elements
            data = data.batch(batch_size)
        card = int(data.cardinality())
        total = card if card >= 0 else None
        return ((np.asarray(x), np.asarray(y)) for x, y in data.as_numpy_iterator()), total
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise OptionError(f"data must be a pair (images, labels) of arrays or a tf.data.Dataset of such pairs; got "
                          f"{type(data).__name__}.")
    x, y = data
    y = np.asarray(y)
    n = len(y)
    if len(x) != n:
        raise OptionError(f"data has {len(x)} images but {n} labels; give one label per image.")
    return ((np.asarray(x[i:i + batch_size]), y[i:i + batch_size]) for i in range(0, n, batch_size)), \
        -(-n // batch_size)


def _labels(y: np.ndarray, k: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == k and np.issubdtype(y.dtype, np.floating):
        y = y.argmax(-1)  # one-hot
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating)
                                                                   and np.all(y == np.round(y)))):
        raise OptionError(f"labels must be class indices (N,) or one-hot (N, {k}); got shape {y.shape} "
                          f"{y.dtype}.")
    y = y.astype(np.int64)
    bad = (y < 0) | (y >= k)
    if bad.any():
        raise OptionError(f"label {int(y[bad][0])} is out of range: this model has {k} classes, so a label is in "
                          f"[0, {k - 1}].")
    return y


def _logit_pass(probe: ModelProbe):
    """x -> log-probabilities up to a constant per row (the logits when they can be found): softmax of them / T
    is temperature scaling."""
    from .attribution import _common

    if probe.num_classes > 1:
        try:
            return _common.logit_fn(probe)
        except ModelError:
            pass
    return lambda x: tf.math.log(tf.maximum(tf.constant(probe.predict(x.numpy())), 1e-30))


def check_calibration_data(probe: ModelProbe, data):
    """``data`` for ``calibration`` checked as far as is possible without a pass (for a widget, before its job
    starts): a pair (images, labels) of arrays, returned with the labels as class indices, or a tf.data.Dataset of
    such pairs, returned as it is. Raises OptionError or ResultError (too few images) with what was expected."""
    if isinstance(data, tf.data.Dataset):
        _batches(probe, data, probe.batch_size)  # the element structure
        return data
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise OptionError(f"data must be a pair (images, labels) or a tf.data.Dataset of such pairs; got "
                          f"{type(data).__name__}.")
    x, y = data
    y = _labels(np.asarray(y), max(probe.num_classes, 2))
    if len(x) != len(y):
        raise OptionError(f"data has {len(x)} images but {len(y)} labels; give one label per image.")
    if len(y) < MIN_CALIBRATION_IMAGES:
        raise ResultError(f"data has {len(y)} images; calibration needs at least {MIN_CALIBRATION_IMAGES} "
                            "(fewer make a reliability diagram and a fitted temperature mostly noise).")
    return (x, y)


def calibration(model, data, bins: int = 15, holdout: float = 0.5, top: int = 8, batch_size: int | None = None,
                progress=None, cancel=None) -> Calibration:
    """Calibration over a data set, streamed: reliability diagram, ECE, MCE, NLL, Brier score, and temperature
    scaling (Guo et al. 2017) fitted on a held-out split with before/after.

    data:     (images, labels) arrays, or a tf.data.Dataset of (images, labels) (batched or not); labels are class
              indices or one-hot. Memory does not grow with the data (only a bool per image for the split).
    bins:     equal-width confidence bins (2..1000).
    holdout:  the share of images (in (0, 1)) held out to fit the temperature T, chosen by a fixed low-discrepancy
              rule on the image's position; the others are the evaluation split, where before/after are measured.
    T:        the NLL minimizer on the fit split over TEMPERATURES (0.05..20 in steps of 2.3%; T = 1 included).
    top:      how many of the most uncertain images (highest predictive entropy) to keep.
    At least MIN_CALIBRATION_IMAGES images, and MIN_SPLIT_IMAGES in each split, or a ResultError: fewer make the
    diagram and the fitted T noise. NaN probabilities: ResultError.
    """
    probe = probe_for(model)
    bins = options.positive_int("bins", bins, 2)
    if bins > 1000:
        raise OptionError(f"bins must be an integer in [2, 1000]; got {bins}.")
    holdout = options.fraction("holdout", holdout)
    if not 0.0 < holdout < 1.0:
        raise OptionError(f"holdout must be a number strictly between 0 and 1 (the share of images used to fit the "
                          f"temperature); got {holdout!r}.")
    top = options.positive_int("top", top, 0)
    bs = probe.batch_size if batch_size is None else options.positive_int("batch_size", batch_size)
    stream, total = _batches(probe, data, bs)
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled before the first batch.")
    k = max(probe.num_classes, 2)
    temps = TEMPERATURES
    one = int(np.argmin(np.abs(temps - 1.0)))
    fit_nll = np.zeros(len(temps))
    evaluation, overall = _Bins(len(temps), bins), _Bins(1, bins)
    split_parts, heap, images_kept = [], [], {}
    fn, seen, done = None, 0, 0
    for x, y in stream:
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"cancelled after {seen} images.")
        batch = probe.images(x)
        fn = fn or _logit_pass(probe)
        y = _labels(y, k)
        if len(y) != len(batch):
            raise OptionError(f"a batch of data has {len(batch)} images but {len(y)} labels.")
        z = np.asarray(fn(tf.constant(batch)), np.float64)
        if z.shape[-1] == 1:
            z = np.concatenate([np.zeros_like(z), z], -1)  # one sigmoid unit: logits (0, z)
        if not np.isfinite(z).all():
            raise ResultError(f"the model gave NaN or infinite outputs for images {seen}..{seen + len(batch) - 1} of "
                              "the data; calibration cannot be measured on them. Check the images and the weights.")
        idx = np.arange(seen, seen + len(batch))
        fit = ((idx * 0.6180339887498949) % 1.0) < holdout
        split_parts.append(fit)
        correct = z.argmax(-1) == y
        for rows, target in ((slice(None), "all"), (fit, "fit"), (~fit, "eval")):
            zz, yy, cc = z[rows], y[rows], correct[rows]
            if not len(zz):
                continue
            scaled = zz[None] / (temps[:, None, None] if target != "all" else np.ones((1, 1, 1)))
            logp = scaled - _logsumexp(scaled)
            logp_y = np.take_along_axis(logp, np.broadcast_to(yy[None, :, None], logp.shape[:2] + (1,)), -1)[..., 0]
            if target == "fit":
                fit_nll -= logp_y.sum(1)
                continue
            p = np.exp(logp)
            (overall if target == "all" else evaluation).add(p, logp_y, cc, yy)
            if target == "all" and top:
                ent = _entropy(p[0])
                for j in range(len(yy)):
                    item = (float(ent[j]), int(idx[j]))
                    if len(heap) < top:
                        heapq.heappush(heap, item)
                        images_kept[item[1]] = (batch[j], int(yy[j]), int(zz[j].argmax()))
                    elif item > heap[0]:
                        dropped = heapq.heappushpop(heap, item)
                        images_kept.pop(dropped[1], None)
                        images_kept[item[1]] = (batch[j], int(yy[j]), int(zz[j].argmax()))
        seen += len(batch)
        done += 1
        if progress is not None:
            progress(done, total or 0)
    split = np.concatenate(split_parts) if split_parts else np.zeros(0, bool)
    n_fit, n_eval = int(split.sum()), int((~split).sum())
    if seen < MIN_CALIBRATION_IMAGES or min(n_fit, n_eval) < MIN_SPLIT_IMAGES:
        raise ResultError(f"calibration needs at least {MIN_CALIBRATION_IMAGES} images with at least "
                          f"{MIN_SPLIT_IMAGES} in each split (holdout={holdout}); got {seen} images ({n_fit} to fit "
                          f"the temperature, {n_eval} to evaluate). With fewer, a {bins}-bin reliability diagram and "
                          "a fitted temperature are mostly noise: give more labelled images.")
    best = int(np.argmin(fit_nll))
    note = ""
    if best == 0:
        note = (f"the fitted temperature {temps[best]:.3g} is the smallest searched: on the fit split the NLL still "
                f"falls as the model is made more confident (it is right on {overall.metrics(0).accuracy:.1%} of "
                "the images), so the 'after' numbers are a limit, not a calibrated model; data the model gets "
                "wrong more often calibrate it better.")
    elif best == len(temps) - 1:
        note = (f"the fitted temperature {temps[best]:.3g} is the largest searched: the model is far over-confident "
                "(or its outputs barely depend on the image); the 'after' numbers are a limit.")
    ranked = sorted(heap, reverse=True)
    most = [(i, e, images_kept[i][1], images_kept[i][2]) for e, i in ranked]
    kept = (np.stack([images_kept[i][0] for _, i in ranked]) if ranked
            else np.zeros((0,) + tuple(probe.input_shape), np.float32))
    return Calibration(overall=overall.metrics(0), before=evaluation.metrics(one), after=evaluation.metrics(best),
                       temperature=float(temps[best]), fit_nll=(float(fit_nll[one] / n_fit),
                                                                 float(fit_nll[best] / n_fit)),
                       edges=np.linspace(0.0, 1.0, bins + 1), split=split, most_uncertain=most,
                       uncertain_images=kept, holdout=holdout, note=note)


def _logsumexp(z: np.ndarray) -> np.ndarray:
    m = z.max(-1, keepdims=True)
    return m + np.log(np.exp(z - m).sum(-1, keepdims=True))
