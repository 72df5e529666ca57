"""Explorer: one dashboard over one probe, with the other widgets as linked panels and one shared selection."""

from __future__ import annotations

import contextlib
import threading
import time

import ipywidgets
import numpy as np
import traitlets as t

from ..core import CnnWidgetError, ModelProbe, OptionError, as_probe
from ..core.activations import fit_within, resize
from ..core.options import PROBE_OPTIONS
from . import _transport
from ._base import CnnWidget, checks, from_browser, reacts
from ._esm import bundle
from ._jobs import Worker
from .activation_grid import ActivationGrid, _default_layer
from .attention_map import AttentionMap
from .attribution_map import AttributionMap
from .feature_visualization import FeatureVisualization
from .robustness_view import RobustnessView
from .uncertainty_view import UncertaintyView

_PY = dict(sync=True, owner="python")
THUMB_PX = 48  # the image strip's thumbnails, px a side at most
STRIP_MAX = 128  # thumbnails sent at most; the image number box reaches every image
WAIT_SECONDS = 10.0  # the longest a selection change waits for a quick panel before going on to the next
# A channel picked in a panel in the page (a grid click) is followed this much later when the Explorer is shown: its
# view sends the same selection itself right after the panel's message (js/explorer.js followGrid), and the kernel
# takes it from there first. Following at once raced that message, and the Explorer then set the panels' channel
# itself and sent it back, which could reach the page after a newer click and show the older channel for a moment.
PAGE_ECHO_SECONDS = 0.1

# Panels in the order they are shown, with the label of their header.
LABELS = {
    "activations": "Activations",
    "featurevis": "Feature visualization",
    "examples": "Top data-set examples",
    "attribution": "Attribution",
    "attention": "Attention",
    "uncertainty": "Uncertainty (MC dropout)",
    "robustness": "Robustness (adversarial)",
}
# The order panels compute in after a selection change: cheapest first. The QUICK ones are waited for (each one's
# first result is there before the next starts), the rest are started and not waited for.
COST_ORDER = ("activations", "attention", "attribution", "examples", "featurevis", "uncertainty", "robustness")
QUICK = ("activations", "attention", "attribution")
DEFAULT_OPEN = ("activations", "featurevis", "examples", "attribution")
# What a panel's own controls change that the Explorer follows: panel trait -> Explorer trait.
FOLLOWED = {
    "activations": {"layer": "layer", "selected_channel": "channel", "image_index": "image"},
    "featurevis": {"layer": "layer", "channels": "channel"},
    "examples": {"layer": "layer", "channel": "channel"},
    "attribution": {"image_index": "image", "target": "target"},
    "attention": {"image_index": "image"},
    "uncertainty": {"image_index": "image"},
    "robustness": {"image_index": "image"},
}
# Options the Explorer gives a panel unless panel_options says otherwise: light enough to follow clicks.
PANEL_DEFAULTS = {
    "activations": {},
    "featurevis": {"steps": 128},
    "examples": {"k": 16, "feature_vis": False},  # the feature visualization panel shows the channel's rendering
    "attribution": {"methods": ("saliency", "gradient_x_input", "grad_cam"), "curves": False},
    "attention": {},
    "uncertainty": {"samples": 30},
    "robustness": {"steps": 10},
}


def _channel_card_class():
    """``ChannelCard`` if this installation has it (it is built separately), else None."""
    try:
        from .channel_card import ChannelCard
    except ImportError:
        return None
    return ChannelCard


def _card_shows(probe, layer) -> bool:
    """True when the examples panel (ChannelCard) shows ``layer``: a feature map or a vector layer (a dense unit's
    top images are whole images)."""
    from .channel_card import shows_layer

    return shows_layer(probe.layer(layer))


def _panel_trait(name: str):
    return t.Instance(ipywidgets.DOMWidget, allow_none=True, help=f"the {LABELS[name]} panel, once opened").tag(
        **_PY, **ipywidgets.widget_serialization)


class Explorer(CnnWidget):
    """One dashboard over one model: a layer list, an image strip and the other widgets as panels, linked by one
    shared selection.

    ``model_or_probe``: a Keras model or a ``ModelProbe`` (every panel shares it, and its compiled passes).
    ``images``: (N, H, W, C) or (H, W, C) in the probe's display range. ``data``: a data set for the panels that
    take one (the channel's top data-set examples, calibration, robustness curves); ``class_names``: as for
    ModelProbe (with a model only). ``layer``, ``channel``, ``image``, ``target``: the first selection.
    ``panels``: the panels open at first (default activations, feature visualization, top examples when ``data``
    is given, attribution). ``panel_options``: per panel, keyword arguments for its widget, e.g.
    ``{"featurevis": {"steps": 256}, "attribution": {"methods": ("saliency", "grad_cam"), "curves": True}}``.

    Shared selection (real traitlets, synced; set from Python or the page, each checked, a bad value refused with
    what was expected): ``layer`` (a layer path), ``channel`` (a channel of ``layer``; -1 for none), ``image``
    (an index of ``images``), ``target`` (the class explained; -1 for each image's predicted class). Each is
    linked both ways with the panels: a channel clicked in the activation grid selects it in the Explorer and in
    the feature visualization and top-examples panels; an image or class picked anywhere updates every panel.
    ``open_panels`` lists the panels shown; ``available`` (read-only) those this model has (uncertainty needs
    dropout layers, attention an attention site, top examples ``data`` and the ChannelCard widget).

    Laziness: a panel's widget is made when it is first opened and computes only while it is open (closing it
    cancels its work). After a selection change the open panels are updated cheapest first: activations,
    attention and the fast attribution maps are each waited for, then the top examples, the feature
    visualization render, uncertainty and robustness are started. Every panel runs on its own worker, where a
    newer request supersedes an older one, so a stale result is never drawn over a newer one.

    In the page, a channel clicked in the grid shows at once in the Explorer's view (its channel box) and in the
    top-examples panel (drawn from the layer's channels its kernel side sent ahead, when small enough): the view
    sends the new selection itself (js/explorer.js), and Python checks it as any value from the page and stays the
    source of truth; replies for an older click are drawn only while they match the selection shown.

    ``panel(name)`` returns a panel's widget (opening it); ``wait()`` blocks until every panel is idle;
    ``close()`` closes every panel and frees the model. ``cw.show_in_sidebar(explorer)`` shows it in
    JupyterLab's right sidebar, where the panels stack in one column.
    """

    _esm = bundle("explorer.js")
    _worker_name = "cnnwidget-explorer"

    # the shared selection: set by a person (Python or the page)
    layer = t.Unicode("", help="the layer selected (path)").tag(sync=True)
    channel = t.Int(0, help="the channel selected; -1 for none").tag(sync=True)
    image = t.Int(0, help="the image selected").tag(sync=True)
    target = t.Int(-1, help="the class explained; -1 for the image's predicted class").tag(sync=True)
    open_panels = t.List(t.Unicode(), help="the panels shown").tag(sync=True)
    # set by Python only
    available = t.List(t.Dict()).tag(**_PY)  # [{"name", "label"}] in the order shown
    layers = t.List(t.Dict()).tag(**_PY)  # [{"path", "name", "cls", "shape", "depth", "spatial"}], model order
    n_images = t.Int(1).tag(**_PY)
    class_names = t.List(t.Unicode()).tag(**_PY)
    thumbs = t.Bytes(b"").tag(**_PY)  # uint8 RGB (n, h, w, 3) of the first STRIP_MAX images
    thumbs_meta = t.Dict().tag(**_PY)  # {"n", "h", "w", "total"}
    predictions = t.List(t.Dict()).tag(**_PY)  # per image {"index", "label", "p"}: its predicted class
    notes = t.List(t.Unicode()).tag(**_PY)  # what is left out and why (e.g. no dropout layers)
    activations_panel = _panel_trait("activations")
    featurevis_panel = _panel_trait("featurevis")
    examples_panel = _panel_trait("examples")
    attribution_panel = _panel_trait("attribution")
    attention_panel = _panel_trait("attention")
    uncertainty_panel = _panel_trait("uncertainty")
    robustness_panel = _panel_trait("robustness")

    def __init__(self, model_or_probe, images, data=None, class_names=None, *, layer=None, channel: int = 0,
                 image: int = 0, target: int = -1, panels=None, panel_options: dict | None = None,
                 **probe_options):
        unknown = sorted(set(probe_options) - set(PROBE_OPTIONS))
        if unknown:
            raise OptionError(f"Explorer takes no option {unknown}; it takes data, class_names, layer, channel, "
                              f"image, target, panels, panel_options and ModelProbe's {', '.join(PROBE_OPTIONS)}.")
        if class_names is not None:
            if isinstance(model_or_probe, ModelProbe):
                raise OptionError("class_names belongs to the probe, which is already made: give it there, "
                                  "ModelProbe(model, class_names=...), or give the Keras model here.")
            probe_options["class_names"] = class_names
        self.probe = as_probe(model_or_probe, **probe_options)
        self._batch = self._images(images)
        self._data = data
        self._options = self._check_panel_options(panel_options)
        self._probs: np.ndarray | None = None  # (N, K) probabilities, made on the worker (or on demand)
        self._fv_shown: tuple | None = None  # the (layer, channel) the feature visualization was last asked for
        self._pending: dict = {}  # Explorer trait -> value, from a panel's own controls (see _follow_panel)
        self._pending_lock = threading.Lock()
        self._pending_sync = False  # a change from the page asked for the panels' update (see _sync_soon)
        self._pending_resume: set = set()
        self._local = threading.local()  # .propagating: this thread is setting panels from the selection
        self.__dict__["_link_worker"] = Worker("cnnwidget-explorer-links")
        notes: list[str] = []
        names = self._available(notes)
        infos = self.probe.layers
        start = self.probe.layer(layer).path if layer is not None else _default_layer(infos)
        chosen = [n for n in DEFAULT_OPEN if n in names] if panels is None else self._check_open(panels, names)
        self._names = names
        n = len(self._batch)
        super().__init__(
            available=[{"name": p, "label": LABELS[p]} for p in names],
            layers=[{"path": i.path, "name": i.path.split("/")[-1], "cls": i.class_name,
                     "shape": [None if d is None else int(d) for d in i.output_shape], "depth": i.path.count("/"),
                     "spatial": bool(i.is_spatial)} for i in infos],
            n_images=n, class_names=[str(c) for c in self.probe.class_names], notes=notes, layer=start,
            channel=channel, image=image, target=target, open_panels=chosen, status="computing…",
            **self._strip())
        with self._propagating():
            for name in COST_ORDER:  # made cheapest first: each starts its first computation on its worker
                if name in chosen:
                    try:
                        self._build(name)
                    except CnnWidgetError as exc:  # e.g. data this panel cannot take: said, the others go on
                        self._push(error=f"{LABELS[name]}: {exc}")
        self._start(self._first_job)

    def _describe(self):
        return [f"layer {self.layer!r}", f"channel {self.channel}", f"image {self.image} of {len(self._batch)}",
                f"panels {', '.join(self.open_panels) or 'none'}"]

    # -- public --------------------------------------------------------------------------------------------------

    @property
    def images(self) -> np.ndarray:
        """The images, float32 (N, H, W, C) in display space."""
        return self._batch

    def _holds(self) -> dict:
        """For ``to_numpy`` / ``save_npz``: the Explorer's own arrays (images, thumbnails) and every panel made so
        far, each panel's arrays under ``<panel>/<name>`` (its activations, maps, renders, examples...)."""
        out = super()._holds()
        for name, panel in self.panels.items():
            out.update({f"{name}/{key}": value for key, value in panel._holds().items()})
        return out

    @property
    def panels(self) -> dict:
        """The panels made so far (opened at least once): {name: widget}."""
        return {n: w for n in LABELS if (w := getattr(self, f"{n}_panel")) is not None}

    def panel(self, name: str):
        """The widget of panel ``name`` (one of ``available``), opened (and made) if it was not."""
        self._check_open([name], self._names)
        if name not in self.open_panels:
            self.open_panels = [*self.open_panels, name]
        return getattr(self, f"{name}_panel")

    def select(self, **selection):
        """Set several of ``layer``, ``channel``, ``image``, ``target`` at once, checked together (a channel of the
        new layer, say): ``explorer.select(layer="block2_relu", channel=7)``."""
        unknown = sorted(set(selection) - {"layer", "channel", "image", "target"})
        if unknown:
            raise OptionError(f"select takes layer, channel, image and target; got {unknown}.")
        with self.hold_trait_notifications():
            for name, value in selection.items():
                setattr(self, name, value)

    def predicted(self, image: int | None = None) -> int:
        """The class the model predicts for ``image`` (default the selected one)."""
        index = self.image if image is None else image
        probs = self._probs
        if probs is None:
            return int(np.argmax(self.probe.predict(self._batch[index:index + 1])[0]))
        return int(np.argmax(probs[index]))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the Explorer and every panel are idle (for scripts and tests). True if so."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            timers = self.__dict__.get("_link_timers", set())
            for timer in list(timers):  # a delayed follow (_link_soon) first
                timer.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
                if not timer.is_alive():
                    timers.discard(timer)  # fired (it removed itself), or cancelled by close()
            workers = [self._jobs, self._link_worker, *(p._jobs for p in self.panels.values())]
            for worker in workers:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not worker.wait(left):
                    return False
            if not any(w.busy for w in workers) and not timers:
                return True  # (one may have started another meanwhile)
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def close(self):
        """Stop every panel's work, close every panel and free the model."""
        link_worker = self.__dict__.get("_link_worker")
        timers = self.__dict__.get("_link_timers", set())
        for timer in list(timers):
            timer.cancel()
        timers.clear()
        if link_worker is not None:
            link_worker.stop()
        super().close()

    # -- checks: the same for Python and the page ----------------------------------------------------------------

    @checks("layer")
    def _check_layer(self, value):
        return self.probe.layer(value).path  # LayerError with suggestions; a name becomes its path

    @checks("channel")
    def _check_channel(self, value):
        channels = self._channels(self.layer)
        if not -1 <= value < channels:
            raise OptionError(f"channel must be between 0 and {channels - 1} for {self.layer!r} (or -1 for none); "
                              f"got {value}.")
        return value

    @checks("image")
    def _check_image(self, value):
        n = len(self._batch)
        if not 0 <= value < n:
            raise OptionError(f"image must be between 0 and {n - 1} for these {n} images; got {value}.")
        return value

    @checks("target")
    def _check_target(self, value):
        k = max(self.probe.num_classes, 2)
        if not -1 <= value < k:
            raise OptionError(f"target must be a class between 0 and {k - 1} (or -1 for the predicted class); "
                              f"got {value}.")
        return value

    @checks("open_panels")
    def _check_open_panels(self, value):
        return self._check_open(value, self._names)

    @staticmethod
    def _check_open(value, names) -> list[str]:
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise OptionError(f"open_panels must be a list of panel names ({', '.join(names)}); got {value!r}.")
        bad = [v for v in value if v not in names]
        if bad:
            why = {"uncertainty": "it needs dropout layers", "attention": "it needs an attention layer",
                   "examples": "it needs data= and the ChannelCard widget"}
            extra = "; ".join(f"{b}: {why[b]}" for b in bad if b in why)
            raise OptionError(f"{bad[0]!r} is not a panel of this Explorer; its panels are {', '.join(names)}"
                              f"{' (' + extra + ')' if extra else ''}.")
        return [n for n in LABELS if n in value]  # in the order shown, once each

    def _check_panel_options(self, options) -> dict:
        options = {} if options is None else options
        if not isinstance(options, dict) or set(options) - set(LABELS):
            raise OptionError(f"panel_options must be a dict keyed by panel ({', '.join(LABELS)}); got "
                              f"{options!r}.")
        return {name: {**PANEL_DEFAULTS[name], **options.get(name, {})} for name in LABELS}

    def _channels(self, layer: str) -> int:
        return int(self.probe.layer(layer).output_shape[-1])

    def _available(self, notes: list) -> list[str]:
        from ..core import uncertainty as U

        names = ["activations", "featurevis"]
        card = _channel_card_class()
        if self._data is None:
            notes.append("Top data-set examples: give data= to see them.")
        elif card is None:
            notes.append("Top data-set examples: the ChannelCard widget is not in this installation.")
        else:
            names.append("examples")
        names.append("attribution")
        if self.probe.attention_layers:
            names.append("attention")
        if U.stochastic_layers(self.probe):
            names.append("uncertainty")
        else:
            notes.append("Uncertainty: the model has no dropout layer to sample.")
        names.append("robustness")
        return [n for n in LABELS if n in names]

    # -- the image strip -----------------------------------------------------------------------------------------

    def _strip(self) -> dict:
        shown = self._batch[:STRIP_MAX]
        h, w = fit_within(*shown.shape[1:3], THUMB_PX)
        small = np.moveaxis(resize(np.moveaxis(shown, -1, 1), h, w), 1, -1) if (h, w) != shown.shape[1:3] else shown
        data = b"".join(_transport.image_bytes(x, self.probe.input_range) for x in small)
        return {"thumbs": data, "thumbs_meta": {"n": len(shown), "h": int(h), "w": int(w),
                                                "total": len(self._batch)}}

    def _first_job(self, job):
        """On the worker: every image's predicted class (for the strip), then the panels not started yet."""
        probs = self.probe.predict(self._batch)
        if job.cancelled:
            return None
        self._probs = probs
        names = self.probe.class_names
        top = np.argmax(probs, axis=-1)
        self._report(job, predictions=[{"index": int(k), "label": str(names[k]), "p": float(probs[i, k])}
                                       for i, k in enumerate(top)])
        with self._locked():
            if self._is_current(job):
                self._sync_all(first=True)
        return {"status": ""}

    # -- building panels -----------------------------------------------------------------------------------------

    def _build(self, name: str):
        """Make panel ``name``'s widget (its first computation starts on its worker) and link it."""
        opts = dict(self._options[name])
        probe, images = self.probe, self._batch
        channel = max(self.channel, 0)
        if name == "activations":
            panel = ActivationGrid(probe, images, self.layer, **opts)  # the channel and image: by _sync_all
        elif name == "featurevis":
            try:
                panel = FeatureVisualization(probe, self.layer, channel, **opts)
            except CnnWidgetError:  # a layer no channel objective takes (the input): its own default layer
                panel = FeatureVisualization(probe, **opts)
        elif name == "examples":
            if _card_shows(probe, self.layer):
                panel = _channel_card_class()(probe, self._data, self.layer, channel, **opts)
            else:  # a layer the card does not show (say, a flattened or 2-D output): its first layer it shows
                panel = self._card_on_first_layer(opts)
        elif name == "attribution":
            panel = AttributionMap(probe, images, image_index=self.image,
                                   target=None if self.target < 0 else self.target, **opts)
        elif name == "attention":
            panel = AttentionMap(probe, images, image_index=self.image, **opts)
        elif name in ("uncertainty", "robustness"):
            view = UncertaintyView if name == "uncertainty" else RobustnessView
            try:
                panel = view(probe, images, self._data, image_index=self.image, **opts)
            except CnnWidgetError as exc:
                if self._data is None:
                    raise
                # data the others take (images without labels, say) but this one cannot: it goes on without it
                panel = view(probe, images, None, image_index=self.image, **opts)
                self._push(notes=[*self.notes, f"{LABELS[name]}: the data given is not used here ({exc})"])
        self._follow_panel(name, panel)
        self._push(**{f"{name}_panel": panel})
        return panel

    def _card_on_first_layer(self, opts):
        from .channel_card import example_layers

        return _channel_card_class()(self.probe, self._data, example_layers(self.probe)[0].path, 0, **opts)

    def _follow_panel(self, name: str, panel):
        """A person's change in the panel's own controls moves the Explorer's selection (then every other panel).
        Applied on the Explorer's link thread: the panel's lock is held where the change arrives, and the Explorer
        takes its own lock before any panel's, so applying it there could deadlock."""
        mapping = FOLLOWED[name]

        def on_change(change):
            if (self._closed or getattr(self._local, "propagating", 0) or panel._is_quiet()
                    or panel._jobs.on_worker_thread()):
                return  # the Explorer's own propagation, or the panel's own state (a job, a reset)
            value = change["new"]
            if change["name"] == "channels":
                if panel.mode != "single" or panel.objective == "class" or len(value) != 1:
                    return
                value = value[0]
            if mapping[change["name"]] == "channel" and value < 0:
                return  # a panel dropping its selection does not drop the Explorer's
            with self._pending_lock:
                self._pending[mapping[change["name"]]] = int(value) if not isinstance(value, str) else value
            echoed = mapping[change["name"]] == "channel" and from_browser() and self._view_count
            self._link_soon(PAGE_ECHO_SECONDS if echoed else 0.0)

        def unlink():
            with contextlib.suppress(ValueError):
                panel.unobserve(on_change, names=list(mapping))
            with contextlib.suppress(ValueError):
                self._links.remove(unlink)

        panel.observe(on_change, names=list(mapping))
        self._links.append(unlink)

    def _link_soon(self, delay: float):
        """Apply the pending selection on the link worker, now or ``delay`` seconds from now (see
        PAGE_ECHO_SECONDS); ``wait()`` waits for a delayed one too."""
        if delay <= 0:
            self._link_worker.submit(self._apply_pending)
            return
        timers = self.__dict__.setdefault("_link_timers", set())

        def fire():
            timers.discard(timer)
            if not self._closed:
                self._link_worker.submit(self._apply_pending)

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        timers.add(timer)
        timer.start()

    def _apply_pending(self, _cancel):
        with self._pending_lock:
            pending, self._pending = self._pending, {}
            sync, resume = self._pending_sync, self._pending_resume
            self._pending_sync, self._pending_resume = False, set()
        if self._closed:
            return
        if sync:
            with self._locked():
                self._sync_all(resume=tuple(resume))
        if not pending:
            return
        if "layer" in pending and "channel" not in pending:
            try:
                if self.channel >= self._channels(pending["layer"]):
                    pending["channel"] = 0
            except CnnWidgetError:
                pass
        changed = {k: v for k, v in pending.items() if getattr(self, k) != v}
        if changed:
            with contextlib.suppress(CnnWidgetError):  # a refusal is shown in `error`
                self.select(**changed)

    @contextlib.contextmanager
    def _propagating(self):
        self._local.propagating = getattr(self._local, "propagating", 0) + 1
        try:
            yield
        finally:
            self._local.propagating -= 1

    # -- reacting to changes -------------------------------------------------------------------------------------

    @reacts("layer")
    def _on_layer(self, change):
        if self.channel >= self._channels(self.layer):
            self._push(channel=0)  # a channel the new layer does not have
        self._push(error="")
        self._sync_soon()

    @reacts("channel", "image", "target")
    def _on_selection(self, change):
        self._push(error="")
        self._sync_soon()

    @reacts("open_panels")
    def _on_open(self, change):
        self._push(error="")
        opened = [n for n in change["new"] if n not in change["old"]]
        closed = [n for n in change["old"] if n not in change["new"]]
        for name in closed:
            panel = getattr(self, f"{name}_panel")
            if panel is not None:
                panel.cancel()  # a closed panel computes nothing
                if name == "featurevis":
                    self._fv_shown = None  # its render was cut short: render again when it opens
        with self._propagating():
            for name in COST_ORDER:
                if name in opened and getattr(self, f"{name}_panel") is None:
                    try:
                        self._build(name)
                    except CnnWidgetError as exc:  # e.g. data a panel cannot take: say so, the others go on
                        self._push(error=f"{LABELS[name]}: {exc}")
        self._sync_soon(resume=opened)

    def _sync_soon(self, resume=()):
        """Bring the panels to the selection: at once for a change from Python (``explorer.layer = ...`` returns
        with the quick panels drawn, as a widget's change does), on the link worker for one from the page. The page's
        message is then answered at once and the kernel stays free: waiting there for each quick panel (up to
        WAIT_SECONDS each) kept the kernel busy for seconds on a big model (3.6 s for a layer of MobileNetV2 in the
        new-user trial), a run cell waited behind it, and an interrupt landed in the wait."""
        if not from_browser():
            self._sync_all(resume=resume)
            return
        with self._pending_lock:
            self._pending_sync = True
            self._pending_resume.update(resume)
        self._link_soon(0.0)

    def _sync_all(self, first: bool = False, resume=()):
        """Bring every open panel to the selection, cheapest first; wait for the quick ones (see the class
        docstring). ``first``: the first pass after the constructor (the quick panels started there already).
        ``resume``: panels just opened again, whose work a close had cancelled."""
        jobs = []
        order = list(COST_ORDER)
        card = self.examples_panel
        if card is not None and "examples" in self.open_panels and "examples" not in resume \
                and self.channel >= 0 and _card_shows(self.probe, self.layer) and card.kept(self.layer):
            # The top examples of a layer whose pass is kept draw at once, from that pass (no job): the cheapest
            # panel, so it goes first and its reply leaves before the others' work starts (a channel click).
            order.remove("examples")
            order.insert(0, "examples")
        with self._propagating():
            for name in order:
                panel = getattr(self, f"{name}_panel")
                if panel is None or name not in self.open_panels:
                    continue
                for job in jobs:  # cheapest first: the quick panels before this one have their result
                    job.wait(WAIT_SECONDS)
                jobs = []
                try:
                    with self._batched(panel):
                        job = getattr(self, f"_sync_{name}")(panel, name in resume)
                except CnnWidgetError:
                    continue  # shown in the panel itself
                if job is None and first and name in QUICK:
                    job = panel.job  # the first computation its constructor started
                if job is not None and name in QUICK:
                    jobs.append(job)

    @staticmethod
    @contextlib.contextmanager
    def _batched(panel):
        """What the panel's state changes while the block runs (its selection, what it draws at once, its job
        starting: running, progress, status) reaches the page as one message per panel instead of one per change
        (ipywidgets ``hold_sync``): fewer messages for JupyterLab to relay and the page to apply after a click.
        Under the panel's lock, taken after the Explorer's as everywhere: ``hold_sync`` is per widget, not per
        thread, and a change made by another thread meanwhile (its worker's report) could be queued and dropped
        as the hold ends; the worker's reports wait for the lock instead, as they wait for any of the panel's
        changes. Nothing in the block waits for a panel's job (a change's own wait is skipped while this thread
        holds the panel's lock; ``_sync_all`` waits for the quick panels after the block)."""
        with panel._locked(), panel.hold_sync():
            yield

    def _sync_activations(self, grid, resume):
        channel = self.channel if self.channel < self._channels(self.layer) else -1
        job = grid.show(self.layer, self.image, channel)
        if job is None and resume and not grid.tiles:
            job = grid.compute()
        return job

    def _sync_attribution(self, am, resume):
        before = am.job
        # -1 follows each image's predicted class, as the panel does on its own; a class chosen stays chosen
        am.explain(self.image, None if self.target < 0 else self.target)
        if am.job is before and resume:
            am.compute()
        return am.job if am.job is not before else None

    def _sync_image_only(self, panel, resume):
        before = panel.job
        if panel.image_index != self.image:
            panel.image_index = self.image
        if panel.job is before and resume and hasattr(panel, "compute"):
            panel.compute()
        return panel.job if panel.job is not before else None

    _sync_attention = _sync_image_only

    def _sync_uncertainty(self, panel, resume):
        return self._sync_image_only(panel, resume)

    def _sync_robustness(self, panel, resume):
        before = panel.job
        self._sync_image_only(panel, False)
        if panel.job is before and resume:
            panel.compute()
        return None

    def _sync_examples(self, card, resume):
        if self.channel < 0 or not _card_shows(self.probe, self.layer):
            return None  # a layer the card does not show: it stays on the last one
        if card.layer == self.layer and card.channel == self.channel:
            if resume:
                card.compute()
            return None
        card.show(self.layer, self.channel)  # checked together; its work starts on its worker
        return None

    def _sync_featurevis(self, fvw, resume):
        if self.channel < 0:
            return None
        want = (self.layer, self.channel)
        if self._fv_shown == want and not resume:
            return None
        kind = fvw.objective if fvw.objective != "class" else "channel"
        fvw.configure(mode="single", objective=kind, layer=self.layer, channels=[self.channel])
        job = fvw.render()  # a layer no objective takes raises before this: shown in the panel, tried again later
        self._fv_shown = want
        return job
