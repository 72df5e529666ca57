"""FilterGrid: a convolution layer's learned kernels as images, per-input-channel tiles or norms, with a histogram."""

from __future__ import annotations

import bqplot
import ipywidgets
import numpy as np
import traitlets as t

from ..core import LayerError, OptionError, as_probe
from ..core import filters
from ..core.options import WHOLE, positive_int
from . import _axes
from ._base import CnnWidget, checks, reacts
from ._esm import bundle

_CONV_CLASSES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")  # the layers core.filters takes kernels from
SHOWS = ("kernels", "norms")
_PY = dict(sync=True, owner="python")


class FilterGrid(CnnWidget):
    """The learned filters of one convolution layer, paged, and a histogram of its kernel weights.

    ``model_or_probe``: a Keras model or ModelProbe. ``layer``: a convolution layer's path or name (default: the
    first). A layer reading 3 (or 1) channels shows each output filter as one RGB (grey) image; a deeper layer
    shows one row per output filter of one tile per input channel, ``grid_page_size`` filters a page; ``show =
    "norms"`` shows instead the (out, in) matrix of kernel L2 norms in one tile. Display scaling is per output
    filter (see cnnwidget.core.filters). ``bins``: histogram bins. Reading weights needs no pass through the
    model, so each page is made at once, on the caller's thread.

    Public traits (real traitlets): ``layer``, ``show`` ("kernels" or "norms"), ``page``; read-only: ``layers``,
    ``n_pages``, ``error`` (the last refused value, shown in the widget), ``status``. Wire traits: ``tiles``,
    ``meta`` (below).

    ``tiles``: uint8 bytes of (k, h, w, c): c = 3 for RGB kernel images, c = 1 for colour-map indices (coolwarm
    for kernels, 0..254 with 127 = a zero weight; viridis for norms, 0..255 = 0..the largest norm). ``meta``: k,
    h, w, c, cols (tiles a row), per_input (one row per output filter), view, inputs (input channels of the
    layer's filters), filters (the output-filter indices shown), scale (max |weight| of each shown filter:
    weight = (byte - 127) / 127 * scale, so a zero weight is exact; for norms, the largest norm). The view reads
    hover values back from these (docs/wire-format.md).
    """

    _esm = bundle("filter_grid.js")

    layer = t.Unicode("", help="the convolution layer shown (path)").tag(sync=True)
    show = t.Enum(SHOWS, "kernels", help='"kernels" or "norms"').tag(sync=True)
    page = t.Int(0, help="the page of output filters shown").tag(sync=True)
    layers = t.List(t.Unicode()).tag(**_PY)
    n_pages = t.Int(1).tag(**_PY)
    tiles = t.Bytes(b"").tag(**_PY)
    meta = t.Dict().tag(**_PY)
    hist = t.Instance(bqplot.Figure, allow_none=True).tag(**_PY, **ipywidgets.widget_serialization)

    def __init__(self, model_or_probe, layer=None, *, image_page_size: int = 64, grid_page_size: int = 16,
                 bins: int = 50):
        self.probe = as_probe(model_or_probe)
        for name, value in (("image_page_size", image_page_size), ("grid_page_size", grid_page_size),
                            ("bins", bins)):
            positive_int(name, value, 1, WHOLE)
        self._sizes = (int(image_page_size), int(grid_page_size))
        self._bins = int(bins)
        convs = [i.path for i in self.probe.layers if i.class_name in _CONV_CLASSES]
        if not convs:
            raise LayerError(f"{self.probe.model.name!r} has no convolution layer whose filters could be shown.")
        start = filters.kernel(self.probe, layer)[0] if layer is not None else convs[0]
        x, y = bqplot.LinearScale(), bqplot.LinearScale(min=0.0)
        self._bars = bqplot.Bars(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y}, colors=["#4c72b0"])
        hist = _axes.follow(bqplot.Figure(  # ticks from the shared helper (widgets/_axes.py); counts start at 0
            marks=[self._bars], title="", axes=[_axes.axis(x, "weight"), _axes.axis(y, "count", kind="count",
                                                                                    vertical=True)],
            fig_margin={"top": 48, "bottom": 40, "left": 56, "right": 16},
            layout=ipywidgets.Layout(width="100%", max_width="460px", height="220px")))
        super().__init__(layers=convs, hist=hist, **self._state(start, "kernels", 0))
        self._draw_histogram()

    def _describe(self):
        return [f"layer {self.layer!r}", f"{self.show}, page {self.page + 1} of {self.n_pages}"]

    # -- checks ------------------------------------------------------------------------------------------------

    @checks("layer")
    def _check_layer(self, value):
        return filters.kernel(self.probe, value)[0]  # LayerError naming the convolutions for any other layer

    @checks("page")
    def _check_page(self, value):
        pages = self._pages(self.layer, self.show)
        if not 0 <= value < pages:
            raise OptionError(f"page must be in [0, {pages - 1}] for {self.layer!r}; got {value}.")
        return value

    def _pages(self, layer: str, show: str) -> int:
        n_out, n_in = filters.kernel(self.probe, layer)[1].shape[:2]
        if show == "norms":
            return 1
        return filters.num_pages(n_out, self._sizes[0] if n_in in (1, 3) else self._sizes[1])

    # -- reacting ----------------------------------------------------------------------------------------------

    @reacts("layer", "show", "page")
    def _on_change(self, change):
        page = self.page if change["name"] == "page" else 0
        self._push(**self._state(self.layer, self.show, page), error="")
        if change["name"] == "layer":
            self._draw_histogram()

    def _state(self, layer: str, show: str, page: int) -> dict:
        """The traits for (layer, show, page)."""
        path, kernel = filters.kernel(self.probe, layer)
        n_out, n_in, kh, kw = kernel.shape
        if show == "norms":
            _, norms = filters.kernel_norms(self.probe, path)
            top = float(norms.max()) or 1.0
            tiles = np.rint(255 * norms / top).astype(np.uint8)
            meta = {"k": 1, "h": n_out, "w": n_in, "c": 1, "cols": 1, "per_input": False, "view": show,
                    "inputs": int(n_in), "filters": list(range(n_out)), "scale": [top]}
            return _page_state(path, show, 0, 1, tiles, meta)
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
        return _page_state(path, show, page, pages, tiles, meta)

    def _draw_histogram(self):
        counts, edges = filters.weight_histogram(self.probe, self.layer, bins=self._bins)
        with self._bars.hold_sync():
            self._bars.x, self._bars.y = (edges[:-1] + edges[1:]) / 2, counts
        self.hist.title = f"kernel weights of {self.layer}"


def _page_state(path, show, page, pages, tiles, meta) -> dict:
    return {"layer": path, "show": show, "page": int(page), "n_pages": int(pages), "tiles": tiles.tobytes(),
            "meta": meta}
