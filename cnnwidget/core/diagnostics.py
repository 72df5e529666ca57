"""Training health: a Keras callback that records gradients, updates, dead units and losses during ``fit``, and
turns them into warnings. No widgets here: it runs in a script or a CI job as well as under a TrainingMonitor.

    cb = DiagnosticsCallback(probe_data=(x_train[:64], y_train[:64]))   # or DiagnosticsCallback(): see below
    model.fit(x, y, validation_data=(xv, yv), callbacks=[cb])
    cb.warnings          # [Warning(kind, layer, step, message)]
    cb.history           # dict of numpy arrays (see DiagnosticsCallback.history)
    cb.save("run.npz"); history, warnings = load("run.npz")

Cost is bounded: every step reads one float (the loss Keras already computed); every ``every`` steps, one compiled
pass (traced once per model) over a fixed probe batch computes gradients, update ratios and dead units on the
device, and only per-layer numbers and a sample of at most 65,536 values per layer (binned into histograms in
numpy) come back to Python.

Without probe data (Keras 3 callbacks never see the training batches), everything that needs only the losses
and the weights still works: loss and metric curves, the smoothed batch loss, update ratios, weight histograms,
over- and underfitting, and exploding training from a non-finite loss or non-finite weights. Gradient norms
(and so vanishing gradients), dead units and activation histograms need the probe batch.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
import warnings as _pywarnings
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from . import options
from .errors import ImageError, ModelError, OptionError
from .probe import ModelProbe

KINDS = ("vanishing_gradients", "exploding_gradients", "dead_units", "overfitting", "underfitting")
NEEDS_PROBE_DATA = ("vanishing_gradients", "dead_units")  # measured on the probe batch only

# Activations whose "unit never positive" means it passes no gradient (dead) or is stuck; softmax is left out: it is
# an output normalization, its values are always positive.
_ACTIVATION_CLASSES = (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.PReLU,
                       keras.layers.ELU)


class Warning(NamedTuple):  # noqa: A001 - the name is the public API (DESIGN.md); the builtin is not used here
    """One training-health finding.

    ``kind`` is one of KINDS, or "monitor_error" when the monitor's own probe pass could not run (fit goes on,
    with losses only); ``layer`` the layer path (None for loss-level findings: over/underfitting, a NaN
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
    exploding:  a non-finite loss, gradient norm or layer weights at once; or a layer's gradient norm that rose
                at each of the last ``confirm`` probe steps and is now more than ``exploding`` x the median of its
                earlier values (default 1000: three orders; healthy runs leaving the flat start of training were
                seen to grow their norms 80-fold). Without probe data, only the non-finite loss and weights.
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


class ProbeBudget:
    """The ``budget`` rule of DiagnosticsCallback: may a due probe step run now? ``fraction`` None: always.

    ``spent(seconds, first)`` after each probe step: the first one (its trace and first run, a one-off) only
    starts the clock; later ones add to the probe time. ``allows()`` when a probe step is due: True when the probe
    time so far plus the last probe step's again is at most ``fraction`` x the other time since the first probe
    step (``clock()``, seconds). ``deferred`` counts the due probe steps that had to wait (once each, however many
    training steps they waited).
    """

    def __init__(self, fraction: float | None, clock: Callable[[], float] = time.perf_counter):
        self.fraction, self.clock = fraction, clock
        self.start = None  # clock() at the end of the first probe step
        self.probe_seconds = self.last = 0.0
        self.deferred = 0
        self._waiting = False

    def spent(self, seconds: float, first: bool):
        if first or self.start is None:
            self.start = self.clock()
        else:
            self.probe_seconds += seconds
            self.last = seconds
        self._waiting = False

    def allows(self) -> bool:
        if self.fraction is None or self.start is None:
            return True
        other = self.clock() - self.start - self.probe_seconds
        ok = self.probe_seconds + self.last <= self.fraction * other
        if not ok and not self._waiting:
            self.deferred += 1
        self._waiting = not ok
        return ok


# -- the callback --------------------------------------------------------------------------------------------

class DiagnosticsCallback(keras.callbacks.Callback):
    """Records training health during ``model.fit`` and raises warnings as data.

    probe_data: (images, labels), a fixed batch in the same space as the training inputs (not display space:
        what ``fit`` gets), e.g. the first 64 training examples. Images (N, H, W, C); a wrong shape raises
        ImageError when fit starts. Gradients, dead units and activations are measured on it, with the model in
        inference mode (``training=False``), so batch-norm statistics and dropout are left alone. None (the
        default): no gradients, dead units or activations are measured (see the module docstring); grad_norm is
        NaN in the history, there are no activation layers, and "vanishing_gradients" and "dead_units" are not
        checked (naming them in ``warn`` raises OptionError).
    every: probe steps are the first step and then every ``every`` training steps. At the default, 50, on the
        demo model (benchmarks/training.py, 2 busy cores): a probe step costs about 0.6-0.8 training steps, so
        1.5% of training time; the first one also traces and first runs the pass, a one-off of about 0.5 s of
        CPU (0.5-0.9 s of wall time); in all about 2-4% of a 128-step fit, about 1.5% of a long one. A probe step
        costs a forward and backward pass over the probe batch, so with a probe batch larger than the training
        batches, or a small ``every``, it weighs more (notebooks/training.ipynb's small CNN, 64 probe images,
        batches of 32: about 1.7 training steps each; at every=5, a third of the fit): see ``budget``.
    budget: None (the default) probes on the schedule above exactly. A fraction (e.g. 0.1, TrainingMonitor's
        default) caps the probe steps' share of the fit's time: a probe step that is due waits, one training
        step at a time, while the probe steps so far plus one more (as long as the last one took) would exceed
        ``budget`` x the rest of the fit's time since the first probe step (training, validation and callbacks;
        wall time). The first probe step is not counted: its trace is a one-off. Probe steps are then at least
        ``every`` steps apart, and further apart when they are costly; each is still one measurement at the
        step recorded in ``probe_step``, and the rules' "probe steps in a row" are the probe steps taken.
        ``deferred`` counts the probe steps that waited.
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

    def __init__(self, probe_data=None, every: int = 50, bins: int = 32, smoothing: float = 0.9,
                 warn: Iterable[str] | None = None, thresholds: Thresholds | None = None, verbose: int = 1,
                 print_fn: Callable[[str], None] | None = None, budget: float | None = None):
        super().__init__()
        if probe_data is not None and not (isinstance(probe_data, (tuple, list)) and len(probe_data) == 2):
            raise OptionError("probe_data must be a pair (images, labels), e.g. (x_train[:64], y_train[:64]), or "
                              f"None; got {_describe(probe_data)}.")
        every = options.positive_int("every", every)  # probe steps are every `every` training steps
        bins = options.positive_int("bins", bins, 2)
        if budget is not None and not 0.0 < options.fraction("budget", budget) <= 1.0:
            raise OptionError(f"budget must be None or a fraction in (0, 1], e.g. 0.1; got {budget!r}.")
        if not 0.0 <= options.fraction("smoothing", smoothing) < 1.0:
            raise OptionError(f"smoothing must be in [0, 1); got {smoothing!r}.")
        kinds = tuple(KINDS if warn is None else warn)
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise OptionError(f"unknown warning kind(s) {unknown}; kinds are {list(KINDS)}.")
        need_data = [k for k in kinds if k in NEEDS_PROBE_DATA] if warn is not None and probe_data is None else []
        if need_data:
            raise OptionError(
                f"warn names {need_data}, which are measured on a probe batch, but probe_data is None: pass "
                "probe_data=(images, labels), e.g. the first 64 training examples, or leave them out of warn.")
        self.probe_data = probe_data
        self.every, self.bins, self.smoothing = int(every), int(bins), float(smoothing)
        self.kinds = kinds
        self.require_validation = warn is not None and "overfitting" in kinds
        self.thresholds = thresholds or Thresholds()
        self.verbose = int(verbose)
        self.print_fn = print_fn
        self.budget = None if budget is None else float(budget)
        self._clock = time.perf_counter  # the budget's clock (tests put a fake one here)
        self._traces_before = 0  # traces of the probe passes of models this callback was attached to before
        self._lock = threading.RLock()
        self._subscribers: list[Callable[[dict], None]] = []
        self._pass = None
        self._fresh_pass = True  # the pass's per-fit state (histogram edges, layer lists) is not set up yet
        self._reset()

    # -- public ----------------------------------------------------------------------------------------------

    @property
    def trace_count(self) -> int:
        """Times the probe pass was traced (counted by its probe): one per model the callback is attached to."""
        return self._traces_before + (self._pass.probe.trace_count if self._pass is not None else 0)

    @property
    def deferred(self) -> int:
        """Probe steps of this fit that waited for the ``budget`` (0 without a budget)."""
        return self._budget.deferred

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
        probe_step (P,) int; weight_layers (Lw,) str, layer paths with trainable weights; grad_norm (P, Lw) L2
        norm of d(loss)/d(weights) over the layer's trainable weights (NaN without probe data); update_ratio
        (P, Lw) ||W_after - W_before|| / ||W_before|| over one training step; weight_hist (P, Lw, bins) int32
        counts of the layer's trainable weight values; weight_edges (Lw, bins + 1); activation_layers (La,) str
        (none without probe data); dead_fraction (P, La) in [0, 1]; activation_hist (P, La, bins) int32 counts
        of the layer's outputs on the probe batch; activation_edges (La, bins + 1). Histograms of layers with
        more than 65,536 values count a regular sample of that many (see _sample); NaNs are not counted.
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

        what="epochs": one row per epoch, a column per log key; "epoch" counts from 1, as Keras prints it and the
        monitor's charts draw it (``history["epoch"]`` keeps Keras's 0-based index). "batches": step, batch_loss, batch_loss_smoothed.
        "probes": one row per (probe step, layer): step, layer, grad_norm, update_ratio, dead_fraction (NaN where
        a quantity does not apply to the layer). Histograms stay in ``history``.
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_dataframe needs pandas, which cnnwidget does not install: pip install pandas; "
                              "or use .history, a dict of numpy arrays.") from None
        return to_dataframe(self.history, what, pd)

    def save(self, path) -> str:
        """Write the history and the warnings to one ``.npz`` file (".npz" added to a path without it); returns the
        path written. ``load(path)``, with the same path, reads them back."""
        return save(path, self.history, self.warnings, self.thresholds)

    # -- Keras hooks -----------------------------------------------------------------------------------------

    def set_model(self, model):
        _check_compiled(model)
        if model is not getattr(self, "model", None):
            self._traces_before = self.trace_count
            self._pass = None  # a new model: its probe pass is built (and traced) when fit begins
        super().set_model(model)

    def on_train_begin(self, logs=None):
        with self._lock:
            self._reset()
        self._fresh_pass = True
        self._ready_pass()
        self._notify({"kind": "begin", "weight_layers": list(self._weight_paths),
                      "activation_layers": list(self._act_paths), "every": self.every, "bins": self.bins})

    def on_epoch_begin(self, epoch, logs=None):
        if not self._epoch_logs:
            self._initial_epoch = int(epoch)
        self._prev_index, self._prev_mean = -1, 0.0

    def on_train_batch_begin(self, batch, logs=None):
        step = self._step_base + int(batch) + 1  # steps done once this batch is
        self._probing = self._ready_pass() and (self._last_probe is None or (step - self._last_probe >= self.every
                                                                             and self._budget.allows()))
        if self._probing:
            try:
                self._pass.snapshot()
            except Exception as exc:  # noqa: BLE001 - the monitor's failure must not stop fit
                self._failed(exc, step)

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

    def _ready_pass(self) -> bool:
        """Build the probe pass for this model if it is not built yet, and start this fit's use of it; False while
        that cannot be done yet: a Sequential model without an Input, fit without probe data, gets its weights
        while Keras traces its first step, so its probe steps start at the second. Also False once the pass
        failed (see ``_failed``)."""
        if self._broken:
            return False
        if self._pass is None:
            if self.probe_data is None and not self.model.built:
                return False
            try:
                self._pass = _ProbePass(self.model, self.probe_data, self.bins)
            except (ImageError, OptionError):
                raise  # probe_data given to the monitor does not fit the model: said when fit starts
            except Exception as exc:  # noqa: BLE001 - a model form the pass cannot read: fit goes on without it
                self._failed(exc, self._steps_done)
                return False
        if self._fresh_pass:
            self._fresh_pass = False
            self._pass.reset_edges()
            with self._lock:
                self._weight_paths, self._act_paths = self._pass.weight_paths, self._pass.act_paths
        return True

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
        self._broken = False  # the probe pass failed in this fit: losses are still recorded, probes are not
        self._budget = ProbeBudget(self.budget, self._clock)

    def _failed(self, exc: BaseException, step: int):
        """The monitor's own failure (a model form its probe pass cannot read, an error inside the pass): it
        becomes a "monitor_error" warning in the history, probe steps stop, and fit goes on with loss curves."""
        self._broken, self._pass, self._probing = True, None, False
        self._raise("monitor_error", None, step,
                    f"gradient norms, update ratios and histograms are not measured in this fit: "
                    f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''} "
                    "(losses and epoch metrics are still recorded).")

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
        first = not self._probe_steps
        started = self._clock()
        try:
            out = self._pass.run()
        except Exception as exc:  # noqa: BLE001 - the monitor's failure must not stop fit
            self._failed(exc, step)
            return
        self._budget.spent(self._clock() - started, first)
        with self._lock:
            self._last_probe = step
            self._probe_steps.append(step)
            for key in self._probes:
                self._probes[key].append(out[key])
            grad = np.array(self._probes["grad_norm"]) if self.probe_data is not None else None
            dead = np.array(self._probes["dead_fraction"]) if self._act_paths else None
        update = {"kind": "probe", "step": step, **out}
        if first:
            update.update(weight_edges=self._edges("weight", len(self._weight_paths)),
                          activation_edges=self._edges("activation", len(self._act_paths)))
        self._notify(update)
        self._check_probes(step, grad, dead, out["update_ratio"])

    def _edges(self, which: str, n: int) -> np.ndarray:
        edges = self._pass.edges[which] if self._pass is not None and self._probe_steps else None
        return np.zeros((n, self.bins + 1)) if edges is None else edges.copy()

    def _check_probes(self, step, grad, dead, update_ratio):
        """Raise the probe-step rules. ``grad`` (probes, Lw) is None without probe data; ``update_ratio`` (Lw,) is
        this step's, non-finite when a layer's weights are (before or after the update)."""
        t, paths = self.thresholds, self._weight_paths
        if "exploding_gradients" in self.kinds:
            for i in np.flatnonzero(~np.isfinite(update_ratio)):
                self._raise("exploding_gradients", paths[i], step,
                            f"the weights of {paths[i]} are not finite (NaN or inf) at step {step}: training "
                            "diverged; try a smaller learning rate or gradient clipping")
        if grad is None:
            return
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


def _describe(value) -> str:
    """A short description of a bad argument for an error message: its type, and its shape when it has one."""
    shape = getattr(value, "shape", None)
    return type(value).__name__ + (f" of shape {tuple(shape)}" if shape is not None else "")


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

def _model_inputs(probe: ModelProbe, inputs) -> np.ndarray:
    """Probe inputs of a model that does not take images, as float32, checked against its input shape."""
    try:
        arr = np.asarray(inputs, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ImageError(f"probe_data's inputs must be a numeric array; could not convert them: {exc}") from None
    want = tuple(probe.input_shape)
    if arr.ndim != len(want) + 1 or any(w is not None and g != w for g, w in zip(arr.shape[1:], want)):
        raise ImageError(f"probe_data's inputs have shape {arr.shape}, but the model takes (N, "
                         f"{', '.join('any' if w is None else str(w) for w in want)}).")
    return arr


class _AnyModelProbe(ModelProbe):
    """A probe that accepts a model without spatial layers (a dense-only model): the probe pass reads weights,
    gradients and activations, which every model has."""

    spatial_required = False


class _ProbePass:
    """Per-layer statistics at a probe step: one ``tf.function`` (traced once per model) and numpy histograms.

    Always (they need only the weights): update ratios and weight histograms. With probe data, also gradient
    norms, dead fractions and activation histograms on the fixed batch. Weights are snapshotted (into shadow
    variables, on the device) before a probe step's training update, so the update ratio is that one step's.

    The one-off cost is the trace and the first run (graph optimization and kernel set-up), paid on the training
    thread at the first probe step. What keeps it small: autograph is off (the step has no tensor-dependent
    Python control flow, and in a fresh process autograph's rewriting of this function and of Keras's layer
    calls was about half of the trace); the graph has no histogram ops and no conditional: it returns a strided
    sample of each layer's values (see _sample) and numpy bins it, with edges fixed in Python at the first probe
    step (a fifth fewer ops than per-layer histogram ops with a tf.cond for the edges, and NaNs, which
    tf.histogram_fixed_width refuses, are simply left out); the snapshot is eager (one assign per weight tensor,
    rather than tracing a second function). It is not traced or run on a second thread while fit goes on:
    Keras's layer calls are not known to trace safely beside Keras's own trace of its train step, and a pass
    reading the weights while the optimizer writes them would mix two steps' weights in one probe.
    """

    def __init__(self, model, probe_data, bins: int):
        if len(getattr(model, "outputs", None) or []) > 1:
            raise ModelError(f"{model.name!r} has {len(model.outputs)} outputs; the probe pass measures models with "
                             "one output")
        # The pass's own probe (the step it keeps holds this callback's variables), for any model: training health
        # needs no feature map, so a dense-only model is measured too.
        probe = self.probe = _AnyModelProbe(model)
        self.x = self.y = None
        if probe_data is not None:
            images = (probe.images(probe_data[0]) if len(probe.input_shape) == 3  # ImageError for a wrong shape
                      else _model_inputs(probe, probe_data[0]))  # a model of vectors or sequences
            labels = np.asarray(probe_data[1])
            if len(labels) != len(images):
                raise OptionError(f"probe_data has {len(images)} images but {len(labels)} labels; give one label "
                                  "each.")
            self.x, self.y = tf.constant(images), tf.constant(labels)
        layers = {info.path: probe.keras_layer(info.path) for info in probe.layers}
        weight_layers, seen = [], set()
        for path, layer in layers.items():
            if layer.trainable_weights and id(layer) not in seen:  # a shared layer once, under its first path
                seen.add(id(layer))
                weight_layers.append((path, layer))
        self.weight_paths = [p for p, _ in weight_layers]
        # Without probe data no activation is measured, so no activation layer is listed.
        self.act_paths = [p for p, layer in layers.items() if _is_activation(layer)] if self.x is not None else []
        self.bins = bins
        self.edges = {"weight": None, "activation": None}  # (layers, bins + 1), fixed at a fit's first probe step
        self._groups = [list(layer.trainable_weights) for _, layer in weight_layers]
        self._vars = [v for group in self._groups for v in group]
        self._shadow = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self._vars]
        forward = probe.forward(self.act_paths + [probe.layers[-1].path]) if self.x is not None else None
        self._step = probe.compiled(("diagnostics", "probe_pass"), lambda: probe.tf_function(
            self._make_step(model, forward), autograph=False, family="diagnostics"))

    def reset_edges(self):
        self.edges = {"weight": None, "activation": None}  # each fit fixes its own at its first probe step

    def snapshot(self):
        for s, v in zip(self._shadow, self._vars):
            s.assign(v)

    def run(self) -> dict:
        """One probe step: {name: numpy array}, shapes as in DiagnosticsCallback.history without the P axis.
        Without probe data, grad_norm is NaN (not measured) and the activation arrays have no layers."""
        out = self._step(self.x, self.y) if self.x is not None else self._step()
        result = {k: v.numpy() for k, v in out.items() if not k.endswith("_sample")}
        if self.x is None:
            result["grad_norm"] = np.full(len(self.weight_paths), np.nan)
            result["dead_fraction"] = np.zeros(0)
        for which, n in (("weight", len(self.weight_paths)), ("activation", len(self.act_paths))):
            samples = [v.numpy() for v in out.get(f"{which}_sample", [])]
            if self.edges[which] is None:
                self.edges[which] = _edges_from(samples, self.bins).reshape(n, self.bins + 1)
            result[f"{which}_hist"] = _histograms(samples, self.edges[which], self.bins)
        return result

    def _make_step(self, model, forward):
        groups, variables, shadow = self._groups, self._vars, self._shadow

        def weight_stats():
            weights, update_ratio, i = [], [], 0
            for group in groups:
                s = shadow[i:i + len(group)]
                i += len(group)
                update_ratio.append(_norm([v - b for v, b in zip(group, s)]) / (_norm(s) + 1e-12))
                weights.append(_sample(tf.concat([tf.reshape(v, [-1]) for v in group], 0), group[0].shape[-1]))
            return {"update_ratio": _stack(update_ratio), "weight_sample": weights}

        def data_stats(x, y):
            with tf.GradientTape() as tape:
                outs = forward(x, training=False)
                acts, y_pred = outs[:-1], outs[-1]
                loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
            grads = tape.gradient(loss, variables)
            grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
            grad_norm, i = [], 0
            for group in groups:
                grad_norm.append(_norm(grads[i:i + len(group)]))
                i += len(group)
            # Units are channels (last axis): dead when never positive at any position of any probe image.
            dead = [tf.reduce_mean(tf.cast(tf.reduce_max(tf.reshape(a, [-1, a.shape[-1]]), 0) <= 0, tf.float32))
                    for a in acts]
            return {"grad_norm": _stack(grad_norm), "dead_fraction": _stack(dead),
                    "activation_sample": [_sample(tf.reshape(a, [-1]), a.shape[-1]) for a in acts]}

        def step(*data):
            out = weight_stats()
            if data:  # decided when tracing: the pass is built with or without probe data
                out.update(data_stats(*data))
            return out

        return step


def _stack(values: list) -> tf.Tensor:
    return tf.stack(values) if values else tf.zeros([0])


def _norm(tensors) -> tf.Tensor:
    return tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(t, tf.float32))) for t in tensors]))


_SAMPLE = 65536  # values per layer a histogram counts at most


def _sample(flat: tf.Tensor, channels) -> tf.Tensor:
    """At most _SAMPLE of the values of ``flat`` (1-D), as float32: every k-th value, k the smallest stride that
    fits, moved up to be coprime with ``channels`` (the length of the fastest axis; a stride of 64 over a
    (..., 64) map would read one channel only).

    Why sample: binning costs about 3 ms per million values on one core, and the old demo model's activations on
    64 probe images were 9 million values (binning them: a third of a probe step); with 65,536 values a bin's
    share is off by at most about 0.4% of all values (two standard errors of a random sample that size), and
    only this much comes back to the host.
    """
    flat = tf.cast(flat, tf.float32)
    n = flat.shape[0]
    if n is not None and n > _SAMPLE:
        k = -(-n // _SAMPLE)
        while math.gcd(k, int(channels or 1)) != 1:
            k += 1
        flat = flat[::k]
    return flat


def _edges_from(samples: list[np.ndarray], bins: int) -> np.ndarray:
    """(layers, bins + 1) bin edges around each layer's values (see DiagnosticsCallback ``bins``); [0, 1] for a
    layer with no finite value."""
    edges = []
    for v in samples:
        v = v[np.isfinite(v)]
        lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
        w = max(hi - lo, 1e-3)
        edges.append(np.linspace(0.0 if lo >= 0 else lo - w / 2, hi + w / 2, bins + 1))
    return np.array(edges, np.float64).reshape(len(samples), bins + 1)


def _histograms(samples: list[np.ndarray], edges: np.ndarray, bins: int) -> np.ndarray:
    """(layers, bins) int32 counts; values beyond the edges go to the end bins, NaNs are not counted (a
    diverged layer is raised as exploding instead)."""
    counts = np.zeros((len(samples), bins), np.int32)
    for i, v in enumerate(samples):
        v = np.clip(v[~np.isnan(v)], edges[i, 0], edges[i, -1])
        counts[i] = np.histogram(v, bins=bins, range=(edges[i, 0], edges[i, -1]))[0]
    return counts


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
        cols = {"epoch": np.asarray(history["epoch"]) + 1}  # as Keras prints "Epoch 1/5" and the charts draw it
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


def save(path, history: dict, warnings: list[Warning], thresholds: Thresholds | None = None) -> str:
    """Write ``history`` (arrays) and ``warnings`` to an ``.npz`` file (no pickles: loads with allow_pickle=False).
    A path without ".npz" gets it (as numpy does); returns the path written."""
    path = os.fspath(path)
    path = path if path.endswith(".npz") else path + ".npz"
    meta = {"warnings": [w._asdict() for w in warnings], "thresholds": asdict(thresholds or Thresholds())}
    np.savez(path, **history, _meta=np.array(json.dumps(meta)))
    return path


def load(path) -> tuple[dict, list[Warning]]:
    """Read back what ``save`` wrote: (history dict of numpy arrays, list of Warning). The path given to save
    works here too ("run" reads "run.npz"). OptionError for a file that save did not write."""
    path = os.fspath(path)
    if not os.path.exists(path) and os.path.exists(path + ".npz"):
        path += ".npz"
    with np.load(path, allow_pickle=False) as data:
        history = {k: data[k] for k in data.files if k != "_meta"}
        try:
            meta = json.loads(str(data["_meta"]))
            warnings = [Warning(**w) for w in meta["warnings"]]
        except (KeyError, ValueError, TypeError) as exc:
            raise OptionError(f"{path!r} is not a training history written by cnnwidget (DiagnosticsCallback.save or "
                              f"TrainingMonitor.save): its _meta entry is missing or unreadable ({exc}).") from None
    return history, warnings
