"""LayerSimilarity: linear CKA between the layers of one model, or of a base model and its fine-tuned copy, as a
heatmap, with per-layer weight drift and a generic/specific verdict; the data pass runs on the widget's worker."""

from __future__ import annotations

import bqplot
import ipywidgets
import numpy as np
import traitlets as t

from ..core import Cancelled, CnnWidgetError, ImageError, OptionError, as_probe
from ..core import options, similarity
from . import _axes
from ._base import CnnWidget, checks, reacts
from ._esm import bundle

_PY = dict(sync=True, owner="python")


class LayerSimilarity(CnnWidget):
    """CKA between layers on a set of images, computed on a worker thread with progress and Cancel.

    ``model_a``: a Keras model or ModelProbe. ``model_b``: None compares every layer of ``model_a`` with every
    other (unit diagonal); a second model (e.g. ``model_a`` fine-tuned) compares base layer i with tuned layer j,
    and adds per-layer weight drift ||W_b - W_a|| / ||W_a|| and a verdict per layer: "generic" when the layer's
    CKA to itself across the two models is at least ``threshold`` (freeze it), "specific" below (fine-tune it).
    ``data``: display-space images (N, H, W, C), or a pair (images, labels); streamed in ``batch_size`` batches
    (minibatch CKA: memory does not grow with N). ``layers``: names or paths present in both models (default:
    every layer; two models must then have the same layer names). ``run()`` (or Run) starts the pass and
    returns its Job; the constructor starts one unless ``autostart=False`` (and returns at once: the pass runs on
    the worker; ``wait()`` blocks until it is done).

    Public traits (real traitlets: ``traitlets.link``, ``widgets.link``, ``observe`` work): ``layers`` (a list of
    names, None for every layer), settable from Python, from the widget's Layers box (names separated by commas,
    empty for every layer) or from the page: new layers are checked in both models and a pass starts; bad ones
    are refused with a message in the widget (and a CnnWidgetError in Python), and the last layers and result
    stay. Read-only: ``running``, ``progress`` ({"done", "total", "fraction"} of the batches), ``status``,
    ``error`` (the last refused value or failure, shown in the widget).
    Results: ``cka`` (L, L) float64, NaN where a layer is constant on the data; ``comparison`` (a
    core.similarity.Comparison, two models only).
    """

    _esm = bundle("panel.js")
    _worker_name = "cnnwidget-similarity"

    layers = t.List(t.Unicode(), default_value=None, allow_none=True,
                    help="the layers compared; None: every layer").tag(sync=True)
    css_class = t.Unicode("cnnw-similarity").tag(**_PY)
    body = t.Instance(ipywidgets.Widget, allow_none=True).tag(**_PY, **ipywidgets.widget_serialization)

    def __init__(self, model_a, model_b=None, data=None, layers=None, *, batch_size: int = 64,
                 threshold: float = similarity.GENERIC_THRESHOLD, autostart: bool = True):
        self.probe_a = self.probe = as_probe(model_a)
        self.probe_b = None if model_b is None or model_b is model_a else as_probe(model_b)
        try:
            self._images = self.probe_a.images(data[0] if isinstance(data, (tuple, list)) else data)
        except TypeError:
            raise ImageError("data must be images (N, H, W, C), or a pair (images, labels).") from None
        layers = self._layer_list(layers)
        self._paths = self._check_paths(layers)
        batch_size, threshold = options.positive_int("batch_size", batch_size, 4), options.fraction("threshold",
                                                                                                threshold)
        similarity.check_image_count(len(self._images), batch_size)  # too few images: refused here, not later
        self._batch_size, self._threshold = int(batch_size), float(threshold)
        self.cka: np.ndarray | None = None
        self.comparison = None
        self.run_button = ipywidgets.Button(description="Run", icon="play", layout={"width": "auto"})
        self.cancel_button = ipywidgets.Button(description="Cancel", icon="stop", disabled=True,
                                               layout={"width": "auto"})
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.layers_box = ipywidgets.Text(value=_layers_text(layers), placeholder="every layer",
                                          description="Layers", continuous_update=False,
                                          layout=ipywidgets.Layout(width="calc(100% - 4px)", max_width="560px"))
        self.layers_box.observe(self._on_layers_text, names="value")
        self._bar = ipywidgets.FloatProgress(min=0.0, max=1.0, layout={"width": "100%", "max_width": "200px"})
        self._status = ipywidgets.Label()
        self.heatmap, self._grid = _heatmap(self.probe_b is not None)
        self.drift_fig, self._drift = _drift_figure()
        self._verdicts = ipywidgets.VBox()
        # Stable classes, for tests and for anyone styling the widget.
        for widget, name in [(self.run_button, "run"), (self.cancel_button, "cancel"), (self.layers_box, "layers"),
                             (self._bar, "progress"), (self._status, "status"), (self.heatmap, "cka"),
                             (self.drift_fig, "drift"), (self._verdicts, "verdicts")]:
            widget.add_class(f"cnnw-similarity-{name}")
        extra = [self.drift_fig, self._verdicts] if self.probe_b is not None else []
        wrap = {"flex_flow": "row wrap"}  # a narrow view (JupyterLab's sidebar, ~250 px) stacks what does not fit
        body = ipywidgets.VBox([ipywidgets.HBox([self.run_button, self.cancel_button, self._bar, self._status],
                                                layout=wrap),
                                self.layers_box,
                                ipywidgets.HBox([self.heatmap, *extra], layout=wrap)])
        super().__init__(layers=layers, body=body)
        self._own(self.drift_fig, self._verdicts)  # shown for two models only, closed with the widget always
        if autostart:
            self.run()

    def _describe(self):
        layers = "every layer" if self.layers is None else f"{len(self.layers)} layers"
        other = f" vs {self.probe_b.model.name!r}" if self.probe_b is not None else ""
        return [f"{layers}{other}", f"{len(self._images)} images"]

    # -- public ---------------------------------------------------------------------------------------------

    def run(self):
        """Start the data pass on the worker (cancelling one that runs); returns its Job (``job.wait()``)."""
        with self._locked():
            layers, paths = self.layers, self._paths
            n_batches = -(-len(self._images) // self._batch_size)
            self._push(error="")
            return self._start(lambda job: self._pass(job, layers, paths),
                               progress={"done": 0, "total": n_batches, "fraction": 0.0},
                               status=f"CKA over {len(self._images)} images in {n_batches} batches...")

    def cancel(self):
        """Stop the pass at its next batch; what was shown before stays."""
        with self._locked():
            if self.running and self.job is not None and not self.job.started:
                self._push(status=_CANCELLED)  # a pass that had not begun says so too (a begun one ends saying it)
            super().cancel()

    # -- checks and reactions -------------------------------------------------------------------------------

    @checks("layers")
    def _check_layers(self, value):
        self._check_paths(value)
        return value

    @reacts("layers")
    def _on_layers(self, change):
        self._paths = self._check_paths(change["new"])
        self._show_layers()
        self.run()

    def __setattr__(self, name, value):
        if name == "layers" and "_lock" in self.__dict__:
            value = self._layer_list(value)  # a name, a tuple: the list they mean
        super().__setattr__(name, value)

    def _layer_list(self, layers):
        if isinstance(layers, str):
            return [layers]
        if layers is None:
            return None
        try:
            return [str(n) if isinstance(n, str) else n for n in layers]
        except TypeError:
            message = f"layers must be a layer name, a list of names, or None; got {layers!r}."
            if "_lock" in self.__dict__ and self.has_trait("error"):
                self._show_refusal(message)
            raise OptionError(message) from None

    def _check_paths(self, layers) -> list[str]:
        """The paths in model a of ``layers``, checked in both models now, so that a mismatch is refused before any
        pass starts; CnnWidgetError (naming what is missing where) otherwise."""
        _, _, paths, _ = similarity.paired_layers(self.probe_a, self.probe_b, layers)
        return paths

    def _show_layers(self):
        """The box shows the layers in use, whatever was typed in it."""
        with self._quietly():
            self.layers_box.value = _layers_text(self.layers)

    def _on_layers_text(self, change):
        if self._is_quiet():
            return
        names = [n.strip() for n in change["new"].split(",") if n.strip()]
        try:
            self.layers = names or None
        except CnnWidgetError:  # shown in the widget: a person typed it, there is no caller to raise to
            self._show_layers()

    # -- the pass (worker thread) ---------------------------------------------------------------------------

    def _pass(self, job, layers, paths):
        def progress(done, total):
            self._report(job, throttle=done != total,
                         progress={"done": done, "total": total, "fraction": done / total if total else 0.0},
                         status=f"CKA: batch {done} of {total or '?'}")

        common = dict(layers=layers, batch_size=self._batch_size, progress=progress, cancel=job.cancel_event)
        try:
            if self.probe_b is None:
                result = similarity.layer_similarity(self.probe_a, None, self._images, **common)
            else:
                result = similarity.compare_models(self.probe_a, self.probe_b, self._images,
                                                   threshold=self._threshold, **common)
        except Cancelled:
            return {"status": _CANCELLED}  # a part of the data is not the answer asked for
        with self._locked():
            if not self._jobs.is_current(job) or self._closed:
                return None
            if self.probe_b is None:
                self.cka, drift, verdicts = result, None, None
            else:
                self.comparison = result
                self.cka, paths, drift, verdicts = result.cka, result.layers, result.drift, result.verdict
            self._draw(paths, self.cka, drift, verdicts)
        note = similarity.stability_note(len(self._images))  # few images: the estimate is said to be unstable
        return {"progress": {**self.progress, "fraction": 1.0},
                "status": f"done: {len(paths)} layers" + (f"; {note}" if note else "")}

    # -- drawing --------------------------------------------------------------------------------------------

    @t.observe("running", "progress", "status")
    def _show_progress(self, _change):
        # Idle, the bar is empty and hidden (its place kept): ``progress`` keeps the last pass's value, and a
        # finished pass's full bar read as work in progress.
        self._bar.value = float(self.progress.get("fraction", 0.0)) if self.running else 0.0
        self._bar.layout.visibility = "visible" if self.running else "hidden"
        self._status.value = self.status
        self.run_button.disabled, self.cancel_button.disabled = self.running, not self.running

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
        old = self._verdicts.children
        # (a line too long for a narrow view ends in "…": hovering it shows it whole)
        lines = ["layer: verdict (CKA to its base self, weight drift)"] + [
            f"{name}: {verdict} (CKA {c:.3f}, " + ("no weights)" if np.isnan(d) else f"drift {d:.3g})")
            for name, verdict, c, d in zip(names, verdicts, diagonal, drift)]
        self._verdicts.children = [ipywidgets.Label(line, tooltip=line) for line in lines]
        for label in old:
            label.close()


_CANCELLED = "cancelled: the last finished result stays"


def _layers_text(layers) -> str:
    return "" if layers is None else ", ".join(str(n) for n in layers)


# The charts fit a view in JupyterLab's 300 px sidebar (~250 px wide: 246 px for a chart between ipywidgets'
# margins) and grow to their max_width in a notebook cell: margins follow the text shown (_axes.follow(fit=True)),
# layer names longer than _NAME_PX are elided on the axes (and only every k-th written where they would overlap at
# the narrowest width), and hovering a cell or a bar shows its layers whole.
_MIN_WIDTH = "220px"
_NAME_PX = 80


def _heatmap(two_models: bool):
    rows, cols = bqplot.OrdinalScale(reverse=True), bqplot.OrdinalScale()
    color = bqplot.ColorScale(scheme="viridis", min=0.0, max=1.0)
    across, down = ("fine-tuned layer", "base layer") if two_models else ("layer", "layer")
    tooltip = bqplot.Tooltip(fields=["row", "column", "color"], labels=[down, across, "linear CKA"],
                             formats=["", "", ".3f"])
    grid = bqplot.GridHeatMap(color=np.full((2, 2), np.nan), row=["", " "], column=["", " "],
                              scales={"row": rows, "column": cols, "color": color}, null_color="#eeeeee",
                              stroke=None, tooltip=tooltip)  # (black cell borders hid narrow cells' colours)
    # the axis labels go beyond the layer names (the helper measures them), the names are never cut off; the colour
    # bar's label is short ("CKA": the title says which), its margin sized to its numbers
    axes = [_axes.axis(cols, across, kind="ordinal", rotate=-45, fit_names=_NAME_PX),
            _axes.axis(rows, down, kind="ordinal", vertical=True, fit_names=_NAME_PX),
            _axes.color_axis(color, "CKA", side="right", orientation="vertical")]
    fig = bqplot.Figure(marks=[grid], axes=axes, title="linear CKA",
                        fig_margin={"top": 48, "bottom": 40, "left": 16, "right": 16},
                        layout=ipywidgets.Layout(width="100%", max_width="560px", min_width=_MIN_WIDTH,
                                                 height="520px"))
    return _axes.follow(fig, fit=True), grid


def _drift_figure():
    x, y = bqplot.OrdinalScale(), bqplot.LinearScale(min=0.0)
    tooltip = bqplot.Tooltip(fields=["x", "y"], labels=["layer", "weight drift"], formats=["", ".3g"])
    bars = bqplot.Bars(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y}, colors=["#dd8452"], padding=0.1,
                       tooltip=tooltip)
    axes = [_axes.axis(x, kind="ordinal", rotate=-45, fit_names=_NAME_PX),
            _axes.axis(y, "||W_b - W_a|| / ||W_a||", vertical=True)]
    fig = bqplot.Figure(marks=[bars], axes=axes, title="weight drift",
                        fig_margin={"top": 48, "bottom": 40, "left": 56, "right": 16},
                        layout=ipywidgets.Layout(width="100%", max_width="460px", min_width=_MIN_WIDTH,
                                                 height="360px"))
    return _axes.follow(fig, fit=True), bars
