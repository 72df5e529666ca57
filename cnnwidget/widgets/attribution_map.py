"""AttributionMap: several attribution methods side by side over one input, with their faithfulness curves."""

from __future__ import annotations

import inspect
import logging
import threading
import time

import anywidget
import bqplot
import ipywidgets
import numpy as np
import traitlets as t

from ..core import CnnWidgetError, OptionError, as_probe
from ..core import attribution as attr
from ..core.options import PROBE_OPTIONS
from . import _transport
from ._esm import bundle
from ._viewbox import ViewTraits
from ._jobs import Job, Worker

DEFAULT_METHODS = ("saliency", "integrated_gradients", "grad_cam", "occlusion", "lime")
# One forward and one backward pass each: computed at once, on the caller's thread, so they show first and a
# mistake in their options raises where it was made. Every other method (and the curves) runs on the worker.
FAST = ("saliency", "gradient_x_input", "guided_backprop", "grad_cam", "grad_cam_plus_plus")
CAMS = ("grad_cam", "grad_cam_plus_plus", "score_cam")
LABELS = {
    "saliency": "Saliency", "gradient_x_input": "Gradient × input", "smoothgrad": "SmoothGrad",
    "integrated_gradients": "Integrated Gradients", "guided_backprop": "Guided backprop", "grad_cam": "Grad-CAM",
    "grad_cam_plus_plus": "Grad-CAM++", "score_cam": "Score-CAM", "occlusion": "Occlusion", "rise": "RISE",
    "lime": "LIME", "kernel_shap": "Kernel SHAP",
}
COLORMAPS = ("magma", "viridis", "gray", "coolwarm")
NORMALIZATIONS = ("map", "shared")
SIGNS = ("positive", "negative", "absolute", "both")
# Line colours of the curves, one per method slot, in order (matplotlib's tab10).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939")
_TOP = 5
# Progress reaches the browser at most this often: each update is a comm message.
_PROGRESS_SECONDS = 0.1
# What the worker passes to a method itself; a person's options may not name these.
_RESERVED = ("model", "images", "target", "progress", "cancel")
# The browser-only view settings: checked here, drawn in JS, never recomputed.
_CHOICES = {"colormap": COLORMAPS, "normalization": NORMALIZATIONS, "sign": SIGNS}
_SHARED = ("image_index", "target", "opacity", "colormap", "normalization", "sign", "running", "error", "status")

_log = logging.getLogger(__name__)


class _AttributionView(anywidget.AnyWidget):
    """The canvas view (js/attribution_map.js).

    ``maps``: uint8 (k, H, W) bytes, one map per method slot in ``methods`` order, each quantized over its own
    signed range; ``map_ranges``: float32 (k, 2) ``[lo, hi]`` per map (value of byte q: lo + (hi - lo) q / 255);
    ``maps_meta``: ``{"k", "h", "w", "done": [bool] * k, "labels": [str] * k, "image_index", "target"}`` (a slot
    not done is all zeros). ``scores``: per slot ``{"deletion": AUC or None, "insertion": AUC or None,
    "error": str}``. ``progress``: ``{"done", "total", "method", "step", "steps"}`` of the running job.
    """

    _esm = bundle("attribution_map.js")

    # written by Python
    n_images = t.Int(1).tag(sync=True)
    image = t.Bytes(b"").tag(sync=True)  # uint8 RGB (H, W, 3) of the selected image
    image_shape = t.List(t.Int()).tag(sync=True)  # [H, W]
    predictions = t.List(t.Dict()).tag(sync=True)  # top classes, highest first: [{"index", "label", "p"}]
    class_names = t.List(t.Unicode()).tag(sync=True)
    methods = t.List(t.Unicode()).tag(sync=True)
    maps = t.Bytes(b"").tag(sync=True)
    map_ranges = t.Bytes(b"").tag(sync=True)
    maps_meta = t.Dict().tag(sync=True)
    scores = t.List(t.Dict()).tag(sync=True)
    progress = t.Dict().tag(sync=True)
    running = t.Bool(False).tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    status = t.Unicode("").tag(sync=True)
    # written by both
    image_index = t.Int(0).tag(sync=True)
    target = t.Int(0).tag(sync=True)  # class explained
    opacity = t.Float(0.6).tag(sync=True)  # of the heat map over the image, 0..1
    colormap = t.Unicode("magma").tag(sync=True)
    normalization = t.Unicode("map").tag(sync=True)  # "map": each map on its own range; "shared": one for all
    sign = t.Unicode("positive").tag(sync=True)  # which part of a signed map is drawn


class AttributionMap(ViewTraits, ipywidgets.HBox):
    """Which input pixels drive a prediction, by several attribution methods side by side, with how faithful each
    map is (deletion and insertion curves, Petsiuk et al. 2018).

    ``model_or_probe``: a Keras model or ``ModelProbe``. ``images``: display-space (N, H, W, C) or (H, W, C).
    ``methods``: names from ``cnnwidget.core.attribution.METHODS``, one map each, in the order given.
    ``target``: the class explained for the first image shown (default: its predicted class; choosing another
    image resets it to that image's predicted class). ``layer``: the layer path of the CAM methods (default: core's
    ``default_layer``), for a nested model e.g. ``"base/block3_relu"``. ``curves``: also compute the deletion and
    insertion curves, ``curve_steps`` + 1 points each, of every map (ranked by its signed values).
    ``options``: per method, a dict of its core options, e.g. ``lime={"samples": 300}``,
    ``integrated_gradients={"steps": 32, "baseline": "blurred"}``.

    View settings (synced; switched in the browser without the kernel): ``opacity`` (0..1), ``colormap``
    (magma, viridis, gray, coolwarm), ``normalization`` ("map" or "shared"), ``sign`` ("positive", "negative",
    "absolute", or "both" on a range symmetric about 0). Also ``image_index``, ``target``, ``running``, ``error``
    and ``status``.

    Saliency, gradient × input, guided backprop, Grad-CAM and Grad-CAM++ are computed at once when the image or
    class changes; the other methods, then the curves, run on the widget's worker thread, each map streamed to the
    view as it finishes, with progress; ``cancel()`` (or Cancel) stops within one batch of passes and keeps the maps
    made so far; ``compute()`` (or Compute) resumes. Results are kept per (image, class), so coming back is free.
    """

    _view_traits = _SHARED

    def __init__(self, model_or_probe, images, methods=DEFAULT_METHODS, *, image_index: int = 0, target=None,
                 layer: str | None = None, curves: bool = True, curve_steps: int = 10, opacity: float = 0.6,
                 colormap: str = "magma", normalization: str = "map", sign: str = "positive", **options):
        self.probe = as_probe(model_or_probe, **{k: options.pop(k) for k in PROBE_OPTIONS if k in options})
        self._batch = self.probe.images(images)  # float32 (N, H, W, C), checked against the model
        self._methods = _method_names(methods)
        unknown = sorted(set(options) - set(self._methods))
        if unknown:
            raise OptionError(f"options given for {unknown}, which are not among the methods {list(self._methods)}; "
                              "pass options as method_name={...}.")
        self._options = {m: self._method_options(m, options.get(m, {}), layer) for m in self._methods}
        self.curves = bool(curves)
        self.curve_steps = curve_steps
        self._lock = threading.RLock()  # browser changes may arrive on a subshell thread; results on the worker
        self._worker = Worker("cnnwidget-attribution")
        self._generation = 0  # bumped by every new job, so a replaced job's progress is never shown
        # (image index, target) -> {"maps": {method: (H, W)}, "curves": {method: dict}, "errors": {method: str}}
        self._results: dict[tuple[int, int], dict] = {}
        self._probs = self.probe.predict(self._batch)  # (N, classes), for the class picker
        n, (h, w) = len(self._batch), self._batch.shape[1:3]
        _index(image_index, n, "image_index")
        target = int(self._probs[image_index].argmax()) if target is None else _index(target, self.probe.num_classes,
                                                                                     "target")
        for name, value in (("colormap", colormap), ("normalization", normalization), ("sign", sign)):
            _choice(name, value)
        _opacity(opacity)
        self._check_options(image_index, target)
        self.view = _AttributionView(
            n_images=n, image_shape=[h, w], class_names=[str(c) for c in self.probe.class_names],
            methods=list(self._methods), image_index=int(image_index), target=target, opacity=float(opacity),
            colormap=colormap, normalization=normalization, sign=sign)
        self.deletion_chart = _curve_chart("deletion (lower is better)")
        self.insertion_chart = _curve_chart("insertion (higher is better)")
        charts = ipywidgets.VBox([self.deletion_chart, self.insertion_chart])
        super().__init__(children=[self.view, charts], layout=ipywidgets.Layout(flex_flow="row wrap"))
        self.view.observe(self._on_selection, names=["image_index", "target"])
        self.view.observe(self._on_setting, names=list(_CHOICES) + ["opacity"])
        self.view.on_msg(self._on_msg)
        try:
            self._select(int(image_index), target, raise_errors=True)  # a fast method's bad option raises here
        except CnnWidgetError:
            self.close()
            raise

    # -- public --------------------------------------------------------------------------------------------------

    @property
    def methods(self) -> tuple[str, ...]:
        return self._methods

    @property
    def maps(self) -> dict[str, np.ndarray]:
        """The maps of the selected image and class computed so far: {method: float32 (H, W)}, in input pixels."""
        with self._lock:
            return dict(self._current()["maps"])

    @property
    def faithfulness(self) -> dict[str, dict]:
        """The curves computed so far: {method: {"deletion": (curve_steps + 1,) float32 target probabilities at
        fractions 0, 1/steps, ..., 1 of pixels removed, "insertion": the same for pixels put back,
        "deletion_auc": float, "insertion_auc": float}}."""
        with self._lock:
            return dict(self._current()["curves"])

    @property
    def job(self) -> Job | None:
        """The current or last worker job (``.wait()``, ``.running``, ``.cancel()``)."""
        return self._worker.job

    def compute(self) -> Job | None:
        """Start the slow maps and curves the selected image and class still lack on the worker; None if none."""
        with self._lock:
            return self._submit(self.view.image_index, self.view.target)

    def cancel(self):
        """Stop the running job within one batch of passes; the maps and curves it made stay."""
        self._worker.cancel()

    def set_options(self, method: str, **options):
        """Change a method's options (e.g. ``set_options("lime", samples=300)``) and recompute its map. A bad
        option is shown in the view and raised; the method keeps its options."""
        with self._lock:
            try:
                if method not in self._methods:
                    raise OptionError(f"{method!r} is not shown here; the methods are {list(self._methods)}.")
                proposed = self._method_options(method, {**self._options[method], **options}, None)
                image_index, target = self.view.image_index, self.view.target
                if method in FAST:  # running it is the check, and its map is kept
                    value = attr.METHODS[method](self.probe, self._batch[image_index:image_index + 1],
                                                 target=target, **proposed)[0]
                else:
                    self._check_options(image_index, target, {method: proposed})
            except CnnWidgetError as exc:
                self.view.error = f"{LABELS.get(method, method)}: {exc}"
                raise
            self._options[method] = proposed
            for result in self._results.values():
                for kind in ("maps", "curves", "errors"):
                    result[kind].pop(method, None)
            if method in FAST:
                self._current()["maps"][method] = value
            self.view.error = ""
            self._select(self.view.image_index, self.view.target, raise_errors=True)

    def close(self):
        """Cancel the running job and close the views."""
        if "view" not in self.__dict__:  # a constructor that raised early (ipywidgets' __del__ closes it too)
            return super().close()
        with self._lock:
            self._generation += 1  # nothing the cancelled job still reports reaches a closed view
        self._worker.cancel()
        self.deletion_chart.close()
        self.insertion_chart.close()
        self.view.close()
        super().close()

    # -- checking ------------------------------------------------------------------------------------------------

    def _method_options(self, method: str, options: dict, layer) -> dict:
        """``options`` checked by name against the core function's signature; CAMs get ``layer`` unless given."""
        if not isinstance(options, dict):
            raise OptionError(f"options of {method} must be a dict, e.g. {method}={{...}}; got {options!r}.")
        accepted = [p for p in inspect.signature(attr.METHODS[method]).parameters if p not in _RESERVED]
        bad = sorted(set(options) - set(accepted))
        if bad:
            raise OptionError(f"{method} takes no option {bad}; it takes {', '.join(accepted)}.")
        if method in CAMS and layer is not None and "layer" not in options:
            options = {**options, "layer": layer}
        return dict(options)

    def _check_options(self, image_index: int, target: int, options: dict | None = None):
        """Raise the CnnWidgetError core gives for a bad option of a slow method or the curves, without their
        work: they run with their cancel event already set, so core checks everything, then stops before its
        first batch of passes. (Fast methods are checked by running them.)"""
        x = self._batch[image_index:image_index + 1]
        stop = threading.Event()
        stop.set()
        for method, opts in (options or self._options).items():
            if method in FAST:
                continue
            try:
                attr.METHODS[method](self.probe, x, target=target, cancel=stop, **opts)
            except attr.Cancelled:
                pass
        if options is None and self.curves:
            try:
                attr.deletion(self.probe, x, np.zeros(x.shape[:3], np.float32), target=target,
                              steps=self.curve_steps, cancel=stop)
            except attr.Cancelled:
                pass

    # -- reacting to changes -------------------------------------------------------------------------------------

    def _on_selection(self, change):
        with self._lock:
            if self._reverting:
                return
            # A browser-made mistake is shown in the view alone (raising would only reach the kernel log); a
            # Python-made one also raises (see FeatureVisualization._on_change).
            from_browser = bool(getattr(self.view, "_property_lock", None))
            name, value = change["name"], change["new"]
            try:
                limit = len(self._batch) if name == "image_index" else self.probe.num_classes
                _index(value, limit, name)
            except CnnWidgetError as exc:
                self._revert(name, change["old"], str(exc))
                if not from_browser:
                    raise
                return
            if name == "image_index":
                target = int(self._probs[value].argmax())  # a new image is explained for its own prediction
                with self._quiet():
                    self.view.target = target
            self.view.error = ""
            self._select(self.view.image_index, self.view.target, raise_errors=not from_browser)

    def _on_setting(self, change):
        with self._lock:
            if self._reverting:
                return
            from_browser = bool(getattr(self.view, "_property_lock", None))
            try:
                if change["name"] == "opacity":
                    _opacity(change["new"])
                else:
                    _choice(change["name"], change["new"])
            except CnnWidgetError as exc:
                self._revert(change["name"], change["old"], str(exc))
                if not from_browser:
                    raise
                return
            self.view.error = ""

    def _revert(self, name: str, old, message: str):
        self.view.error = message
        with self._quiet():
            setattr(self.view, name, old)  # keep what was there: nothing lost

    def _on_msg(self, _widget, content, _buffers):
        action = content.get("action") if isinstance(content, dict) else None
        if action == "compute":
            self.compute()
        elif action == "cancel":
            self.cancel()

    # -- computing -----------------------------------------------------------------------------------------------

    def _current(self) -> dict:
        return self._result(self.view.image_index, self.view.target)

    def _result(self, image_index: int, target: int) -> dict:
        return self._results.setdefault((image_index, target), {"maps": {}, "curves": {}, "errors": {}})

    def _select(self, image_index: int, target: int, raise_errors: bool):
        """Show (image, class): the input, its top classes, the fast maps computed now, then the rest on the
        worker."""
        result = self._result(image_index, target)
        x = self._batch[image_index:image_index + 1]
        for method in self._methods:
            if method in FAST and method not in result["maps"] and method not in result["errors"]:
                try:
                    result["maps"][method] = attr.METHODS[method](self.probe, x, target=target,
                                                                  **self._options[method])[0]
                except CnnWidgetError as exc:
                    result["errors"][method] = str(exc)
                    if raise_errors:
                        self._show()
                        raise
        with self.view.hold_sync():
            self.view.image = _transport.image_bytes(x[0], self.probe.input_range)
            self.view.predictions = self._top(image_index, target)
            self._show()
        self._submit(image_index, target)

    def _top(self, image_index: int, target: int) -> list[dict]:
        """The top classes of the image, highest first, and the target among them even if it is not in the top."""
        probs, names = self._probs[image_index], self.probe.class_names
        order = [int(i) for i in np.argsort(-probs, kind="stable")[:_TOP]]
        if target not in order:
            order.append(target)
        return [{"index": i, "label": str(names[i]), "p": float(probs[i])} for i in order]

    def _pending(self, result: dict) -> tuple[list[str], list[str]]:
        """(slow methods without a map, methods with a map but no curves), in display order."""
        maps = [m for m in self._methods if m not in FAST and m not in result["maps"] and m not in result["errors"]]
        curves = [m for m in self._methods if m not in result["curves"] and m not in result["errors"]] \
            if self.curves else []
        return maps, curves

    def _submit(self, image_index: int, target: int) -> Job | None:
        result = self._result(image_index, target)
        maps, curves = self._pending(result)
        self._generation += 1
        generation = self._generation
        if not maps and not curves:
            self._worker.cancel()  # a job for another image or class is of no use now
            with self.view.hold_sync():
                self.view.running, self.view.progress = False, {}
                self.view.status = self._summary(result)
            return None
        total = len(maps) + 2 * len(curves)
        with self.view.hold_sync():
            self.view.running = True
            self.view.progress = {"done": 0, "total": total, "method": "", "step": 0, "steps": 1}
        started = time.monotonic()
        return self._worker.submit(
            lambda cancel: self._run(cancel, generation, image_index, target, maps, curves, total),
            on_done=lambda outcome: self._finished(generation, outcome, time.monotonic() - started),
            on_error=lambda exc, trace: self._failed(generation, exc, trace))

    def _run(self, cancel: threading.Event, generation: int, image_index: int, target: int, maps: list[str],
             curves: list[str], total: int) -> str:
        """The worker job: the slow maps, one by one, then the curves of every map; each result is kept and shown
        as it finishes. Returns "done" or "cancelled"."""
        x = self._batch[image_index:image_index + 1]
        result = self._result(image_index, target)
        done = 0
        last = [-np.inf]

        def reporter(what: str):
            def progress(step, steps):
                now = time.monotonic()
                if now - last[0] >= _PROGRESS_SECONDS or step == steps:
                    last[0] = now
                    self._report(generation, {"done": done, "total": total, "method": what, "step": int(step),
                                              "steps": int(steps)}, f"{what}: {step} of {steps} passes")
            return progress

        for method in maps:
            # Named at once: a method's first progress comes only after its set-up (a segmentation, a first pass).
            self._report(generation, {"done": done, "total": total, "method": LABELS[method], "step": 0,
                                      "steps": 1}, f"{LABELS[method]}: starting")
            try:
                value = attr.METHODS[method](self.probe, x, target=target, progress=reporter(LABELS[method]),
                                             cancel=cancel, **self._options[method])[0]
            except attr.Cancelled:
                return "cancelled"
            except CnnWidgetError as exc:  # this method cannot run on this input; the others still can
                self._keep(generation, result, "errors", method, str(exc))
            else:
                self._keep(generation, result, "maps", method, value)
            done += 1
        for method in curves:
            if method not in result["maps"]:  # its map failed
                done += 2
                continue
            m = result["maps"][method][None]
            try:
                options = dict(target=target, steps=self.curve_steps, return_curves=True, cancel=cancel)
                d_auc, d_curve = attr.deletion(self.probe, x, m, progress=reporter(f"deletion of {LABELS[method]}"),
                                               **options)
                done += 1
                i_auc, i_curve = attr.insertion(self.probe, x, m,
                                                progress=reporter(f"insertion of {LABELS[method]}"), **options)
                done += 1
            except attr.Cancelled:
                return "cancelled"
            self._keep(generation, result, "curves", method,
                       {"deletion": d_curve[0], "insertion": i_curve[0], "deletion_auc": float(d_auc[0]),
                        "insertion_auc": float(i_auc[0])})
        return "done"

    def _keep(self, generation: int, result: dict, kind: str, method: str, value):
        """Keep one result (whatever job made it, it is right for its image and class); show it if current."""
        with self._lock:
            result[kind][method] = value
            if result is self._current() and generation == self._generation:
                with self.view.hold_sync():
                    self._show()

    def _report(self, generation: int, progress: dict, status: str):
        with self._lock:
            if generation == self._generation:
                with self.view.hold_sync():
                    self.view.progress = progress
                    self.view.status = status

    def _finished(self, generation: int, outcome: str, seconds: float):
        with self._lock:
            if generation != self._generation:
                return
            with self.view.hold_sync():
                self.view.running = False
                result = self._current()
                self.view.status = (f"cancelled: {self._summary(result)}" if outcome == "cancelled"
                                    else f"{self._summary(result)} in {seconds:.1f} s")

    def _failed(self, generation: int, exc: BaseException, trace: str):
        # Core's own errors are caught per method in _run; anything reaching here is a bug: log its traceback.
        _log.error("attribution job failed:\n%s", trace)
        with self._lock:
            if generation != self._generation:
                return
            with self.view.hold_sync():
                self.view.running = False
                self.view.error = f"{type(exc).__name__}: {exc}"
                self.view.status = "stopped"

    def _summary(self, result: dict) -> str:
        maps = sum(m in result["maps"] for m in self._methods)
        text = f"{maps} of {len(self._methods)} maps"
        return text + (f", {len(result['curves'])} curves" if self.curves else "")

    # -- sending -------------------------------------------------------------------------------------------------

    def _show(self):
        """Put the selected (image, class)'s maps, scores and curves on the view and charts (call in hold_sync)."""
        result = self._current()
        h, w = self._batch.shape[1:3]
        stack = np.zeros((len(self._methods), h, w), np.float32)
        for i, method in enumerate(self._methods):
            if method in result["maps"]:
                stack[i] = result["maps"][method]
        data, ranges = _transport.quantize(stack)
        labels = [LABELS[m] + (f" · {self._options[m]['layer']}" if "layer" in self._options[m] else "")
                  for m in self._methods]
        self.view.maps, self.view.map_ranges = data, ranges
        self.view.maps_meta = {"k": len(self._methods), "h": h, "w": w, "labels": labels,
                               "colors": [PALETTE[i % len(PALETTE)] for i in range(len(self._methods))],
                               "done": [m in result["maps"] for m in self._methods],
                               "image_index": self.view.image_index, "target": self.view.target}
        self.view.scores = [{"deletion": result["curves"].get(m, {}).get("deletion_auc"),
                             "insertion": result["curves"].get(m, {}).get("insertion_auc"),
                             "error": result["errors"].get(m, "")} for m in self._methods]
        errors = [f"{LABELS[m]}: {result['errors'][m]}" for m in self._methods if m in result["errors"]]
        if errors:
            self.view.error = "\n".join(errors)
        self._plot(result)

    def _plot(self, result: dict):
        shown = [m for m in self._methods if m in result["curves"]]
        fractions = np.linspace(0.0, 1.0, self.curve_steps + 1, dtype=np.float32)
        for chart, kind in ((self.deletion_chart, "deletion"), (self.insertion_chart, "insertion")):
            line = chart.marks[0]
            with line.hold_sync():
                if shown:
                    line.x = fractions
                    line.y = np.stack([result["curves"][m][kind] for m in shown]).astype(np.float32)
                else:
                    line.x, line.y = np.zeros(0, np.float32), np.zeros(0, np.float32)
                line.colors = [PALETTE[self._methods.index(m) % len(PALETTE)] for m in shown] or [PALETTE[0]]


def _method_names(methods) -> tuple[str, ...]:
    names = (methods,) if isinstance(methods, str) else tuple(methods)
    unknown = [m for m in names if m not in attr.METHODS]
    if unknown or not names:
        raise OptionError(f"unknown methods {unknown}; choose from {', '.join(attr.METHODS)}." if unknown else
                          "methods must name at least one method.")
    if len(set(names)) != len(names):
        raise OptionError(f"each method may appear once; got {list(names)}.")
    return names


def _index(value, n: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < n:
        raise OptionError(f"{name} {value!r} is out of range: it must be a whole number in [0, {n - 1}].")
    return int(value)


def _choice(name: str, value):
    if value not in _CHOICES[name]:
        raise OptionError(f"{name} must be one of {', '.join(map(repr, _CHOICES[name]))}; got {value!r}.")


def _opacity(value):
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise OptionError(f"opacity must be a number in [0, 1]; got {value!r}.")


def _curve_chart(title: str) -> bqplot.Figure:
    """Target probability against the fraction of pixels removed or put back; one line per method, in the colour
    of the swatch beside its map's name in the view (which also shows the AUCs: a bqplot legend of a dozen long
    names would cover the curves)."""
    x, y = bqplot.LinearScale(min=0.0, max=1.0), bqplot.LinearScale(min=0.0, max=1.0)
    line = bqplot.Lines(x=np.zeros(0, np.float32), y=np.zeros(0, np.float32), scales={"x": x, "y": y},
                        colors=[PALETTE[0]], stroke_width=2)
    # Explicit tick formats: bqplot's guessed one fails on a flat or empty axis (see FeatureVisualization).
    axes = [bqplot.Axis(scale=x, label="fraction of pixels", num_ticks=5, tick_format=".1f"),
            bqplot.Axis(scale=y, orientation="vertical", label="p(target)", num_ticks=5, tick_format=".1f")]
    return bqplot.Figure(marks=[line], axes=axes, title=title,
                         layout=ipywidgets.Layout(width="360px", height="240px"),
                         fig_margin={"top": 36, "bottom": 40, "left": 48, "right": 16})
