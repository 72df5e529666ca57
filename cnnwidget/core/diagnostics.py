"""Training health: a Keras callback that records gradients, updates, dead units and losses during ``fit``, and
turns them into warnings. No widgets here: it runs in a script or a CI job as well as under a TrainingMonitor.

    cb = DiagnosticsCallback(probe_data=(x_train[:64], y_train[:64]))
    model.fit(x, y, validation_data=(xv, yv), callbacks=[cb])
    cb.warnings          # [Warning(kind, layer, step, message)]
    cb.history           # dict of numpy arrays (see DiagnosticsCallback.history)
    cb.save("run.npz"); history, warnings = load("run.npz")

Cost is bounded: every step reads one float (the loss Keras already computed); every ``every`` steps, one compiled
pass (traced once per fit setup) over a fixed probe batch computes gradients, update ratios, dead units and
histograms on the device, and only small per-layer arrays come back to Python.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import warnings as _pywarnings
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from .errors import ModelError, OptionError
from .probe import ModelProbe

KINDS = ("vanishing_gradients", "exploding_gradients", "dead_units", "overfitting", "underfitting")

# Activations whose "unit never positive" means it passes no gradient (dead) or is stuck; softmax is left out: it is
# an output normalization, its values are always positive.
_ACTIVATION_CLASSES = (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.PReLU,
                       keras.layers.ELU)


class Warning(NamedTuple):  # noqa: A001 - the name is the public API (DESIGN.md); the builtin is not used here
    """One training-health finding.

    ``kind`` is one of KINDS; ``layer`` the layer path (None for loss-level findings: over/underfitting, a NaN
    loss); ``step`` the global training step (batches since fit began) at which the rule first held;
    ``message`` a sentence for a person, with the numbers behind it.
    """

    kind: str
    layer: str | None
    step: int
    message: str


@dataclass(frozen=True)
class Thresholds:
    """The rules' thresholds, all visible and changeable (``DiagnosticsCallback(thresholds=Thresholds(dead=0.8))``).

    vanishing:  a layer's gradient norm below ``vanishing`` x the largest layer's norm at the same probe step
                (default 1e-4: four orders of magnitude), on ``confirm`` probe steps in a row.
    exploding:  a non-finite gradient norm or loss at once; or a layer's norm that rose at each of the last
                ``confirm`` probe steps and is now more than ``exploding`` x the median of its earlier values
                (default 1000: three orders; healthy runs leaving the flat start of training were seen to grow
                their norms 80-fold).
    dead:       an activation layer with more than this fraction of its units dead (never positive on any probe
                image, at any position), on ``confirm`` probe steps in a row (default 0.5).
    confirm:    probe steps a gradient or dead-unit rule must hold in a row, so one noisy batch raises nothing.
    patience:   epochs for the loss rules.
                overfitting: the best validation loss is ``patience`` or more epochs old, the last one is above it
                and the training loss is below its value at that best epoch (validation rising, training falling).
                underfitting: over the last ``patience`` + 1 epochs, training loss (and validation loss, when there
                is one) moved by at most ``flat`` x its mean (flat), and the last training loss is still at least
                ``high`` x the reference loss (high).
    flat, high: see ``patience``. The reference loss is the loss of guessing: ``baseline_loss`` if given; else,
                for a model compiled with a cross-entropy loss, that of a uniform prediction (ln K for
                categorical or sparse categorical cross-entropy over K outputs, ln 2 for binary); else the loss of
                the first training batch, before any update (about chance for a model trained from scratch, but
                already low for one being fine-tuned: give ``baseline_loss`` then).
    """

    vanishing: float = 1e-4
    exploding: float = 1000.0
    dead: float = 0.5
    confirm: int = 2
    patience: int = 3
    flat: float = 0.02
    high: float = 0.5
    baseline_loss: float | None = None


# -- the rules: pure functions on recorded arrays, shared by the callback and by replay() ----------------------

def vanishing_layers(norms: np.ndarray, t: Thresholds) -> list[int]:
    """Indices of layers whose gradient norm is below ``t.vanishing`` x the row's largest on each of the last
    ``t.confirm`` rows of ``norms`` (probe steps, layers)."""
    rows = norms[-t.confirm:]
    if len(rows) < t.confirm or not np.isfinite(rows).all():
        return []
    low = rows < t.vanishing * rows.max(axis=1, keepdims=True)
    return [int(i) for i in np.flatnonzero(low.all(axis=0))]


def exploding_layers(norms: np.ndarray, t: Thresholds) -> list[int]:
    """Indices of layers whose last gradient norm is NaN/inf, or that grew at each of the last ``t.confirm`` probe
    steps to more than ``t.exploding`` x the median of their earlier values; ``norms`` is (probe steps, layers)."""
    last = norms[-1]
    bad = ~np.isfinite(last)
    if len(norms) > t.confirm:
        rising = (np.diff(norms[-t.confirm - 1:], axis=0) > 0).all(axis=0)
        with np.errstate(invalid="ignore"):
            bad |= rising & (last > t.exploding * _earlier_median(norms[:-1]))
    return [int(i) for i in np.flatnonzero(bad)]


def dead_layers(fractions: np.ndarray, t: Thresholds) -> list[int]:
    """Indices of activation layers with a dead fraction above ``t.dead`` on each of the last ``t.confirm`` rows
    of ``fractions`` (probe steps, layers)."""
    rows = fractions[-t.confirm:]
    if len(rows) < t.confirm:
        return []
    return [int(i) for i in np.flatnonzero((rows > t.dead).all(axis=0))]


def overfitting(loss: np.ndarray, val_loss: np.ndarray, t: Thresholds) -> str | None:
    """A message if the last epoch shows overfitting (see Thresholds.patience), else None. Epochs without a
    validation loss (NaN, e.g. under validation_freq > 1) are skipped."""
    keep = np.isfinite(val_loss) & np.isfinite(loss)
    loss, val_loss = loss[keep], val_loss[keep]
    if len(val_loss) <= t.patience:
        return None
    best = int(np.argmin(val_loss))
    last = len(val_loss) - 1
    if last - best >= t.patience and val_loss[last] > val_loss[best] and loss[last] < loss[best]:
        return (f"validation loss rose from its best {val_loss[best]:.4g} to {val_loss[last]:.4g} over "
                f"{last - best} validated epochs while training loss fell from {loss[best]:.4g} to {loss[last]:.4g}")
    return None


def underfitting(loss: np.ndarray, val_loss: np.ndarray | None, reference: float, t: Thresholds) -> str | None:
    """A message if the last ``t.patience`` + 1 epochs are flat and high (see Thresholds.patience), else None."""
    window = t.patience + 1
    if len(loss) < window or not math.isfinite(reference):
        return None
    curves = [("training", loss[-window:])]
    if val_loss is not None and np.isfinite(val_loss[-window:]).all():
        curves.append(("validation", val_loss[-window:]))
    for _, curve in curves:
        if not np.isfinite(curve).all() or np.ptp(curve) > t.flat * abs(curve.mean()):
            return None
    if loss[-1] < t.high * reference:
        return None
    return (f"training loss stayed within {100 * t.flat:.0f}% over the last {window} epochs at {loss[-1]:.4g}, "
            f"at least {t.high:g} x the reference loss {reference:.4g}: the model is not learning; try a larger "
            "learning rate, a larger model or fewer constraints")


def _earlier_median(norms: np.ndarray) -> np.ndarray:
    """Per layer, the median of the finite values of ``norms`` (steps, layers); inf where there are none."""
    finite = np.where(np.isfinite(norms), norms, np.nan)
    with _pywarnings.catch_warnings():
        _pywarnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        med = np.nanmedian(finite, axis=0)
    return np.where(np.isfinite(med), med, np.inf)


# -- the callback --------------------------------------------------------------------------------------------

class DiagnosticsCallback(keras.callbacks.Callback):
    """Records training health during ``model.fit`` and raises warnings as data.

    probe_data: (images, labels), a fixed batch in the same space as the training inputs (not display space:
        what ``fit`` gets), e.g. the first 64 training examples. Images (N, H, W, C); a wrong shape raises
        ImageError when fit starts. Gradients, dead units and activations are measured on it, with the model in
        inference mode (``training=False``), so batch-norm statistics and dropout are left alone.
    every: probe steps are the first step and then every ``every`` training steps. At the default, 50, the
        steady-state cost on the demo model is about 2% of training time (a probe step costs about 0.9 training
        steps), plus a one-off 1-2 s to trace the probe pass: 5-9% of a 25-second, 128-step fit, less for longer
        ones (benchmarks/training.py).
    bins: histogram bins per layer. Edges are fixed per layer at the first probe step (so histograms over time
        are comparable): [lo - w/2, hi + w/2] around that step's extremes lo, hi (w = hi - lo, at least 1e-3),
        with the lower edge at 0 when lo >= 0 (rectifier, sigmoid outputs). Values beyond fall in the end bins.
    smoothing: factor of the exponential moving average over per-batch losses (0: none), debiased as in
        TensorBoard.
    warn: kinds of warning to look for (default: all in KINDS). Naming "overfitting" here requires validation
        data (OptionError at the end of the first epoch without a val_loss); by default it is checked only when
        there is validation data.
    thresholds: the rules' Thresholds.
    verbose: 1 prints each warning once when it is raised (to stdout, or ``print_fn``); 0 is silent.

    Bad input: an uncompiled model raises ModelError when the callback is attached (fit attaches it; Keras's
    own fit checks compile() first and raises its ValueError before that).
    """

    def __init__(self, probe_data, every: int = 50, bins: int = 32, smoothing: float = 0.9,
                 warn: Iterable[str] | None = None, thresholds: Thresholds | None = None, verbose: int = 1,
                 print_fn: Callable[[str], None] | None = None):
        super().__init__()
        if not (isinstance(probe_data, (tuple, list)) and len(probe_data) == 2):
            raise OptionError(f"probe_data must be a pair (images, labels); got {type(probe_data).__name__}.")
        if int(every) < 1:
            raise OptionError(f"every must be a positive number of steps; got {every!r}.")
        if int(bins) < 2:
            raise OptionError(f"bins must be at least 2; got {bins!r}.")
        if not 0.0 <= float(smoothing) < 1.0:
            raise OptionError(f"smoothing must be in [0, 1); got {smoothing!r}.")
        kinds = tuple(KINDS if warn is None else warn)
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise OptionError(f"unknown warning kind(s) {unknown}; kinds are {list(KINDS)}.")
        self.probe_data = probe_data
        self.every, self.bins, self.smoothing = int(every), int(bins), float(smoothing)
        self.kinds = kinds
        self.require_validation = warn is not None and "overfitting" in kinds
        self.thresholds = thresholds or Thresholds()
        self.verbose = int(verbose)
        self.print_fn = print_fn
        self.trace_count = 0  # times the probe pass was traced; one per model the callback is attached to
        self._lock = threading.RLock()
        self._subscribers: list[Callable[[dict], None]] = []
        self._pass = None
        self._reset()

    # -- public ----------------------------------------------------------------------------------------------

    @property
    def warnings(self) -> list[Warning]:
        """Every warning raised so far, in order; each (kind, layer) at most once per fit."""
        with self._lock:
            return list(self._warnings)

    @property
    def history(self) -> dict:
        """Everything recorded so far, as plain numpy arrays (a consistent copy; safe from any thread).

        epoch (E,) int; "epoch/<name>" (E,) float64 for every log key of every epoch (loss, metrics, val_*; NaN
        where an epoch lacks it); step (S,) int, global step of each batch; batch_loss (S,) the loss of each batch
        (recovered from Keras's running mean, see _batch_loss); batch_loss_smoothed (S,);
        probe_step (P,) int; weight_layers (Lw,) str, layer paths with trainable weights; grad_norm (P, Lw)
        L2 norm of d(loss)/d(weights) over the layer's trainable weights; update_ratio (P, Lw) ||W_after -
        W_before|| / ||W_before|| over one training step; weight_hist (P, Lw, bins) int32 counts of the
        layer's trainable weight values; weight_edges (Lw, bins + 1); activation_layers (La,) str;
        dead_fraction (P, La) in [0, 1]; activation_hist (P, La, bins) int32; activation_edges (La, bins + 1).
        Probe arrays have P = 0 rows before the first probe step.
        """
        with self._lock:
            logs = self._epoch_logs
            keys = sorted({k for row in logs for k in row})
            out = {"epoch": np.arange(len(logs)) + self._initial_epoch}
            out.update({f"epoch/{k}": np.array([row.get(k, np.nan) for row in logs], np.float64) for k in keys})
            out["step"] = np.array(self._steps, np.int64)
            out["batch_loss"] = np.array(self._batch_loss, np.float64)
            out["batch_loss_smoothed"] = np.array(self._batch_smoothed, np.float64)
            out["probe_step"] = np.array(self._probe_steps, np.int64)
            out["weight_layers"] = np.array(self._weight_paths, dtype=str)
            out["activation_layers"] = np.array(self._act_paths, dtype=str)
            lw, la, b = len(self._weight_paths), len(self._act_paths), self.bins
            for key, shape, dtype in (("grad_norm", (lw,), np.float64), ("update_ratio", (lw,), np.float64),
                                      ("dead_fraction", (la,), np.float64), ("weight_hist", (lw, b), np.int32),
                                      ("activation_hist", (la, b), np.int32)):
                rows = self._probes[key]
                out[key] = np.array(rows, dtype) if rows else np.zeros((0,) + shape, dtype)
            out["weight_edges"] = self._edges("weight", lw)
            out["activation_edges"] = self._edges("activation", la)
            return out

    def on_update(self, fn: Callable[[dict], None]) -> Callable[[], None]:
        """Call ``fn(update)`` after every change, from the training thread; returns a function that unsubscribes.

        ``update`` is a small dict with a "kind":
          "begin":   weight_layers, activation_layers (lists of str), every, bins
          "batch":   step, loss, smoothed (floats)
          "probe":   step, grad_norm, update_ratio (Lw,), dead_fraction (La,), weight_hist (Lw, bins),
                     activation_hist (La, bins), weight_edges, activation_edges (only on the first probe step)
          "epoch":   epoch, step, logs ({name: float})
          "warning": warning (a Warning)
          "end":     step
        ``fn`` should return quickly (hand the data to its own thread or throttle); an exception in it is
        reported once as a Python warning and does not stop training.
        """
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe():
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def to_dataframe(self, what: str = "epochs"):
        """The history as a pandas DataFrame (pandas is optional: ImportError names it when missing).

        what="epochs": one row per epoch, a column per log key. "batches": step, batch_loss, batch_loss_smoothed.
        "probes": one row per (probe step, layer): step, layer, grad_norm, update_ratio, dead_fraction (NaN where
        a quantity does not apply to the layer). Histograms stay in ``history``.
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_dataframe needs pandas, which cnnwidget does not install: pip install pandas; "
                              "or use .history, a dict of numpy arrays.") from None
        return to_dataframe(self.history, what, pd)

    def save(self, path) -> None:
        """Write the history and the warnings to one ``.npz`` file; ``load(path)`` reads them back."""
        save(path, self.history, self.warnings, self.thresholds)

    # -- Keras hooks -----------------------------------------------------------------------------------------

    def set_model(self, model):
        _check_compiled(model)
        if model is not getattr(self, "model", None):
            self._pass = None  # a new model: its probe pass is built (and traced) when fit begins
        super().set_model(model)

    def on_train_begin(self, logs=None):
        with self._lock:
            self._reset()
        if self._pass is None:
            self._pass = _ProbePass(self.model, self.probe_data, self.bins, self)
        self._pass.reset_edges()
        self._weight_paths, self._act_paths = self._pass.weight_paths, self._pass.act_paths
        self._notify({"kind": "begin", "weight_layers": list(self._weight_paths),
                      "activation_layers": list(self._act_paths), "every": self.every, "bins": self.bins})

    def on_epoch_begin(self, epoch, logs=None):
        if not self._epoch_logs:
            self._initial_epoch = int(epoch)
        self._prev_index, self._prev_mean = -1, 0.0

    def on_train_batch_begin(self, batch, logs=None):
        step = self._step_base + int(batch) + 1  # steps done once this batch is
        self._probing = self._last_probe is None or step - self._last_probe >= self.every
        if self._probing:
            self._pass.snapshot()

    def on_train_batch_end(self, batch, logs=None):
        batch = int(batch)
        mean = float((logs or {}).get("loss", np.nan))
        loss = self._batch_loss_from_mean(batch, mean)
        step = self._step_base + batch + 1
        with self._lock:
            self._smooth_state = self.smoothing * self._smooth_state + (1 - self.smoothing) * loss
            self._smooth_count += 1
            smoothed = self._smooth_state / (1 - self.smoothing ** self._smooth_count)
            self._steps.append(step)
            self._batch_loss.append(loss)
            self._batch_smoothed.append(smoothed)
            self._steps_done = step
            if self._reference is None:
                self._reference = _chance_loss(self.model)
                if self._reference is None:
                    self._reference = loss
        self._notify({"kind": "batch", "step": step, "loss": loss, "smoothed": smoothed})
        if not math.isfinite(loss):
            self._raise("exploding_gradients", None, step, f"the training loss is {loss} at step {step}")
        if self._probing:
            self._probe(step)
            self._probing = False

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0}
        with self._lock:
            self._epoch_logs.append(logs)
            self._step_base = self._steps_done
            self._seen_validation |= "val_loss" in logs
        if self.require_validation and not self._seen_validation:
            raise OptionError(
                "overfitting detection was asked for (warn includes 'overfitting') but fit has no validation "
                "data: pass validation_data=(x, y) or validation_split=0.2 to fit (with validation_freq=1), or "
                "leave 'overfitting' out of warn.")
        self._notify({"kind": "epoch", "epoch": int(epoch), "step": self._steps_done, "logs": logs})
        self._check_epochs()

    def on_train_end(self, logs=None):
        self._notify({"kind": "end", "step": self._steps_done})

    # -- internals -------------------------------------------------------------------------------------------

    def _reset(self):
        self._warnings: list[Warning] = []
        self._raised: set = set()
        self._epoch_logs: list[dict] = []
        self._steps, self._batch_loss, self._batch_smoothed = [], [], []
        self._probe_steps: list[int] = []
        self._probes = {k: [] for k in ("grad_norm", "update_ratio", "dead_fraction", "weight_hist",
                                        "activation_hist")}
        self._weight_paths, self._act_paths = [], []
        self._step_base = self._steps_done = 0
        self._initial_epoch = 0
        self._prev_index, self._prev_mean = -1, 0.0
        self._smooth_state, self._smooth_count = 0.0, 0
        self._last_probe = None
        self._probing = False
        self._seen_validation = False
        self._reference = None
        self._failed_subscribers: set = set()

    def _batch_loss_from_mean(self, index: int, mean: float) -> float:
        """The loss of the batches since the last call, from Keras's running mean over the epoch.

        Keras 3 logs the mean loss of the epoch so far (weighted by batch size), so the batch's own loss is
        (k + 1) m_k - k m_{k-1}; exact for equal batches, approximate for a smaller last batch. Under
        steps_per_execution > 1 it is the mean over the steps since the last call.
        """
        prev_index, prev_mean = self._prev_index, self._prev_mean
        self._prev_index, self._prev_mean = index, mean
        if not math.isfinite(mean) or index <= prev_index:
            return mean
        return ((index + 1) * mean - (prev_index + 1) * prev_mean) / (index - prev_index)

    def _probe(self, step: int):
        out = self._pass.run()
        first = not self._probe_steps
        with self._lock:
            self._last_probe = step
            self._probe_steps.append(step)
            for key in self._probes:
                self._probes[key].append(out[key])
            grad = np.array(self._probes["grad_norm"])
            dead = np.array(self._probes["dead_fraction"]) if self._act_paths else None
        update = {"kind": "probe", "step": step, **out}
        if first:
            update.update(weight_edges=self._edges("weight", len(self._weight_paths)),
                          activation_edges=self._edges("activation", len(self._act_paths)))
        self._notify(update)
        self._check_probes(step, grad, dead)

    def _edges(self, which: str, n: int) -> np.ndarray:
        ranges = self._pass.ranges(which) if self._pass is not None and self._probe_steps else None
        if ranges is None:
            return np.zeros((n, self.bins + 1))
        return np.stack([np.linspace(lo, hi, self.bins + 1) for lo, hi in ranges])

    def _check_probes(self, step, grad, dead):
        t, paths = self.thresholds, self._weight_paths
        if "vanishing_gradients" in self.kinds and len(paths) > 1:
            for i in vanishing_layers(grad, t):
                ratio = grad[-1, i] / grad[-1].max()
                self._raise("vanishing_gradients", paths[i], step,
                            f"gradient norm of {paths[i]} is {grad[-1, i]:.3g}, {ratio:.2g} x the largest layer's "
                            f"({paths[int(np.argmax(grad[-1]))]}), below {t.vanishing:g} for {t.confirm} probes")
        if "exploding_gradients" in self.kinds:
            for i in exploding_layers(grad, t):
                self._raise("exploding_gradients", paths[i], step,
                            f"gradient norm of {paths[i]} is {grad[-1, i]:.3g} (median before "
                            f"{_earlier_median(grad[:-1])[i]:.3g}): growing without bound or not finite")
        if "dead_units" in self.kinds and dead is not None:
            for i in dead_layers(dead, t):
                self._raise("dead_units", self._act_paths[i], step,
                            f"{100 * dead[-1, i]:.0f}% of the units of {self._act_paths[i]} are never positive on "
                            f"the probe batch (threshold {100 * t.dead:.0f}%, {t.confirm} probes in a row)")

    def _check_epochs(self):
        history = self.history
        loss = history.get("epoch/loss")
        if loss is None:
            return
        val = history.get("epoch/val_loss")
        t, step = self.thresholds, self._steps_done
        if "overfitting" in self.kinds and val is not None:
            message = overfitting(loss, val, t)
            if message:
                self._raise("overfitting", None, step, message)
        if "underfitting" in self.kinds:
            reference = t.baseline_loss if t.baseline_loss is not None else self._reference
            message = underfitting(loss, val, float(np.nan if reference is None else reference), t)
            if message:
                self._raise("underfitting", None, step, message)

    def _raise(self, kind, layer, step, message):
        with self._lock:
            if (kind, layer) in self._raised:
                return
            self._raised.add((kind, layer))
            warning = Warning(kind, layer, int(step), message)
            self._warnings.append(warning)
        if self.verbose:
            (self.print_fn or _print)(f"cnnwidget {kind} at step {step}: {message}")
        self._notify({"kind": "warning", "warning": warning})

    def _notify(self, update: dict):
        with self._lock:
            subscribers = list(self._subscribers)
        for fn in subscribers:
            try:
                fn(update)
            except Exception as exc:  # a broken view must not stop a long training run
                if id(fn) not in self._failed_subscribers:
                    self._failed_subscribers.add(id(fn))
                    _pywarnings.warn(f"a DiagnosticsCallback subscriber raised {type(exc).__name__}: {exc}",
                                     RuntimeWarning, stacklevel=2)


def _print(text: str):
    print(text, file=sys.stdout, flush=True)


def _chance_loss(model) -> float | None:
    """The loss of a uniform prediction for cross-entropy losses (see Thresholds), or None for other losses."""
    loss = model.loss
    name = loss if isinstance(loss, str) else getattr(loss, "name", getattr(loss, "__name__", ""))
    outputs = int(model.outputs[0].shape[-1]) if getattr(model, "outputs", None) else 0
    if name in ("sparse_categorical_crossentropy", "categorical_crossentropy") and outputs > 1:
        return math.log(outputs)
    if name == "binary_crossentropy":
        return math.log(2.0)
    return None


def _check_compiled(model):
    if not isinstance(model, keras.Model):
        raise ModelError(f"DiagnosticsCallback needs a Keras model; got {type(model).__name__}.")
    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None or model.loss is None:
        raise ModelError(
            f"{model.name!r} is not compiled with a loss and an optimizer, so there is no loss to take gradients "
            "of: call model.compile(optimizer=..., loss=...) before fit.")


# -- the compiled probe pass ---------------------------------------------------------------------------------

class _ProbePass:
    """Per-layer gradient norms, update ratios, dead fractions and histograms on one fixed batch, in one
    ``tf.function`` traced once. Weights are snapshotted (into shadow variables, on the device) before a probe
    step's training update, so the update ratio is that one step's."""

    def __init__(self, model, probe_data, bins: int, owner: DiagnosticsCallback):
        probe = ModelProbe(model)
        images = probe.images(probe_data[0])  # ImageError for a wrong shape
        labels = np.asarray(probe_data[1])
        if len(labels) != len(images):
            raise OptionError(f"probe_data has {len(images)} images but {len(labels)} labels; give one label each.")
        self.x, self.y = tf.constant(images), tf.constant(labels)
        layers = {info.path: probe.keras_layer(info.path) for info in probe.layers}
        weight_layers, seen = [], set()
        for path, layer in layers.items():
            if layer.trainable_weights and id(layer) not in seen:  # a shared layer once, under its first path
                seen.add(id(layer))
                weight_layers.append((path, layer))
        self.weight_paths = [p for p, _ in weight_layers]
        self.act_paths = [p for p, layer in layers.items() if _is_activation(layer)]
        self._groups = [list(layer.trainable_weights) for _, layer in weight_layers]
        self._vars = [v for group in self._groups for v in group]
        self._shadow = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self._vars]
        n_w, n_a = len(self.weight_paths), len(self.act_paths)
        self._ranges = {"weight": tf.Variable(tf.zeros((n_w, 2))), "activation": tf.Variable(tf.zeros((n_a, 2)))}
        self._ready = tf.Variable(False)
        forward = probe.forward(self.act_paths + [probe.layers[-1].path])
        self._step = tf.function(self._make_step(model, forward, bins, owner))
        self._copy = tf.function(self._assign_shadow)

    def reset_edges(self):
        self._ready.assign(False)  # each fit fixes its own histogram edges at its first probe step

    def ranges(self, which: str) -> np.ndarray:
        return self._ranges[which].numpy()

    def snapshot(self):
        self._copy()

    def _assign_shadow(self):
        for s, v in zip(self._shadow, self._vars):
            s.assign(v)

    def run(self) -> dict:
        return {k: v.numpy() for k, v in self._step(self.x, self.y).items()}

    def _make_step(self, model, forward, bins, owner):
        groups, variables, shadow = self._groups, self._vars, self._shadow
        ranges, ready = self._ranges, self._ready

        def step(x, y):
            owner.trace_count += 1  # runs only while tracing
            with tf.GradientTape() as tape:
                outs = forward(x, training=False)
                acts, y_pred = outs[:-1], outs[-1]
                loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
            grads = tape.gradient(loss, variables)
            grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
            flat_w, grad_norm, update_ratio, i = [], [], [], 0
            for group in groups:
                g, s = grads[i:i + len(group)], shadow[i:i + len(group)]
                i += len(group)
                grad_norm.append(_norm(g))
                update_ratio.append(_norm([v - b for v, b in zip(group, s)]) / (_norm(s) + 1e-12))
                flat_w.append(tf.concat([tf.reshape(v, [-1]) for v in group], 0))
            flat_a = [tf.reshape(a, [-1]) for a in acts]
            # Units are channels (last axis): dead when never positive at any position of any probe image.
            dead = [tf.reduce_mean(tf.cast(tf.reduce_max(tf.reshape(a, [-1, a.shape[-1]]), 0) <= 0, tf.float32))
                    for a in acts]
            w_ranges = tf.cond(ready, lambda: ranges["weight"], lambda: _edges_from(flat_w))
            a_ranges = tf.cond(ready, lambda: ranges["activation"], lambda: _edges_from(flat_a))
            ranges["weight"].assign(w_ranges)
            ranges["activation"].assign(a_ranges)
            ready.assign(True)
            return {
                "grad_norm": tf.stack(grad_norm) if grad_norm else tf.zeros([0]),
                "update_ratio": tf.stack(update_ratio) if update_ratio else tf.zeros([0]),
                "dead_fraction": tf.stack(dead) if dead else tf.zeros([0]),
                "weight_hist": _histograms(flat_w, w_ranges, bins),
                "activation_hist": _histograms(flat_a, a_ranges, bins),
            }

        return step


def _norm(tensors) -> tf.Tensor:
    return tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(t, tf.float32))) for t in tensors]))


def _edges_from(flat: list) -> tf.Tensor:
    if not flat:
        return tf.zeros((0, 2))
    lo = tf.stack([tf.reduce_min(v) for v in flat])
    hi = tf.stack([tf.reduce_max(v) for v in flat])
    w = tf.maximum(hi - lo, 1e-3)
    lo_edge = tf.where(lo >= 0, tf.zeros_like(lo), lo - w / 2)
    return tf.stack([lo_edge, hi + w / 2], axis=1)


def _histograms(flat: list, ranges, bins: int) -> tf.Tensor:
    if not flat:
        return tf.zeros((0, bins), tf.int32)
    return tf.stack([tf.histogram_fixed_width(tf.cast(v, tf.float32), ranges[i], nbins=bins)
                     for i, v in enumerate(flat)])


def _is_activation(layer) -> bool:
    """True for a layer whose output is a hidden non-linearity: an activation layer, or a layer with a fused
    non-linear activation (Conv2D(activation="relu")); linear and softmax outputs are left out."""
    if isinstance(layer, _ACTIVATION_CLASSES):
        name = getattr(getattr(layer, "activation", None), "__name__", "")
        return name not in ("softmax", "log_softmax", "linear")
    name = getattr(getattr(layer, "activation", None), "__name__", "linear")
    return name not in ("linear", "softmax", "log_softmax")


# -- history as data -----------------------------------------------------------------------------------------

def to_dataframe(history: dict, what: str = "epochs", pd=None):
    """A pandas DataFrame of one part of a ``history`` dict (see DiagnosticsCallback.to_dataframe)."""
    if pd is None:
        import pandas as pd
    if what == "epochs":
        cols = {"epoch": history["epoch"]}
        cols.update({k.split("/", 1)[1]: v for k, v in history.items() if k.startswith("epoch/")})
        return pd.DataFrame(cols)
    if what == "batches":
        return pd.DataFrame({k: history[k] for k in ("step", "batch_loss", "batch_loss_smoothed")})
    if what == "probes":
        rows = []
        weights, acts = list(history["weight_layers"]), list(history["activation_layers"])
        for p, step in enumerate(history["probe_step"]):
            for layer in dict.fromkeys(weights + acts):
                w = weights.index(layer) if layer in weights else None
                a = acts.index(layer) if layer in acts else None
                rows.append({"step": int(step), "layer": layer,
                             "grad_norm": history["grad_norm"][p, w] if w is not None else np.nan,
                             "update_ratio": history["update_ratio"][p, w] if w is not None else np.nan,
                             "dead_fraction": history["dead_fraction"][p, a] if a is not None else np.nan})
        return pd.DataFrame(rows, columns=["step", "layer", "grad_norm", "update_ratio", "dead_fraction"])
    raise OptionError(f"what must be 'epochs', 'batches' or 'probes'; got {what!r}.")


def save(path, history: dict, warnings: list[Warning], thresholds: Thresholds | None = None) -> None:
    """Write ``history`` (arrays) and ``warnings`` to an ``.npz`` file (no pickles: loads with allow_pickle=False)."""
    meta = {"warnings": [w._asdict() for w in warnings], "thresholds": asdict(thresholds or Thresholds())}
    np.savez(path, **history, _meta=np.array(json.dumps(meta)))


def load(path) -> tuple[dict, list[Warning]]:
    """Read back what ``save`` wrote: (history dict of numpy arrays, list of Warning)."""
    with np.load(path, allow_pickle=False) as data:
        history = {k: data[k] for k in data.files if k != "_meta"}
        meta = json.loads(str(data["_meta"]))
    return history, [Warning(**w) for w in meta["warnings"]]
