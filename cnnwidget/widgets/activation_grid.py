"""ActivationGrid: every channel of a layer for one input, a depth strip of all layers, and per-channel stats."""

from __future__ import annotations

import math
from collections import OrderedDict

import bqplot
import ipywidgets
import numpy as np
import traitlets as t

from ..core import CnnWidgetError, OptionError, as_probe, uncertainty
from ..core.activations import channel_order, channel_stats, depth_strip, fit_within, resize
from ..core.options import COLORMAPS, WHOLE, positive_int
from . import _axes, _transport
from ._base import CnnWidget, checks, reacts
from ._esm import bundle
from ._jobs import Job
from .channel_card import unit_names

NORMALIZATIONS = ("channel", "layer")
SORTS = ("index", "mean")
IMAGE_PX = 256  # the input picture is sent at most this size a side: the view shows it at about 192 px
FOCUS_PX = 256  # the enlarged channel likewise
CHECK_IMAGES = 64  # the images whose predictions are checked for a model that says nothing (prediction_warning)
CACHE_BYTES = 64 * 2**20  # one image's layer outputs kept for going back and forth; bounded in bytes, not entries

_PAGE = ("layer", "image_index", "page", "page_size", "sort")  # what the tiles depend on
_PY = dict(sync=True, owner="python")


class ActivationGrid(CnnWidget):
    """Every channel of one layer's output for one image, drawn on a canvas, with a depth strip and channel stats.

    ``model_or_probe``: a Keras model or a ``ModelProbe``. ``images``: (N, H, W, C) or (H, W, C) in the probe's
    display range. ``layer``: a layer path or name (default: the first convolution). ``page_size`` tiles are
    sent per page; feature maps larger than ``max_tile`` pixels a side are area-downsampled for the grid (the
    enlarged channel and the input picture are sent at up to 256 a side). Colour map, normalization and overlay
    are applied in the browser. The widget shows at once; its first page is computed on its worker thread
    (``grid.wait()`` blocks until it is there). Changes made later return once the new page is there.

    Public traits (real traitlets: ``traitlets.link``, ``widgets.jslink``, ``observe`` work): ``layer``,
    ``image_index``, ``selected_channel`` (the clicked channel, -1 for none), ``page``, ``page_size``, ``sort``
    ("index" or "mean"), ``colormap`` (viridis, magma, gray, coolwarm), ``normalization`` ("channel" or
    "layer"), ``overlay``, ``overlay_opacity`` (0..1); read-only: ``n_images``, ``layers``, ``error`` (the last
    refused value, shown in the widget), ``status``, ``running``, ``prediction_warning`` (why the model's
    predictions on the first 64 images say nothing: uniform, or the same whatever the image, from
    ``core.uncertainty.prediction_warning``; shown in the widget; "" if nothing is wrong). A bad value (wrong
    type, out of range, an unknown layer or colour map) is refused, from Python (a CnnWidgetError) or from the
    page, and ``error`` says why. The wire traits (``tiles``, ``tile_ranges``, ``tile_meta``, ``focus``,
    ``focus_meta``, ``image``, ``strip``, ...) follow docs/wire-format.md.
    """

    _esm = bundle("activation_grid.js")
    _worker_name = "cnnwidget-grid"

    # set by a person (Python or the page)
    layer = t.Unicode("", help="the layer shown (path)").tag(sync=True)
    image_index = t.Int(0, help="the image shown").tag(sync=True)
    selected_channel = t.Int(-1, help="the enlarged channel; -1 for none").tag(sync=True)
    page = t.Int(0, help="the page of channels shown").tag(sync=True)
    page_size = t.Int(64, min=1, help="channels a page").tag(sync=True)
    sort = t.Enum(SORTS, "index", help="channel order").tag(sync=True)
    colormap = t.Enum(COLORMAPS, "viridis").tag(sync=True)
    normalization = t.Enum(NORMALIZATIONS, "channel", help="each tile on its own range, or the page's").tag(
        sync=True)
    overlay = t.Bool(False, help="draw the enlarged channel over the image").tag(sync=True)
    overlay_opacity = t.Float(0.6, min=0.0, max=1.0).tag(sync=True)
    # set by Python only
    layers = t.List(t.Dict()).tag(**_PY)
    n_images = t.Int(1).tag(**_PY)
    image = t.Bytes(b"").tag(**_PY)
    image_shape = t.List(t.Int()).tag(**_PY)
    tiles = t.Bytes(b"").tag(**_PY)
    tile_ranges = t.Bytes(b"").tag(**_PY)
    tile_meta = t.Dict().tag(**_PY)
    focus = t.Bytes(b"").tag(**_PY)
    focus_meta = t.Dict().tag(**_PY)
    strip = t.Bytes(b"").tag(**_PY)
    strip_meta = t.Dict().tag(**_PY)
    predictions = t.List(t.Dict()).tag(**_PY)
    prediction_warning = t.Unicode("", help="why the model's predictions on these images say nothing, or ''").tag(
        **_PY)
    chart = t.Instance(bqplot.Figure, allow_none=True).tag(**_PY, **ipywidgets.widget_serialization)

    def __init__(self, model_or_probe, images, layer=None, *, page_size: int = 64, max_tile: int = 64,
                 thumbnail: int = 32, **probe_options):
        self.probe = as_probe(model_or_probe, **probe_options)
        self._batch = self._images(images)
        self._max_tile = positive_int("max_tile", max_tile, 1, WHOLE)
        self._thumb = positive_int("thumbnail", thumbnail, 1, WHOLE)
        self._maps = _ByteCache(CACHE_BYTES)  # (layer path, image index) -> that image's layer output
        self._strips: OrderedDict = OrderedDict()  # image index -> (uint8 bytes, meta); a third of a pass each
        self._probs: dict[int, np.ndarray] = {}  # image index -> class probabilities
        self._checked = None  # the batch whose predictions were checked (prediction_warning)
        self._shown: dict = {}  # what the tiles and the focus show now: {"page": key, "focus": key}
        infos = self.probe.layers
        start = self.probe.layer(layer).path if layer is not None else _default_layer(infos)
        super().__init__(
            layers=[{"name": i.path, "shape": list(i.output_shape), "spatial": i.is_spatial} for i in infos],
            n_images=len(self._batch), layer=start, page_size=positive_int("page_size", page_size, 1, WHOLE),
            chart=_stats_chart(), status=f"computing {start}…")
        self._start(self._update, settle=True)

    def _describe(self):
        return [f"layer {self.layer!r}", f"{len(self._batch)} image{'s' if len(self._batch) != 1 else ''}"]

    # -- public --------------------------------------------------------------------------------------------------

    @property
    def images(self) -> np.ndarray:
        """The batch shown, float32 (N, H, W, C) in display space."""
        return self._batch

    @images.setter
    def images(self, images):
        with self._locked():
            try:
                batch = self._images(images)
            except CnnWidgetError as exc:  # ImageError: the old batch stays
                self._show_refusal(str(exc))
                raise
            self._batch = batch
            self._maps.clear()
            self._strips.clear()
            self._probs.clear()
            self._shown = {}
            self._push(n_images=len(batch), image_index=min(self.image_index, len(batch) - 1))
            job = self._start(self._update, settle=True)
        self._settle([job])

    def show(self, layer=None, image_index: int | None = None, selected_channel: int | None = None) -> Job | None:
        """Change the layer, the image and the enlarged channel together: checked together (the channel against
        the new layer), a bad value changes none of them, and one computation on the worker serves all three.
        Returns its Job (``wait()`` waits for it), or None if nothing changed."""
        before = self.job
        with self._locked():
            want = {"layer": layer, "image_index": image_index, "selected_channel": selected_channel}
            with self.hold_trait_notifications():
                for name, value in want.items():
                    if value is not None and value != getattr(self, name):
                        setattr(self, name, value)
        return self.job if self.job is not before else None

    def compute(self) -> Job:
        """Compute what is shown again on the worker (the page of tiles and the enlarged channel), e.g. after a
        ``cancel()``; returns its Job."""
        with self._locked():
            self._shown = {}
            return self._start(self._update)

    def activations(self, layer=None) -> np.ndarray:
        """Outputs of ``layer`` (default: the one shown) for the whole batch, (N, H, W, C) or (N, C); computed on
        each call (the grid itself keeps only the shown image's outputs)."""
        path = self.probe.layer(layer or self.layer).path
        return self.probe.activations(self._batch, [path])[path]

    # -- checks: the same for Python and the page ------------------------------------------------------------

    @checks("layer")
    def _check_layer(self, value):
        return self.probe.layer(value).path  # LayerError with suggestions; a name becomes its path

    @checks("image_index")
    def _check_image(self, value):
        n = len(self._batch)
        if not 0 <= value < n:
            raise OptionError(f"image_index must be between 0 and {n - 1} for this batch of {n}; got {value}.")
        return value

    @checks("selected_channel")
    def _check_channel(self, value):
        channels = self._channels(self.layer)
        if not -1 <= value < channels:
            raise OptionError(f"selected_channel must be between 0 and {channels - 1} for {self.layer!r} (or -1 "
                              f"for none); got {value}.")
        return value

    @checks("page")
    def _check_page(self, value):
        pages = max(1, -(-self._channels(self.layer) // self.page_size))
        return min(max(value, 0), pages - 1)  # past either end: the nearest page

    @checks("overlay_opacity")
    def _check_opacity(self, value):
        if not math.isfinite(value):
            raise OptionError(f"overlay_opacity must be between 0 and 1; got {value}.")
        return value

    def _channels(self, layer: str) -> int:
        info = self.probe.layer(layer)
        return int(info.output_shape[-1])

    # -- reacting to changes -------------------------------------------------------------------------------------

    @reacts("layer", "sort", "page_size")
    def _on_layer(self, change):
        with self._quietly():
            self.page = 0
            if change["name"] == "layer" and self.selected_channel >= self._channels(self.layer):
                self.selected_channel = -1  # a channel the new layer does not have
        self._start(self._update, settle=True, revert={change["name"]: change["old"]})

    @reacts("image_index", "page", "selected_channel")
    def _on_view(self, change):
        self._start(self._update, settle=True, revert={change["name"]: change["old"]})

    def _update(self, job):
        """On the worker: whatever of the page and the enlarged channel is not what is asked now."""
        with self._locked():
            want = {name: getattr(self, name) for name in (*_PAGE, "selected_channel")}
            shown = dict(self._shown)
        page_key = tuple(want[n] for n in _PAGE)
        focus_key = (want["layer"], want["image_index"], want["selected_channel"])
        state: dict = {}
        maps = self._layer_output(want["layer"], want["image_index"])
        if job.cancelled:
            return None
        if shown.get("page") != page_key:
            state.update(self._page_state(maps, want))
        if shown.get("focus") != focus_key or "tile_meta" in state:
            state.update(self._focus_state(maps, want["selected_channel"]))
        if job.cancelled:
            return None
        stats = channel_stats(maps) if "tile_meta" in state else None
        with self._locked():
            if not self._report(job, **state, error="", status=""):
                return None
            self._shown = {"page": page_key, "focus": focus_key}
            if stats is not None:
                self._update_chart(want["layer"], *stats)
            batch = self._batch
        if self._checked is not batch:  # after the page is shown: a pass over up to CHECK_IMAGES images
            note = self._check_predictions(batch)
            with self._locked():
                if self._batch is batch and self._report(job, prediction_warning=note):
                    self._checked = batch
        return {}

    def _check_predictions(self, batch: np.ndarray) -> str:
        """``uncertainty.prediction_warning`` on the first CHECK_IMAGES images of ``batch`` (their predictions are
        kept for the top-5 list): a model whose output is uniform or ignores the image is said so in the view."""
        few = batch[:CHECK_IMAGES]
        probs = self.probe.predict(few)
        with self._locked():
            if self._batch is batch:
                self._probs.update((i, p) for i, p in enumerate(probs))
        return uncertainty.prediction_warning(probs, self.probe.class_names, images=few)

    def _layer_output(self, path: str, index: int) -> np.ndarray:
        key = (path, index)
        maps = self._maps.get(key)
        if maps is None:
            batch = self._batch
            maps = self.probe.activations(batch[index:index + 1], [path])[path][0]
            with self._locked():
                # The images setter may have replaced the batch (and cleared the cache) while this pass ran: its
                # output is then the old batch's and must not be kept for the new one.
                if self._batch is batch:
                    self._maps.put(key, maps)
        return maps

    def _unit_names(self, path: str, shown) -> dict:
        """{"unit_names": the class name of each shown unit} when the layer is the model's output (one unit per
        class, or a sigmoid unit: channel_card.unit_names), so the grid's hover says which class a unit is; {}
        otherwise."""
        names = unit_names(self.probe, path, self.probe.class_names)
        return {} if names is None else {"unit_names": [names[int(u)] for u in shown]}

    def _page_state(self, maps: np.ndarray, want: dict) -> dict:
        """The tiles of one (layer, image, page, page size, sort), the input picture, strip and predictions."""
        path, image_index, page_size = want["layer"], want["image_index"], want["page_size"]
        means, _ = channel_stats(maps)
        order = channel_order(means, want["sort"])
        if maps.ndim == 3:
            n_pages = max(1, -(-len(order) // page_size))
            page = min(max(want["page"], 0), n_pages - 1)
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
        picture = self._batch[image_index]
        ph, pw = fit_within(*picture.shape[:2], IMAGE_PX)
        if (ph, pw) != picture.shape[:2]:  # sent at the size it is shown, not at full resolution
            picture = np.moveaxis(resize(np.moveaxis(picture, -1, 0), ph, pw), 0, -1)
        return {
            "page": int(page), "tiles": tiles, "tile_ranges": ranges,
            "tile_meta": {
                "k": int(stack.shape[0]), "h": int(stack.shape[1]), "w": int(stack.shape[2]),
                "channels": [int(c) for c in shown], "n_channels": int(len(order)), "page": int(page),
                "n_pages": int(n_pages), "source_h": int(source[0]), "source_w": int(source[1]),
                "vector": bool(maps.ndim == 1),
                **self._unit_names(path, shown),
            },
            "image": _transport.image_bytes(picture, self.probe.input_range),
            "image_shape": [int(ph), int(pw)],
            "strip": strip, "strip_meta": strip_meta,
            "predictions": self._top_predictions(image_index),
        }

    def _focus_state(self, maps: np.ndarray, channel: int) -> dict:
        """The enlarged channel at up to FOCUS_PX pixels a side, or nothing for channel -1."""
        if channel < 0 or channel >= maps.shape[-1]:
            return {"focus": b"", "focus_meta": {}}
        if maps.ndim == 1:  # a unit of a vector layer has no map to enlarge: its value is the whole story
            value = float(maps[channel])
            return {"focus": b"", "focus_meta": {"channel": int(channel), "h": 0, "w": 0, "lo": value, "hi": value,
                                                 "vector": True}}
        one = maps[..., channel]
        h, w = fit_within(*one.shape, FOCUS_PX)
        data, ranges = _transport.quantize(resize(one, h, w)[None])
        lo, hi = np.frombuffer(ranges, "<f4")
        return {"focus": data,
                "focus_meta": {"channel": int(channel), "h": int(h), "w": int(w), "lo": float(lo), "hi": float(hi)}}

    def _top_predictions(self, image_index: int, k: int = 5) -> list[dict]:
        probs = self._probs.get(image_index)
        if probs is None:
            batch = self._batch
            probs = self.probe.predict(batch[image_index:image_index + 1])[0]
            with self._locked():
                if self._batch is batch:  # not replaced meanwhile (see _layer_output)
                    self._probs[image_index] = probs
        names = self.probe.class_names
        return [{"label": names[i], "p": float(probs[i])} for i in np.argsort(-probs)[:k]]

    def _strip_for(self, image_index: int):
        strip = self._strips.get(image_index)
        if strip is None:
            batch = self._batch
            thumbs, paths = depth_strip(self.probe, batch[image_index:image_index + 1], self._thumb)
            data, _ = _transport.quantize(thumbs[0])
            shapes = {i.path: list(i.output_shape) for i in self.probe.layers}
            strip = data, {"t": self._thumb, "layers": paths, "shapes": [shapes[p] for p in paths]}
            with self._locked():
                if self._batch is batch:  # not replaced meanwhile (see _layer_output)
                    self._strips[image_index] = strip
                    while len(self._strips) > 64:
                        self._strips.popitem(last=False)
        elif image_index in self._strips:
            self._strips.move_to_end(image_index)
        return strip

    def _update_chart(self, path: str, means: np.ndarray, zeros: np.ndarray):
        bars, dots = self.chart.marks
        with bars.hold_sync(), dots.hold_sync():
            if len(bars.x) != len(means):  # the x axis only changes with the channel count
                bars.x = dots.x = np.arange(len(means), dtype=np.float32)
            bars.y, dots.y = means.astype(np.float32), zeros.astype(np.float32)
        self.chart.title = path


class _ByteCache:
    """Least recently used arrays, at most ``budget`` bytes in all; an array larger than that is not kept."""

    def __init__(self, budget: int):
        self.budget, self.bytes, self._items = budget, 0, OrderedDict()

    def get(self, key):
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key, value: np.ndarray):
        if value.nbytes > self.budget:
            return
        old = self._items.pop(key, None)
        self.bytes -= 0 if old is None else old.nbytes
        self._items[key] = value
        self.bytes += value.nbytes
        while self.bytes > self.budget:
            _, dropped = self._items.popitem(last=False)
            self.bytes -= dropped.nbytes

    def clear(self):
        self._items.clear()
        self.bytes = 0


def _default_layer(infos) -> str:
    """The first convolution's output (what a person first looks at), else the first spatial layer."""
    spatial = [i for i in infos if i.is_spatial]
    convs = [i for i in spatial if "Conv" in i.class_name]
    return (convs or spatial or infos)[0].path


def _stats_chart() -> bqplot.Figure:
    """Per-channel mean activation (bars) and fraction of activations <= 0 (dots: channels are not a sequence)."""
    x = bqplot.LinearScale()
    y_mean, y_zero = bqplot.LinearScale(), bqplot.LinearScale(min=0.0, max=1.0)  # padded: whole dots at 0 and 1
    bars = bqplot.Bars(x=np.zeros(0, np.float32), y=np.zeros(0, np.float32), scales={"x": x, "y": y_mean},
                       colors=["#4c72b0"], padding=0.1)
    dots = bqplot.Scatter(x=np.zeros(0, np.float32), y=np.zeros(0, np.float32), scales={"x": x, "y": y_zero},
                          colors=["#dd8452"], default_size=12)
    axes = [  # ticks and label room from the shared helper (widgets/_axes.py): whole channels inside the data
        _axes.axis(x, "channel", kind="integer"),
        _axes.axis(y_mean, "mean (bars)", vertical=True, color="#4c72b0"),
        _axes.axis(y_zero, "<= 0 (dots)", kind="percent", vertical=True, side="right", color="#dd8452"),
    ]
    return _axes.follow(bqplot.Figure(
        marks=[bars, dots], axes=axes, title="", fig_margin={"top": 48, "bottom": 40, "left": 56, "right": 56},
        layout=ipywidgets.Layout(width="100%", max_width="440px", min_width="240px", height="260px")))
