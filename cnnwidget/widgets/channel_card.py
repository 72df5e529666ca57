"""ChannelCard: one channel seen two ways, its feature visualization beside the data-set images that excite it most,
with its statistics on that data (histogram, mean, std, zero fraction, a dead flag, the classes it supports).

The data-set pass (``core.dataset.channel_examples``) covers every channel of a layer at once, so it is made once
per layer and kept (``_Passes``, shared with a DatasetExamples that opens this card); a change of channel only
re-renders. The pass and the feature visualization run on the widget's worker, with progress and Cancel; a pass
cancelled part-way keeps the top-k it gathered and the card says it is partial.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

import numpy as np
import traitlets as t

from ..core import LayerError, OptionError, as_probe
from ..core.errors import Cancelled
from ..core import dataset as _dataset
from ..core import featurevis as fv
from ..core.options import WHOLE, choice, index, positive_int
from ._base import CnnWidget, checks, reacts
from ._esm import bundle
from ._jobs import Job

MAX_K = 64  # examples a card may show: k patches of the receptive field's size go to the browser at each change
KEEP_LAYERS = 2  # passes kept per data set: the layer shown (by a card and the list that opened it), and one more
KEEP_RENDERS = 16  # feature visualizations kept (64x64 RGB floats: ~50 KB each), the channels clicked last
# A layer's every channel (patches, statistics) goes to the page once its full pass is drawn, when it is at most this
# many bytes: a channel picked in the page then draws there at once, before the kernel's reply (see _send_layer).
# Sent once per pass, in the background. On the demo model with k=16: block1 and block2 (0.04-0.27 MB), block3
# (64 channels of 26 x 26 patches: 2.9 MB) and the output layer (2.6 MB) fit; block4 and gap (9-15 MB) do not.
PAGE_LAYER_BYTES = 4 << 20
LAYER_ACTION = "cnnw_cc_layer"  # the custom message that carries it (js/channel_card.js)
_FRAME_SECONDS = 0.1  # feature visualization frames go out at most this often

_PY = dict(sync=True, owner="python")


# -- the data set and its passes: shared by a DatasetExamples and the ChannelCard it opens ------------------------

@dataclass
class _Entry:
    """One layer's pass: ``examples`` (core LayerExamples), ``images`` seen, ``partial`` (not every image seen:
    cancelled), ``k`` kept per channel."""

    examples: object
    images: int
    partial: bool
    k: int


class _Flight:
    """A pass in progress: what it gathered so far, for another widget waiting for the same layer."""

    def __init__(self, k: int):
        self.k = k
        self.done = threading.Event()
        self.snapshot = None  # (batches done, batches total or None, partial ChannelExamples)


class _Passes:
    """The data set a card (or list) shows, and its passes: per layer the last one made, at most ``KEEP_LAYERS``
    layers (those shown). A layer asked for while another widget computes it waits for that pass (with its
    snapshots) instead of starting a second one.

    A pass cut short is kept for its layer only when a person cancelled it (``stop``: what was gathered stays
    shown, flagged partial, until Compute). One cut short because a newer request superseded its job (a layer
    and a channel set one after the other) is made again in full by the next request: it was never meant to
    stop, and showing it would show "top examples over the first 0 images" as the answer."""

    def __init__(self, probe, data, labels, score: str, strategy, batch_size):
        self.probe = probe
        self.score = choice("score", score, _dataset.SCORES)
        self.strategy = strategy
        self.batch_size = None if batch_size is None else positive_int("batch_size", batch_size, 1, WHOLE)
        self.source = _dataset.data_source(probe, data, labels, strategy)
        self.size, self.note = self.source.size, self.source.note
        self.lock = threading.Lock()
        self.cache: collections.OrderedDict[str, _Entry] = collections.OrderedDict()
        self.flights: dict[str, _Flight] = {}
        self.stopped: set[str] = set()  # layers whose pass a person cancelled

    def stop(self, layer: str) -> None:
        """A person cancelled the pass of ``layer`` (if one is computing): its partial result is the one to show."""
        with self.lock:
            if layer in self.flights:
                self.stopped.add(layer)

    def _usable(self, layer: str, k: int, again: bool = False) -> _Entry | None:
        """The kept pass of ``layer`` if it answers a request for ``k`` (under the lock)."""
        entry = self.cache.get(layer)
        if entry is None or entry.k < k or (entry.partial and (again or layer not in self.stopped)):
            return None
        self.cache.move_to_end(layer)
        return entry

    def cached(self, layer: str, k: int) -> _Entry | None:
        with self.lock:
            return self._usable(layer, k)

    def obtain(self, layer: str, k: int, progress, cancel: threading.Event, again: bool = False) -> _Entry:
        """The pass of ``layer`` with at least ``k`` examples per channel: kept, or computed now (``again``: a
        partial one is computed again). ``progress(done, total, partial ChannelExamples)``."""
        with self.lock:
            entry = self._usable(layer, k, again)
            if entry is not None:
                return entry
            flight = self.flights.get(layer)
            mine = flight is None or flight.k < k
            if mine:
                flight = self.flights[layer] = _Flight(k)
                self.stopped.discard(layer)  # a cancel from now on is of this pass
        if not mine:
            return self._join(layer, flight, k, progress, cancel, again)
        try:
            def on_progress(done, total, partial):
                flight.snapshot = (done, total, partial)
                progress(done, total, partial)

            result = _dataset.channel_examples(self.probe, self.source.get(), layer, k=k, score=self.score,
                                               batch_size=self.batch_size, strategy=self.strategy,
                                               progress=on_progress, cancel=cancel)
            entry = _Entry(result[layer], result.images, result.partial, k)
            with self.lock:
                self.cache[layer] = entry
                self.cache.move_to_end(layer)
                while len(self.cache) > KEEP_LAYERS:
                    self.cache.popitem(last=False)
            return entry
        finally:
            with self.lock:
                if self.flights.get(layer) is flight:
                    del self.flights[layer]
            flight.done.set()

    def _join(self, layer, flight: _Flight, k, progress, cancel, again) -> _Entry:
        """Wait for another widget's pass of ``layer``, showing its snapshots; if it ends without a full pass
        (cancelled there) while this one wants one, compute it here."""
        seen = None
        while not flight.done.wait(0.1):
            if flight.snapshot is not None and flight.snapshot is not seen:
                seen = flight.snapshot
                progress(*seen)
            if cancel.is_set():
                if seen is None:
                    raise Cancelled("cancelled before any batch of the data set was seen")
                done, _total, partial = seen
                return _Entry(partial[layer], partial.images, True, k)
        return self.obtain(layer, k, progress, cancel, again)


def shows_layer(info) -> bool:
    """True for a layer the data-set views show: a feature map (H, W, C) or a vector (C,) (dense, global pooling:
    a unit of those sees the whole image)."""
    return len(info.output_shape) in (1, 3)


def example_layers(probe) -> list:
    """The layers the data-set views show (``shows_layer``), in model order."""
    return [i for i in probe.layers if shows_layer(i)]


def example_layer(probe, value) -> str:
    """A layer the data-set views show: the path of a feature map (H, W, C) or vector (C,) layer, or a LayerError
    saying which are."""
    if not isinstance(value, str):
        raise LayerError(f"layer must be a layer name or path (a string); got {value!r} ({type(value).__name__}).")
    info = probe.layer(value)
    if not shows_layer(info):
        names = ", ".join(repr(i.path) for i in example_layers(probe)[-6:])
        raise LayerError(f"layer {info.path!r} outputs {tuple(info.output_shape)} per image; these views take a "
                         f"spatial layer (H, W, C) or a vector layer (C,), e.g. {names}.")
    return info.path


def unit_names(probe, path: str, names: list) -> list | None:
    """The class name of each unit of ``path`` when it is the model's output layer (``probe.output_classes``: unit i
    of N is class i; a single sigmoid unit is class 1) and the names say more than the units' indices; else None.
    ``names``: the class names (one per class, two for a single unit). ActivationGrid's hover, ChannelCard and
    DatasetExamples name output units by this."""
    classes = probe.output_classes(path)
    if classes is None:
        return None
    named = [str(names[c]) for c in classes]
    return None if named == [str(u) for u in range(len(classes))] else named


def rgba(patches: np.ndarray, input_range) -> np.ndarray:
    """Display-space patches (..., h, w, C) float with NaN outside the image as uint8 RGBA (..., h, w, 4): alpha 0
    outside the image (and in empty slots), one channel repeated to three."""
    lo, hi = input_range
    p = np.asarray(patches, np.float32)
    inside = np.isfinite(p).all(-1)
    scaled = (np.where(np.isfinite(p), p, lo) - lo) * (255.0 / (hi - lo))
    rgb = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    alpha = np.where(inside, 255, 0).astype(np.uint8)[..., None]
    return np.concatenate([rgb[..., :3], alpha], -1)


def _number(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def layer_list(probe) -> list[dict]:
    """[{"name", "channels", "spatial"}] of the layers the views show (``example_layers``)."""
    return [{"name": i.path, "channels": int(i.output_shape[-1]), "spatial": bool(i.is_spatial)}
            for i in example_layers(probe)]


class ChannelCard(CnnWidget):
    """One channel of a layer: its feature visualization beside its top-k receptive-field patches on ``data``
    (with their activation values and image indices), the data set's histogram of the channel, its mean, std and
    zero fraction, a plain "dead on this data" flag, and with labels the mean activation per class.

    ``model_or_probe``: a Keras model or ``ModelProbe``. ``data``: display-space images as a numpy array
    (N, H, W, C) (with ``labels=``, class indices (N,) or one-hot), (images, labels), a ``tf.data.Dataset`` of
    images or (images, labels) (batched or not), or a function returning a new generator of batches (a generator
    itself can be read once only; the card reads the data once per layer). ``layer``: the name or path of a
    spatial layer (H, W, C), or of a vector layer (C,) (Dense, global pooling): a unit of those sees the whole
    image, so its patches are the whole images, resized (core's ``patch_note`` says to what; the card says it in
    words), and the model's output units are named by their class. ``channel``: its index (a unit's, for a vector
    layer). ``k``: examples shown (1..64). ``class_names``: the model's class names (text).
    ``score``: "max" or "mean" (the channel's spatial max or mean per image); ``strategy``: a
    ``tf.distribute.Strategy`` the pass runs under; ``batch_size``: images per step of the pass.
    ``feature_vis``: render the feature visualization (``fv_steps`` steps, ``fv_size`` px; default the model's
    input size); of the model's output units, the class's log-odds (``fv.class_logit(c, others=1)``).

    Public traits (real traitlets, synced; set from Python or in the view, checked alike): ``layer``,
    ``channel``, ``k``. Read-only: ``partial`` (the pass shown was cancelled before the end of the data),
    ``images`` (images seen), ``stats``, ``histogram``, ``class_support``, ``patches`` (uint8 RGBA (k, h, w, 4),
    one buffer) with ``patches_meta``, ``fv_pixels`` (uint8 RGB) with ``fv_meta``, and the base's ``running``,
    ``progress``, ``status``, ``error``, ``warning``.

    The pass over the data runs once per layer (all its channels at once) on the widget's worker; changing the
    channel redraws from it and renders that channel's feature visualization. ``cancel()`` (or Cancel) stops
    within one batch and keeps the top-k gathered so far, flagged partial; ``compute()`` (or Compute) finishes
    what is missing (a full pass, the rendering). ``examples`` is the core result of the layer shown.
    """

    _esm = bundle("channel_card.js")
    _worker_name = "cnnwidget-channel-card"
    # the view's buttons (base: _on_action); a view just made asks for the layer's channels (_send_layer)
    _actions = {"compute": "compute", "cancel": "cancel", LAYER_ACTION: "_resend_layer"}

    layer = t.Unicode("").tag(sync=True)
    channel = t.Int(0).tag(sync=True)
    k = t.Int(16).tag(sync=True)
    layers = t.List(t.Dict()).tag(**_PY)  # [{"name", "channels", "spatial"}] the layers shown, model order
    class_names = t.List(t.Unicode()).tag(**_PY)
    partial = t.Bool(False).tag(**_PY)
    images = t.Int(0, help="images the shown pass saw").tag(**_PY)
    score = t.Unicode("max").tag(**_PY)
    patches = t.Bytes(b"").tag(**_PY)  # uint8 RGBA (n, h, w, 4): the top-n patches of the channel, best first
    # {"n", "h", "w", "layer", "channel", "indices": [int], "values": [float], "boxes": [[y0, x0, y1, x1]],
    #  "approximate": bool, "reason": str, "whole_image": bool (a vector layer: patches are whole images, resized),
    #  "input": [H, W], "note": core's patch_note, "unit_name": the output unit's class name or None}
    patches_meta = t.Dict().tag(**_PY)
    stats = t.Dict().tag(**_PY)  # {"mean", "std", "min", "max", "zero_fraction", "dead": bool, "images"}
    histogram = t.Dict().tag(**_PY)  # {"counts": [int], "lo", "hi", "not_finite"}: lo..hi holds every finite value
    class_support = t.List(t.Dict()).tag(**_PY)  # [{"index", "name", "mean", "count"}] per class; [] without labels
    fv_pixels = t.Bytes(b"").tag(**_PY)  # uint8 RGB (size, size, 3) of the channel's feature visualization
    fv_meta = t.Dict().tag(**_PY)  # {"size", "layer", "channel", "step", "steps", "final"}; {} before any
    feature_vis = t.Bool(True, help="render the channel's feature visualization (off: the view shows no box)").tag(
        **_PY)

    def __init__(self, model_or_probe, data, layer, channel: int = 0, k: int = 16, class_names=None, labels=None,
                 *, score: str = "max", strategy=None, batch_size: int | None = None, feature_vis: bool = True,
                 fv_steps: int = 128, fv_size: int | None = None, _passes: _Passes | None = None,
                 **probe_options):
        if _passes is not None:
            self.probe, self._passes = _passes.probe, _passes
        else:
            self.probe = as_probe(model_or_probe, **probe_options)
            self._passes = _Passes(self.probe, data, labels, score, strategy, batch_size)
        self._names = _class_names(self.probe, class_names)
        feature_vis = bool(feature_vis)
        self.fv_steps = positive_int("fv_steps", fv_steps, 1, WHOLE)
        self.fv_size = None if fv_size is None else positive_int("fv_size", fv_size, 8, WHOLE)
        self._renders: collections.OrderedDict = collections.OrderedDict()  # (layer, channel) -> images (1, S, S, C)
        self._entry: _Entry | None = None  # the pass of the layer shown (full or partial)
        self._live = None  # (layer, partial ChannelExamples or None) of the pass computing now
        self._live_k = 0  # and its k
        self._page_layer = None  # (entry, k) of the last layer sent to the page whole (_send_layer)
        path = example_layer(self.probe, layer)
        channel = index("channel", channel, self.probe.layer(path).output_shape[-1], f"layer {path!r}")
        k = _check_k(k)
        self.__dict__["_input_warning"] = self._passes.note
        super().__init__(layers=layer_list(self.probe), class_names=self._names, layer=path, channel=channel, k=k,
                         score=self._passes.score, feature_vis=feature_vis, status="reading the data set…")
        entry = self._passes.cached(path, k)
        if entry is not None:
            self._entry = entry
            self._draw()
        self._start(self._job)

    def _describe(self):
        return [f"layer {self.layer!r}", f"channel {self.channel}", f"top {self.k}"]

    # -- public --------------------------------------------------------------------------------------------------

    @property
    def examples(self):
        """The core result (``LayerExamples``) of the layer shown: every channel's top-k and statistics; None before
        the first batch."""
        with self._locked():
            return None if self._entry is None else self._entry.examples

    @property
    def fv_image(self) -> np.ndarray | None:
        """The feature visualization shown, float32 (S, S, C) in display space, or None."""
        with self._locked():
            images = self._renders.get((self.layer, self.channel))
            return None if images is None else images[0]

    def _holds(self) -> dict:
        """For ``to_numpy`` / ``save_npz``: the wire bytes, the feature visualization, and what the pass found for
        the channel shown, in full precision: ``top.indices`` (n,) int64 image indices, ``top.values`` (n,)
        float32 scores, ``top.positions`` (n, 2) (y, x) of the maximum (-1 for a vector layer), ``top.boxes``
        (n, 4), ``top.patches`` (n, h, w, C) float32 display space (NaN outside the image): the top n <= k slots
        filled. The statistics are in the settings (``stats``, ``histogram``, ``class_support``)."""
        out = super()._holds()
        with self._locked():
            ex = None if self._entry is None else self._entry.examples
            if ex is None or ex.path != self.layer:
                return out
            c = self.channel
            n = int((ex.indices[c, :self.k] >= 0).sum())
            out.update({"top.indices": ex.indices[c, :n].copy(), "top.values": ex.scores[c, :n].copy(),
                        "top.positions": ex.positions[c, :n].copy(), "top.boxes": ex.boxes[c, :n].copy(),
                        "top.patches": ex.patches[c, :n].copy()})
        return out

    def show(self, layer=None, channel: int | None = None) -> None:
        """Change layer and channel together, checked together (setting them one by one would check the channel
        against the previous layer)."""
        with self._locked():
            values = {}
            if layer is not None and example_layer(self.probe, layer) != self.layer:
                values["layer"] = layer
            if channel is not None and channel != self.channel:
                values["channel"] = channel
            if not values:
                return
            with self.hold_trait_notifications():
                for name, value in values.items():
                    setattr(self, name, value)

    def cancel(self):
        """Stop the pass (what it gathered stays shown, flagged partial, until Compute) or the rendering."""
        self._passes.stop(self.layer)
        super().cancel()

    def compute(self) -> Job:
        """Finish what is missing on the worker (a pass cancelled part-way is made again in full, the feature
        visualization is rendered); returns the Job."""
        with self._locked():
            self._push(error="")
            return self._start(lambda job: self._job(job, again=True))

    # -- checks --------------------------------------------------------------------------------------------------

    @checks("layer")
    def _check_layer(self, value):
        return example_layer(self.probe, value)

    @checks("channel")
    def _check_channel(self, value):
        return index("channel", value, self.probe.layer(self.layer).output_shape[-1], f"layer {self.layer!r}")

    @checks("k")
    def _check_k(self, value):
        return _check_k(value)

    # -- reactions -----------------------------------------------------------------------------------------------

    @reacts("layer")
    def _on_layer(self, change):
        channels = self.probe.layer(self.layer).output_shape[-1]
        if self.channel >= channels:
            self._push(channel=0)
        self._entry = None
        # The previous layer's examples go at once (its patches, statistics and class support read as the new
        # layer's under its name until the new pass drew, and for good when that pass was cancelled early).
        self._push(error="", partial=False, images=0, patches=b"", patches_meta={}, stats={}, histogram={},
                   class_support=[])
        self._refresh()

    @reacts("channel", "k")
    def _on_channel(self, change):
        self._push(error="")
        self._refresh()

    def _refresh(self):
        """After a change: draw what the kept pass has at once, then compute what is missing on the worker (unless
        this layer's pass is being computed right now: that job draws the new channel as it goes)."""
        entry = self._passes.cached(self.layer, self.k)
        if entry is not None:
            self._entry = entry
        if self._entry is not None and self._entry.examples.path == self.layer:
            self._draw()
        elif self._live is not None and self._live[0] == self.layer and self._live[1] is not None:
            self._draw_partial(self._live[1])
        job = self.job
        if job is not None and job.running and self._live is not None and self._live[0] == self.layer and \
                self._live_k >= self.k:
            return
        if self._complete() and not self._jobs.busy:
            # Nothing is missing (the kept full pass is drawn, and the rendering, if any, is kept and sent): no job.
            # A job here found the same pass, drew it again and said so: one more message a click, one more worker
            # thread woken, for the Explorer's every channel click.
            self._push(status=f"kept pass over {self._entry.images} images")
            return
        self._start(self._job)

    def _complete(self) -> bool:
        """Whether what the card shows for its layer and channel is complete: a full kept pass of the layer with
        at least ``k`` examples, and the feature visualization kept (or none asked for)."""
        e = self._entry
        return (e is not None and not e.partial and e.k >= self.k and e.examples.path == self.layer
                and (not self.feature_vis or (self.layer, self.channel) in self._renders))

    def kept(self, layer: str) -> bool:
        """Whether changing to ``layer`` (a path the card shows) would draw at once: its full pass is kept."""
        return self._passes.cached(layer, self.k) is not None

    # -- the job -------------------------------------------------------------------------------------------------

    def _job(self, job: Job, again: bool = False):
        with self._locked():
            layer, k = self.layer, self.k
            self._live, self._live_k = (layer, None), k
        started = time.monotonic()
        total_known = self._passes.size

        def progress(done, total, partial):
            with self._locked():
                if not self._is_current(job):
                    return
                self._live = (layer, partial)
            if job.due(0.25):
                seen = partial.images
                of = f" of {total_known}" if total_known else ""
                self._report(job, progress={"done": int(done), "total": total, "images": seen},
                             status=f"data set pass over {layer}: {seen}{of} images")
                with self._locked():
                    if self._is_current(job) and self.layer == layer:
                        self._draw_partial(partial)

        kept = self._passes.cached(layer, k) is not None and not again
        try:
            entry = self._passes.obtain(layer, k, progress, job.cancel_event, again)
        except Cancelled:
            return {"status": "cancelled before the first batch"}
        finally:
            with self._locked():
                if self._live is not None and self._live[0] == layer:
                    self._live = None
        with self._locked():
            if not self._is_current(job) or self.layer != layer:
                return None
            self._entry = entry
            self._draw()
            if entry.partial:
                return {"status": f"cancelled: partial top-{k} over the first {entry.images} images "
                                  "(Compute to finish the pass)"}
            summary = (f"kept pass over {entry.images} images" if kept else
                       f"pass over {entry.images} images in {time.monotonic() - started:.1f} s")
            self._push(status=summary)
        return self._render(job, summary)

    def _render(self, job: Job, summary: str):
        """The current channel's feature visualization (kept per channel), streamed while it forms."""
        if not self.feature_vis:
            return {"status": summary}
        with self._locked():
            layer, channel = self.layer, self.channel
            kept = self._renders.get((layer, channel))
            if kept is not None:
                self._send_fv(kept, layer, channel, self.fv_steps, True)
                return {"status": summary}
        last = [0.0]

        def on_frame(step, loss, images):
            now = time.monotonic()
            if step < self.fv_steps and now - last[0] < _FRAME_SECONDS:
                return
            last[0] = now
            with self._locked():
                if self._is_current(job) and (self.layer, self.channel) == (layer, channel):
                    self._send_fv(images, layer, channel, step, False)
                    self._push(progress={"done": 0, "total": 1, "step": int(step), "steps": self.fv_steps},
                               status=f"feature visualization of channel {channel}: step {step} of {self.fv_steps}")

        # The model's output units: the class's log-odds (fv.class_logit, others=1) rather than the unit's value, a
        # softmax probability that saturates (its rendering stayed a flat grey on the demo model).
        # A single sigmoid unit's logit is its class's log-odds already (no other class to subtract).
        classes = self.probe.output_classes(layer)
        objective = fv.channel(layer, channel) if classes is None else \
            fv.class_logit(channel, others=1.0 if len(classes) > 1 else 0.0)
        images = fv.render(self.probe, objective, size=self.fv_size, steps=self.fv_steps,
                           callback=on_frame, cancel=job.cancel_event, callback_every=8)
        with self._locked():
            if job.cancelled:
                if self._is_current(job) and (self.layer, self.channel) == (layer, channel):
                    self._send_fv(images, layer, channel, -1, False)
                return {"status": f"{summary}; feature visualization cancelled (Compute to render it)"}
            self._renders[(layer, channel)] = images
            while len(self._renders) > KEEP_RENDERS:
                self._renders.popitem(last=False)
            if self._is_current(job) and (self.layer, self.channel) == (layer, channel):
                self._send_fv(images, layer, channel, self.fv_steps, True)
        return {"status": summary}

    # -- drawing -------------------------------------------------------------------------------------------------

    def _send_fv(self, images, layer, channel, step, final):
        rgb = rgba(images[0], self.probe.input_range)[..., :3]
        self._push(fv_pixels=np.ascontiguousarray(rgb).tobytes(),
                   fv_meta={"size": int(images.shape[1]), "layer": layer, "channel": int(channel), "step": int(step),
                            "steps": self.fv_steps, "final": bool(final)})

    def _draw_partial(self, partial):
        """Draw a snapshot of the pass computing now (a ChannelExamples of the first batches)."""
        self._show_examples(partial[self.layer], partial.images, True)

    def _draw(self):
        e = self._entry
        if self.fv_meta.get("layer") != self.layer or self.fv_meta.get("channel") != self.channel:
            kept = self._renders.get((self.layer, self.channel))
            if kept is not None:
                self._send_fv(kept, self.layer, self.channel, self.fv_steps, True)
            else:
                self._push(fv_pixels=b"", fv_meta={})
        self._show_examples(e.examples, e.images, e.partial)
        self._send_layer()

    def _resend_layer(self):
        """A view was made (or asks again): send it the layer's channels."""
        with self._locked():
            self._page_layer = None
            self._send_layer()

    def _send_layer(self):
        """Send the page every channel of the layer shown (what ``_show_examples`` pushes for one channel), once per
        full pass and k, when it is at most PAGE_LAYER_BYTES: the view then draws a channel picked in the page
        (the Explorer's grid click) at once, while the kernel's own reply is on its way, and ignores that reply
        once it matches. A custom message, not a trait: a notebook saved with widgets keeps only the channel shown
        (issue 13's bound on saved state), and a view made later asks for it again. A partial pass is never sent."""
        e = self._entry
        if e is None or e.partial or e.examples.path != self.layer or self._closed:
            return
        key = (id(e.examples), e.images, self.k)
        if self._page_layer == key:
            return
        ex, k = e.examples, self.k
        channels = ex.indices.shape[0]
        h, w = (ex.patches.shape[2:4] if ex.patches is not None else (0, 0))
        if channels * (k * h * w * 4 + 2048) > PAGE_LAYER_BYTES:  # the patches, and about 2 KB of text a channel
            return
        metas, chunks, offset = [], [], 0
        for c in range(channels):
            state = self._channel_state(ex, c, e.images)
            patches = state.pop("patches")
            metas.append({**state, "offset": offset, "nbytes": len(patches)})
            chunks.append(patches)
            offset += len(patches)
        self._page_layer = key
        self.send({"action": LAYER_ACTION, "layer": self.layer, "k": k, "images": int(e.images),
                   "channels": metas}, buffers=[b"".join(chunks)])

    def _show_examples(self, ex, images: int, partial: bool):
        if ex.path != self.layer:
            return
        self._push(**self._channel_state(ex, self.channel, images), partial=bool(partial), images=int(images))

    def _channel_state(self, ex, c: int, images: int) -> dict:
        """The traits that show channel ``c`` of ``ex``: patches, patches_meta, histogram, stats, class_support."""
        k = self.k
        filled = ex.indices[c, :k] >= 0
        n = int(filled.sum())
        patches = ex.patches[c, :n]
        h, w = (patches.shape[1:3] if ex.patches is not None else (0, 0))
        names = unit_names(self.probe, self.layer, self._names)
        meta = {"n": n, "h": int(h), "w": int(w), "layer": self.layer, "channel": c, "score": ex.score,
                "indices": [int(i) for i in ex.indices[c, :n]], "values": [float(v) for v in ex.scores[c, :n]],
                "boxes": ex.boxes[c, :n].tolist(), "approximate": ex.approximate, "reason": ex.reason,
                "whole_image": bool(ex.whole_image), "input": [int(v) for v in self.probe.input_shape[:2]],
                "note": ex.patch_note, "unit_name": names[c] if names else None}
        hist = _histogram(ex.histogram[c], ex.histogram_edges[c], int(ex.below[c] + ex.above[c]))
        stats = {"mean": _number(ex.mean[c]), "std": _number(ex.std[c]), "min": _number(ex.min[c]),
                 "max": _number(ex.max[c]), "zero_fraction": _number(ex.zero_fraction[c]),
                 "dead": bool(ex.dead[c]), "images": int(images)}
        support = []
        if ex.class_mean is not None:
            support = [{"index": i, "name": self._names[i] if i < len(self._names) else str(i),
                        "mean": _number(ex.class_mean[i, c]), "count": int(ex.class_counts[i])}
                       for i in range(ex.class_mean.shape[0])]
        return {"patches": rgba(patches, self.probe.input_range).tobytes(), "patches_meta": meta, "histogram": hist,
                "stats": stats, "class_support": support}


def _histogram(counts: np.ndarray, edges: np.ndarray, not_finite: int) -> dict:
    """The histogram trait of one channel: its filled bins, first to last (the pass's histogram covers every
    value it saw, and may have empty bins past either end), their range, and the values left out (not finite)."""
    filled = np.flatnonzero(counts)
    first, last = (int(filled[0]), int(filled[-1])) if len(filled) else (0, len(counts) - 1)
    return {"counts": [int(v) for v in counts[first:last + 1]], "lo": _number(edges[first]),
            "hi": _number(edges[last + 1]), "not_finite": not_finite}


def _check_k(value) -> int:
    k = positive_int("k", value, 1, WHOLE)
    if k > MAX_K:
        raise OptionError(f"k must be a whole number between 1 and {MAX_K}; got {k}.")
    return k


def _class_names(probe, names) -> list[str]:
    if names is None:
        return [str(n) for n in probe.class_names]
    names = [str(n) for n in names]
    classes = 2 if probe.num_classes == 1 else probe.num_classes
    if len(names) != classes:
        raise OptionError(f"class_names must name the model's {classes} classes; got {len(names)} names.")
    return names
