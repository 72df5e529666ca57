"""LayerSimilarity: linear CKA between the layers of one model, or of a base model and its fine-tuned copy, as a
heatmap, with per-layer weight drift and a generic/specific verdict; the data pass runs on the widget's worker."""

from __future__ import annotations

import logging
import threading
import time

import bqplot
import ipywidgets
import numpy as np
import traitlets as t

from ..core import Cancelled, CnnWidgetError, OptionError, as_probe
from ..core import options, similarity
from . import _axes
from ._jobs import Worker

_log = logging.getLogger(__name__)
_PROGRESS_SECONDS = 0.1  # progress and status leave at most this often while batches fly by


class LayerSimilarity(ipywidgets.VBox):
    """CKA between layers on a set of images, computed on a worker thread with progress and Cancel.

    ``model_a``: a Keras model or ModelProbe. ``model_b``: None compares every layer of ``model_a`` with every
    other (unit diagonal); a second model (e.g. ``model_a`` fine-tuned) compares base layer i with tuned layer j,
    and adds per-layer weight drift ||W_b - W_a|| / ||W_a|| and a verdict per layer: "generic" when the layer's
    CKA to itself across the two models is at least ``threshold`` (freeze it), "specific" below (fine-tune it).
    ``data``: display-space images (N, H, W, C), or a pair (images, labels); streamed in ``batch_size`` batches
    (minibatch CKA: memory does not grow with N). ``layers``: names or paths present in both models (default:
    every layer; two models must then have the same layer names). ``run()`` (or Run) starts the pass and
    returns its Job; the constructor starts one unless ``autostart=False``.

    ``layers`` can be changed later, from Python (``sim.layers = [...]``) or in the widget's Layers box (names
    separated by commas, empty for every layer): the new layers are checked in both models and a pass starts;
    bad ones are refused with a message in the widget (and a CnnWidgetError in Python), and the last result stays.

    Results: ``cka`` (L, L) float64, NaN where a layer is constant on the data; ``comparison`` (a
    core.similarity.Comparison, two models only). Traits: ``running``, ``progress`` (0..1 of the batches),
    ``status``, ``error`` (the last bad-input or failure message, also shown).
    """

    running = t.Bool(False)
    progress = t.Float(0.0)
    status = t.Unicode("")
    error = t.Unicode("")

    def __init__(self, model_a, model_b=None, data=None, layers=None, *, batch_size: int = 64,
                 threshold: float = similarity.GENERIC_THRESHOLD, autostart: bool = True):
        self._error_label = ipywidgets.Label(layout=ipywidgets.Layout(display="none"))
        self._error_label.add_class("cnnw-error")
        super().__init__()
        self.add_class("cnnw-similarity")
        self.observe(self._show_error, names="error")
        try:
            self.probe_a = as_probe(model_a)
            self.probe_b = None if model_b is None or model_b is model_a else as_probe(model_b)
            self._images = self.probe_a.images(data[0] if isinstance(data, (tuple, list)) else data)
            self._layers, self._paths = self._check_layers(layers)
            batch_size, threshold = options.positive_int("batch_size", batch_size, 4), options.fraction("threshold",
                                                                                                    threshold)
            similarity.check_image_count(len(self._images), batch_size)  # too few images: refused here, not later
        except (CnnWidgetError, TypeError) as exc:
            self.error = str(exc) if isinstance(exc, CnnWidgetError) else "data must be images (N, H, W, C)."
            self.children = [self._error_label]
            raise
        self._batch_size, self._threshold = int(batch_size), float(threshold)
        self._worker = Worker("cnnwidget-similarity")
        self._lock = threading.RLock()
        self._generation = 0  # the pass whose progress and result are shown; older passes only end quietly
        self._reverting = False
        self.cka: np.ndarray | None = None
        self.comparison = None
        self.run_button = ipywidgets.Button(description="Run", icon="play")
        self.cancel_button = ipywidgets.Button(description="Cancel", icon="stop", disabled=True)
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.layers_box = ipywidgets.Text(value=_layers_text(self._layers), placeholder="every layer",
                                          description="Layers", continuous_update=False,
                                          layout=ipywidgets.Layout(width="100%", max_width="560px"))
        self.layers_box.observe(self._on_layers_text, names="value")
        bar = ipywidgets.FloatProgress(min=0.0, max=1.0, layout={"width": "200px"})
        status = ipywidgets.Label()
        t.dlink((self, "progress"), (bar, "value"))
        t.dlink((self, "status"), (status, "value"))
        t.dlink((self, "running"), (self.cancel_button, "disabled"), lambda running: not running)
        t.dlink((self, "running"), (self.run_button, "disabled"))
        self.heatmap, self._grid = _heatmap(self.probe_b is not None)
        self.drift_fig, self._drift = _drift_figure()
        self._verdicts = ipywidgets.VBox()
        # Stable classes, for tests and for anyone styling the widget.
        for widget, name in [(self.run_button, "run"), (self.cancel_button, "cancel"), (self.layers_box, "layers"),
                             (bar, "progress"), (status, "status"), (self.heatmap, "cka"),
                             (self.drift_fig, "drift"), (self._verdicts, "verdicts")]:
            widget.add_class(f"cnnw-similarity-{name}")
        extra = [self.drift_fig, self._verdicts] if self.probe_b is not None else []
        self.children = [ipywidgets.HBox([self.run_button, self.cancel_button, bar, status]), self.layers_box,
                         self._error_label,
                         ipywidgets.HBox([self.heatmap, *extra], layout={"flex_flow": "row wrap"})]
        if autostart:
            self.run()

    # -- public ---------------------------------------------------------------------------------------------

    def run(self):
        """Start the data pass on the worker (cancelling one that runs); returns its Job (``job.wait()``)."""
        with self._lock:
            self._generation += 1
            generation, layers, paths = self._generation, self._layers, self._paths
            n_batches = -(-len(self._images) // self._batch_size)
            self.running, self.progress, self.error = True, 0.0, ""
            self.status = f"CKA over {len(self._images)} images in {n_batches} batches..."
            return self._worker.submit(lambda cancel: self._pass(cancel, generation, layers),
                                       on_done=lambda result: self._done(generation, paths, result),
                                       on_error=lambda exc, trace: self._failed(generation, exc, trace))

    def cancel(self):
        """Stop the pass at its next batch; what was shown before stays."""
        self._worker.cancel()

    @property
    def layers(self) -> list[str] | None:
        """The layers compared, as given (None: every layer). Setting checks them in both models and starts a pass;
        bad ones raise a CnnWidgetError, shown in the widget too, and the last layers and result stay."""
        return None if self._layers is None else list(self._layers)

    @layers.setter
    def layers(self, value):
        self._set_layers(value)

    @property
    def job(self):
        return self._worker.job

    def close(self):
        if hasattr(self, "_worker"):
            self._worker.cancel()
        super().close()

    # -- the pass (worker thread) ---------------------------------------------------------------------------

    def _pass(self, cancel: threading.Event, generation: int, layers):
        last = [-np.inf]

        def progress(done, total):
            now = time.monotonic()
            if now - last[0] < _PROGRESS_SECONDS and done != total:
                return
            last[0] = now
            with self._lock:
                if generation == self._generation:
                    self.progress = done / total if total else 0.0
                    self.status = f"CKA: batch {done} of {total or '?'}"

        options = dict(layers=layers, batch_size=self._batch_size, progress=progress, cancel=cancel)
        try:
            if self.probe_b is None:
                return similarity.layer_similarity(self.probe_a, None, self._images, **options)
            return similarity.compare_models(self.probe_a, self.probe_b, self._images, threshold=self._threshold,
                                             **options)
        except Cancelled:
            return None  # a part of the data is not the answer asked for

    def _done(self, generation: int, paths: list[str], result):
        with self._lock:
            if generation != self._generation:
                return  # a newer pass runs: it owns progress, status and the result
            self.running = False
            if result is None:
                self.status = "cancelled: the last finished result stays"
                return
            if self.probe_b is None:
                self.cka, drift, verdicts = result, None, None
            else:
                self.comparison = result
                self.cka, paths, drift, verdicts = result.cka, result.layers, result.drift, result.verdict
            self._draw(paths, self.cka, drift, verdicts)
            self.progress = 1.0
            self.status = "; ".join(filter(None, [f"done: {len(paths)} layers",
                                                  similarity.stability_note(len(self._images))]))

    def _failed(self, generation: int, exc: BaseException, trace: str):
        with self._lock:
            if generation != self._generation:
                return
            # Our own errors say what to do; anything else is a bug, so its traceback goes to the kernel log too.
            if not isinstance(exc, CnnWidgetError):
                _log.error("the CKA pass failed:\n%s", trace)
            self.running = False
            self.error = str(exc) if isinstance(exc, CnnWidgetError) else f"{type(exc).__name__}: {exc}"
            self.status = "failed"

    # -- drawing --------------------------------------------------------------------------------------------

    def _draw(self, paths, cka, drift, verdicts):
        names = [str(p) for p in paths]
        # bqplot squeezes a (1, 1) colour array to a scalar it then refuses: one layer is said in the title.
        color, labels = (cka, names) if len(names) >= 2 else (np.full((2, 2), np.nan), ["", " "])
        with self._grid.hold_sync():
            self._grid.color = color  # first: bqplot checks row and column against the colour's shape
            self._grid.row, self._grid.column = labels, labels
        self.heatmap.title = "linear CKA" if len(names) >= 2 else f"linear CKA of {names[0]}: {cka[0, 0]:.3f}"
        if drift is None:
            return
        with self._drift.hold_sync():
            self._drift.x, self._drift.y = names, np.nan_to_num(drift, nan=0.0)
        diagonal = np.diag(cka)
        # Label sets textContent: layer names from the model are never parsed as HTML.
        self._verdicts.children = [ipywidgets.Label("layer: verdict (CKA to its base self, weight drift)")] + [
            ipywidgets.Label(f"{name}: {verdict} (CKA {c:.3f}, " + ("no weights)" if np.isnan(d) else f"drift {d:.3g})"))
            for name, verdict, c, d in zip(names, verdicts, diagonal, drift)]

    def _show_error(self, change):
        self._error_label.value = change["new"]
        self._error_label.layout.display = "" if change["new"] else "none"

    # -- layers ---------------------------------------------------------------------------------------------

    def _check_layers(self, layers) -> tuple[list | None, list[str]]:
        """(layers as given, their paths in model a), checked in both models now, so that a mismatch is refused
        before any pass starts; CnnWidgetError (naming what is missing where) otherwise."""
        if isinstance(layers, str):
            layers = [layers]
        elif layers is not None:
            try:
                layers = list(layers)
            except TypeError:
                raise OptionError(f"layers must be a layer name, a list of names, or None; got {layers!r}.") from None
        _, _, paths, _ = similarity.paired_layers(self.probe_a, self.probe_b, layers)
        return layers, paths

    def _set_layers(self, layers, from_page: bool = False):
        with self._lock:
            try:
                self._layers, self._paths = self._check_layers(layers)
            except CnnWidgetError as exc:
                self._show_layers()  # before the message: whoever reads the message sees the layers in use
                self.error = str(exc)
                if not from_page:
                    raise
                return
            self._show_layers()
        self.run()

    def _show_layers(self):
        """The box shows the layers in use, whatever was typed in it."""
        self._reverting = True
        try:
            self.layers_box.value = _layers_text(self._layers)
        finally:
            self._reverting = False

    def _on_layers_text(self, change):
        if self._reverting:
            return
        names = [n.strip() for n in change["new"].split(",") if n.strip()]
        self._set_layers(names or None, from_page=True)


def _layers_text(layers) -> str:
    return "" if layers is None else ", ".join(str(n) for n in layers)


def _heatmap(two_models: bool):
    rows, cols = bqplot.OrdinalScale(reverse=True), bqplot.OrdinalScale()
    color = bqplot.ColorScale(scheme="viridis", min=0.0, max=1.0)
    grid = bqplot.GridHeatMap(color=np.full((2, 2), np.nan), row=["", " "], column=["", " "],
                              scales={"row": rows, "column": cols, "color": color}, null_color="#eeeeee")
    # the axis labels go beyond the layer names (the helper measures them), the names are never cut off
    axes = [_axes.axis(cols, "fine-tuned layer" if two_models else "layer", kind="ordinal", rotate=-45),
            _axes.axis(rows, "base layer" if two_models else "layer", kind="ordinal", vertical=True),
            _axes.color_axis(color, "linear CKA", side="right", orientation="vertical")]
    fig = bqplot.Figure(marks=[grid], axes=axes, title="linear CKA",
                        fig_margin={"top": 48, "bottom": 60, "left": 60, "right": 100},
                        layout=ipywidgets.Layout(width="100%", max_width="560px", min_width="320px", height="520px"))
    return _axes.follow(fig), grid


def _drift_figure():
    x, y = bqplot.OrdinalScale(), bqplot.LinearScale(min=0.0)
    bars = bqplot.Bars(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y}, colors=["#dd8452"], padding=0.1)
    axes = [_axes.axis(x, kind="ordinal", rotate=-45),
            _axes.axis(y, "||W_b - W_a|| / ||W_a||", vertical=True)]
    fig = bqplot.Figure(marks=[bars], axes=axes, title="weight drift per layer",
                        fig_margin={"top": 48, "bottom": 60, "left": 60, "right": 16},
                        layout=ipywidgets.Layout(width="100%", max_width="460px", min_width="260px", height="360px"))
    return _axes.follow(fig), bars
