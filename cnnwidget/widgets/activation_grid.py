"""ActivationGrid: every channel of a layer for one input, a depth strip of all layers, and per-channel stats."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import anywidget
import bqplot
import ipywidgets
import numpy as np
import traitlets as t

from ..core import CnnWidgetError, ImageError, OptionError, as_probe
from ..core.activations import channel_order, channel_stats, depth_strip, fit_within, resize
from . import _transport
from ._esm import bundle
from ._viewbox import ViewTraits

# The view's traits a person reads, sets or observes on the grid itself (see ActivationGrid.observe).
_SHARED = ("layer", "image_index", "selected_channel", "page", "page_size", "sort", "colormap", "normalization",
           "overlay", "overlay_opacity", "error", "status")


class _GridView(anywidget.AnyWidget):
    """The canvas view (js/activation_grid.js); its byte traits follow docs/wire-format.md."""

    _esm = bundle("activation_grid.js")

    layers = t.List(t.Dict()).tag(sync=True)
    layer = t.Unicode("").tag(sync=True)
    n_images = t.Int(1).tag(sync=True)
    image_index = t.Int(0).tag(sync=True)
    image = t.Bytes(b"").tag(sync=True)
    image_shape = t.List(t.Int()).tag(sync=True)
    tiles = t.Bytes(b"").tag(sync=True)
    tile_ranges = t.Bytes(b"").tag(sync=True)
    tile_meta = t.Dict().tag(sync=True)
    focus = t.Bytes(b"").tag(sync=True)
    focus_meta = t.Dict().tag(sync=True)
    strip = t.Bytes(b"").tag(sync=True)
    strip_meta = t.Dict().tag(sync=True)
    selected_channel = t.Int(-1).tag(sync=True)
    page = t.Int(0).tag(sync=True)
    page_size = t.Int(64).tag(sync=True)
    sort = t.Unicode("index").tag(sync=True)
    colormap = t.Unicode("viridis").tag(sync=True)
    normalization = t.Unicode("channel").tag(sync=True)
    overlay = t.Bool(False).tag(sync=True)
    overlay_opacity = t.Float(0.6).tag(sync=True)
    predictions = t.List(t.Dict()).tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    status = t.Unicode("").tag(sync=True)


class ActivationGrid(ViewTraits, ipywidgets.HBox):
    """Every channel of one layer's output for one image, drawn on a canvas, with a depth strip and channel stats.

    ``model_or_probe``: a Keras model or a ``ModelProbe``. ``images``: (N, H, W, C) or (H, W, C) in the probe's
    display range. ``layer``: a layer path or name (default: the first convolution). ``page_size`` tiles are
    sent per page; feature maps larger than ``max_tile`` pixels a side are area-downsampled for the grid (the
    enlarged channel is sent at up to 256 a side). Colour map and normalization are applied in the browser.

    Traits a person can read, set or observe: ``layer``, ``image_index``, ``selected_channel`` (the clicked
    channel, -1 for none), ``page``, ``page_size``, ``sort`` ("index" or "mean"), ``colormap``, ``normalization``
    ("channel" or "layer"), ``overlay``, ``overlay_opacity``, ``error`` (the last bad-input message, shown in the
    widget), ``status``.
    """

    _view_traits = _SHARED

    def __init__(self, model_or_probe, images, layer=None, *, page_size: int = 64, max_tile: int = 64,
                 thumbnail: int = 32, **probe_options):
        self.probe = as_probe(model_or_probe, **probe_options)
        self._batch = self.probe.images(images)
        self._max_tile, self._thumb = int(max_tile), int(thumbnail)
        self._acts: OrderedDict = OrderedDict()  # layer path -> (N, ...) outputs, a few layers kept
        self._strips: dict = {}  # image index -> (uint8 bytes, meta); one image's strip costs a third of a pass
        self._probs = None
        # JupyterLab may deliver the browser's changes on a kernel subshell thread while a cell runs on the main
        # one: one change at a time, so caches and the revert flag stay consistent.
        self._lock = threading.RLock()
        infos = self.probe.layers
        start = self.probe.layer(layer).path if layer is not None else _default_layer(infos)
        first, stats = self._state(start, 0, 0, -1, int(page_size), "index")
        # The first state goes in the view's comm_open, so the browser gets the grid in one message.
        self.view = _GridView(
            layers=[{"name": i.path, "shape": list(i.output_shape), "spatial": i.is_spatial} for i in infos],
            n_images=len(self._batch), page_size=int(page_size), **first,
        )
        self.chart = _stats_chart()
        self._update_chart(start, *stats)
        super().__init__(children=[self.view, self.chart], layout=ipywidgets.Layout(flex_flow="row wrap"))
        self.view.observe(self._on_change,
                          names=["layer", "image_index", "page", "page_size", "sort", "selected_channel"])

    # -- public --------------------------------------------------------------------------------------------------

    @property
    def images(self) -> np.ndarray:
        """The batch shown, float32 (N, H, W, C) in display space."""
        return self._batch

    @images.setter
    def images(self, images):
        with self._lock:
            self._set_images(images)

    def _set_images(self, images):
        try:
            batch = self.probe.images(images)
        except ImageError as exc:
            self.error = str(exc)
            raise
        self._batch, self._acts, self._strips, self._probs = batch, OrderedDict(), {}, None
        self.view.n_images = len(batch)
        self._show(layer=self.layer, image_index=min(self.image_index, len(batch) - 1), page=self.page)

    def activations(self, layer=None) -> np.ndarray:
        """Outputs of ``layer`` (default: the one shown) for the whole batch, (N, H, W, C) or (N, C)."""
        path = self.probe.layer(layer or self.layer).path
        with self._lock:
            return self._cached_activations(path)

    def _cached_activations(self, path: str) -> np.ndarray:
        if path not in self._acts:
            self._acts[path] = self.probe.activations(self._batch, [path])[path]
            while len(self._acts) > 4:  # bound memory on large models
                self._acts.popitem(last=False)
        self._acts.move_to_end(path)
        return self._acts[path]

    # -- reacting to changes -------------------------------------------------------------------------------------

    def _on_change(self, change):
        with self._lock:
            self._react(change)

    def _react(self, change):
        if self._reverting:
            return
        name, old = change["name"], change["old"]
        # ipywidgets holds a property lock while it applies the browser's update: raising then would only reach
        # the kernel log, so a browser-made mistake is shown in the widget alone, a Python-made one also raises.
        from_browser = bool(getattr(self.view, "_property_lock", None))
        try:
            if name == "selected_channel":
                self._show_focus()
            else:
                page = 0 if name in ("layer", "sort", "page_size") else self.page
                self._show(self.layer, self.image_index, page)
        except CnnWidgetError as exc:
            self.error = str(exc)
            with self._quiet():
                setattr(self.view, name, old)  # keep showing what was there: nothing lost
            if not from_browser:
                raise

    def _show(self, layer: str, image_index: int, page: int):
        """Compute everything for one (layer, image, page) first, then send it in one message."""
        state, stats = self._state(layer, image_index, page, self.selected_channel, self.page_size, self.sort)
        with self.view.hold_sync():
            with self._quiet():
                for name, value in state.items():
                    setattr(self.view, name, value)
        self._update_chart(state["layer"], *stats)

    def _show_focus(self):
        state = self._focus_state(self.activations(self.layer)[self.image_index], self.selected_channel)
        with self.view.hold_sync():
            for name, value in state.items():
                setattr(self.view, name, value)

    def _state(self, layer: str, image_index: int, page: int, selected: int, page_size: int,
               sort: str) -> tuple[dict, tuple]:
        """The view's traits for one (layer, image, page, selected channel), and the chart's (means, zeros).

        Raises a CnnWidgetError for a bad layer or index before anything is changed.
        """
        path = self.probe.layer(layer).path
        n = len(self._batch)
        if not 0 <= image_index < n:
            raise OptionError(f"image_index must be between 0 and {n - 1} for this batch of {n}; got {image_index}.")
        if page_size < 1:
            raise OptionError(f"page_size must be at least 1; got {page_size}.")
        maps = self.activations(path)[image_index]
        means, zeros = channel_stats(maps)
        order = channel_order(means, sort)
        if maps.ndim == 3:
            n_pages = max(1, -(-len(order) // page_size))
            page = min(max(page, 0), n_pages - 1)
            shown = order[page * page_size:(page + 1) * page_size]
            stack = np.moveaxis(maps[..., shown], -1, 0)
            stack = resize(stack, *fit_within(*stack.shape[1:], self._max_tile))
            source = maps.shape[:2]
        else:
            # A vector layer is one square tile, unit shown[i] at pixel i (row by row), on one shared range:
            # one-pixel tiles would each be normalized to a single colour and cost 8 bytes of range per byte.
            n_pages, page, shown = 1, 0, order
            side = max(1, math.isqrt(len(order) - 1) + 1)
            square = np.full(side * side, np.nan, np.float32)  # padding is drawn as the minimum
            square[:len(order)] = maps[order]
            stack, source = square.reshape(1, side, side), (1, 1)
        tiles, ranges = _transport.quantize(stack)
        strip, strip_meta = self._strip_for(image_index)
        image = self._batch[image_index]
        selected = selected if selected < len(order) else -1  # a channel the new layer does not have
        state = {
            "layer": path, "image_index": image_index, "page": page, "selected_channel": selected,
            "tiles": tiles, "tile_ranges": ranges,
            "tile_meta": {
                "k": int(stack.shape[0]), "h": int(stack.shape[1]), "w": int(stack.shape[2]),
                "channels": [int(c) for c in shown], "n_channels": int(len(order)), "page": int(page),
                "n_pages": int(n_pages), "source_h": int(source[0]), "source_w": int(source[1]),
                "vector": bool(maps.ndim == 1),
            },
            "image": _transport.image_bytes(image, self.probe.input_range),
            "image_shape": [int(image.shape[0]), int(image.shape[1])],
            "strip": strip, "strip_meta": strip_meta,
            "predictions": self._top_predictions(image_index),
            **self._focus_state(maps, selected),
            "error": "",
        }
        return state, (means, zeros)

    def _focus_state(self, maps: np.ndarray, channel: int) -> dict:
        """The enlarged channel at up to 256 pixels a side, or nothing for channel -1."""
        if channel < 0:
            return {"focus": b"", "focus_meta": {}}
        channels = maps.shape[-1]
        if channel >= channels:
            raise OptionError(
                f"selected_channel must be between 0 and {channels - 1} for this layer; got {channel}.")
        if maps.ndim == 1:  # a unit of a vector layer has no map to enlarge: its value is the whole story
            value = float(maps[channel])
            return {"focus": b"", "focus_meta": {"channel": int(channel), "h": 0, "w": 0, "lo": value, "hi": value,
                                                 "vector": True}}
        one = maps[..., channel]
        h, w = fit_within(*one.shape, 256)
        data, ranges = _transport.quantize(resize(one, h, w)[None])
        lo, hi = np.frombuffer(ranges, "<f4")
        return {"focus": data,
                "focus_meta": {"channel": int(channel), "h": int(h), "w": int(w), "lo": float(lo), "hi": float(hi)}}

    def _top_predictions(self, image_index: int, k: int = 5) -> list[dict]:
        if self._probs is None:
            self._probs = self.probe.predict(self._batch)
        probs, names = self._probs[image_index], self.probe.class_names
        return [{"label": names[i], "p": float(probs[i])} for i in np.argsort(-probs)[:k]]

    def _strip_for(self, image_index: int):
        if image_index not in self._strips:
            thumbs, paths = depth_strip(self.probe, self._batch[image_index:image_index + 1], self._thumb)
            data, _ = _transport.quantize(thumbs[0])
            shapes = {i.path: list(i.output_shape) for i in self.probe.layers}
            self._strips[image_index] = data, {"t": self._thumb, "layers": paths, "shapes": [shapes[p] for p in paths]}
        return self._strips[image_index]

    def _update_chart(self, path: str, means: np.ndarray, zeros: np.ndarray):
        bars, dots = self.chart.marks
        with bars.hold_sync(), dots.hold_sync():
            if len(bars.x) != len(means):  # the x axis only changes with the channel count
                bars.x = dots.x = np.arange(len(means), dtype=np.float32)
            bars.y, dots.y = means.astype(np.float32), zeros.astype(np.float32)
        self.chart.title = path


def _default_layer(infos) -> str:
    """The first convolution's output (what a person first looks at), else the first spatial layer."""
    spatial = [i for i in infos if i.is_spatial]
    convs = [i for i in spatial if "Conv" in i.class_name]
    return (convs or spatial)[0].path


def _stats_chart() -> bqplot.Figure:
    """Per-channel mean activation (bars) and fraction of activations <= 0 (dots: channels are not a sequence)."""
    x = bqplot.LinearScale()
    y_mean, y_zero = bqplot.LinearScale(), bqplot.LinearScale(min=0.0, max=1.0, allow_padding=False)
    bars = bqplot.Bars(x=np.zeros(0, np.float32), y=np.zeros(0, np.float32), scales={"x": x, "y": y_mean},
                       colors=["#4c72b0"], padding=0.1)
    dots = bqplot.Scatter(x=np.zeros(0, np.float32), y=np.zeros(0, np.float32), scales={"x": x, "y": y_zero},
                          colors=["#dd8452"], default_size=12)
    axes = [
        bqplot.Axis(scale=x, label="channel", num_ticks=5),
        bqplot.Axis(scale=y_mean, orientation="vertical", label="mean (bars)", color="#4c72b0", num_ticks=5),
        bqplot.Axis(scale=y_zero, orientation="vertical", side="right", label="<= 0 (dots)", tick_format=".0%",
                    color="#dd8452", num_ticks=5),
    ]
    return bqplot.Figure(marks=[bars, dots], axes=axes, title="",
                         layout=ipywidgets.Layout(width="100%", max_width="440px", min_width="240px", height="260px"),
                         fig_margin={"top": 36, "bottom": 36, "left": 56, "right": 56})
