"""TrainingMonitor: loss curves, per-layer gradient norms, update ratios, dead units and warnings, live during fit."""

from __future__ import annotations

import time

import bqplot
import ipywidgets
import numpy as np
import traitlets as t

from ..core import OptionError
from ..core.diagnostics import DiagnosticsCallback
from . import _axes
from ._base import CnnWidget, checks, reacts
from ._esm import bundle

_MAX_COLUMNS = 120  # probe steps shown in the heatmap: one SVG cell each, so the newest ones only


class TrainingMonitor(CnnWidget):
    """Live training health for ``model.fit(..., callbacks=[monitor.callback])``.

    ``probe_data``: (images, labels), a fixed batch in what ``fit`` takes (e.g. ``(x[:64], y[:64])``); gradient
    norms, dead units and activation histograms are measured on it every ``every`` steps. Optional: Keras
    callbacks never see the training batches, so without it (``TrainingMonitor()``) those three are replaced by a
    message saying to pass it, and the rest is shown as usual, with the warnings that need no data (overfitting,
    underfitting, exploding from a non-finite loss or weights). The other options are those of
    ``cnnwidget.core.diagnostics.DiagnosticsCallback`` (``bins``, ``smoothing``, ``warn``, ``thresholds``,
    ``verbose``). ``budget`` (default 0.1): the probe steps take at most about this share of the fit's time: a
    probe step due every ``every`` steps waits while it would take more (see DiagnosticsCallback ``budget``; the
    first probe step's one-off trace is not counted), and the status line says how many waited; None probes
    every ``every`` steps whatever they cost. ``max_rate``: at most this many redraws a second while batches
    arrive (an epoch's end, a warning and the end of fit always redraw), so a fast fit is not slowed by its own
    display.

    Shows: per-batch loss (raw and smoothed) against the step; per-epoch loss and val_loss, and the other
    metrics; log10 ||update|| / ||weight|| per weight layer at the latest probe step; a weight histogram of a
    chosen layer at a chosen probe step; the warnings as text. With probe data, also: log10 gradient norm per
    weight layer (rows) and probe step (columns, the newest 120), the dead fraction per activation layer at the
    latest probe step, and activation histograms.
    Data: ``warnings``, ``history`` (dict of numpy arrays), ``to_dataframe(what)``, ``save(path)``.
    Public traits (real traitlets: ``traitlets.link``, ``widgets.link``, ``observe`` work): ``histogram_layer``
    (e.g. "weights: conv1" or "activations: conv2", one of the histogram picker's options; None before the first
    probe step) and ``histogram_step`` (the probe step shown, 0 .. probe steps - 1), both refused with a message
    when out of range; read-only: ``status`` (step and epoch), ``error`` (the last refused value, also shown).
    """

    _esm = bundle("panel.js")

    histogram_layer = t.Unicode(None, allow_none=True, help='the histogram shown: "weights: <layer>" or '
                                                            '"activations: <layer>"').tag(sync=True)
    histogram_step = t.Int(0, help="the probe step of the histogram").tag(sync=True)
    css_class = t.Unicode("cnnw-monitor").tag(sync=True, owner="python")
    body = t.Instance(ipywidgets.Widget, allow_none=True).tag(sync=True, owner="python",
                                                              **ipywidgets.widget_serialization)

    def __init__(self, probe_data=None, *, every: int = 50, bins: int = 32, smoothing: float = 0.9, warn=None,
                 thresholds=None, verbose: int = 0, max_rate: float = 4.0, budget: float | None = 0.1):
        self.callback = DiagnosticsCallback(probe_data, every=every, bins=bins, smoothing=smoothing, warn=warn,
                                            thresholds=thresholds, verbose=verbose, budget=budget)
        self._interval = 1.0 / float(max_rate) if max_rate and max_rate > 0 else 0.0
        self._last_draw = 0.0
        self._epoch = None
        self.draws = 0  # redraws so far: the throttle is tested on it
        self.batch_fig, (self._raw, self._smooth) = _lines_figure("batch loss", "step", 2, ["loss", "smoothed"],
                                                                  ["#c7d4e8", "#1f4e9c"])
        self.loss_fig, (self._epoch_loss,) = _lines_figure("epoch loss", "epoch", 1)
        self.metric_fig, (self._epoch_metric,) = _lines_figure("epoch metrics", "epoch", 1)
        self.ratio_fig, self._ratio = _bars_figure("log10 update / weight", None, labels=("layer, latest probe", ""),
                                                   tooltip=("layer", "log10 update / weight"))
        if probe_data is not None:
            self.grad_fig, self._grad = _grid_figure()
            self.dead_fig, self._dead = _bars_figure("dead unit fraction", (0.0, 1.0),
                                                     labels=("layer, latest probe", ""),
                                                     tooltip=("layer", "dead fraction"))
            probe_row = [self.grad_fig, self.ratio_fig, self.dead_fig]
        else:  # nothing to draw them from: say how to get them instead of showing empty charts
            self.grad_fig = self._grad = self.dead_fig = self._dead = None
            self.no_probe_note = ipywidgets.HTML(f"<p>{_NO_PROBE_DATA}</p>", layout={"max_width": "460px"})
            self.no_probe_note.add_class("cnnw-monitor-no-probe")
            probe_row = [self.no_probe_note, self.ratio_fig]
        # controls within a narrow view (JupyterLab's sidebar leaves ~250 px): as wide as the view less ipywidgets'
        # 2 px margins, up to 320 px
        self.hist_layer = ipywidgets.Dropdown(description="histogram", options=[],
                                              layout={"width": _FULL, "max_width": "320px"})
        self.hist_step = ipywidgets.IntSlider(description="probe", min=0, max=0, continuous_update=False,
                                              layout={"width": _FULL, "max_width": "320px"})
        self.hist_fig, self._hist = _bars_figure("histogram", None, x_scale=bqplot.LinearScale(), y_kind="count",
                                                   labels=("value", "count"))
        for fig, name in ((self.batch_fig, "batch-loss"), (self.loss_fig, "epoch-loss"), (self.grad_fig, "grad-norms"),
                          (self.ratio_fig, "update-ratio"), (self.dead_fig, "dead-units"), (self.hist_fig, "histogram"),
                          (self.metric_fig, "epoch-metrics")):
            if fig is not None:
                fig.add_class(f"cnnw-monitor-{name}")  # stable hooks for page tests and user CSS
        self._warning_box = ipywidgets.VBox()
        self._status_label = ipywidgets.Label()
        row = dict(layout=ipywidgets.Layout(flex_flow="row wrap"))
        # The warnings first, under the status: they are what a person must not miss, and below four rows of charts
        # they were off screen (a first-time user never saw the dead-unit warning).
        body = ipywidgets.VBox([
            self._status_label,
            self._warning_box,
            ipywidgets.HBox([self.batch_fig, self.loss_fig, self.metric_fig], **row),
            ipywidgets.HBox(probe_row, **row),
            ipywidgets.HBox([ipywidgets.VBox([self.hist_layer, self.hist_step],
                                             layout={"width": "100%", "max_width": "330px"}), self.hist_fig], **row),
        ])
        super().__init__(body=body)
        # the picker and the slider are the page's way to set the two traits; a value they cannot hold is refused
        self._control_links = [t.link((self, "histogram_layer"), (self.hist_layer, "value")),
                               t.link((self, "histogram_step"), (self.hist_step, "value"))]
        self._unsubscribe = self.callback.on_update(self._on_update)

    def _describe(self):
        h = self.callback.history
        return [f"{len(h['step'])} steps", f"{len(h['probe_step'])} probe steps"]

    def close(self):
        """Stop following the fit and close every part (charts, controls)."""
        unsubscribe = self.__dict__.pop("_unsubscribe", None)
        if unsubscribe is not None:  # not when the constructor refused its options
            unsubscribe()
        for link in self.__dict__.pop("_control_links", ()):
            link.unlink()
        super().close()

    @checks("histogram_layer")
    def _check_histogram_layer(self, value):
        if value is not None and value not in self.hist_layer.options:
            raise OptionError(f"histogram_layer must be one of {list(self.hist_layer.options)}; got {value!r}.")
        return value

    @checks("histogram_step")
    def _check_histogram_step(self, value):
        if not 0 <= value <= self.hist_step.max:
            raise OptionError(f"histogram_step must be between 0 and {self.hist_step.max} (the probe steps so "
                              f"far); got {value}.")
        return value

    @reacts("histogram_layer", "histogram_step")
    def _on_histogram(self, change):
        self._push(error="")
        self._draw_histogram(self.callback.history)

    # -- data -------------------------------------------------------------------------------------------------

    @property
    def warnings(self) -> list:
        """Every warning raised so far: [Warning(kind, layer, step, message)] (see core.diagnostics)."""
        return self.callback.warnings

    @property
    def history(self) -> dict:
        """Everything recorded, as a dict of numpy arrays (shapes in DiagnosticsCallback.history)."""
        return self.callback.history

    def to_dataframe(self, what: str = "epochs"):
        """The history as a pandas DataFrame: what = "epochs", "batches" or "probes"."""
        return self.callback.to_dataframe(what)

    def save(self, path) -> None:
        """Write history and warnings to an ``.npz`` file (``cnnwidget.core.diagnostics.load`` reads it)."""
        self.callback.save(path)

    def refresh(self) -> None:
        """Redraw everything from the recorded history (e.g. after reopening a finished run)."""
        self._draw(self.callback.history)

    # -- updates ----------------------------------------------------------------------------------------------

    def _on_update(self, update: dict):
        # Called on the training thread by the callback; traits set here leave as comm messages at once, while
        # the cell is busy. Batches come fast, so they redraw at most every ``_interval`` seconds.
        kind = update["kind"]
        if kind == "epoch":
            self._epoch = update["epoch"]
        now = time.monotonic()
        if kind in ("batch", "probe") and now - self._last_draw < self._interval:
            return
        self._last_draw = now
        self._draw(self.callback.history)

    def _draw(self, h: dict):
        self.draws += 1
        steps = h["step"]
        with self._raw.hold_sync(), self._smooth.hold_sync():
            self._raw.x, self._raw.y = steps, h["batch_loss"]
            self._smooth.x, self._smooth.y = steps, h["batch_loss_smoothed"]
        self._draw_epochs(h)
        self._draw_probes(h)
        self._draw_warnings()
        epoch = "" if self._epoch is None else f", epoch {self._epoch + 1} done"
        status = f"step {int(steps[-1]) if len(steps) else 0}{epoch}, {len(h['probe_step'])} probe steps"
        deferred = self.callback.deferred
        if deferred:  # the probe steps are not every `every` steps: say so where the count is read
            status += (f" ({deferred} put off to keep probing within {100 * self.callback.budget:g}% of the fit's "
                       "time)")
        self._push(status=status)
        # (a narrow view ends a long line in "…": hovering it shows it whole)
        self._status_label.value = self._status_label.tooltip = status

    def _draw_epochs(self, h: dict):
        keys = [k.split("/", 1)[1] for k in h if k.startswith("epoch/")]
        losses = [k for k in keys if k in ("loss", "val_loss")]
        metrics = [k for k in keys if k not in losses and not k.endswith("learning_rate")]
        epochs = h["epoch"] + 1
        for line, names in ((self._epoch_loss, losses), (self._epoch_metric, metrics)):
            # a line needs two points, and bqplot would squeeze a one-epoch (lines, 1) array to the wrong shape
            if not names or len(epochs) < 2:
                continue
            _place_legend(self.metric_fig if line is self._epoch_metric else self.loss_fig, names)
            with line.hold_sync():
                line.labels = names
                line.colors = _PALETTE[:len(names)] or _PALETTE[:1]
                line.x, line.y = epochs, np.stack([h[f"epoch/{k}"] for k in names])

    def _draw_probes(self, h: dict):
        if not len(h["probe_step"]):
            return
        grad = h["grad_norm"][-_MAX_COLUMNS:]
        # bqplot squeezes a color array with a length-1 axis, so the grid starts at 2 layers and 2 probe steps
        if self._grad is not None and min(grad.shape) >= 2:
            with np.errstate(divide="ignore", invalid="ignore"):
                color = np.log10(grad).T  # (layers, steps): rows are layers
            with self._grad.hold_sync():
                # color first: bqplot checks row and column against the color shape already set
                self._grad.color = np.where(np.isfinite(color), color, np.nan)
                self._grad.row = [str(p) for p in h["weight_layers"]]
                self._grad.column = h["probe_step"][-_MAX_COLUMNS:]
                self._grad.visible = True
        with np.errstate(divide="ignore"):
            ratio = np.log10(np.maximum(h["update_ratio"][-1], 1e-12))
        _set_bars(self._ratio, list(h["weight_layers"]), ratio)
        if self._dead is not None:
            _set_bars(self._dead, list(h["activation_layers"]), h["dead_fraction"][-1])
        options = [f"weights: {p}" for p in h["weight_layers"]] + [f"activations: {p}" for p in h["activation_layers"]]
        with self._quietly():  # the widget's own choice: no reaction (the histogram is drawn below)
            at_end = self.hist_step.value == self.hist_step.max
            if list(self.hist_layer.options) != options:
                self.hist_layer.options = options
                if self.hist_layer.value is None:
                    self.hist_layer.value = options[0]
            self.hist_step.max = len(h["probe_step"]) - 1
            if at_end:  # follow the newest probe step unless a person went back to an earlier one
                self.hist_step.value = self.hist_step.max
        self._draw_histogram(h)

    def _draw_histogram(self, h: dict):
        choice, p = self.histogram_layer, self.histogram_step
        if not choice or p >= len(h["probe_step"]):
            return
        which, path = choice.split(": ", 1)
        prefix = "weight" if which == "weights" else "activation"
        i = list(h[f"{prefix}_layers"]).index(path)
        edges = h[f"{prefix}_edges"][i]
        with self._hist.hold_sync():
            self._hist.x = (edges[:-1] + edges[1:]) / 2
            self._hist.y = h[f"{prefix}_hist"][p, i]
        # the layer's name elided to fit the chart's narrowest title (the picker above holds it whole)
        self.hist_fig.title = f"{_axes.elide(path, _TITLE_NAME_PX, 18)} at step {int(h['probe_step'][p])}"
        _axes.refresh(self.hist_fig)  # room above the plot area for a title this wide

    def _draw_warnings(self):
        warnings = self.callback.warnings
        if len(warnings) != len(self._warning_box.children):
            # Label sets textContent: layer names from the model are never parsed as HTML.
            lines = [f"{w.kind} at step {w.step}: {w.message}" for w in warnings]
            self._warning_box.children = [ipywidgets.Label(line, tooltip=line) for line in lines]


_NO_PROBE_DATA = ("Gradient norms, dead units and activation histograms are measured on a fixed probe batch, "
                  "which Keras does not hand to callbacks: pass probe_data=(x, y), for example the first 64 "
                  "training examples, to TrainingMonitor to see them.")
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


# Charts fit a view in JupyterLab's 300 px sidebar (~250 px wide: 246 px for a chart between ipywidgets' margins) and
# grow to their max_width in a notebook cell; margins follow the text shown (_axes.follow(fit=True)), layer names
# longer than _NAME_PX are elided on the axes and shown whole on hover (tooltips), titles are short enough for the
# narrowest chart (bqplot centres an 18 px title over the plot area).
_MIN_WIDTH = "220px"
_NAME_PX = 80
# 'block4_relu at step 12' whole at 18 px in a 246 px chart (at 80 px the name lost its block number: 'blo…relu')
_TITLE_NAME_PX = 130
_FULL = "calc(100% - 4px)"  # a control as wide as its box: 100% and ipywidgets' 2 px margins ran 4 px past it


def _figure(**options) -> bqplot.Figure:
    """A chart of the monitor's size (a Layout of its own: a shared one would be closed with the first monitor)."""
    return bqplot.Figure(fig_margin={"top": 48, "bottom": 40, "left": 56, "right": 16},
                         layout=ipywidgets.Layout(width="100%", max_width="460px", min_width=_MIN_WIDTH,
                                                  height="260px"),
                         **options)


def _place_legend(fig, names):
    """Top right, unless bqplot's legend box (2 em wider than the longest name, in 16 px ems) is wider than the
    chart's plot area in a sidebar view (_axes.NARROW_PX): then top left, where the names start inside the plot
    area (top right, they started left of it, over the y axis's numbers: bqplot's box was 224 px for
    "val_accuracy" in a 174 px plot area), without the box, whose end would run past the chart."""
    narrowest = _axes.NARROW_PX - fig.fig_margin.get("left", 0) - fig.fig_margin.get("right", 0)
    wide = 16 * (max((len(n) for n in names), default=0) + 2) > narrowest
    location, style = ("top-left", {"fill": "none", "stroke": "none"}) if wide else \
        ("top-right", {})
    if fig.legend_location != location or fig.legend_style != style:
        with fig.hold_sync():
            fig.legend_location, fig.legend_style = location, style


def _lines_figure(title, x_label, n, labels=None, colors=None):
    x, y = bqplot.LinearScale(), bqplot.LinearScale()
    if n == 2:  # the raw loss as one faint line under the smoothed one, so each keeps its own colour
        lines = [bqplot.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y}, labels=[label],
                              colors=[color], display_legend=True) for label, color in zip(labels, colors)]
    else:  # (one Lines made and dropped would stay open: a leak of one widget a monitor)
        lines = [bqplot.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y}, labels=labels or [],
                              colors=colors or _PALETTE, display_legend=True)]
    axes = [_axes.axis(x, x_label, kind="integer"), _axes.axis(y, vertical=True)]  # steps and epochs are whole
    fig = _axes.follow(_figure(marks=lines, axes=axes, title=title, legend_location="top-right"), fit=True)
    if labels:
        _place_legend(fig, labels)
    return fig, lines


def _grid_figure():
    rows, cols, color = bqplot.OrdinalScale(), bqplot.OrdinalScale(), bqplot.ColorScale(scheme="viridis")
    # color first: bqplot checks row and column against the color shape already set
    tooltip = bqplot.Tooltip(fields=["row", "column", "color"], labels=["layer", "probe step", "log10 |grad|"],
                             formats=["", "", ".3f"])
    grid = bqplot.GridHeatMap(color=np.full((2, 2), np.nan), row=["", " "], column=[0, 1],
                              scales={"row": rows, "column": cols, "color": color}, null_color="#eeeeee",
                              visible=False,  # until data: an all-NaN grid on an unbounded colour scale draws black
                              stroke=None, tooltip=tooltip)  # (black cell borders hid narrow cells' colours)
    # Probe steps and layer names as many as fit at the narrowest width and the height (the others on hover); the
    # colour bar's label short ("log10": the title says of what), its margin sized to its numbers.
    axes = [_axes.axis(cols, "probe step", kind="ordinal", fit_names=_NAME_PX),
            _axes.axis(rows, kind="ordinal", vertical=True, fit_names=_NAME_PX),
            _axes.color_axis(color, "log10", side="right", orientation="vertical")]
    fig = bqplot.Figure(marks=[grid], axes=axes, title="gradient norm per layer",
                        fig_margin={"top": 36, "bottom": 40, "left": 16, "right": 16},
                        layout=ipywidgets.Layout(width="100%", max_width="560px", min_width=_MIN_WIDTH, height="400px"))
    # (bqplot draws a vertical colour bar 200px shorter than the plot area: 400px leaves it 124px for its ticks)
    return _axes.follow(fig, fit=True), grid


def _bars_figure(title, y_range, x_scale=None, y_kind="real", labels=("", ""), tooltip=None):
    x = x_scale or bqplot.OrdinalScale()
    y = bqplot.LinearScale(**({"min": y_range[0], "max": y_range[1]} if y_range else {}))
    hover = None if tooltip is None else bqplot.Tooltip(fields=["x", "y"], labels=list(tooltip), formats=["", ".3g"])
    bars = bqplot.Bars(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y}, colors=["#4c72b0"], padding=0.1,
                       tooltip=hover)
    axes = [_axes.axis(x, labels[0], kind="ordinal", rotate=-30, fit_names=_NAME_PX) if x_scale is None
            else _axes.axis(x, labels[0]),
            _axes.axis(y, labels[1], kind=y_kind, vertical=True)]
    return _axes.follow(_figure(marks=[bars], axes=axes, title=title), fit=True), bars


def _set_bars(bars, names, values):
    with bars.hold_sync():
        bars.x, bars.y = [str(n) for n in names], np.asarray(values, np.float64)
