"""DatasetExamples: every channel of a layer with the data-set patch that excites it most, paged; a click opens the
channel's card (a ChannelCard below the list, following its ``layer`` and ``channel``)."""

from __future__ import annotations

import time

import ipywidgets
import numpy as np
import traitlets as t

from ..core import as_probe
from ..core.errors import Cancelled
from ..core.options import WHOLE, index, positive_int
from ._base import CnnWidget, checks, reacts
from ._esm import bundle
from ._jobs import Job
from .channel_card import (MAX_K, ChannelCard, _check_k, _class_names, _Passes, example_layer, layer_list, rgba,
                           unit_names)

_PY = dict(sync=True, owner="python")
MAX_PAGE = 256


class DatasetExamples(CnnWidget):
    """Every channel of ``layer`` with its top data-set patch (the input under the receptive field of the unit that
    fired most; for a vector layer (Dense, global pooling), every unit with its top image, whole and resized, and
    for the model's output layer the unit's class name) and its top activation, ``page_size`` channels a page;
    clicking a channel opens its ChannelCard below the list (``card``: the card follows this widget's ``layer``
    and ``channel``; the card's own channel box moves the selection here too).

    ``model_or_probe``, ``data``, ``labels``, ``class_names``, ``score``, ``strategy``, ``batch_size``: as for
    ChannelCard (the list and its card share one data-set pass per layer). ``k``: examples the card shows.
    ``card_options``: more ChannelCard options (``feature_vis``, ``fv_steps``, ``fv_size``).

    Public traits (checked from Python and from the page alike): ``layer`` (a spatial or vector layer),
    ``channel`` (the selected channel, -1 for none), ``page``, ``page_size``. Read-only: ``tiles`` (uint8 RGBA
    (n, h, w, 4), the page's top patches, one buffer) with ``tiles_meta``, ``pages``, ``partial``, ``images``,
    ``card`` (the ChannelCard, None until a channel is selected), and the base's ``running``, ``progress``,
    ``status``, ``error``.
    The pass runs on the widget's worker with progress; ``cancel()`` (or Cancel) keeps the top patches gathered so
    far, flagged partial; ``compute()`` (or Compute) makes the pass again in full.
    """

    _esm = bundle("dataset_examples.js")
    _worker_name = "cnnwidget-dataset-examples"
    _actions = {"compute": "compute", "cancel": "_cancel_with_card"}  # the view's buttons (base: _on_action)

    layer = t.Unicode("").tag(sync=True)
    channel = t.Int(-1, help="the selected channel, -1 for none").tag(sync=True)
    page = t.Int(0).tag(sync=True)
    page_size = t.Int(32).tag(sync=True)
    layers = t.List(t.Dict()).tag(**_PY)
    pages = t.Int(1).tag(**_PY)
    partial = t.Bool(False).tag(**_PY)
    images = t.Int(0).tag(**_PY)
    tiles = t.Bytes(b"").tag(**_PY)  # uint8 RGBA (n, h, w, 4): each channel's top patch, the page's channels in order
    # {"n", "h", "w", "layer", "page", "channels": [int], "values": [float or None], "indices": [int], "dead": [bool],
    #  "score", "approximate", "reason", "whole_image" (vector layer: whole images, resized), "input": [H, W], "note",
    #  "names": [the output unit's class name] or None}
    tiles_meta = t.Dict().tag(**_PY)
    card = t.Instance(ChannelCard, allow_none=True).tag(**_PY, **ipywidgets.widget_serialization)

    def __init__(self, model_or_probe, data, layer, page_size: int = 32, *, labels=None, class_names=None,
                 k: int = 16, score: str = "max", strategy=None, batch_size: int | None = None, channel: int = -1,
                 card_options: dict | None = None, **probe_options):
        self.probe = as_probe(model_or_probe, **probe_options)
        self._passes = _Passes(self.probe, data, labels, score, strategy, batch_size)
        self._names = _class_names(self.probe, class_names)
        self._k = _check_k(k)
        self._card_options = dict(card_options or {})
        unknown = set(self._card_options) - {"feature_vis", "fv_steps", "fv_size"}
        if unknown:
            raise TypeError(f"card_options takes feature_vis, fv_steps and fv_size; got {sorted(unknown)}.")
        self._entry = None
        self._live = None  # the partial ChannelExamples of the pass computing now
        path = example_layer(self.probe, layer)
        page_size = _check_page_size(page_size)
        channels = self.probe.layer(path).output_shape[-1]
        channel = -1 if channel == -1 else index("channel", channel, channels, f"layer {path!r}")
        self.__dict__["_input_warning"] = self._passes.note
        super().__init__(layers=layer_list(self.probe), layer=path, page_size=page_size,
                         pages=_pages(channels, page_size), channel=channel,
                         page=max(channel, 0) // page_size, status="reading the data set…")
        self._start(self._job)
        if channel >= 0:
            self._open_card()

    def _describe(self):
        return [f"layer {self.layer!r}", f"channel {self.channel}" if self.channel >= 0 else "no channel selected"]

    # -- public --------------------------------------------------------------------------------------------------

    @property
    def examples(self):
        """The core result (``LayerExamples``) of the layer shown, or None before the pass."""
        with self._locked():
            return None if self._entry is None else self._entry.examples

    def _holds(self) -> dict:
        """For ``to_numpy`` / ``save_npz``: the wire bytes, and what the pass of the layer shown found for every
        channel, in full precision (core's ``LayerExamples``): ``examples.indices`` (C, k) int64, ``examples.values``
        (C, k) float32, ``examples.positions`` (C, k, 2), ``examples.boxes`` (C, k, 4), ``examples.patches``
        (C, k, h, w, channels) float32 (NaN outside the image and in empty slots), and the statistics
        ``examples.mean``, ``std``, ``min``, ``max``, ``zero_fraction``, ``dead``, ``histogram``,
        ``histogram_edges``, ``below``, ``above``, ``class_mean``, ``class_counts`` (with labels)."""
        out = super()._holds()
        with self._locked():
            ex = None if self._entry is None else self._entry.examples
            if ex is None or ex.path != self.layer:
                return out
            out.update(examples_arrays(ex))
        return out

    def cancel(self):
        """Stop the pass (what it gathered stays shown, flagged partial, until Compute)."""
        self._passes.stop(self.layer)
        super().cancel()

    def compute(self) -> Job:
        """Make the layer's pass again in full if it was cancelled part-way (else show the kept one)."""
        with self._locked():
            self._push(error="")
            return self._start(lambda job: self._job(job, again=True), status=_starting(self.layer))

    # -- checks --------------------------------------------------------------------------------------------------

    @checks("layer")
    def _check_layer(self, value):
        return example_layer(self.probe, value)

    @checks("channel")
    def _check_channel(self, value):
        if value == -1:
            return value
        return index("channel", value, self._channels(), f"layer {self.layer!r} (or -1 for none)")

    @checks("page")
    def _check_page(self, value):
        return index("page", value, _pages(self._channels(), self.page_size))

    @checks("page_size")
    def _check_page_size(self, value):
        return _check_page_size(value)

    def _channels(self) -> int:
        return int(self.probe.layer(self.layer).output_shape[-1])

    # -- reactions -----------------------------------------------------------------------------------------------

    @reacts("layer")
    def _on_layer(self, change):
        channels = self._channels()
        self._entry = None
        # The previous layer's tiles go at once: left up, they showed under the new layer's name until its pass
        # sent a first batch (a first-time user read them as the new layer's), and for good after a Cancel then.
        self._push(error="", pages=_pages(channels, self.page_size), page=0, partial=False, images=0,
                   tiles=b"", tiles_meta={}, channel=self.channel if self.channel < channels else -1)
        self._start(self._job, status=_starting(self.layer))
        self._sync_card()

    @reacts("page_size")
    def _on_page_size(self, change):
        pages = _pages(self._channels(), self.page_size)
        self._push(error="", pages=pages, page=max(self.channel, 0) // self.page_size if self.channel >= 0 else
                   min(self.page, pages - 1))
        self._draw()

    @reacts("page")
    def _on_page(self, change):
        self._push(error="")
        self._draw()

    @reacts("channel")
    def _on_channel(self, change):
        self._push(error="")
        if self.channel >= 0:
            self._push(page=self.channel // self.page_size)
            self._draw()
        self._sync_card()

    def _sync_card(self):
        if self.channel < 0:
            return
        if self.card is None:
            self._open_card()
        else:
            self.card.show(self.layer, self.channel)

    def _open_card(self):
        card = ChannelCard(None, None, self.layer, self.channel, k=self._k, class_names=self._names,
                           _passes=self._passes, **self._card_options)

        def back(change):  # the card's own channel box (or Python) moved its channel: select it here too
            with self._locked():
                if self._closed or card.layer != self.layer or card.channel == self.channel:
                    return
                self._push(channel=card.channel, page=card.channel // self.page_size)
                self._draw()

        card.observe(back, names=["channel"])
        self._push(card=card)

    def _cancel_with_card(self):
        """The page's Cancel: this widget's job and its card's."""
        self.cancel()
        if self.card is not None:
            self.card.cancel()

    # -- the job -------------------------------------------------------------------------------------------------

    def _job(self, job: Job, again: bool = False):
        with self._locked():
            layer = self.layer
        started = time.monotonic()
        size = self._passes.size

        def progress(done, total, partial):
            if not job.due(0.25):
                return
            with self._locked():
                if not self._is_current(job) or self.layer != layer:
                    return
                self._live = partial
                of = f" of {size}" if size else ""
                self._push(progress={"done": int(done), "total": total, "images": partial.images},
                           status=f"data set pass over {layer}: {partial.images}{of} images")
                self._draw()

        kept = self._passes.cached(layer, self._k) is not None and not again
        try:
            entry = self._passes.obtain(layer, self._k, progress, job.cancel_event, again)
        except Cancelled:
            return {"status": "cancelled before the first batch"}
        finally:
            with self._locked():
                self._live = None
        with self._locked():
            if not self._is_current(job) or self.layer != layer:
                return None
            self._entry = entry
            self._draw()
            if entry.partial:
                return {"status": f"cancelled: partial, top patches over the first {entry.images} images "
                                  "(Compute to finish the pass)"}
            return {"status": f"kept pass over {entry.images} images" if kept else
                              f"pass over {entry.images} images in {time.monotonic() - started:.1f} s"}

    # -- drawing -------------------------------------------------------------------------------------------------

    def _draw(self):
        if self._entry is not None and self._entry.examples.path == self.layer:
            ex, images, partial = self._entry.examples, self._entry.images, self._entry.partial
        elif self._live is not None:
            ex, images, partial = self._live[self.layer], self._live.images, True
        else:
            return
        size = self.page_size
        channels = list(range(self.page * size, min(ex.channels, (self.page + 1) * size)))
        top = ex.patches[channels, 0]
        h, w = top.shape[1:3]
        values = [None if not np.isfinite(v) else float(v) for v in ex.scores[channels, 0]]
        names = unit_names(self.probe, self.layer, self._names)
        meta = {"n": len(channels), "h": int(h), "w": int(w), "layer": self.layer, "page": self.page,
                "channels": channels, "values": values, "indices": [int(i) for i in ex.indices[channels, 0]],
                "dead": [bool(d) for d in ex.dead[channels]], "score": ex.score, "approximate": ex.approximate,
                "reason": ex.reason, "whole_image": bool(ex.whole_image),
                "input": [int(v) for v in self.probe.input_shape[:2]], "note": ex.patch_note,
                "names": [names[c] for c in channels] if names else None}
        self._push(tiles=rgba(top, self.probe.input_range).tobytes(), tiles_meta=meta, partial=bool(partial),
                   images=int(images))


def examples_arrays(ex, prefix: str = "examples.") -> dict:
    """A ``LayerExamples`` as ``{prefix + name: array}`` (copies, full precision), its scores as ``values``."""
    names = ("indices", "scores", "positions", "boxes", "patches", "mean", "std", "min", "max", "zero_fraction",
             "dead", "histogram", "histogram_edges", "below", "above", "class_mean", "class_counts")
    out = {}
    for name in names:
        value = getattr(ex, name)
        if value is not None:
            out[prefix + ("values" if name == "scores" else name)] = np.array(value, copy=True)
    return out


def _starting(layer: str) -> str:
    # Said at once: the first batch's progress comes only after the pass is traced (12 s on a loaded machine, when
    # the status still read the last pass's "cancelled before the first batch": new-user trial).
    return f"data set pass over {layer}: starting (the first batch traces the model)…"


def _pages(channels: int, page_size: int) -> int:
    return max(1, -(-channels // page_size))


def _check_page_size(value) -> int:
    n = positive_int("page_size", value, 1, WHOLE)
    if n > MAX_PAGE:
        from ..core import OptionError

        raise OptionError(f"page_size must be a whole number between 1 and {MAX_PAGE}; got {n}.")
    return n


__all__ = ["DatasetExamples", "MAX_K"]
