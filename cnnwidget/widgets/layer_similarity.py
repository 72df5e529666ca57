"""LayerSimilarity: linear CKA between the layers of one model, or of a base model and its fine-tuned copy, as a
heatmap, with per-layer weight drift and a generic/specific verdict; the data pass runs on the widget's worker."""

from __future__ import annotations

import threading

import bqplot
import ipywidgets
import numpy as np
import traitlets as t

from ..core import Cancelled, CnnWidgetError, LayerError, OptionError, as_probe
from ..core import similarity
from ._jobs import Worker


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
        self.observe(self._show_error, names="error")
        try:
            self.probe_a = as_probe(model_a)
            self.probe_b = None if model_b is None or model_b is model_a else as_probe(model_b)
            self._images = self.probe_a.images(data[0] if isinstance(data, (tuple, list)) else data)
            self._layers = self._check_layers(layers)
            if int(batch_size) < 4 or not 0.0 <= float(threshold) <= 1.0:
                raise OptionError(f"batch_size must be at least 4 and threshold a CKA value in [0, 1]; got "
                                  f"{batch_size!r} and {threshold!r}.")
        except (CnnWidgetError, TypeError) as exc:
            self.error = str(exc) if isinstance(exc, CnnWidgetError) else "data must be images (N, H, W, C)."
            self.children = [self._error_label]
            raise
        self._batch_size, self._threshold = int(batch_size), float(threshold)
        self._worker = Worker("cnnwidget-similarity")
        self._lock = threading.Lock()
        self.cka: np.ndarray | None = None
        self.comparison = None
        self.run_button = ipywidgets.Button(description="Run", icon="play")
        self.cancel_button = ipywidgets.Button(description="Cancel", icon="stop", disabled=True)
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        bar = ipywidgets.FloatProgress(min=0.0, max=1.0, layout={"width": "200px"})
        status = ipywidgets.Label()
        t.dlink((self, "progress"), (bar, "value"))
        t.dlink((self, "status"), (status, "value"))
        t.dlink((self, "running"), (self.cancel_button, "disabled"), lambda running: not running)
        t.dlink((self, "running"), (self.run_button, "disabled"))
        self.heatmap, self._grid = _heatmap(self.probe_b is not None)
        self.drift_fig, self._drift = _drift_figure()
        self._verdicts = ipywidgets.VBox()
        extra = [self.drift_fig, self._verdicts] if self.probe_b is not None else []
        self.children = [ipywidgets.HBox([self.run_button, self.cancel_button, bar, status]), self._error_label,
                         ipywidgets.HBox([self.heatmap, *extra], layout={"flex_flow": "row wrap"})]
        if autostart:
            self.run()

    # -- public ---------------------------------------------------------------------------------------------

    def run(self):
        """Start the data pass on the worker (cancelling one that runs); returns its Job (``job.wait()``)."""
        n_batches = -(-len(self._images) // self._batch_size)
        self.running, self.progress, self.error = True, 0.0, ""
        self.status = f"CKA over {len(self._images)} images in {n_batches} batches..."
        return self._worker.submit(self._pass, on_done=self._done, on_error=self._failed)

    def cancel(self):
        """Stop the pass at its next batch; what was shown before stays."""
        self._worker.cancel()

    @property
    def job(self):
        return self._worker.job

    def close(self):
        if hasattr(self, "_worker"):
            self._worker.cancel()
        super().close()

    # -- the pass (worker thread) ---------------------------------------------------------------------------

    def _pass(self, cancel: threading.Event):
        def progress(done, total):
            self.progress = done / total if total else 0.0

        options = dict(layers=self._layers, batch_size=self._batch_size, progress=progress, cancel=cancel)
        try:
            if self.probe_b is None:
                return similarity.layer_similarity(self.probe_a, None, self._images, **options)
            return similarity.compare_models(self.probe_a, self.probe_b, self._images, threshold=self._threshold,
                                             **options)
        except Cancelled:
            return None  # a part of the data is not the answer asked for

    def _done(self, result):
        self.running = False
        if result is None:
            self.status = "cancelled: the last finished result stays"
            return
        self.progress = 1.0
        if self.probe_b is None:
            self.cka, paths, drift, verdicts = result, self._paths, None, None
        else:
            self.comparison = result
            self.cka, paths, drift, verdicts = result.cka, result.layers, result.drift, result.verdict
        self._draw(paths, self.cka, drift, verdicts)
        self.status = f"done: {len(paths)} layers"

    def _failed(self, exc, _traceback):
        self.running = False
        self.error = f"{type(exc).__name__}: {exc}"
        self.status = "failed"

    # -- drawing --------------------------------------------------------------------------------------------

    def _draw(self, paths, cka, drift, verdicts):
        names = [str(p) for p in paths]
        if len(names) >= 2:  # bqplot squeezes a (1, 1) colour array to a scalar it then refuses
            with self._grid.hold_sync():
                self._grid.color = cka  # first: bqplot checks row and column against the colour's shape
                self._grid.row, self._grid.column = names, names
        if drift is None:
            return
        with self._drift.hold_sync():
            self._drift.x, self._drift.y = names, np.nan_to_num(drift, nan=0.0)
        diagonal = np.diag(cka)
        # Label sets textContent: layer names from the model are never parsed as HTML.
        self._verdicts.children = [ipywidgets.Label("layer: verdict (CKA to its base self, weight drift)")] + [
            ipywidgets.Label(f"{name}: {verdict} (CKA {c:.3f}, drift {d:.3g})")
            for name, verdict, c, d in zip(names, verdicts, diagonal, drift)]

    def _show_error(self, change):
        self._error_label.value = change["new"]
        self._error_label.layout.display = "" if change["new"] else "none"

    def _check_layers(self, layers):
        """Resolve ``layers`` in both models now, so a mismatch is refused before any pass starts."""
        pa, pb = self.probe_a, self.probe_b
        if layers is None:
            if pb is not None and [i.name for i in pa.layers] != [i.name for i in pb.layers]:
                raise LayerError(f"the layers of {pa.model.name!r} and {pb.model.name!r} do not match: pass "
                                 "layers=[names in both] to compare those.")
            self._paths = [i.path for i in pa.layers]
            return None
        layers = [layers] if isinstance(layers, str) else list(layers)
        if not layers:
            raise OptionError("layers is empty: pass None for every layer, or at least one layer name.")
        self._paths = [pa.layer(n).path for n in layers]
        if pb is not None:
            for n in layers:
                pb.layer(n)  # LayerError names the missing layer
        return layers


def _heatmap(two_models: bool):
    rows, cols = bqplot.OrdinalScale(reverse=True), bqplot.OrdinalScale()
    color = bqplot.ColorScale(scheme="viridis", min=0.0, max=1.0)
    grid = bqplot.GridHeatMap(color=np.full((2, 2), np.nan), row=["", " "], column=["", " "],
                              scales={"row": rows, "column": cols, "color": color}, null_color="#eeeeee")
    axes = [bqplot.Axis(scale=cols, label="fine-tuned layer" if two_models else "layer", tick_rotate=-45),
            bqplot.Axis(scale=rows, orientation="vertical", label="base layer" if two_models else "layer"),
            bqplot.ColorAxis(scale=color, label="linear CKA", side="right")]
    fig = bqplot.Figure(marks=[grid], axes=axes, title="linear CKA",
                        fig_margin={"top": 36, "bottom": 110, "left": 120, "right": 60},
                        layout=ipywidgets.Layout(width="100%", max_width="560px", min_width="320px", height="520px"))
    return fig, grid


def _drift_figure():
    x, y = bqplot.OrdinalScale(), bqplot.LinearScale(min=0.0)
    bars = bqplot.Bars(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y}, colors=["#dd8452"], padding=0.1)
    axes = [bqplot.Axis(scale=x, tick_rotate=-45), bqplot.Axis(scale=y, orientation="vertical", num_ticks=5,
                                                              label="||W_b - W_a|| / ||W_a||")]
    fig = bqplot.Figure(marks=[bars], axes=axes, title="weight drift per layer",
                        fig_margin={"top": 36, "bottom": 110, "left": 64, "right": 16},
                        layout=ipywidgets.Layout(width="100%", max_width="460px", min_width="260px", height="360px"))
    return fig, bars
