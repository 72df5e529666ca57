"""FilterGrid: a convolution layer's learned kernels as images, per-input-channel tiles or norms, with a histogram."""

from __future__ import annotations

import threading

import anywidget
import bqplot
import ipywidgets
import numpy as np
import traitlets as t

from ..core import CnnWidgetError, LayerError, OptionError, as_probe
from ..core import filters
from ._esm import bundle
from ._viewbox import ViewTraits

_CONV_CLASSES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")  # the layers core.filters takes kernels from
_SHOWS = ("kernels", "norms")


class _FilterView(anywidget.AnyWidget):
    """The canvas view (js/filter_grid.js).

    tiles: uint8 bytes of (k, h, w, c): c = 3 for RGB kernel images, c = 1 for colour-map indices (coolwarm for
    kernels, 0..254 with 127 = a zero weight; viridis for norms, 0..255 = 0..the largest norm). meta: k, h, w, c, cols (tiles
    a row), per_input (one row per output filter), view, inputs (input channels of the layer's filters), filters
    (the output-filter indices shown), scale (max |weight| of each shown filter: weight = (byte - 127) / 127 *
    scale, so a zero weight is exact; for norms, the largest norm). The view reads hover values back from these (docs/wire-format.md).
    """

    _esm = bundle("filter_grid.js")

    layers = t.List(t.Unicode()).tag(sync=True)
    layer = t.Unicode("").tag(sync=True)
    show = t.Unicode("kernels").tag(sync=True)
    page = t.Int(0).tag(sync=True)
    n_pages = t.Int(1).tag(sync=True)
    tiles = t.Bytes(b"").tag(sync=True)
    meta = t.Dict().tag(sync=True)
    error = t.Unicode("").tag(sync=True)


class FilterGrid(ViewTraits, ipywidgets.VBox):
    """The learned filters of one convolution layer, paged, and a histogram of its kernel weights.

    ``model_or_probe``: a Keras model or ModelProbe. ``layer``: a convolution layer's path or name (default: the
    first). A layer reading 3 (or 1) channels shows each output filter as one RGB (grey) image; a deeper layer
    shows one row per output filter of one tile per input channel, ``grid_page_size`` filters a page; ``show =
    "norms"`` shows instead the (out, in) matrix of kernel L2 norms in one tile. Display scaling is per output
    filter (see cnnwidget.core.filters). ``bins``: histogram bins.

    Traits (on the view, forwarded here): ``layer``, ``show`` ("kernels" or "norms"), ``page``, ``error`` (the
    last bad-input message, shown in the widget).
    """

    _view_traits = ("layer", "show", "page", "error")

    def __init__(self, model_or_probe, layer=None, *, image_page_size: int = 64, grid_page_size: int = 16,
                 bins: int = 50):
        self.probe = as_probe(model_or_probe)
        if int(image_page_size) < 1 or int(grid_page_size) < 1:
            raise OptionError("image_page_size and grid_page_size must be positive numbers of filters.")
        self._sizes = (int(image_page_size), int(grid_page_size))
        self._bins = int(bins)
        convs = [i.path for i in self.probe.layers if i.class_name in _CONV_CLASSES]
        if not convs:
            raise LayerError(f"{self.probe.model.name!r} has no convolution layer whose filters could be shown.")
        self._lock = threading.RLock()  # browser changes may arrive on another thread while a cell runs
        start = self.probe.layer(layer).path if layer is not None else convs[0]
        self.view = _FilterView(layers=convs, **self._state(start, "kernels", 0))
        x, y = bqplot.LinearScale(), bqplot.LinearScale()
        self._bars = bqplot.Bars(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y}, colors=["#4c72b0"])
        self.hist = bqplot.Figure(marks=[self._bars], title="",
                                  axes=[bqplot.Axis(scale=x, label="weight", num_ticks=5),
                                        bqplot.Axis(scale=y, orientation="vertical", label="count", num_ticks=4)],
                                  fig_margin={"top": 36, "bottom": 40, "left": 56, "right": 16},
                                  layout=ipywidgets.Layout(width="100%", max_width="460px", height="220px"))
        self._draw_histogram()
        super().__init__(children=[self.view, self.hist])
        self.view.observe(self._on_change, names=["layer", "show", "page"])

    def _on_change(self, change):
        with self._lock:
            if self._reverting:
                return
            name, old = change["name"], change["old"]
            from_browser = bool(getattr(self.view, "_property_lock", None))
            try:
                page = self.view.page if name == "page" else 0
                state = self._state(self.view.layer, self.view.show, page)
            except CnnWidgetError as exc:
                self.view.error = str(exc)
                self._set({name: old})  # keep showing what was there
                if not from_browser:
                    raise
                return
            self._set(state)
            if name == "layer":
                self._draw_histogram()

    def _set(self, state: dict):
        with self.view.hold_sync():
            with self._quiet():
                for name, value in state.items():
                    setattr(self.view, name, value)

    def _state(self, layer: str, show: str, page: int) -> dict:
        """The view's traits for (layer, show, page); a CnnWidgetError before anything changes for bad ones."""
        if show not in _SHOWS:
            raise OptionError(f"show must be one of {list(_SHOWS)}; got {show!r}.")
        path, kernel = filters.kernel(self.probe, layer)
        n_out, n_in, kh, kw = kernel.shape
        if show == "norms":
            _, norms = filters.kernel_norms(self.probe, path)
            top = float(norms.max()) or 1.0
            tiles = np.rint(255 * norms / top).astype(np.uint8)
            meta = {"k": 1, "h": n_out, "w": n_in, "c": 1, "cols": 1, "per_input": False, "view": show,
                    "inputs": int(n_in), "filters": list(range(n_out)), "scale": [top]}
            return self._page_state(path, show, 0, 1, tiles, meta)
        rgb = n_in in (1, 3)
        size = self._sizes[0] if rgb else self._sizes[1]
        pages = filters.num_pages(n_out, size)
        if rgb:
            f = filters.first_layer_filters(self.probe, path, page, size)  # images (n, kh, kw, 3)
            c, cols = 3, min(len(f.index), 16)
        else:
            f = filters.kernel_grid(self.probe, path, page, size)  # images (n, in, kh, kw)
            c, cols = 1, n_in
        # 254 steps, not 255: byte 127 is then exactly a zero weight (pruned or dead kernels read back as 0).
        tiles = np.rint(254 * f.images).astype(np.uint8)
        meta = {"k": int(len(f.index) * (1 if rgb else n_in)), "h": int(kh), "w": int(kw), "c": c, "cols": int(cols),
                "per_input": not rgb, "view": show, "inputs": int(n_in), "filters": [int(i) for i in f.index],
                "scale": [float(s) for s in f.scale]}
        return self._page_state(path, show, page, pages, tiles, meta)

    @staticmethod
    def _page_state(path, show, page, pages, tiles, meta) -> dict:
        return {"layer": path, "show": show, "page": int(page), "n_pages": int(pages), "tiles": tiles.tobytes(),
                "meta": meta, "error": ""}

    def _draw_histogram(self):
        counts, edges = filters.weight_histogram(self.probe, self.view.layer, bins=self._bins)
        with self._bars.hold_sync():
            self._bars.x, self._bars.y = (edges[:-1] + edges[1:]) / 2, counts
        self.hist.title = f"kernel weights of {self.view.layer}"
