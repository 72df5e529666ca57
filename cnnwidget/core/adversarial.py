"""Adversarial examples: FGSM and PGD on display-space pixels, accuracy against epsilon, and where in the network
the clean and the adversarial representations split.

    from cnnwidget.core import adversarial
    result = adversarial.pgd(probe, images, epsilon=8 / 255, steps=20, norm="inf")   # AttackResult
    result.adversarial, result.perturbation, result.clean_pred, result.adv_pred, result.success
    curve = adversarial.robustness_curve(probe, (images, labels), [0, 2 / 255, 4 / 255, 8 / 255])
    div = adversarial.layer_divergence(probe, images, result.adversarial)             # LayerDivergence

What is attacked: images in display space (the probe's ``input_range``, default [0, 1]); the probe's ``preprocess``
runs inside the compiled pass, so gradients and ``epsilon`` are in display units (8/255 for [0, 1] images is "8 grey
levels"). Every adversarial image is clipped to ``input_range`` and its perturbation to the epsilon ball around the
clean image (L-inf: each pixel within ``epsilon``; L2: the whole perturbation's Euclidean norm within ``epsilon``).
The clean images are first clipped to ``input_range`` too (an image outside it would otherwise be "perturbed" by
the clipping alone): perturbations are measured from those clipped images.

The loss: the cross-entropy of the pre-softmax logits (``probe.forward(logits=True)``) with the label, raised for
an untargeted attack (``labels`` given, or each image's clean prediction) and lowered towards ``target`` for a
targeted one. The model runs in inference mode throughout (``training=False``): BatchNormalization uses and keeps
its moving statistics, dropout is off; no weight or statistic of the model is changed.

Compiled once: one step per (probe, norm), kept in the probe's cache (``probe.compiled``, family "adversarial" of
the trace counter). Epsilon, step size, labels, target (and whether the attack is targeted) are tensors fed to it,
one value per image, so a new epsilon, step count or target never retraces, and FGSM is one step of the same pass.
PGD runs its steps from Python so that ``progress(done, total)`` is called and ``cancel`` (a threading.Event) is
checked at every step (raising ``Cancelled``).

Cost: PGD with ``steps`` steps is ``steps`` forward+backward passes plus two forward passes (the clean prediction
and the adversarial one; the clean one is shared with the first step when there is no random start).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from . import options as _options
from .errors import Cancelled, ImageError, OptionError
from .probe import ModelProbe, probe_for

__all__ = ["ATTACKS", "NORMS", "AttackResult", "LayerDivergence", "RobustnessCurve", "attack", "fgsm", "pgd",
           "layer_divergence", "robustness_curve", "default_epsilons", "epsilon_bound", "check_epsilon",
           "check_norm", "check_attack"]

ATTACKS = ("pgd", "fgsm")
NORMS = ("inf", "2")
_NORM_ALIASES = {"inf": "inf", "linf": "inf", "l_inf": "inf", "2": "2", "l2": "2"}
PREDICTED = -1  # a label entry resolved inside the pass to the image's predicted class


# -- results ---------------------------------------------------------------------------------------------------

@dataclass(eq=False)
class AttackResult:
    """What an attack made, per image (N of them).

    adversarial:   (N, H, W, C) float32 in ``input_range``.
    perturbation:  (N, H, W, C) float32, ``adversarial - clean`` (clean clipped to ``input_range``), in display units.
    clean_probs, adv_probs: (N, classes) float32 probabilities (softmax of the logits; a sigmoid unit as two columns).
    clean_pred, adv_pred:   (N,) int64 predicted classes: the argmax of the logits the attack itself used (so an
                   untargeted attack's ``labels`` are its ``clean_pred``, even where classes tie and the rounded
                   probabilities would pick another one).
    labels:        (N,) int64 the classes an untargeted attack pushed away from (given, or the clean prediction).
    target:        (N,) int64 the classes a targeted attack pushed towards, or None (untargeted).
    success:       (N,) bool: targeted, ``adv_pred == target``; untargeted, ``adv_pred != labels``.
    attack, norm, epsilon, steps, step_size, random_start, seed: how it was made.
    """

    adversarial: np.ndarray
    perturbation: np.ndarray
    clean_probs: np.ndarray
    adv_probs: np.ndarray
    labels: np.ndarray
    target: np.ndarray | None
    attack: str
    norm: str
    epsilon: float
    steps: int
    step_size: float
    random_start: bool
    seed: int
    clean_logits: np.ndarray | None = field(default=None, repr=False)  # (N, classes) float32, the pass's logits
    adv_logits: np.ndarray | None = field(default=None, repr=False)

    @property
    def clean_pred(self) -> np.ndarray:
        return (self.clean_probs if self.clean_logits is None else self.clean_logits).argmax(-1)

    @property
    def adv_pred(self) -> np.ndarray:
        return (self.adv_probs if self.adv_logits is None else self.adv_logits).argmax(-1)

    @property
    def success(self) -> np.ndarray:
        if self.target is not None:
            return self.adv_pred == self.target
        return self.adv_pred != self.labels

    @property
    def success_rate(self) -> float:
        return float(self.success.mean())

    @property
    def norms(self) -> np.ndarray:
        """(N,) the size of each perturbation in the attack's norm (max |delta| for "inf", ||delta||_2 for "2")."""
        flat = self.perturbation.reshape(len(self.perturbation), -1).astype(np.float64)
        return np.abs(flat).max(1) if self.norm == "inf" else np.sqrt((flat ** 2).sum(1))

    def __repr__(self):
        kind = "targeted" if self.target is not None else "untargeted"
        return (f"AttackResult({self.attack}, L{self.norm}, epsilon={self.epsilon:.4g}, {kind}, "
                f"{len(self.adversarial)} images, success {self.success_rate:.0%})")


@dataclass(eq=False)
class RobustnessCurve:
    """Accuracy against epsilon over a data set.

    epsilons: (E,) float64 as given (sorted ascending); accuracy: (E,) float64 the share of images whose adversarial
    prediction is still their label; n_images: how many images were attacked; clean_accuracy: accuracy at no
    perturbation; attack, norm, steps, step_size_ratio: the attack (step size = ratio x epsilon for PGD).
    """

    epsilons: np.ndarray
    accuracy: np.ndarray
    n_images: int
    clean_accuracy: float
    attack: str
    norm: str
    steps: int
    step_size_ratio: float
    correct: np.ndarray = field(repr=False, default=None)  # (E,) counts of correct predictions

    def as_dict(self) -> dict:
        return {"epsilons": [float(e) for e in self.epsilons], "accuracy": [float(a) for a in self.accuracy],
                "n_images": int(self.n_images), "clean_accuracy": float(self.clean_accuracy), "attack": self.attack,
                "norm": self.norm, "steps": int(self.steps)}


@dataclass(eq=False)
class LayerDivergence:
    """Per layer, how far the adversarial activations moved from the clean ones: ||a_adv - a_clean||_2 /
    ||a_clean||_2 over each image's whole activation.

    layers: list of L layer paths (model order); values: (L, N) float64, NaN where a clean activation is all zeros
    (no relative distance exists there); mean: (L,) float64 the mean over images (NaN-ignoring; NaN if all are).
    """

    layers: list
    values: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        with np.errstate(all="ignore"):
            finite = np.isfinite(self.values)
            count = finite.sum(1)
            total = np.where(finite, self.values, 0.0).sum(1)
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def as_dict(self) -> dict:
        return dict(zip(self.layers, self.mean.tolist()))


# -- option checks ---------------------------------------------------------------------------------------------

def check_epsilon(epsilon, name: str = "epsilon", bound: float | None = None, norm: str = "inf",
                  noun: str | None = None) -> float:
    """``epsilon`` as a finite float >= 0 (display units), or an OptionError naming it. With ``bound`` (see
    ``epsilon_bound``), an epsilon above it is refused too: no perturbation of an image in the input range can
    be that large, so the ball is the whole range and the number means nothing. ``noun``: what the message calls
    a good value (default "a finite number >= 0")."""
    value = _options.positive_float(name, epsilon, allow_zero=True, noun=noun)
    if bound is not None and value > bound * (1 + 1e-9):
        what = ("the span hi - lo of the input range: every pixel can already take any value" if norm == "inf" else
                "span x sqrt(H x W x C), the L2 distance between an all-lo and an all-hi image")
        raise OptionError(f"{name} {value:.6g} is too large for the {'L-inf' if norm == 'inf' else 'L2'} norm: it "
                          f"must be <= {bound:.6g}, {what}.")
    return value


def epsilon_bound(probe_or_range, norm: str = "inf", shape=None) -> float:
    """The largest meaningful epsilon in display units: the input range's span for L-inf; span x sqrt(H*W*C) of
    ``shape`` (H, W, C) for L2 (inf when the shape is not known)."""
    lo, hi = probe_or_range.input_range if isinstance(probe_or_range, ModelProbe) else probe_or_range
    span = float(hi - lo)
    if check_norm(norm) == "inf":
        return span
    if shape is None or None in tuple(shape):
        return math.inf
    return span * math.sqrt(float(np.prod(shape)))


def check_norm(norm) -> str:
    """"inf" or "2" (also accepted: np.inf, 2, "linf", "l2"), or an OptionError listing them."""
    if isinstance(norm, (int, float, np.number)) and not isinstance(norm, bool):
        if math.isinf(norm) and norm > 0:
            return "inf"
        if norm == 2:
            return "2"
    if isinstance(norm, str) and norm.lower() in _NORM_ALIASES:
        return _NORM_ALIASES[norm.lower()]
    return _options.choice("norm", norm, NORMS)


def check_attack(attack) -> str:
    return _options.choice("attack", attack, ATTACKS)


def _classes(probe: ModelProbe) -> int:
    n = probe.num_classes
    return 2 if n == 1 else n


def _class_array(probe: ModelProbe, n: int, value, name: str) -> np.ndarray:
    """An int (for every image) or one int per image, each in [0, classes), as int32 (n,); a one-unit sigmoid
    model has two classes here (the unit's two sides)."""
    return _options.class_indices(name, value, n, _classes(probe))


def _bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise OptionError(f"{name} must be True or False; got {value!r} ({type(value).__name__}).")
    return bool(value)


def default_epsilons(probe_or_range, norm: str = "inf", count: int = 9, shape=None) -> np.ndarray:
    """``count`` epsilons from 0 for a robustness curve, in display units: L-inf up to 16/255 of the input range's
    span (9: steps of 2/255); L2 up to the norm of a 16/255 L-inf perturbation over a quarter of the pixels of
    ``shape``."""
    lo, hi = probe_or_range.input_range if isinstance(probe_or_range, ModelProbe) else probe_or_range
    span = float(hi - lo)
    top = 16 / 255 * span
    if check_norm(norm) == "2":
        size = int(np.prod(shape)) if shape is not None else 64 * 64 * 3
        top *= math.sqrt(size / 4)
    return np.linspace(0.0, top, _options.positive_int("count", count, 2))


# -- the compiled step -----------------------------------------------------------------------------------------

def _spec(probe: ModelProbe):
    return tf.TensorSpec((None,) + tuple(probe.input_shape), tf.float32)


def _logits_of(forward, x, binary: bool):
    z = forward(x)[-1]
    if binary:  # one sigmoid unit: logits of (1 - p, p) are (0, z)
        z = tf.concat([tf.zeros_like(z), z], -1)
    return z


def step_fn(probe: ModelProbe, norm: str):
    """The compiled attack step for ``norm``, kept by the probe: one trace per probe and norm.

    (x (B, H, W, C) current images, x0 (B, H, W, C) clean images, label (B,) int32 (PREDICTED: the class the
    logits at ``x`` predict), sign (B,) float32 (+1 raise the label's loss, -1 lower it: targeted), epsilon (B,),
    step_size (B,), lo (), hi ()) -> (next images (B, H, W, C), logits at ``x`` (B, classes), labels used (B,)).
    """
    norm = check_norm(norm)

    def make():
        forward = probe.forward((), logits=True)
        binary = probe.num_classes == 1

        def step(x, x0, label, sign, epsilon, step_size, lo, hi):
            with tf.GradientTape() as tape:
                tape.watch(x)
                logits = _logits_of(forward, x, binary)
                used = tf.where(label < 0, tf.argmax(logits, -1, output_type=tf.int32), label)
                loss = tf.nn.sparse_softmax_cross_entropy_with_logits(used, logits)
                total = tf.reduce_sum(sign * loss)  # rows are independent (inference mode): each its own gradient
            g = tape.gradient(total, x)
            eps = epsilon[:, None, None, None]
            size = step_size[:, None, None, None]
            if norm == "inf":
                x_new = x + size * tf.sign(g)
                x_new = tf.clip_by_value(x_new, x0 - eps, x0 + eps)
            else:
                g_norm = tf.sqrt(tf.reduce_sum(g * g, axis=[1, 2, 3], keepdims=True))
                x_new = x + size * tf.math.divide_no_nan(g, g_norm)
                delta = x_new - x0
                d_norm = tf.sqrt(tf.reduce_sum(delta * delta, axis=[1, 2, 3], keepdims=True))
                x_new = x0 + delta * tf.minimum(1.0, tf.math.divide_no_nan(eps, d_norm))
            # Clipping to the range after the ball keeps the perturbation in the ball: x0 is in the range, so each
            # pixel only moves towards x0.
            return tf.clip_by_value(x_new, lo, hi), logits, used

        image = _spec(probe)
        vector = tf.TensorSpec((None,), tf.float32)
        scalar = tf.TensorSpec((), tf.float32)
        signature = [image, image, tf.TensorSpec((None,), tf.int32), vector, vector, vector, scalar, scalar]
        return probe.tf_function(step, input_signature=signature, family="adversarial")

    return probe.compiled(("adversarial", "step", norm), make)


def logits_fn(probe: ModelProbe):
    """Compiled x (B, H, W, C) -> logits (B, classes), inference mode (a sigmoid unit as two columns)."""
    def make():
        forward = probe.forward((), logits=True)
        binary = probe.num_classes == 1
        return probe.tf_function(lambda x: _logits_of(forward, x, binary), input_signature=[_spec(probe)],
                                 family="adversarial")
    return probe.compiled(("adversarial", "logits"), make)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64) - z.max(-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def _random_start(rng: np.random.Generator, x0: np.ndarray, epsilon: float, norm: str, lo: float, hi: float):
    if norm == "inf":
        delta = rng.uniform(-epsilon, epsilon, x0.shape).astype(np.float32)
    else:  # uniform in the L2 ball: a random direction, radius eps * u^(1/d)
        d = int(np.prod(x0.shape[1:]))
        delta = rng.standard_normal(x0.shape).astype(np.float32)
        norms = np.sqrt((delta.reshape(len(x0), -1).astype(np.float64) ** 2).sum(1))
        radius = epsilon * rng.uniform(0, 1, len(x0)) ** (1.0 / d)
        delta *= (radius / np.maximum(norms, 1e-12)).astype(np.float32)[:, None, None, None]
    return np.clip(x0 + delta, lo, hi).astype(np.float32)


# -- attacks ---------------------------------------------------------------------------------------------------

def fgsm(probe, images, epsilon, target=None, labels=None, norm="inf", batch_size=None, progress=None,
         cancel=None) -> AttackResult:
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size ``epsilon`` along the sign of the loss
    gradient (``norm="2"``: along the gradient scaled to L2 norm ``epsilon``, the "fast gradient method").

    ``epsilon`` in display units (>= 0); ``target``: None (untargeted: away from ``labels``, default each image's
    clean prediction), an int or one int per image (towards that class). Returns an :class:`AttackResult`.
    One forward+backward pass and one forward pass per image."""
    return attack(probe, images, epsilon, "fgsm", target=target, labels=labels, norm=norm, steps=1,
                  step_size=None, random_start=False, batch_size=batch_size, progress=progress, cancel=cancel)


def pgd(probe, images, epsilon, steps=20, step_size=None, norm="inf", target=None, labels=None, random_start=True,
        seed=0, batch_size=None, progress=None, cancel=None) -> AttackResult:
    """Projected gradient descent (Madry et al. 2018): ``steps`` steps of ``step_size`` (default 2.5 epsilon /
    steps) along the sign of the loss gradient (L-inf) or along the gradient scaled to that L2 length
    (``norm="2"``), each followed by projection onto the epsilon ball around the clean image and clipping to
    ``input_range``; from a uniformly random point of the ball (``random_start``, drawn from ``seed``) or from the
    clean image.

    ``epsilon`` in display units (>= 0); ``target``: None (untargeted: away from ``labels``, default each image's
    clean prediction), an int or one int per image (towards that class). ``progress(done, total)`` after each
    step of each chunk of ``batch_size`` images (default the probe's); ``cancel`` checked before each step.
    Returns an :class:`AttackResult`."""
    return attack(probe, images, epsilon, "pgd", target=target, labels=labels, norm=norm, steps=steps,
                  step_size=step_size, random_start=random_start, seed=seed, batch_size=batch_size,
                  progress=progress, cancel=cancel)


def _checked(probe, images, epsilon, attack_name, target, labels, norm, steps, step_size, random_start, seed,
             batch_size):
    probe = probe_for(probe)
    attack_name = check_attack(attack_name)
    batch = probe.images(images)
    norm = check_norm(norm)
    epsilon = check_epsilon(epsilon, bound=epsilon_bound(probe, norm, batch.shape[1:]), norm=norm)
    steps = _options.positive_int("steps", steps)
    if attack_name == "fgsm":
        steps, random_start = 1, False
        size = epsilon
    elif step_size is None:
        size = 2.5 * epsilon / steps
    else:
        size = _options.positive_float("step_size", step_size)
    random_start = _bool("random_start", random_start)
    seed = _options.seed(seed)
    n = len(batch)
    target = None if target is None else _class_array(probe, n, target, "target")
    labels = np.full(n, PREDICTED, np.int32) if labels is None else _class_array(probe, n, labels, "labels")
    bs = probe.batch_size if batch_size is None else _options.positive_int("batch_size", batch_size)
    return probe, batch, epsilon, attack_name, target, labels, norm, steps, size, random_start, seed, bs


def attack(probe, images, epsilon, attack="pgd", target=None, labels=None, norm="inf", steps=20, step_size=None,
           random_start=True, seed=0, batch_size=None, progress=None, cancel=None) -> AttackResult:
    """``fgsm`` or ``pgd`` by name (``attack``); the options as there (FGSM ignores steps, step_size,
    random_start and seed). Every option is checked before the first pass; a ``cancel`` event already set then
    raises Cancelled without any pass (a widget checking options)."""
    return _run(probe, images, epsilon, attack, target, labels, norm, steps, step_size, random_start, seed,
                batch_size, progress, cancel)


def _run(probe, images, epsilon, attack, target, labels, norm, steps, step_size, random_start, seed, batch_size,
         progress, cancel) -> AttackResult:
    (probe, batch, epsilon, attack_name, target, labels, norm, steps, size, random_start, seed,
     bs) = _checked(probe, images, epsilon, attack, target, labels, norm, steps, step_size, random_start, seed,
                    batch_size)
    _stop(cancel, "before the first pass")
    lo, hi = probe.input_range
    clean = np.clip(batch, lo, hi).astype(np.float32)
    n = len(clean)
    adv = np.empty_like(clean)
    clean_logits = np.empty((n, _classes(probe)), np.float32)
    adv_logits = np.empty_like(clean_logits)
    used_labels = np.empty(n, np.int32)
    step = step_fn(probe, norm)
    logits = logits_fn(probe)
    rng = np.random.default_rng(seed)
    chunks = list(range(0, n, bs))
    total, done = len(chunks) * steps, 0
    lo_t, hi_t = tf.constant(lo, tf.float32), tf.constant(hi, tf.float32)
    for start in chunks:
        stop = min(start + bs, n)
        x0 = clean[start:stop]
        m = len(x0)
        x0_t = tf.constant(x0)
        label = labels[start:stop].copy()
        sign = np.ones(m, np.float32)
        if target is not None:
            label, sign = target[start:stop].copy(), -sign
        eps_t = tf.constant(np.full(m, epsilon, np.float32))
        size_t = tf.constant(np.full(m, size, np.float32))
        sign_t = tf.constant(sign)
        have_clean = False
        if random_start and epsilon > 0:
            # the clean prediction (and the label an untargeted attack moves away from) before leaving the image
            z = logits(x0_t).numpy()
            clean_logits[start:stop] = z
            label = np.where(label == PREDICTED, z.argmax(-1), label).astype(np.int32)
            have_clean = True
            x = tf.constant(_random_start(rng, x0, epsilon, norm, lo, hi))
        else:
            x = x0_t
        label_t = tf.constant(label)
        for k in range(steps):
            _stop(cancel, f"after {done} of {total} steps")
            x, z, used = step(x, x0_t, label_t, sign_t, eps_t, size_t, lo_t, hi_t)
            if k == 0 and not have_clean:  # no random start: the first step's logits are the clean ones
                clean_logits[start:stop] = z.numpy()
                label_t = used  # the predicted class, fixed for the following steps
            done += 1
            if progress is not None:
                progress(done, total)
        used_labels[start:stop] = label_t.numpy()
        adv[start:stop] = x.numpy()
        adv_logits[start:stop] = logits(x).numpy()
    return AttackResult(
        adversarial=adv, perturbation=adv - clean, clean_probs=_softmax(clean_logits), adv_probs=_softmax(adv_logits),
        labels=used_labels.astype(np.int64), target=None if target is None else target.astype(np.int64),
        attack=attack_name, norm=norm, epsilon=float(epsilon), steps=int(steps), step_size=float(size),
        random_start=bool(random_start), seed=int(seed), clean_logits=clean_logits, adv_logits=adv_logits)


def _stop(cancel, when: str):
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"the attack was cancelled {when}.")


# -- accuracy against epsilon ----------------------------------------------------------------------------------

def _labelled_batches(probe: ModelProbe, data, batch_size: int):
    """(iterator of (images (B, H, W, C) float32, labels (B,) int32) numpy batches, number of batches or None)."""
    classes = _classes(probe)
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if not (isinstance(spec, (tuple, list)) and len(spec) >= 2 and getattr(spec[0], "shape", None) is not None
                and spec[0].shape.rank == 4):
            raise ImageError(f"data must yield batches (images (N, H, W, C), labels (N,)); it yields {spec}. "
                             "Batch an (image, label) data set first: data.batch(64).")
        want, got = tuple(probe.input_shape), tuple(spec[0].shape[1:])
        if any(g is not None and w is not None and g != w for g, w in zip(got, want)):
            raise ImageError(f"the model takes images {want}; data yields {got}.")
        card = int(data.cardinality())

        def gen():
            for item in data:
                x = probe.images(np.asarray(item[0]))
                y = np.asarray(item[1]).reshape(-1)
                yield x, _labels(y, len(x), classes)
        return gen(), (card if card >= 0 else None)
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ImageError(f"data must be (images, labels) arrays or a tf.data.Dataset of (images, labels) batches; "
                         f"got {type(data).__name__}.")
    images = probe.images(data[0])
    labels = _labels(np.asarray(data[1]).reshape(-1) if np.ndim(data[1]) else np.asarray([data[1]]),
                     len(images), classes)

    def gen():
        for i in range(0, len(images), batch_size):
            yield images[i:i + batch_size], labels[i:i + batch_size]
    return gen(), -(-len(images) // batch_size)


def _labels(y: np.ndarray, n: int, classes: int) -> np.ndarray:
    if y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise OptionError(f"labels must be integer class indices; got dtype {y.dtype}.")
    if len(y) != n:
        raise OptionError(f"there are {n} images but {len(y)} labels; give one class index per image.")
    bad = (y < 0) | (y >= classes)
    if bad.any():
        raise OptionError(f"label {int(y[bad][0])} is out of range: this model has {classes} classes, so a label is "
                          f"a class index in [0, {classes - 1}].")
    return y.astype(np.int32)


def robustness_curve(probe, data, epsilons=None, attack="pgd", norm="inf", steps=10, step_size_ratio=2.5,
                     random_start=True, seed=0, batch_size=None, progress=None, cancel=None) -> RobustnessCurve:
    """Accuracy against epsilon: for each epsilon, the share of images whose prediction after an untargeted attack
    away from their true label is still that label.

    ``data``: (images, labels) arrays, or a ``tf.data.Dataset`` yielding batches (images (B, H, W, C), labels (B,))
    (more items are ignored), streamed batch by batch: memory does not grow with the data set.
    ``epsilons``: display units, >= 0 (default ``default_epsilons``: 9 from 0 to 16/255 of the range for L-inf).
    An epsilon of 0 costs no attack (the clean accuracy). ``attack`` "pgd" (``steps`` steps of ``step_size_ratio``
    x epsilon / steps, random start from ``seed``) or "fgsm".
    ``progress(done, total)`` after each attack step (total None for a data set of unknown length); ``cancel``
    checked before each step. Returns a :class:`RobustnessCurve`.
    """
    p = probe_for(probe)
    attack_name = check_attack(attack)
    norm = check_norm(norm)
    steps = 1 if attack_name == "fgsm" else _options.positive_int("steps", steps)
    ratio = _options.positive_float("step_size_ratio", step_size_ratio)
    random_start = _bool("random_start", random_start)
    seed = _options.seed(seed)
    bs = p.batch_size if batch_size is None else _options.positive_int("batch_size", batch_size)
    if epsilons is None:
        epsilons = default_epsilons(p, norm, shape=p.input_shape if None not in p.input_shape else None)
    eps = np.asarray(sorted(_options.numbers("epsilons", epsilons)), np.float64)
    if (eps < 0).any():
        raise OptionError(f"epsilons must be numbers >= 0 (display units); got {list(epsilons)!r}.")
    bound = epsilon_bound(p, norm, p.input_shape)
    for e in eps:
        check_epsilon(e, "epsilons", bound, norm)
    batches, n_batches = _labelled_batches(p, data, bs)
    _stop(cancel, "before the first pass")
    nonzero = [e for e in eps if e > 0]
    total = None if n_batches is None else n_batches * len(nonzero) * steps
    correct = np.zeros(len(eps), np.int64)
    clean_correct, n, done = 0, 0, 0
    logits = logits_fn(p)

    def step_progress(base):
        return None if progress is None else (lambda k, _t: progress(base + k, total))

    for x, y in batches:
        _stop(cancel, f"after {n} images")
        pred = logits(tf.constant(np.clip(x, *p.input_range))).numpy().argmax(-1)
        clean_correct += int((pred == y).sum())
        for i, e in enumerate(eps):
            if e == 0:
                correct[i] += int((pred == y).sum())
                continue
            result = _run(p, x, float(e), attack_name, None, y, norm, steps,
                          None if attack_name == "fgsm" else ratio * e / steps, random_start, seed + n, bs,
                          step_progress(done), cancel)
            done += steps * -(-len(x) // bs)
            correct[i] += int((result.adv_pred == y).sum())
        n += len(x)
    if n == 0:
        raise ImageError("data gave no images: pass a non-empty data set.")
    return RobustnessCurve(epsilons=eps, accuracy=correct / n, n_images=n, clean_accuracy=clean_correct / n,
                           attack=attack_name, norm=norm, steps=steps, step_size_ratio=ratio, correct=correct)


# -- where the representations split ---------------------------------------------------------------------------

def _divergence_fn(probe: ModelProbe, paths: tuple):
    """Compiled (clean, adversarial) -> per layer [(B,) squared distance, (B,) squared clean norm]."""
    def make():
        forward = probe.forward(paths)

        def run(x0, x1):
            b = tf.shape(x0)[0]
            outs = forward(tf.concat([x0, x1], 0))
            sums = []
            for out in outs:
                flat = tf.reshape(tf.cast(out, tf.float32), [2 * b, -1])
                a, c = flat[:b], flat[b:]
                sums.append(tf.stack([tf.reduce_sum(tf.square(c - a), 1), tf.reduce_sum(tf.square(a), 1)]))
            return sums

        return probe.tf_function(run, input_signature=[_spec(probe), _spec(probe)], family="adversarial")
    return probe.compiled(("adversarial", "divergence", paths), make)


def layer_divergence(probe, clean, adversarial, layers=None, batch_size=None) -> LayerDivergence:
    """Per layer, the relative L2 distance ||a(adversarial) - a(clean)|| / ||a(clean)|| of each image's activation,
    so a person sees at which depth the two representations split. Computed inside one compiled pass per chunk
    (the activations are never fetched whole). ``layers``: names or paths (default: every layer, model order).
    NaN where a clean activation is all zeros. Returns a :class:`LayerDivergence`."""
    p = probe_for(probe)
    x0, x1 = p.images(clean), p.images(adversarial)
    if x0.shape != x1.shape:
        raise ImageError(f"clean and adversarial images must have the same shape; got {x0.shape} and {x1.shape}.")
    if layers is None:
        paths = tuple(info.path for info in p.layers)
    else:
        layers = [layers] if isinstance(layers, str) else list(layers)
        if not layers:
            raise OptionError("layers must name at least one layer (or be None for every layer).")
        paths = tuple(p.layer(name).path for name in layers)
    bs = p.batch_size if batch_size is None else _options.positive_int("batch_size", batch_size)
    fn = _divergence_fn(p, paths)
    parts = [fn(tf.constant(x0[i:i + bs]), tf.constant(x1[i:i + bs])) for i in range(0, len(x0), bs)]
    values = np.empty((len(paths), len(x0)), np.float64)
    for j in range(len(paths)):
        sums = np.concatenate([np.asarray(part[j], np.float64) for part in parts], 1)  # (2, N)
        with np.errstate(all="ignore"):
            values[j] = np.where(sums[1] > 0, np.sqrt(sums[0]) / np.sqrt(sums[1]), np.nan)
    return LayerDivergence(layers=list(paths), values=values)
