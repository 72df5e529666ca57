"""render: optimize images so that an objective is as large as possible, in one compiled step reused across renders.

Each step: the parameterization makes images in [0, 1], the transforms jitter them, they are fitted to the model's
input size, mapped to the display range and passed through ``probe.forward`` (which applies ``preprocess`` and
computes only the layers the objective reads); the gradient of ``-objective`` updates the variables with Adam.

The step is a ``tf.function`` kept by the probe (``probe.compiled``) per structure (objective key, batch, size,
parameterization, transforms, optimizer kind); the objective's numbers (channel, class, vector, weights) are fed in
as tensors and the variables are reset in place, so rendering another channel of the same layer runs the same
compiled step. A plain Keras model gets the probe remembered for it (``probe_for``), so its steps are reused too.
``trace_count()`` counts traces, for tests.

Fixed-size models (the demo's 64x64) are rendered at their input size by default. Another ``size`` is allowed: the
transformed image is resized (bilinear) into the model's input inside the step, as Xplique does. Models that take
any size get the transformed image as it is, as in Lucid; a size too small for them raises OptionError.
"""

from __future__ import annotations

import json
import math
import threading
from numbers import Real
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.eager import record as _tape  # the tape API tf.custom_gradient itself records with

from ..errors import CnnWidgetError, OptionError
from ..options import WHOLE, positive_int
from ..probe import ModelProbe, probe_for, traces
from .objectives import Activations, Objective, as_objective
from .params import Parameterization, check_size, fft_image
from .transforms import compose, output_size, standard_transforms

DEFAULT_FREE_SIZE = 128  # render size for models that take any size (Lucid's default)
_MIN_SIZE = 8


class NaNLossError(CnnWidgetError, ArithmeticError):
    """The loss or its gradient became NaN or infinite; ``images`` holds the last good images, ``step`` the step
    at which it happened."""

    def __init__(self, message: str, images: np.ndarray, step: int):
        super().__init__(message)
        self.images, self.step = images, step


def trace_count() -> int:
    """How many times render's compiled functions were traced, in this process (steady state adds none)."""
    return traces("featurevis")


def render(model, objective, size: int | None = None, steps: int = 256, param: Parameterization | None = None,
           transforms=None, optimizer=None, learning_rate: float = 0.05, seed: int = 0, thresholds=None,
           callback: Callable | None = None, cancel: threading.Event | None = None, batch: int | None = None,
           callback_every: int = 8):
    """Optimize images to maximize ``objective`` for ``model`` (a ModelProbe or a Keras model).

    objective:      an Objective (fv.channel(...) - 1e-3 * fv.total_variation(), ...) or a "layer:channel" string.
    size:           side of the square images in pixels; default the model's input size, or 128 for models that
                    take any size. For a fixed-size model another size is resized into its input inside the step.
    steps:          optimization steps (Adam updates).
    param:          a parameterization; default ``fft_image(decorrelate=True)``.
    transforms:     a list of transforms; default ``standard_transforms()`` (Lucid's); ``[]`` for none.
    optimizer:      a Keras optimizer (cloned from its config, so its state never leaks between renders); default
                    Adam with ``learning_rate`` (ignored when an optimizer is given).
    seed:           the same seed gives the same pixels (for the same model, options and machine).
    thresholds:     steps (1..steps) at which to keep a copy of the images; when given, render returns
                    ``(images, {step: images})`` instead of ``images``.
    callback:       ``callback(step, loss, images)``, called every ``callback_every`` steps and after the last
                    one, with ``loss`` = -objective (float) and ``images`` a numpy copy; returning False stops.
    cancel:         a ``threading.Event``; checked before every step, so a render stops within one step of it
                    being set and returns the images it has.
    batch:          how many images; default the objective's own batch (``fv.channels`` of 16 channels: 16), else
                    the smallest it allows (1, or 2 for ``fv.diversity``).

    Returns (B, size, size, C) float32 images in the probe's display range (``input_range``). Raises
    NaNLossError (with ``.images``, the last good images) if the loss becomes NaN, LayerError / OptionError for
    bad objectives and options (checked before anything is compiled).
    """
    probe = probe_for(model)
    objective = as_objective(objective)
    param = fft_image() if param is None else param
    if not isinstance(param, Parameterization):
        raise OptionError(f"param must be made by fv.fft_image(...) or fv.pixel_image(...); got {param!r}.")
    transforms = standard_transforms() if transforms is None else list(transforms)
    steps, callback_every = _count(steps, "steps", 0), _count(callback_every, "callback_every", 1)
    seed = _count(seed, "seed", 0)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, Real) or not learning_rate > 0:
        raise OptionError(f"learning_rate must be a number > 0; got {learning_rate!r}.")
    snapshot_at = _thresholds(thresholds, steps)
    values = [tf.constant(v) for v in objective.bind(probe)]
    batch = _batch(objective, batch)
    size = check_size(probe, _size(probe, size), batch)  # an upper bound from a memory estimate, not a TF OOM
    output_size(transforms, size)
    step = _get_step(probe, objective, values, param, transforms, batch, size, optimizer)

    with step.lock:  # one render at a time per compiled step: they share its variables
        step.reset(param, seed, learning_rate if optimizer is None else None)
        snapshots, done = {}, 0
        for s in range(1, steps + 1):
            if cancel is not None and cancel.is_set():
                break
            loss = float(step.step(values))
            if not math.isfinite(loss):
                raise NaNLossError(
                    f"the loss became NaN or infinite at step {s} of {steps} (objective {objective.name}); the "
                    f"update was skipped and the images of step {s - 1} are in this error's .images. Try a lower "
                    f"learning_rate, fewer or smaller transforms, or an objective without divisions by values "
                    f"that can vanish.", step.images(), s - 1)
            done, current = s, None
            if s in snapshot_at:
                current = snapshots[s] = step.images()
            if callback is not None and (s % callback_every == 0 or s == steps):
                if callback(s, loss, step.images() if current is None else current) is False:
                    break
        images = snapshots.get(done) if done in snapshot_at else step.images()
    return (images, snapshots) if thresholds is not None else images


# -- the compiled step -----------------------------------------------------------------------------------------

class _Step:
    """Variables, random generator, optimizer and the compiled step for one (probe, structure)."""

    def __init__(self, probe: ModelProbe, objective: Objective, values: list, param: Parameterization,
                 transforms: list, batch: int, size: int, optimizer):
        h, w, channels = probe.input_shape
        self.batch, self.size, self.channels = batch, size, channels
        self.input_range = probe.input_range
        self.lock = threading.Lock()
        self.variables = [tf.Variable(tf.zeros(s), name="featurevis_param")
                          for s in param.shapes(batch, size, channels)]
        self.generator = tf.random.Generator.from_seed(0)
        self.optimizer = optimizer
        if not tf.distribute.has_strategy():
            # One replica: the all-reduce of the gradients is the identity. Keras's TensorFlow optimizer makes it
            # with a tf.custom_gradient, which registers a gradient in TensorFlow's global registry at every trace;
            # the registry keeps it, and the traced graph it closes over (~2.5 MB), for the life of the process.
            self.optimizer._all_reduce_sum_gradients = _as_list
        self.optimizer.build(self.variables)
        self._fresh_optimizer = [v.numpy() for v in self.optimizer.variables]

        lo, hi = self.input_range
        names = objective.layers
        relus = _relu_inputs(probe, names)
        fetch = [relus[n][0] if n in relus else n for n in names]
        # An objective of the images alone (a penalty) needs no forward pass.
        forward = probe.forward(fetch, logits=objective.logits) if fetch or objective.logits else (lambda x: [])

        def read(outs):
            return {n: _redirected_relu(out, relus[n][1]) if n in relus else out for n, out in zip(names, outs)}
        # Fixed-size models get the transformed images resized to their input, inside the same resampling.
        pipeline = compose(transforms, output=(h, w) if h is not None and w is not None else None)

        def step(values):
            with tf.GradientTape() as tape:
                unit = param.unit_images(self.variables, size, channels)
                x = pipeline(unit, self.generator)
                outs = forward(lo + (hi - lo) * x)
                T = Activations(read(outs), outs[-1] if objective.logits else None, unit)
                loss = -objective(T, values)
            grads = tape.gradient(loss, self.variables)
            if any(g is None for g in grads):
                raise OptionError(f"the objective {objective.name} does not depend on the images, so there is "
                                  "nothing to optimize.")
            # A NaN or infinity anywhere in a gradient makes its sum non-finite: one reduction per variable.
            ok = tf.reduce_all(tf.math.is_finite(tf.stack([loss] + [tf.reduce_sum(g) for g in grads])))

            def apply():
                self.optimizer.apply_gradients(zip(grads, self.variables))
                return tf.constant(True)

            # A NaN gradient would poison the variables: skip the update, so the last good images stay, and
            # report the step's loss as NaN (one scalar leaves the step: one sync per step).
            applied = tf.cond(ok, apply, lambda: tf.constant(False))
            return tf.where(applied, loss, tf.constant(math.nan))

        def images():
            return lo + (hi - lo) * param.unit_images(self.variables, size, channels)

        # Counted by the probe (through a weak reference: the step, which the probe keeps, does not hold it).
        self.step = probe.tf_function(step, autograph=False, family="featurevis")
        self._images = probe.tf_function(images, autograph=False, family="featurevis")
        specs = [tf.TensorSpec(v.shape, v.dtype) for v in values]
        try:  # trace now, so that a size the model cannot take fails here with a clear message
            self.step.get_concrete_function(specs)
        except (ValueError, tf.errors.InvalidArgumentError) as exc:
            if h is not None and w is not None:
                raise
            raise OptionError(f"the model cannot take images of {size} px (after the transforms, "
                              f"{output_size(transforms, size)} px): {exc}".strip()) from None

    def reset(self, param: Parameterization, seed: int, learning_rate: float | None):
        """Start afresh: new random images for ``seed``, the optimizer as new."""
        self.generator.reset_from_seed(seed)
        for var, value in zip(self.variables, param.initial(self.generator, self.batch, self.size, self.channels,
                                                            self.input_range)):
            var.assign(value)
        for var, value in zip(self.optimizer.variables, self._fresh_optimizer):
            var.assign(value)
        if learning_rate is not None:
            self.optimizer.learning_rate = float(learning_rate)

    def images(self) -> np.ndarray:
        """The current images, (B, size, size, C) float32 in the display range."""
        return self._images().numpy()


def _relu_inputs(probe: ModelProbe, names) -> dict:
    """{name: (path of the layer that feeds it, max value or None)} for the ReLU layers among ``names``."""
    found = {}
    for name in names:
        layer, max_value = probe.keras_layer(name), None
        if isinstance(layer, keras.layers.ReLU):
            if float(layer.negative_slope) != 0 or float(layer.threshold) != 0:
                continue
            max_value = None if layer.max_value is None else float(layer.max_value)
        elif isinstance(layer, keras.layers.Activation):
            kind = getattr(layer.activation, "__name__", "")
            if kind not in ("relu", "relu6"):
                continue
            max_value = 6.0 if kind == "relu6" else None
        else:
            continue
        source = probe.source_of(name)
        if source is not None:
            found[name] = (source, max_value)
    return found


def _redirected_relu(z, max_value: float | None):
    """relu(z) (clipped at ``max_value``), whose gradient is Lucid's redirected one: for an image whose ReLU
    gradient is zero everywhere (the unit is dead on it, as many are on the grey starting image), the gradient
    passes through wherever it pushes ``z`` up, so the unit can come alive; otherwise it is the ReLU's own.

    The rule is recorded on the gradient tape alone (``record_operation``, as ``tf.custom_gradient`` does), not
    registered in TensorFlow's global gradient registry as ``tf.custom_gradient`` also does in a traced function:
    that registry keeps every trace's rule and the graph it closes over for the life of the process (~1 MB per
    traced step). The step is differentiated by its own tape only, never by an outer one, so the tape is enough."""
    y = tf.nn.relu(z) if max_value is None else tf.clip_by_value(z, 0.0, max_value)

    def grad(dy):
        live = z > 0 if max_value is None else tf.logical_and(z > 0, z < max_value)
        plain = tf.where(live, dy, tf.zeros_like(dy))
        axes = list(range(1, z.shape.rank))
        dead = tf.reduce_all(tf.equal(plain, 0), axis=axes, keepdims=True)
        return [tf.where(dead, tf.minimum(dy, 0.0), plain)]  # dy < 0 raises the objective (loss = -objective)

    out = tf.identity(y)
    _tape.record_operation("RedirectedRelu", [out], [z], grad)
    return out


def _as_list(grads_and_vars):
    """The one-replica all-reduce: the gradients as they are."""
    return list(grads_and_vars)


def _get_step(probe, objective, values, param, transforms, batch, size, optimizer) -> _Step:
    if optimizer is None:
        opt_key, make_optimizer = ("adam",), (lambda: keras.optimizers.Adam(0.05))
    elif isinstance(optimizer, keras.optimizers.Optimizer):
        config = optimizer.get_config()
        opt_key = (type(optimizer).__name__, json.dumps(config, sort_keys=True, default=repr))
        make_optimizer = (lambda: type(optimizer).from_config(config))
    else:
        raise OptionError(f"optimizer must be a Keras optimizer (e.g. keras.optimizers.Adam(0.05)); got {optimizer!r}.")
    key = ("featurevis", objective.key, batch, size, param.key, tuple(t.key for t in transforms), opt_key)
    # Made (and traced) once per key, also when renders ask for it from several threads at once.
    return probe.compiled(key, lambda: _Step(probe, objective, values, param, transforms, batch, size,
                                             make_optimizer()))


# -- argument checks -------------------------------------------------------------------------------------------

def _size(probe: ModelProbe, size) -> int:
    h, w, _ = probe.input_shape
    fixed = h is not None and w is not None
    if size is None:
        return max(h, w) if fixed else DEFAULT_FREE_SIZE
    return _count(size, "size", _MIN_SIZE)


def _batch(objective: Objective, batch) -> int:
    if batch is None:
        return objective.batch or objective.min_batch
    batch = _count(batch, "batch", 1)
    if objective.batch is not None and batch != objective.batch:
        raise OptionError(f"{objective.name} optimizes {objective.batch} images, one each; batch={batch} "
                          f"disagrees. Leave batch=None.")
    if batch < objective.min_batch:
        raise OptionError(f"{objective.name} needs a batch of at least {objective.min_batch} images; got {batch}.")
    return batch


def _thresholds(thresholds, steps: int) -> frozenset:
    if thresholds is None:
        return frozenset()
    chosen = frozenset(_count(t, "a threshold", 1) for t in thresholds)
    late = sorted(t for t in chosen if t > steps)
    if late:
        raise OptionError(f"thresholds {late} are past the last step ({steps}); thresholds are steps 1 to {steps}.")
    return chosen


def _count(value, what: str, minimum: int) -> int:
    return positive_int(what, value, minimum, WHOLE)
