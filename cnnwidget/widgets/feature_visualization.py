"""FeatureVisualization: images optimized to excite a unit, rendered on a worker thread and streamed as they form."""

from __future__ import annotations

import logging
import math
import threading
import time

import anywidget
import bqplot
import ipywidgets
import numpy as np
import traitlets as t

from ..core import CnnWidgetError, OptionError, as_probe
from ..core import featurevis as fv
from ..core.featurevis.render import DEFAULT_FREE_SIZE
from . import _transport
from ._esm import bundle
from ._viewbox import ViewTraits
from ._jobs import Job, Worker

OBJECTIVES = ("channel", "neuron", "class")
PARAMS = ("fft", "pixel")
TRANSFORMS = ("standard", "none")
MODES = ("single", "gallery")

# What a person sets; a change is checked against the model at once (a bad one is shown, reverted, and raised
# when it came from Python). Renders start only from render() or the Render button.
_SETTINGS = ("mode", "objective", "layer", "channels", "classes", "x", "y", "param", "decorrelate", "transforms",
             "steps", "size", "learning_rate", "seed", "page_size")
# The view's traits a person reads, sets or observes on the widget itself (see FeatureVisualization.observe).
_SHARED = _SETTINGS + ("page", "running", "error", "status")

# Frames go out at most this often: a person sees no difference beyond ~10 a second, and every frame is a comm
# message the browser decodes and draws. The last frame of a render is always sent.
_FRAME_SECONDS = 0.1
# The loss curve sent to the chart is decimated to this many points, so a frame costs at most ~2 KB of curve
# however long the render (bqplot resends a mark's whole x and y on any change).
_CURVE_POINTS = 256

# The "class" objective is the class's logit minus this times a smooth maximum of the other logits: a pure logit
# can keep rising while another class rises faster and takes over the image (see fv.class_logit's ``others``).
_CLASS_OTHERS = 0.5

_log = logging.getLogger(__name__)


class _FeatureVisView(anywidget.AnyWidget):
    """The canvas view (js/feature_visualization.js).

    ``images``: uint8 RGB bytes of the batch shown, (n, size, size, 3), C order, one buffer; ``images_meta``:
    ``{"n", "size", "labels": [str] * n, "title": str, "step", "steps", "page", "final": bool}``;
    ``progress``: ``{"step", "steps", "batch", "batches"}`` of the running render (batch counts gallery batches).
    """

    _esm = bundle("feature_visualization.js")

    # written by Python
    layers = t.List(t.Dict()).tag(sync=True)  # [{"name", "shape", "spatial"}] for the layer picker, model order
    class_names = t.List(t.Unicode()).tag(sync=True)
    input_size = t.List(t.Int(allow_none=True)).tag(sync=True)  # the model's [H, W]; None where it takes any
    images = t.Bytes(b"").tag(sync=True)
    images_meta = t.Dict().tag(sync=True)
    progress = t.Dict().tag(sync=True)
    gallery_pages = t.Int(1).tag(sync=True)
    gallery_done = t.List(t.Int()).tag(sync=True)  # gallery pages rendered with the current settings
    running = t.Bool(False).tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    status = t.Unicode("").tag(sync=True)
    # written by both
    mode = t.Unicode("single").tag(sync=True)
    objective = t.Unicode("channel").tag(sync=True)
    layer = t.Unicode("").tag(sync=True)
    channels = t.List(t.Int(), [0]).tag(sync=True)
    classes = t.List(t.Int(), [0]).tag(sync=True)
    x = t.Int(-1).tag(sync=True)  # neuron column; -1 for the centre
    y = t.Int(-1).tag(sync=True)  # neuron row; -1 for the centre
    param = t.Unicode("fft").tag(sync=True)
    decorrelate = t.Bool(True).tag(sync=True)
    transforms = t.Unicode("standard").tag(sync=True)
    steps = t.Int(256).tag(sync=True)
    size = t.Int(64).tag(sync=True)  # px a side
    learning_rate = t.Float(0.05).tag(sync=True)
    seed = t.Int(0).tag(sync=True)
    page = t.Int(0).tag(sync=True)
    page_size = t.Int(16).tag(sync=True)  # gallery units per page, rendered as one batch


class FeatureVisualization(ViewTraits, ipywidgets.HBox):
    """Images optimized so that a unit of the model fires strongly (Lucid's method), shown live while they form.

    ``model_or_probe``: a Keras model or a ``ModelProbe``. ``layer``: a layer path or name (default: the last
    spatial activation). ``channels``: a channel index or a list of them (one image each, optimized in one batch).

    Settings (synced traits; set them from Python or in the view): ``mode`` ("single", or "gallery": every unit of
    the layer, or every class, in batches of ``page_size``, one page per batch), ``objective`` ("channel": a
    channel's mean; "neuron": one position ``x``, ``y`` of it, -1 for the centre; "class": the pre-softmax logit
    of each of ``classes``, less half a smooth maximum of the other logits), ``layer``, ``channels``, ``classes``,
    ``x``, ``y``, ``param`` ("fft" or "pixel"), ``decorrelate`` (colour decorrelation), ``transforms``
    ("standard": Lucid's jitter, scale and rotation; "none"),
    ``steps``, ``size`` (px a side; a fixed-size model gets the image resized into its input), ``learning_rate``
    (Adam), ``seed``, ``page`` (gallery page shown). Also ``running``, ``error`` (the last problem, shown in the
    view) and ``status``.

    ``render()`` (or the Render button) starts a render on the widget's worker thread and returns its Job; frames
    stream to the view every ``stream_every`` steps (at most ~10 a second), with the step and a loss curve. A new
    render cancels the running one; ``cancel()`` (or Cancel) stops within one step and keeps the last images;
    closing the widget cancels its job. ``FeatureVisualization.linked_to(grid)`` follows an ActivationGrid's clicks.
    """

    _view_traits = _SHARED

    def __init__(self, model_or_probe, layer=None, channels=0, *, objective: str = "channel", classes=0,
                 x: int = -1, y: int = -1, mode: str = "single", param: str = "fft", decorrelate: bool = True,
                 transforms: str = "standard", steps: int = 256, size: int | None = None,
                 learning_rate: float = 0.05, seed: int = 0, page_size: int = 16, stream_every: int = 4,
                 **probe_options):
        self.probe = as_probe(model_or_probe, **probe_options)
        self.stream_every = _whole(stream_every, "stream_every", 1)
        self._lock = threading.RLock()  # browser changes may arrive on a kernel subshell thread; frames on the worker
        self._worker = Worker("cnnwidget-featurevis")
        self._generation = 0  # bumped by every render: frames of a replaced job are dropped, never shown
        self._unlink = None
        self._images = None  # float (B, S, S, C) display-space images of the last single render
        self._single_meta: dict = {}  # and their images_meta
        self._losses = np.zeros((0, 2), np.float32)
        self._gallery: dict[int, np.ndarray] = {}  # page -> images, for the settings in self._gallery_key
        self._gallery_key = None
        h, w, _ = self.probe.input_shape
        infos = self.probe.layers
        settings = {
            "mode": mode, "objective": objective,
            "layer": self.probe.layer(layer).path if layer is not None else _default_layer(infos),
            "channels": _units(channels), "classes": _units(classes), "x": int(x), "y": int(y), "param": param,
            "decorrelate": bool(decorrelate), "transforms": transforms, "steps": steps,
            "size": int(size) if size is not None else (max(h, w) if h and w else DEFAULT_FREE_SIZE),
            "learning_rate": float(learning_rate), "seed": int(seed), "page_size": page_size,
        }
        self._check(settings)
        # Everything the view needs on first draw goes in its comm_open.
        self.view = _FeatureVisView(
            layers=[{"name": i.path, "shape": list(i.output_shape), "spatial": i.is_spatial} for i in infos],
            class_names=[str(n) for n in self.probe.class_names], input_size=[h, w],
            gallery_pages=self._n_pages(settings), **settings)
        self.chart = _loss_chart()
        super().__init__(children=[self.view, self.chart], layout=ipywidgets.Layout(flex_flow="row wrap"))
        self.view.observe(self._on_change, names=list(_SETTINGS))
        self.view.observe(self._on_page, names=["page"])
        self.view.on_msg(self._on_msg)

    @classmethod
    def linked_to(cls, grid, **options) -> "FeatureVisualization":
        """A FeatureVisualization of ``grid``'s model that follows the ActivationGrid: a click on a channel (its
        ``selected_channel``, in its ``layer``) renders that channel here. ``options`` as for the constructor.
        ``unlink()`` stops following; closing either widget's Python object does not close the other."""
        widget = cls(grid.probe, grid.layer, max(grid.selected_channel, 0), **options)
        widget.follow(grid)
        return widget

    def _coerce_view_trait(self, name, value):
        return _units(value) if name in ("channels", "classes") else value

    # -- public --------------------------------------------------------------------------------------------------

    @property
    def images(self) -> np.ndarray | None:
        """The last single-mode images, float32 (B, size, size, C) in display space (None before any render);
        after a cancel or a NaN loss, the last images the render had."""
        return self._images

    @property
    def gallery(self) -> dict[int, np.ndarray]:
        """Gallery pages rendered with the current settings: {page: float32 (k, size, size, C) images}."""
        with self._lock:
            return dict(self._gallery) if self._gallery_key == self._gallery_settings(self._settings()) else {}

    @property
    def losses(self) -> np.ndarray:
        """(n, 2) float32 rows of (step, loss) of the last render (its current batch, in gallery mode); the loss is
        -objective, reported every ``stream_every`` steps."""
        return self._losses

    @property
    def job(self) -> Job | None:
        """The current or last render's Job (``.wait()``, ``.running``, ``.cancel()``)."""
        return self._worker.job

    def configure(self, **settings):
        """Change several settings at once, checked together: ``configure(layer="block1_conv", channels=[3])``
        (setting them one by one would check a layer against the previous layer's channels)."""
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            raise OptionError(f"unknown settings {unknown}; the settings are {', '.join(_SETTINGS)}.")
        for name in ("channels", "classes"):
            if name in settings:
                settings[name] = _units(settings[name])
        with self._lock:
            proposed = {**self._settings(), **settings}
            try:
                self._check(proposed)
            except CnnWidgetError as exc:
                self.view.error = str(exc)
                raise
            with self.view.hold_sync():
                with self._quiet():
                    for name, value in settings.items():
                        setattr(self.view, name, value)
                self.view.error = ""
                self._settled()

    def render(self, objective=None, *, param=None, batch: int | None = None) -> Job:
        """Start rendering with the current settings on the worker thread; returns the Job (``.wait()`` for it).

        In single mode ``objective`` (any ``featurevis`` Objective, e.g. ``fv.deepdream(layer)`` or a sum with
        ``fv.diversity``), ``param`` (a Parameterization, e.g. ``fv.pixel_image(init=photo)``) and ``batch`` may
        replace what the settings say, for this render. Raises CnnWidgetError for settings or an objective the
        model cannot take (also shown in the view); problems met while rendering (a NaN loss) are shown in the view.
        """
        with self._lock:
            settings = self._settings()
            try:
                self._check(settings)
                if settings["mode"] == "gallery":
                    if objective is not None or param is not None or batch is not None:
                        raise OptionError("objective, param and batch apply to single mode; the gallery renders "
                                          "every unit of the layer (or every class) with the settings.")
                    run = self._gallery_job(settings)
                else:
                    if objective is None:
                        objective = self._objective(settings)
                        units = settings["classes"] if settings["objective"] == "class" else settings["channels"]
                        labels = self._labels(settings, units)
                    else:
                        objective, labels = fv.as_objective(objective), None
                    objective.bind(self.probe)  # bad layers or indices fail here, in the caller, with the message
                    run = self._single_job(settings, objective, labels, param, batch)
            except CnnWidgetError as exc:
                self.view.error = str(exc)
                raise
            self._generation += 1
            generation = self._generation
            with self.view.hold_sync():
                self.view.error, self.view.running = "", True
                self.view.progress = {"step": 0, "steps": settings["steps"], "batch": 0, "batches": 1}
            self.chart.axes[0].scale.max = float(settings["steps"])  # the x axis stays put while the curve grows
            started = time.monotonic()
            return self._worker.submit(
                lambda cancel: run(cancel, generation),
                on_done=lambda status: self._finished(generation, status(time.monotonic() - started)),
                on_error=lambda exc, trace: self._failed(generation, exc, trace))

    def cancel(self):
        """Stop the running render within one step; the images it had stay shown."""
        self._worker.cancel()

    def follow(self, grid):
        """Follow an ActivationGrid: each channel clicked there (``grid.selected_channel`` in ``grid.layer``) is
        rendered here, in single mode, with the current settings. Replaces any grid followed before."""
        self.unlink()

        def on_grid(change):
            channel, layer = grid.selected_channel, grid.layer
            # The grid changes its layer before it drops a selection the new layer lacks: skip that moment.
            if channel < 0 or channel >= self.probe.layer(layer).output_shape[-1]:
                return
            kind = self.objective if self.objective != "class" else "channel"
            try:
                self.configure(mode="single", objective=kind, layer=layer, channels=[channel])
                self.render()
            except CnnWidgetError:
                pass  # shown in the view; a click in the grid has no caller to raise to

        grid.observe(on_grid, names=["selected_channel", "layer"])
        self._unlink = lambda: grid.unobserve(on_grid, names=["selected_channel", "layer"])

    def unlink(self):
        """Stop following a grid (see ``follow`` and ``linked_to``)."""
        if self._unlink is not None:
            self._unlink()
            self._unlink = None

    def close(self):
        """Cancel the running render, stop following a grid and close the views."""
        with self._lock:
            self._generation += 1  # nothing the cancelled job still reports reaches a closed view
        self.unlink()
        self._worker.cancel()
        self.chart.close()
        self.view.close()
        super().close()

    # -- checking settings ---------------------------------------------------------------------------------------

    def _settings(self) -> dict:
        return {name: getattr(self.view, name) for name in _SETTINGS}

    def _check(self, s: dict):
        """Raise a CnnWidgetError saying what is wrong with settings ``s`` for this model; nothing is changed."""
        for name, allowed in (("mode", MODES), ("objective", OBJECTIVES), ("param", PARAMS),
                              ("transforms", TRANSFORMS)):
            if s[name] not in allowed:
                raise OptionError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {s[name]!r}.")
        for name, minimum in (("steps", 1), ("size", 8), ("page_size", 1)):
            _whole(s[name], name, minimum)
        if not (math.isfinite(s["learning_rate"]) and s["learning_rate"] > 0):
            raise OptionError(f"learning_rate must be a positive number; got {s['learning_rate']!r}.")
        self.probe.layer(s["layer"])  # LayerError naming the layers there are
        units = None if s["mode"] == "single" else [0]  # a gallery checks only that the layer suits the objective
        self._objective(s, units).bind(self.probe)

    def _objective(self, s: dict, units=None) -> fv.Objective:
        """The core objective for settings ``s`` and ``units`` (default the settings' channels or classes): one
        image per unit, all in one batch."""
        kind = s["objective"]
        units = list(s["classes"] if kind == "class" else s["channels"]) if units is None else list(units)
        if not units:
            raise OptionError(f"{'classes' if kind == 'class' else 'channels'} must list at least one index.")
        if kind == "class":
            if len(units) == 1:
                return fv.class_logit(units[0], others=_CLASS_OTHERS)
            return fv.class_logits(units, others=_CLASS_OTHERS)
        layer = s["layer"]
        if kind == "channel":
            return fv.channel(layer, units[0]) if len(units) == 1 else fv.channels(layer, units)
        x, y = (None if v < 0 else v for v in (s["x"], s["y"]))
        if len(units) == 1:
            return fv.neuron(layer, units[0], x, y)
        # No batch objective for neurons in core: image i gets its own neuron term.
        terms = [fv.batch(fv.neuron(layer, c, x, y), i) for i, c in enumerate(units)]
        return sum(terms[1:], terms[0])

    def _all_units(self, s: dict) -> list[int]:
        """Every unit a gallery shows: the layer's channels, or every class."""
        n = self.probe.num_classes if s["objective"] == "class" else self.probe.layer(s["layer"]).output_shape[-1]
        return list(range(n))

    def _n_pages(self, s: dict) -> int:
        return max(1, -(-len(self._all_units(s)) // s["page_size"]))

    def _labels(self, s: dict, units) -> list[str]:
        if s["objective"] == "class":
            names = self.probe.class_names
            return [f"class {k}: {names[k]}" if str(names[k]) != str(k) else f"class {k}" for k in units]
        if s["objective"] == "neuron":
            where = "centre" if s["x"] < 0 and s["y"] < 0 else f"x {s['x']}, y {s['y']}"
            return [f"neuron {c} ({where})" for c in units]
        return [f"channel {c}" for c in units]

    @staticmethod
    def _gallery_settings(s: dict) -> tuple:
        """What a gallery page depends on (not the channels, classes or neuron position of single mode)."""
        return tuple(s[n] for n in ("objective", "layer", "param", "decorrelate", "transforms", "steps", "size",
                                    "learning_rate", "seed", "page_size"))

    # -- reacting to changes -------------------------------------------------------------------------------------

    def _on_change(self, change):
        with self._lock:
            if self._reverting:
                return
            # ipywidgets holds a property lock while it applies the browser's update: raising then would only reach
            # the kernel log, so a browser-made mistake is shown in the widget alone, a Python-made one also raises.
            from_browser = bool(getattr(self.view, "_property_lock", None))
            try:
                self._check(self._settings())
            except CnnWidgetError as exc:
                self.view.error = str(exc)
                with self._quiet():
                    setattr(self.view, change["name"], change["old"])  # keep what was there: nothing lost
                if not from_browser:
                    raise
                return
            with self.view.hold_sync():
                self.view.error = ""
                self._settled()

    def _settled(self):
        """After a valid change: the gallery's page count, and the page or single images to show."""
        s = self._settings()
        pages = self._n_pages(s)
        self.view.gallery_pages = pages
        fresh = self._gallery_key == self._gallery_settings(s)
        self.view.gallery_done = sorted(self._gallery) if fresh else []
        if self.view.page >= pages:
            with self._quiet():
                self.view.page = 0
        self._show_current()

    def _on_page(self, change):
        with self._lock:
            if self._reverting:
                return
            from_browser = bool(getattr(self.view, "_property_lock", None))
            pages = self.view.gallery_pages
            if not 0 <= change["new"] < pages:
                self.view.error = f"page must be between 0 and {pages - 1}; got {change['new']}."
                with self._quiet():
                    self.view.page = change["old"]
                if not from_browser:
                    raise OptionError(self.view.error)
                return
            self._show_current()

    def _show_current(self):
        """Show what the mode and page have: the last single images, or a rendered gallery page (else nothing)."""
        s = self._settings()
        if s["mode"] == "single":
            if self.view.images_meta.get("page", -1) != -1:  # coming back from the gallery
                self._send_images(self._images, self._single_meta)
            return
        page = self.view.page
        if self._gallery_key == self._gallery_settings(s) and page in self._gallery:
            self._send_images(self._gallery[page], self._page_meta(s, page, final=True))
        elif self.view.images_meta.get("page") != page:
            units = self._page_units(s, page)
            self._send_images(None, {**self._page_meta(s, page, final=False), "n": 0, "labels": []})
            if not self.view.running:
                self.view.status = f"page {page + 1} ({self._labels(s, units[:1])[0]}…) is not rendered yet: Render"

    def _on_msg(self, _widget, content, _buffers):
        action = content.get("action") if isinstance(content, dict) else None
        if action == "render":
            try:
                self.render()
            except CnnWidgetError:
                pass  # shown in the view; a click has no caller to raise to
        elif action == "cancel":
            self.cancel()

    # -- jobs ----------------------------------------------------------------------------------------------------

    def _render_options(self, s: dict, param=None) -> dict:
        if param is None:
            make = fv.fft_image if s["param"] == "fft" else fv.pixel_image
            param = make(decorrelate=s["decorrelate"])
        return {"size": s["size"], "steps": s["steps"], "param": param, "learning_rate": s["learning_rate"],
                "transforms": fv.standard_transforms() if s["transforms"] == "standard" else [], "seed": s["seed"],
                "callback_every": self.stream_every}

    def _single_job(self, s: dict, objective: fv.Objective, labels: list[str] | None, param, batch):
        """The job for one render; ``labels`` name its images (None: numbered, for an objective of the caller)."""
        options = self._render_options(s, param)

        def run(cancel, generation):
            def meta(images, step, final):
                n = len(images)
                return {"n": n, "size": int(images.shape[1]), "labels": labels or _numbered(objective.name, n),
                        "title": objective.name, "step": step, "steps": s["steps"], "page": -1, "final": final}

            stream = _Stream(self, generation, s["steps"], 1)

            def on_frame(step, loss, images):
                stream.record(step, loss)
                if stream.due(step):
                    stream.send(images, meta(images, step, False), f"rendering {objective.name}")

            try:
                images = fv.render(self.probe, objective, batch=batch, callback=on_frame, cancel=cancel, **options)
            except fv.NaNLossError as exc:
                stream.keep_single(exc.images, meta(exc.images, exc.step, True))  # the last good images stay
                raise
            stream.keep_single(images, meta(images, stream.step if cancel.is_set() else s["steps"], True))
            return lambda seconds: stream.ending(cancel, seconds)

        return run

    def _gallery_job(self, s: dict):
        key = self._gallery_settings(s)
        if self._gallery_key != key:
            self._gallery, self._gallery_key = {}, key
            self.view.gallery_done = []
        units, k, pages = self._all_units(s), s["page_size"], self._n_pages(s)
        options = self._render_options(s)

        def run(cancel, generation):
            stream = _Stream(self, generation, s["steps"], pages)
            while not cancel.is_set():
                page = self._next_page(pages)
                if page is None:
                    break
                chosen = self._page_units(s, page)
                # The last page is filled up with units of the first, so every page has the same batch and runs the
                # same compiled step (a smaller batch would be traced again); the extra images are dropped.
                padded = chosen + units[:k - len(chosen)] if pages > 1 else chosen
                objective = self._objective(s, padded)
                stream.start_batch(len(self._gallery))

                def on_frame(step, loss, images, page=page, n=len(chosen)):
                    stream.record(step, loss)
                    if stream.due(step):
                        shown = page == self.view.page and self.view.mode == "gallery"
                        stream.send(images[:n] if shown else None, self._page_meta(s, page, False, step),
                                    f"gallery page {page + 1} of {pages}")

                try:
                    images = fv.render(self.probe, objective, callback=on_frame, cancel=cancel, **options)[:len(chosen)]
                except fv.NaNLossError as exc:
                    stream.send(exc.images[:len(chosen)], self._page_meta(s, page, True, exc.step), "")
                    raise
                if cancel.is_set():  # a page cut short is shown, not kept as rendered
                    if page == self.view.page:
                        stream.send(images, self._page_meta(s, page, True, stream.step), "")
                    break
                stream.keep_page(page, images, self._page_meta(s, page, True))
            return lambda seconds: stream.ending(cancel, seconds, pages=len(self._gallery), of=pages)

        return run

    def _next_page(self, pages: int) -> int | None:
        """The page to render next: the one shown if it is not done, else the first one after it that is not."""
        current = self.view.page
        for page in [*range(current, pages), *range(current)]:
            if page not in self._gallery:
                return page
        return None

    def _page_units(self, s: dict, page: int) -> list[int]:
        k = s["page_size"]
        return self._all_units(s)[page * k:(page + 1) * k]

    def _page_meta(self, s: dict, page: int, final: bool, step: int | None = None) -> dict:
        units = self._page_units(s, page)
        title = (f"{s['objective']} gallery of {s['layer']}" if s["objective"] != "class" else "class gallery")
        return {"n": len(units), "size": s["size"], "labels": self._labels(s, units), "title": title,
                "step": s["steps"] if step is None else step, "steps": s["steps"], "page": page, "final": final}

    def _send_images(self, images, meta: dict):
        """Put a batch on the view: uint8 RGB bytes, one buffer for the batch, and its meta in the same message."""
        data = b"" if images is None else _transport.image_bytes(images, self.probe.input_range)
        with self.view.hold_sync():
            self.view.images = data
            self.view.images_meta = meta

    def _finished(self, generation: int, status: str):
        with self._lock:
            if generation == self._generation:
                with self.view.hold_sync():
                    self.view.running = False
                    self.view.status = status

    def _failed(self, generation: int, exc: BaseException, trace: str):
        with self._lock:
            if generation != self._generation:
                return
            # Our own errors say what to do; anything else is a bug, so its traceback goes to the kernel log too.
            message = str(exc) if isinstance(exc, CnnWidgetError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, CnnWidgetError):
                _log.error("feature visualization failed:\n%s", trace)
            with self.view.hold_sync():
                self.view.running = False
                self.view.error = message
                self.view.status = "stopped"


class _Stream:
    """What one render job reports: loss history, throttled frames (images, progress, loss curve) and the end."""

    def __init__(self, widget: FeatureVisualization, generation: int, steps: int, batches: int):
        self.widget, self.generation, self.steps, self.batches = widget, generation, steps, batches
        self.batch, self.step, self.last_sent, self.losses = 0, 0, -math.inf, []

    def start_batch(self, batch: int):
        self.batch, self.step, self.losses, self.last_sent = batch, 0, [], -math.inf

    def record(self, step: int, loss: float):
        self.step = step
        self.losses.append((step, loss))

    def due(self, step: int) -> bool:
        """Whether to send a frame now; the end of a render (done, cancelled, NaN) sends its own."""
        now = time.monotonic()
        if step < self.steps and now - self.last_sent >= _FRAME_SECONDS:
            self.last_sent = now
            return True
        return False

    def send(self, images, meta: dict, status: str):
        """One frame: images (None: not shown now), progress, status and the loss curve, if still current."""
        w = self.widget
        with w._lock:
            if self.generation != w._generation:
                return
            w._losses = np.asarray(self.losses, np.float32).reshape(-1, 2)
            with w.view.hold_sync():
                if images is not None:
                    w._send_images(images, meta)
                w.view.progress = {"step": self.step, "steps": self.steps, "batch": self.batch,
                                   "batches": self.batches}
                if status:
                    w.view.status = f"{status}: step {self.step} of {self.steps}"
            _plot(w.chart, w._losses)

    def keep_single(self, images, meta: dict):
        w = self.widget
        with w._lock:
            if self.generation != w._generation:
                return
            w._images, w._single_meta = images, meta
            self.send(images if w.view.mode == "single" else None, meta, "")

    def keep_page(self, page: int, images, meta: dict):
        w = self.widget
        with w._lock:
            if self.generation != w._generation:
                return
            w._gallery[page] = images
            w.view.gallery_done = sorted(w._gallery)
            shown = page == w.view.page and w.view.mode == "gallery"
            self.send(images if shown else None, meta, "")

    def ending(self, cancel: threading.Event, seconds: float, pages: int | None = None, of: int | None = None) -> str:
        done = f"{pages} of {of} pages" if pages is not None else f"{self.steps} steps"
        if cancel.is_set():
            return f"cancelled after step {self.step} of {self.steps}" + (f" ({done} done)" if of else "")
        return f"done: {done} in {seconds:.1f} s"


def _units(value) -> list[int]:
    """A channel or class index, or several, as a list of ints."""
    values = [value] if isinstance(value, (int, np.integer)) else list(value)
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in values):
        raise OptionError(f"channels and classes are indices (an int or a list of ints); got {value!r}.")
    return [int(v) for v in values]


def _whole(value, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise OptionError(f"{what} must be a whole number >= {minimum}; got {value!r}.")
    return int(value)


def _numbered(name: str, n: int) -> list[str]:
    return [name] if n == 1 else [f"image {i}" for i in range(n)]


def _default_layer(infos) -> str:
    """The last spatial activation (the richest features that still have a picture), else the last spatial layer."""
    spatial = [i for i in infos if i.is_spatial]
    acts = [i for i in spatial if i.class_name in ("Activation", "ReLU")]
    return (acts or spatial or infos)[-1].path


def _loss_chart() -> bqplot.Figure:
    """The loss (-objective) against the step; its x axis spans the render's steps."""
    x, y = bqplot.LinearScale(min=0.0, allow_padding=False), bqplot.LinearScale()
    line = bqplot.Lines(x=np.zeros(0, np.float32), y=np.zeros(0, np.float32), scales={"x": x, "y": y},
                        colors=["#4c72b0"], stroke_width=2)
    # Explicit tick formats: bqplot's guessed one fails ("invalid format") on a flat curve, and a dead unit's loss
    # stays exactly 0 for the first steps.
    axes = [bqplot.Axis(scale=x, label="step", num_ticks=5, tick_format="d"),
            bqplot.Axis(scale=y, orientation="vertical", label="loss (−objective)", num_ticks=5, tick_format=".3~g")]
    return bqplot.Figure(marks=[line], axes=axes, title="loss",
                         layout=ipywidgets.Layout(width="100%", max_width="400px", min_width="240px", height="240px"),
                         fig_margin={"top": 36, "bottom": 36, "left": 64, "right": 16})


def _plot(chart: bqplot.Figure, losses: np.ndarray):
    """Show (step, loss) rows on the chart, decimated to at most _CURVE_POINTS (the last point always kept)."""
    if len(losses) > _CURVE_POINTS:
        losses = losses[np.unique(np.linspace(0, len(losses) - 1, _CURVE_POINTS).round().astype(int))]
    line = chart.marks[0]
    with line.hold_sync():
        line.x, line.y = losses[:, 0], losses[:, 1]
