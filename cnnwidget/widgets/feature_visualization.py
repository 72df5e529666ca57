"""FeatureVisualization: images optimized to excite a unit, rendered on a worker thread and streamed as they form."""

from __future__ import annotations

import math
import time

import bqplot
import ipywidgets
import numpy as np
import traitlets as t

from ..core import CnnWidgetError, OptionError, as_probe
from ..core import featurevis as fv
from ..core.featurevis.render import DEFAULT_FREE_SIZE
from ..core.options import POSITIVE, WHOLE, choice, positive_float, positive_int
from . import _axes, _transport
from ._base import CnnWidget, checks, reacts
from ._esm import bundle
from ._jobs import Job

OBJECTIVES = ("channel", "neuron", "class")
PARAMS = ("fft", "pixel")
TRANSFORMS = ("standard", "none")
MODES = ("single", "gallery")

# What a person sets; a change is checked against the model at once (a bad one is shown, reverted, and raised
# when it came from Python). Renders start only from render() or the Render button.
_SETTINGS = ("mode", "objective", "layer", "channels", "classes", "x", "y", "param", "decorrelate", "transforms",
             "steps", "size", "learning_rate", "seed", "page_size")

# Frames go out at most this often: a person sees no difference beyond ~10 a second, and every frame is a comm
# message the browser decodes and draws. The last frame of a render is always sent.
_FRAME_SECONDS = 0.1
# The loss curve sent to the chart is decimated to this many points, so a frame costs at most ~2 KB of curve
# however long the render (bqplot resends a mark's whole x and y on any change).
_CURVE_POINTS = 256

# The "class" objective is the class's logit minus this times a smooth maximum of the other logits: a pure logit
# can keep rising while another class rises faster and takes over the image (see fv.class_logit's ``others``).
_CLASS_OTHERS = 0.5

_PY = dict(sync=True, owner="python")


class _Units(t.List):
    """A list of unit indices; a single int is taken as a list of one."""

    def __init__(self, default, **kwargs):
        super().__init__(t.Int(), default, **kwargs)

    def validate(self, obj, value):
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            value = [int(value)]
        return super().validate(obj, value)


class FeatureVisualization(CnnWidget):
    """Images optimized so that a unit of the model fires strongly (Lucid's method), shown live while they form.

    ``model_or_probe``: a Keras model or a ``ModelProbe``. ``layer``: a layer path or name (default: the last
    spatial activation). ``channels``: a channel index or a list of them (one image each, optimized in one batch).

    Settings (real traitlets, synced; set them from Python or in the view): ``mode`` ("single", or "gallery":
    every unit of the layer, or every class, in batches of ``page_size``, one page per batch), ``objective``
    ("channel": a channel's mean; "neuron": one position ``x``, ``y`` of it, -1 for the centre; "class": the
    pre-softmax logit of each of ``classes``, less half a smooth maximum of the other logits), ``layer``,
    ``channels``, ``classes``, ``x``, ``y``, ``param`` ("fft" or "pixel"), ``decorrelate`` (colour
    decorrelation), ``transforms`` ("standard": Lucid's jitter, scale and rotation; "none"), ``steps``, ``size``
    (px a side; a fixed-size model gets the image resized into its input), ``learning_rate`` (Adam), ``seed``,
    ``page_size``, ``page`` (gallery page shown). Read-only: ``running``, ``progress``, ``error`` (the last
    problem, shown in the view), ``status``, ``gallery_pages``, ``gallery_done``, ``images_meta``. Each change is
    checked with the other settings (``configure`` sets several at once); a bad one is refused, from Python (a
    CnnWidgetError) or from the page, and ``error`` says why.

    ``render()`` (or the Render button) starts a render on the widget's worker thread and returns its Job; frames
    stream to the view every ``stream_every`` steps (at most ~10 a second), with the step and a loss curve. A new
    render cancels the running one (one render computes at a time: clicks while a step is being compiled wait for
    it, and only the last one runs); ``cancel()`` (or Cancel) stops within one step and keeps the last images;
    closing the widget cancels its job. ``FeatureVisualization.linked_to(grid)`` follows an ActivationGrid's clicks.

    Wire traits: ``pixels``: uint8 RGB bytes of the batch shown, (n, size, size, 3), C order, one buffer;
    ``images_meta``: ``{"n", "size", "labels": [str] * n, "title": str, "step", "steps", "page", "final": bool}``;
    ``progress``: ``{"step", "steps", "batch", "batches"}`` of the running render (batch counts gallery batches).
    """

    _esm = bundle("feature_visualization.js")
    _worker_name = "cnnwidget-featurevis"
    _actions = {"render": "render", "cancel": "cancel"}  # the view's buttons (base: _on_action)

    # set by a person
    mode = t.Enum(MODES, "single").tag(sync=True)
    objective = t.Enum(OBJECTIVES, "channel").tag(sync=True)
    layer = t.Unicode("").tag(sync=True)
    channels = _Units([0]).tag(sync=True)
    classes = _Units([0]).tag(sync=True)
    x = t.Int(-1, help="neuron column; -1 for the centre").tag(sync=True)
    y = t.Int(-1, help="neuron row; -1 for the centre").tag(sync=True)
    param = t.Enum(PARAMS, "fft").tag(sync=True)
    decorrelate = t.Bool(True).tag(sync=True)
    transforms = t.Enum(TRANSFORMS, "standard").tag(sync=True)
    steps = t.Int(256).tag(sync=True)
    size = t.Int(64, help="px a side").tag(sync=True)
    learning_rate = t.Float(0.05).tag(sync=True)
    seed = t.Int(0).tag(sync=True)
    page = t.Int(0, help="the gallery page shown").tag(sync=True)
    page_size = t.Int(16, help="gallery units a page, rendered as one batch").tag(sync=True)
    # set by Python only
    layers = t.List(t.Dict()).tag(**_PY)  # [{"name", "shape", "spatial"}] for the layer picker, model order
    class_names = t.List(t.Unicode()).tag(**_PY)
    input_size = t.List(t.Int(allow_none=True)).tag(**_PY)  # the model's [H, W]; None where it takes any
    pixels = t.Bytes(b"").tag(**_PY)  # the batch shown, as uint8 RGB (the ``images`` property holds the floats)
    gallery_pages = t.Int(1).tag(**_PY)
    gallery_done = t.List(t.Int()).tag(**_PY)  # gallery pages rendered with the current settings
    images_meta = t.Dict().tag(**_PY)
    chart = t.Instance(bqplot.Figure, allow_none=True).tag(**_PY, **ipywidgets.widget_serialization)

    def __init__(self, model_or_probe, layer=None, channels=0, *, objective: str = "channel", classes=0,
                 x: int = -1, y: int = -1, mode: str = "single", param: str = "fft", decorrelate: bool = True,
                 transforms: str = "standard", steps: int = 256, size: int | None = None,
                 learning_rate: float = 0.05, seed: int = 0, page_size: int = 16, stream_every: int = 4,
                 **probe_options):
        self.probe = as_probe(model_or_probe, **probe_options)
        self.stream_every = positive_int("stream_every", stream_every, 1, WHOLE)
        self._images = None  # float (B, S, S, C) display-space images of the last single render
        self._single_meta: dict = {}  # and their images_meta
        self._losses = np.zeros((0, 2), np.float32)
        self._gallery: dict[int, np.ndarray] = {}  # page -> images, for the settings in self._gallery_key
        self._gallery_key = None
        self._unlink = None
        h, w, _ = self.probe.input_shape
        infos = self.probe.layers
        settings = {
            "mode": mode, "objective": objective,
            "layer": self.probe.layer(layer).path if layer is not None else _default_layer(infos),
            "channels": _units(channels), "classes": _units(classes), "x": positive_int("x", x, -1, WHOLE),
            "y": positive_int("y", y, -1, WHOLE), "param": param, "decorrelate": bool(decorrelate), "transforms": transforms,
            "steps": steps, "size": size if size is not None else (max(h, w) if h and w else DEFAULT_FREE_SIZE),
            "learning_rate": positive_float("learning_rate", learning_rate, noun=POSITIVE), "seed": positive_int("seed", seed, 0, WHOLE),
            "page_size": page_size,
        }
        self._check(settings)
        # Everything the view needs on first draw goes in its comm_open.
        super().__init__(
            layers=[{"name": i.path, "shape": list(i.output_shape), "spatial": i.is_spatial} for i in infos],
            class_names=[str(n) for n in self.probe.class_names], input_size=[h, w],
            gallery_pages=self._n_pages(settings), chart=_loss_chart(), **settings)

    def _describe(self):
        units = self.classes if self.objective == "class" else self.channels
        where = "" if self.objective == "class" else f" of {self.layer!r}"
        return [f"{self.mode} {self.objective} {units}{where}", f"{self.steps} steps"]

    @classmethod
    def linked_to(cls, grid, **options) -> "FeatureVisualization":
        """A FeatureVisualization of ``grid``'s model that follows the ActivationGrid: a click on a channel (its
        ``selected_channel``, in its ``layer``) renders that channel here. ``options`` as for the constructor.
        ``unlink()`` stops following; closing either widget ends the link (it does not close the other)."""
        widget = cls(grid.probe, grid.layer, max(grid.selected_channel, 0), **options)
        widget.follow(grid)
        return widget

    # -- public --------------------------------------------------------------------------------------------------

    @property
    def images(self) -> np.ndarray | None:
        """The last single-mode images, float32 (B, size, size, C) in display space (None before any render);
        after a cancel or a NaN loss, the last images the render had."""
        return self._images

    @property
    def gallery(self) -> dict[int, np.ndarray]:
        """Gallery pages rendered with the current settings: {page: float32 (k, size, size, C) images}."""
        with self._locked():
            return dict(self._gallery) if self._gallery_key == self._gallery_settings(self._settings()) else {}

    @property
    def losses(self) -> np.ndarray:
        """(n, 2) float32 rows of (step, loss) of the last render (its current batch, in gallery mode); the loss is
        -objective, reported every ``stream_every`` steps."""
        return self._losses

    def configure(self, **settings):
        """Change several settings at once, checked together: ``configure(layer="block1_conv", channels=[3])``
        (setting them one by one would check a layer against the previous layer's channels)."""
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            raise OptionError(f"unknown settings {unknown}; the settings are {', '.join(_SETTINGS)}.")
        with self._locked():
            changed = {n: v for n, v in settings.items() if not _same(getattr(self, n), v)}
            if not changed:
                return
            try:
                with self.hold_trait_notifications():  # checked with all the new values, rolled back together
                    for name, value in changed.items():
                        setattr(self, name, value)
            except t.TraitError as exc:
                refused = exc if isinstance(exc, CnnWidgetError) else OptionError(str(exc))
                self._show_refusal(str(refused))
                raise refused from None

    def render(self, objective=None, *, param=None, batch: int | None = None) -> Job:
        """Start rendering with the current settings on the worker thread; returns the Job (``.wait()`` for it).

        In single mode ``objective`` (any ``featurevis`` Objective, e.g. ``fv.deepdream(layer)`` or a sum with
        ``fv.diversity``), ``param`` (a Parameterization, e.g. ``fv.pixel_image(init=photo)``) and ``batch`` may
        replace what the settings say, for this render. Raises CnnWidgetError for settings or an objective the
        model cannot take (also shown in the view); problems met while rendering (a NaN loss) are shown in the view.
        """
        with self._locked():
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
                self._show_refusal(str(exc))
                raise
            self.chart.axes[0].scale.max = float(settings["steps"])  # the x axis stays put while the curve grows
            self._push(error="")
            return self._start(run, progress={"step": 0, "steps": settings["steps"], "batch": 0, "batches": 1})

    def follow(self, grid):
        """Follow an ActivationGrid: each channel clicked there (``grid.selected_channel`` in ``grid.layer``) is
        rendered here, in single mode, with the current settings. Replaces any grid followed before. The grid's
        state is read when its change is applied, under both widgets' locks, so this widget always ends on the
        channel the grid shows last, whatever threads change it."""
        self.unlink()

        def update():
            channel, layer = grid.selected_channel, grid.layer
            if channel < 0 or channel >= self.probe.layer(layer).output_shape[-1]:
                return  # no selection, or the moment between a layer change and dropping a channel it lacks
            kind = self.objective if self.objective != "class" else "channel"
            try:
                self.configure(mode="single", objective=kind, layer=layer, channels=[channel])
                self.render()
            except CnnWidgetError:
                pass  # shown in the view; a click in the grid has no caller to raise to

        self._unlink = self._follow(grid, ["selected_channel", "layer"], update)

    def unlink(self):
        """Stop following a grid (see ``follow`` and ``linked_to``)."""
        if self._unlink is not None:
            self._unlink()
            self._unlink = None

    # -- checking settings ---------------------------------------------------------------------------------------

    def _settings(self) -> dict:
        return {name: getattr(self, name) for name in _SETTINGS}

    @checks(*_SETTINGS)
    def _check_setting(self, value, name):
        if name in ("steps", "size", "page_size", "seed"):
            positive_int(name, value, 0 if name == "seed" else 8 if name == "size" else 1, WHOLE)
        if name in ("x", "y"):
            positive_int(name, value, -1, WHOLE)
        if name == "learning_rate":
            positive_float(name, value, noun=POSITIVE)
        if name == "layer":
            value = self.probe.layer(value).path
        self._check({**self._settings(), name: value})
        return value

    @checks("page")
    def _check_page(self, value):
        pages = self.gallery_pages
        if not 0 <= value < pages:
            raise OptionError(f"page must be between 0 and {pages - 1}; got {value}.")
        return value

    def _check(self, s: dict):
        """Raise a CnnWidgetError saying what is wrong with settings ``s`` for this model; nothing is changed."""
        for name, allowed in (("mode", MODES), ("objective", OBJECTIVES), ("param", PARAMS),
                              ("transforms", TRANSFORMS)):
            choice(name, s[name], allowed)
        for name, minimum in (("steps", 1), ("size", 8), ("page_size", 1)):
            positive_int(name, s[name], minimum, WHOLE)
        units = s["classes"] if s["objective"] == "class" else s["channels"]  # a render's batch: its memory bound
        fv.params.check_size(self.probe, s["size"], len(units) if s["mode"] == "single" else s["page_size"])
        positive_float("learning_rate", s["learning_rate"], noun=POSITIVE)
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

    @reacts(*_SETTINGS)
    def _on_setting(self, change):
        with self.hold_sync():
            self._push(error="")
            self._settled()

    def _settled(self):
        """After a valid change: the gallery's page count, and the page or single images to show."""
        s = self._settings()
        pages = self._n_pages(s)
        fresh = self._gallery_key == self._gallery_settings(s)
        self._push(gallery_pages=pages, gallery_done=sorted(self._gallery) if fresh else [])
        if self.page >= pages:
            self._push(page=0)
        self._show_current()

    @reacts("page")
    def _on_page(self, change):
        self._show_current()

    def _show_current(self):
        """Show what the mode and page have: the last single images, or a rendered gallery page (else nothing)."""
        s = self._settings()
        if s["mode"] == "single":
            if self.images_meta.get("page", -1) != -1:  # coming back from the gallery
                self._send_images(self._images, self._single_meta)
            return
        page = self.page
        if self._gallery_key == self._gallery_settings(s) and page in self._gallery:
            self._send_images(self._gallery[page], self._page_meta(s, page, final=True))
        elif self.images_meta.get("page") != page:
            units = self._page_units(s, page)
            self._send_images(None, {**self._page_meta(s, page, final=False), "n": 0, "labels": []})
            if not self.running:
                self._push(status=f"page {page + 1} ({self._labels(s, units[:1])[0]}…) is not rendered yet: Render")

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

        def run(job):
            started = time.monotonic()

            def meta(images, step, final):
                n = len(images)
                return {"n": n, "size": int(images.shape[1]), "labels": labels or _numbered(objective.name, n),
                        "title": objective.name, "step": step, "steps": s["steps"], "page": -1, "final": final}

            stream = _Stream(self, job, s["steps"], 1)

            def on_frame(step, loss, images):
                stream.record(step, loss)
                if stream.due(step):
                    stream.send(images, meta(images, step, False), f"rendering {objective.name}")

            try:
                images = fv.render(self.probe, objective, batch=batch, callback=on_frame, cancel=job.cancel_event,
                                   **options)
            except fv.NaNLossError as exc:
                stream.keep_single(exc.images, meta(exc.images, exc.step, True))  # the last good images stay
                raise
            stream.keep_single(images, meta(images, stream.step if job.cancelled else s["steps"], True))
            return stream.ending(time.monotonic() - started)

        return run

    def _gallery_job(self, s: dict):
        key = self._gallery_settings(s)
        if self._gallery_key != key:
            self._gallery, self._gallery_key = {}, key
            self._push(gallery_done=[])
        units, k, pages = self._all_units(s), s["page_size"], self._n_pages(s)
        options = self._render_options(s)

        def run(job):
            started = time.monotonic()
            stream = _Stream(self, job, s["steps"], pages)
            while not job.cancelled:
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
                        shown = page == self.page and self.mode == "gallery"
                        stream.send(images[:n] if shown else None, self._page_meta(s, page, False, step),
                                    f"gallery page {page + 1} of {pages}")

                try:
                    images = fv.render(self.probe, objective, callback=on_frame, cancel=job.cancel_event,
                                       **options)[:len(chosen)]
                except fv.NaNLossError as exc:
                    stream.send(exc.images[:len(chosen)], self._page_meta(s, page, True, exc.step), "")
                    raise
                if job.cancelled:  # a page cut short is shown, not kept as rendered
                    if page == self.page:
                        stream.send(images, self._page_meta(s, page, True, stream.step), "")
                    break
                stream.keep_page(page, images, self._page_meta(s, page, True))
            return stream.ending(time.monotonic() - started, pages=len(self._gallery), of=pages)

        return run

    def _next_page(self, pages: int) -> int | None:
        """The page to render next: the one shown if it is not done, else the first one after it that is not."""
        current = self.page
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
        self._push(pixels=data, images_meta=meta)


class _Stream:
    """What one render job reports: loss history, throttled frames (images, progress, loss curve) and the end.
    Every report goes through the widget's ``_report``, so a job that is no longer the newest shows nothing."""

    def __init__(self, widget: FeatureVisualization, job: Job, steps: int, batches: int):
        self.widget, self.job, self.steps, self.batches = widget, job, steps, batches
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

    def send(self, images, meta: dict, status: str, keep=None):
        """One frame: images (None: not shown now), progress, status and the loss curve, if still current;
        ``keep()`` (storing final images) runs with it, under the widget's lock."""
        w = self.widget
        with w._locked():
            if not w._is_current(self.job):
                return
            if keep is not None:
                keep()
            w._losses = np.asarray(self.losses, np.float32).reshape(-1, 2)
            state = {"progress": {"step": self.step, "steps": self.steps, "batch": self.batch,
                                  "batches": self.batches}}
            if images is not None:
                state.update(pixels=_transport.image_bytes(images, w.probe.input_range), images_meta=meta)
            if status:
                state["status"] = f"{status}: step {self.step} of {self.steps}"
            w._report(self.job, **state)
            _plot(w.chart, w._losses)

    def keep_single(self, images, meta: dict):
        w = self.widget

        def keep():
            w._images, w._single_meta = images, meta

        self.send(images if w.mode == "single" else None, meta, "", keep)

    def keep_page(self, page: int, images, meta: dict):
        w = self.widget

        def keep():
            w._gallery[page] = images
            w._push(gallery_done=sorted(w._gallery))

        self.send(images if page == w.page and w.mode == "gallery" else None, meta, "", keep)

    def ending(self, seconds: float, pages: int | None = None, of: int | None = None) -> dict:
        done = f"{pages} of {of} pages" if pages is not None else f"{self.steps} steps"
        if self.job.cancelled:
            return {"status": f"cancelled after step {self.step} of {self.steps}" + (f" ({done} done)" if of else "")}
        return {"status": f"done: {done} in {seconds:.1f} s"}


def _units(value) -> list[int]:
    """A channel or class index, or several, as a list of ints."""
    values = [value] if isinstance(value, (int, np.integer)) or not hasattr(value, "__iter__") else list(value)
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in values):
        raise OptionError(f"channels and classes are indices (an int or a list of ints); got {value!r}.")
    return [int(v) for v in values]


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
    # Ticks from the shared helper (widgets/_axes.py): explicit formats (bqplot's guess fails on a flat curve, and a
    # dead unit's loss stays exactly 0 for the first steps), whole steps, the label clear of the tick labels.
    axes = [_axes.axis(x, "step", kind="integer"), _axes.axis(y, "loss (−objective)", vertical=True)]
    return _axes.follow(bqplot.Figure(
        marks=[line], axes=axes, title="loss", fig_margin={"top": 48, "bottom": 40, "left": 64, "right": 16},
        layout=ipywidgets.Layout(width="100%", max_width="400px", min_width="240px", height="240px")))


def _plot(chart: bqplot.Figure, losses: np.ndarray):
    """Show (step, loss) rows on the chart, decimated to at most _CURVE_POINTS (the last point always kept)."""
    if len(losses) > _CURVE_POINTS:
        losses = losses[np.unique(np.linspace(0, len(losses) - 1, _CURVE_POINTS).round().astype(int))]
    line = chart.marks[0]
    with line.hold_sync():
        line.x, line.y = losses[:, 0], losses[:, 1]


def _same(a, b) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return False
