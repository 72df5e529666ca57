"""Objectives: what feature visualization maximizes, as small composable functions of a model's activations.

An :class:`Objective` wraps ``fn(T, values) -> scalar tensor``, where ``T`` is an :class:`Activations` accessor
(``T[layer]``, ``T.logits``, ``T.images``) and ``values`` are the objective's numbers (channel indices, class
indices, direction vectors, weights) fed into the compiled step as tensors. Keeping the numbers out of the trace is
what lets a render of channel 5 reuse the step compiled for channel 4: the step is keyed by ``Objective.key``,
which holds the structure (kinds, layers, batch) and none of the numbers.

Objectives compose like Lucid's: ``channel("block3_relu", 5) - 1e-3 * total_variation()``. Values are summed over
the images of the batch (each image contributes its own term), so a weight means the same for any batch size.
Activation terms are means over positions; image penalties are means over pixels of images in [0, 1], so weights do
not depend on the render size or the model's ``input_range``. ``render`` maximizes the objective (it minimizes
``-objective``).
"""

from __future__ import annotations

from numbers import Real
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from .. import options
from ..errors import LayerError, OptionError


class Activations:
    """What an objective reads during one step (Lucid's ``T``).

    ``T[layer]`` or ``T(layer)``: that layer's output, (B, H, W, C) or (B, C), for a layer the objective declared;
    ``T.logits``: (B, classes) pre-softmax outputs (when an objective asked for them); ``T.images``: the images
    being optimized, (B, size, size, C) in [0, 1] (the display range mapped to [0, 1]), before transforms.
    """

    def __init__(self, layers: dict, logits=None, images=None):
        self._layers, self.logits, self.images = layers, logits, images

    def __getitem__(self, layer):
        return self._layers[layer]

    def __call__(self, layer):
        return self._layers[layer]

    def select(self, index) -> "Activations":
        """The same tensors restricted to image ``index`` of the batch (a batch of one)."""
        pick = (lambda t: None if t is None else tf.gather(t, index[None]))
        return Activations({k: pick(v) for k, v in self._layers.items()}, pick(self.logits), pick(self.images))


class Objective:
    """A scalar to maximize, summed over a batch of images; composes with ``+``, ``-``, unary ``-``, ``* k``, ``/ k``.

    Attributes: ``name`` (how it reads, e.g. "channel('block3_relu', 5)"), ``key`` (its structure, hashable: equal
    keys share one compiled step), ``layers`` (layer names it reads), ``logits`` (whether it reads the logits),
    ``batch`` (the batch size it needs, None for any) and ``min_batch`` (the smallest batch it makes sense on).
    Make objectives with the factories of this module rather than this constructor.
    """

    def __init__(self, fn: Callable, name: str, key: tuple, bind: Callable = lambda probe: [], nargs: int = 0,
                 layers: Sequence[str] = (), logits: bool = False, batch: int | None = None, min_batch: int = 1,
                 atomic: bool = True):
        self._fn, self._bind, self.nargs = fn, bind, nargs
        self.name, self.key = name, key
        self.layers = tuple(dict.fromkeys(layers))
        self.logits, self.batch, self.min_batch = bool(logits), batch, min_batch
        self._atomic = atomic  # whether the name needs brackets inside a larger expression

    def bind(self, probe) -> list[np.ndarray]:
        """Check the objective against ``probe``'s model and return its values (one array per argument of ``fn``).

        Raises LayerError for a layer the model lacks or of the wrong kind, OptionError for an index out of range.
        """
        values = self._bind(probe)
        assert len(values) == self.nargs, (self.name, len(values), self.nargs)
        return values

    def __call__(self, T: Activations, values: Sequence) -> tf.Tensor:
        """The objective's value (a scalar tensor) for the activations ``T`` and the bound ``values``."""
        return self._fn(T, values)

    # -- algebra ---------------------------------------------------------------------------------------------

    def __add__(self, other):
        return _combine(self, other, "+") if isinstance(other, Objective) else NotImplemented

    def __sub__(self, other):
        return _combine(self, other, "-") if isinstance(other, Objective) else NotImplemented

    def __neg__(self):
        return Objective(lambda T, v: -self(T, v), f"-{self._inner_name()}", ("neg", self.key), self.bind,
                         self.nargs, self.layers, self.logits, self.batch, self.min_batch)

    def __mul__(self, k):
        if not _is_number(k):
            return NotImplemented  # Python then raises TypeError: objectives scale by numbers only
        # The weight is a value, not part of the key, so changing it does not recompile.
        return Objective(lambda T, v: v[0] * self(T, v[1:]), f"{float(k):g} * {self._inner_name()}",
                         ("scale", self.key), lambda probe: [np.float32(k)] + self.bind(probe), self.nargs + 1,
                         self.layers, self.logits, self.batch, self.min_batch)

    __rmul__ = __mul__

    def __truediv__(self, k):
        if not _is_number(k):
            return NotImplemented
        if k == 0:
            raise OptionError(f"cannot divide the objective {self.name} by 0.")
        return self * (1.0 / float(k))

    def _inner_name(self):
        return self.name if self._atomic else f"({self.name})"

    def __repr__(self):
        return self.name


def _is_number(k) -> bool:
    return isinstance(k, Real) and not isinstance(k, bool)


def _combine(a: Objective, b: Objective, op: str) -> Objective:
    batch = a.batch if b.batch is None else b.batch
    if a.batch is not None and b.batch is not None and a.batch != b.batch:
        raise OptionError(f"cannot combine {a.name} (a batch of {a.batch} images) with {b.name} (a batch of "
                          f"{b.batch}): batch objectives must agree on the batch size.")
    n = a.nargs
    sign = 1.0 if op == "+" else -1.0
    b_name = b.name if (op == "+" or b._atomic) else f"({b.name})"
    return Objective(lambda T, v: a(T, v[:n]) + sign * b(T, v[n:]), f"{a.name} {op} {b_name}", (op, a.key, b.key),
                     lambda probe: a.bind(probe) + b.bind(probe), a.nargs + b.nargs, a.layers + b.layers,
                     a.logits or b.logits, batch, max(a.min_batch, b.min_batch), atomic=False)


def as_objective(obj) -> Objective:
    """An Objective unchanged, or a "layer:channel" string (Lucid's shorthand) as ``channel(layer, channel)``."""
    if isinstance(obj, Objective):
        return obj
    if isinstance(obj, str) and ":" in obj:
        layer, _, index = obj.rpartition(":")
        if index.strip().isdigit():
            return channel(layer.strip(), int(index))
    raise OptionError(f"expected an objective (e.g. fv.channel('block3_relu', 5)) or a 'layer:channel' string; "
                      f"got {obj!r}.")


# -- checks done when an objective is bound to a probe -----------------------------------------------------------

def _layer(probe, layer, spatial: bool = False, what: str = ""):
    info = probe.layer(layer)  # raises LayerError with suggestions
    if spatial and not info.is_spatial:
        raise LayerError(f"{what} needs a spatial layer, whose output is a feature map (H, W, C); {info.path!r} "
                         f"outputs a vector {info.output_shape}. Spatial layers include "
                         f"{', '.join(repr(i.path) for i in probe.spatial_layers[-6:])}.")
    if len(info.output_shape) not in (1, 3):
        raise LayerError(f"{what} reads channels of (H, W, C) or (C,) outputs; {info.path!r} outputs "
                         f"{info.output_shape}.")
    return info


def _check(layer, **kwargs) -> Callable:
    """A ``bind`` for objectives with no values: it only checks the layer."""
    def bind(probe):
        _layer(probe, layer, **kwargs)
        return []

    return bind


def _index(value, size: int, what: str, where: str) -> int:
    """``value`` as an index in [0, size); negatives are refused (an x or y of -1 is not "the centre": leave it
    None for that)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise OptionError(f"{what} must be an integer; got {value!r}.")
    if not 0 <= value < size:
        centre = " (None means the centre)" if what in ("x", "y") else ""
        raise OptionError(f"{what} {value} is out of range for {where}: valid {what}s are 0 to {size - 1}{centre}.")
    return int(value)


def _channel(info, c) -> int:
    return _index(c, info.output_shape[-1], "channel", f"{info.path!r}, which has {info.output_shape[-1]} channels")


def _class(probe, k) -> int:
    n = probe.num_classes
    return _index(k, n, "class index", f"this model, which outputs {n} class{'es' if n > 1 else ''}")


def _args(*args) -> str:
    return ", ".join(repr(a) for a in args)


# -- per-image reductions --------------------------------------------------------------------------------------

def _mean_per_image(t):
    """(B, ...) -> (B,): the mean of each image's values (unchanged for a (B,) tensor)."""
    return tf.reduce_mean(t, axis=list(range(1, t.shape.rank))) if t.shape.rank > 1 else t


def _pick_channels(act, onehot):
    """Activations (B, H, W, C) or (B, C) weighted by ``onehot`` ((C,) or (B, C)) and summed over C."""
    if act.shape.rank == 4 and onehot.shape.rank == 2:
        onehot = onehot[:, None, None, :]
    return tf.reduce_sum(act * onehot, axis=-1)


# -- activation objectives -------------------------------------------------------------------------------------

def channel(layer, channel) -> Objective:
    """Encourages ``channel`` of ``layer`` to be active everywhere: its mean over positions, summed over images.

    Works on feature maps (H, W, C) and on vector layers (C,), where it is one unit (e.g. a Dense unit).
    """
    def fn(T, v):
        act = T[layer]
        return tf.reduce_sum(_mean_per_image(_pick_channels(act, tf.one_hot(v[0], act.shape[-1]))))

    return Objective(fn, f"channel({_args(layer, channel)})", ("channel", layer),
                     lambda probe: [np.int32(_channel(_layer(probe, layer, what="channel"), channel))], 1, [layer])


def neuron(layer, channel, x=None, y=None) -> Objective:
    """Encourages one unit: ``channel`` of ``layer`` at column ``x``, row ``y`` (default: the centre, W // 2 and
    H // 2), i.e. what excites that channel in the part of the image its receptive field sees. Spatial layers only.
    """
    def bind(probe):
        info = _layer(probe, layer, spatial=True, what="neuron")
        h, w, _ = info.output_shape
        xi = w // 2 if x is None else _index(x, w, "x", f"{info.path!r}, which is {w} wide")
        yi = h // 2 if y is None else _index(y, h, "y", f"{info.path!r}, which is {h} high")
        return [np.int32(_channel(info, channel)), np.int32(yi), np.int32(xi)]

    def fn(T, v):
        c, yi, xi = v
        return tf.reduce_sum(T[layer][:, yi, xi, c])

    return Objective(fn, f"neuron({_args(layer, channel, *(() if x is None and y is None else (x, y)))})",
                     ("neuron", layer), bind, 3, [layer])


def deepdream(layer) -> Objective:
    """Encourages everything ``layer`` responds to at once (DeepDream, Mordvintsev et al. 2015): the mean squared
    activation over positions and channels, summed over images."""
    return Objective(lambda T, v: tf.reduce_sum(_mean_per_image(tf.square(T[layer]))), f"deepdream({layer!r})",
                     ("deepdream", layer), _check(layer, what="deepdream"), 0, [layer])


def direction(layer, vector, cossim_pow: float = 0.0) -> Objective:
    """Encourages activations along ``vector``, a direction in ``layer``'s channel space (a concept activation
    vector, a difference of class means, an NMF factor...).

    The value at each position is ``dot(a, v / |v|)``, times ``max(cos(a, v), 0.1) ** cossim_pow`` when
    ``cossim_pow`` > 0 (as Lucid's): the power rewards pointing along ``v`` over merely being large. It is averaged
    over positions and summed over images. ``vector`` has one entry per channel.
    """
    vec = np.asarray(vector, np.float32)

    def bind(probe):
        info = _layer(probe, layer, what="direction")
        n = info.output_shape[-1]
        if vec.shape != (n,):
            raise OptionError(f"the direction vector for {info.path!r} needs one entry per channel, shape ({n},); "
                              f"got shape {vec.shape}.")
        norm = float(np.linalg.norm(vec))
        if not np.isfinite(norm) or norm == 0:
            raise OptionError("the direction vector must be finite and non-zero.")
        return [vec / norm, np.float32(cossim_pow)]

    def fn(T, v):
        act, unit, power = T[layer], v[0], v[1]
        dot = _pick_channels(act, unit)
        cos = dot / tf.sqrt(tf.reduce_sum(tf.square(act), axis=-1) + 1e-8)  # tf.norm's gradient is NaN at 0
        return tf.reduce_sum(_mean_per_image(dot * tf.pow(tf.maximum(cos, 0.1), power)))

    return Objective(fn, f"direction({layer!r}, <{vec.size} values>)", ("direction", layer), bind, 2, [layer])


def class_logit(class_index, others: float = 0.0) -> Objective:
    """Encourages the model to see class ``class_index``: its pre-softmax logit, summed over images.

    Logits, not probabilities: a probability can grow by pushing the other classes down, a logit only by adding
    evidence for its class. The logit is found even when the last layer applies the softmax itself.

    ``others`` > 0 subtracts that weight times the log-sum-exp of the other classes' logits (a smooth maximum):
    with few classes and features that can grow without bound (the demo model's), a pure logit can keep rising
    while a class with larger weights on the same features rises faster and takes over the image. ``others=1``
    maximizes the log-odds of the class, log(p / (1 - p)), which only a win over every other class raises.
    """
    return Objective(lambda T, v: tf.reduce_sum(_logit_margin(T.logits, v[0], v[1])),
                     f"class_logit({_args(class_index, *((others,) if others else ()))})", ("class_logit",),
                     lambda probe: [np.int32(_class(probe, class_index)), np.float32(others)], 2, logits=True)


def _logit_margin(logits, k, others):
    """(B,) logit of class k (a scalar, or one per image) minus ``others`` times the log-sum-exp of the others."""
    k = tf.broadcast_to(k, tf.shape(logits)[:1])
    target = tf.gather(logits, k, axis=1, batch_dims=1)
    rest = tf.where(tf.one_hot(k, tf.shape(logits)[1]) > 0, tf.constant(-np.inf, logits.dtype), logits)
    return target - others * tf.reduce_logsumexp(rest, axis=1)


def diversity(layer) -> Objective:
    """Encourages the images of a batch to differ from each other in style at ``layer``.

    Each image's Gram matrix of ``layer``'s channels (which channels fire together, wherever) is normalized to unit
    length; the value is minus the mean over images of the summed cosine similarities to every other image's Gram
    matrix, so it lies in [-(B - 1), 0] for ReLU activations. Lucid's ``diversity`` returns the similarity itself
    and is subtracted; this one is added: ``channel(...) + 0.1 * diversity(layer)`` (a typical weight is 0.05 to 1).
    Needs a batch of at least 2 images and a spatial layer.
    """
    def fn(T, v):
        act = T[layer]
        b, c = tf.shape(act)[0], act.shape[-1]
        flat = tf.reshape(act, [b, -1, c])
        grams = tf.reshape(tf.matmul(flat, flat, transpose_a=True), [b, c * c])
        grams = tf.math.l2_normalize(grams, axis=1, epsilon=1e-10)
        sims = tf.matmul(grams, grams, transpose_b=True)  # (B, B), ones on the diagonal
        return -(tf.reduce_sum(sims) - tf.linalg.trace(sims)) / tf.cast(b, sims.dtype)

    return Objective(fn, f"diversity({layer!r})", ("diversity", layer), _check(layer, spatial=True, what="diversity"),
                     0, [layer], min_batch=2)


# -- image penalties (subtract them: ``objective - weight * penalty``) ------------------------------------------

def total_variation() -> Objective:
    """A penalty: how much neighbouring pixels differ (mean absolute difference to the right and below, per image,
    images in [0, 1]). Subtracting it removes high-frequency noise; Simonyan et al. 2014."""
    def fn(T, v):
        x = T.images
        dy = tf.abs(x[:, 1:, :, :] - x[:, :-1, :, :])
        dx = tf.abs(x[:, :, 1:, :] - x[:, :, :-1, :])
        return tf.reduce_sum(_mean_per_image(dy) + _mean_per_image(dx))

    return Objective(fn, "total_variation()", ("total_variation",))


def l1(constant: float = 0.5) -> Objective:
    """A penalty: the mean absolute distance of the pixels (in [0, 1]) from ``constant`` (default mid-grey).
    Subtracting it keeps colours muted, so only what the objective really needs stands out."""
    return Objective(lambda T, v: tf.reduce_sum(_mean_per_image(tf.abs(T.images - v[0]))), f"l1({constant:g})",
                     ("l1",), lambda probe: [np.float32(constant)], 1)


def blur() -> Objective:
    """A penalty: half the mean squared distance of the image (in [0, 1]) to a blurred copy of itself, the copy
    held constant. Subtracting ``k * blur()`` is like blurring the image a little at every step (Nguyen et al.
    2015, Lucid's ``blur_input_each_step``); the 3x3 blur is Lucid's, normalized at the borders."""
    def fn(T, v):
        x = T.images
        kernel = tf.constant([[0.5, 0.5, 0.5], [0.5, 1.0, 0.5], [0.5, 0.5, 0.5]])[:, :, None, None]
        kernel = tf.tile(kernel, [1, 1, x.shape[-1], 1])
        conv = (lambda t: tf.nn.depthwise_conv2d(t, kernel, [1, 1, 1, 1], "SAME"))
        blurred = tf.stop_gradient(conv(x) / conv(tf.ones_like(x)))
        return tf.reduce_sum(_mean_per_image(0.5 * tf.square(x - blurred)))

    return Objective(fn, "blur()", ("blur",))


# -- batch objectives: one image per unit, all optimized in one pass -------------------------------------------

def channels(layer, channel_list: Sequence[int]) -> Objective:
    """A batch objective: image i encourages channel ``channel_list[i]`` of ``layer`` (as :func:`channel` does).

    One render then optimizes len(channel_list) images in one pass, much faster per channel than one render each;
    the batch is fixed at len(channel_list).
    """
    chans = options.indices("channels", channel_list)  # whole numbers >= 0 (3.0, '3' and -1 refused here)

    def bind(probe):
        info = _layer(probe, layer, what="channels")
        return [np.array([_channel(info, c) for c in chans], np.int32)]

    def fn(T, v):
        act = T[layer]
        return tf.reduce_sum(_mean_per_image(_pick_channels(act, tf.one_hot(v[0], act.shape[-1]))))

    return Objective(fn, f"channels({layer!r}, {chans})", ("channels", layer, len(chans)), bind, 1, [layer],
                     batch=len(chans))


def class_logits(class_indices: Sequence[int], others: float = 0.0) -> Objective:
    """A batch objective: image i encourages class ``class_indices[i]`` (as :func:`class_logit` does)."""
    classes = options.indices("class_indices", class_indices)
    return Objective(lambda T, v: tf.reduce_sum(_logit_margin(T.logits, v[0], v[1])),
                     f"class_logits({_args(classes, *((others,) if others else ()))})", ("class_logits", len(classes)),
                     lambda probe: [np.array([_class(probe, k) for k in classes], np.int32), np.float32(others)], 2,
                     logits=True, batch=len(classes))


def batch(objective: Objective, index: int) -> Objective:
    """``objective`` applied to image ``index`` of the batch alone, e.g. ``batch(channel(l, 3), 0) +
    batch(channel(l, 7), 1)`` to make image 0 show channel 3 and image 1 channel 7. Needs ``index`` < batch."""
    objective = as_objective(objective)
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or index < 0:
        raise OptionError(f"batch index must be an integer >= 0; got {index!r}.")
    if objective.batch is not None and objective.batch != 1:
        raise OptionError(f"batch() takes an objective on single images; {objective.name} is already a batch of "
                          f"{objective.batch}.")
    return Objective(lambda T, v: objective(T.select(v[0]), v[1:]), f"batch({objective.name}, {index})",
                     ("batch", objective.key), lambda probe: [np.int32(index)] + objective.bind(probe),
                     objective.nargs + 1, objective.layers, objective.logits, None,
                     max(objective.min_batch, int(index) + 1))
