"""AttributionMap: several attribution methods side by side over one input, with their faithfulness curves."""

from __future__ import annotations

import inspect
import threading
import time

import bqplot
import ipywidgets
import numpy as np
import traitlets as t

from ..core import CnnWidgetError, OptionError, as_probe
from ..core import attribution as attr
from ..core.options import COLORMAPS, PROBE_OPTIONS, choice, fraction, index
from . import _axes, _transport
from ..core.attribution.cam import _layer as _cam_layer  # the CAMs' own layer check, made before the worker runs
from ._base import CnnWidget, checks, reacts
from ._esm import bundle
from ._jobs import Job

DEFAULT_METHODS = ("saliency", "integrated_gradients", "grad_cam", "occlusion", "lime")
# One forward and one backward pass each: computed first (a change of image or class waits for them), so they show
# first. Every other method (and the curves) follows in a job of its own.
FAST = ("saliency", "gradient_x_input", "guided_backprop", "grad_cam", "grad_cam_plus_plus", "attention_rollout")
CAMS = ("grad_cam", "grad_cam_plus_plus", "score_cam")
LABELS = {
    "saliency": "Saliency", "gradient_x_input": "Gradient × input", "smoothgrad": "SmoothGrad",
    "integrated_gradients": "Integrated Gradients", "guided_backprop": "Guided backprop", "grad_cam": "Grad-CAM",
    "grad_cam_plus_plus": "Grad-CAM++", "score_cam": "Score-CAM", "occlusion": "Occlusion", "rise": "RISE",
    "lime": "LIME", "kernel_shap": "Kernel SHAP", "attention_rollout": "Attention rollout (every class)",
}
NORMALIZATIONS = ("map", "shared")
SIGNS = attr.SIGNS
DEFAULT_SIGN = "absolute"
"""The sign shown (and ranked by) unless one is given, chosen by measured faithfulness: on 32 held-out demo images
(``benchmarks/attribution_sign.py``, seed 11; deletion / insertion AUC, lower / higher is better; a random map
0.161 / 0.165):

    method                 positive        absolute        both
    Integrated Gradients   0.140 / 0.197   0.132 / 0.812   0.140 / 0.168   (49% of pixels < 0)
    gradient x input       0.142 / 0.186   0.132 / 0.551   0.141 / 0.174   (49%)
    occlusion              0.140 / 0.821   0.142 / 0.845   0.144 / 0.834   (31%)
    LIME                   0.134 / 0.863   0.138 / 0.890   0.134 / 0.880   (41%)

Ranked by their positive part (or value), Integrated Gradients and gradient x input insert no better than a random
map: their maps are half negative, and those pixels matter as much. Saliency and the CAMs have no negative values:
every sign but "negative" ranks them alike."""
REFERENCE_COLOR = "#9e9e9e"  # the random map's curves: grey, dashed
# Line colours of the curves, one per method slot, in order (matplotlib's tab10).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939")
_TOP = 5
# What the worker passes to a method itself; a person's options may not name these.
_RESERVED = ("model", "images", "target", "progress", "cancel")
# The browser-only view settings: checked here, drawn in JS, never recomputed.
_CHOICES = {"colormap": COLORMAPS, "normalization": NORMALIZATIONS, "sign": SIGNS}

_PY = dict(sync=True, owner="python")


class AttributionMap(CnnWidget):
    """Which input pixels drive a prediction, by several attribution methods side by side, with how faithful each
    map is (deletion and insertion curves, Petsiuk et al. 2018).

    ``model_or_probe``: a Keras model or ``ModelProbe`` (or a model and ModelProbe's options: ``class_names``,
    ``input_range``, ``preprocess``, ...). ``images``: display-space (N, H, W, C) or (H, W, C).
    ``methods``: names from ``cnnwidget.core.attribution.METHODS``, one map each, in the order given.
    ``target``: the class explained for the first image shown (default: its predicted class; choosing another
    image resets it to that image's predicted class). ``layer``: the layer path of the CAM methods (default: core's
    ``default_layer``), for a nested model e.g. ``"base/block3_relu"``. ``curves``: also compute the deletion and
    insertion curves, ``curve_steps`` + 1 points each, of every map, its pixels ranked the way the map is shown
    (``sign``, see ``attr.shown``), and those of a random map (``attr.random_reference``): the reference a
    faithful map beats, shown as a row of its own under the maps and as grey dashed curves.
    ``options``: per method, a dict of its core options, e.g. ``lime={"samples": 300}``,
    ``integrated_gradients={"steps": 32, "baseline": "blur"}``.

    Public traits (real traitlets: ``traitlets.link``, ``widgets.jslink``, ``observe`` work): ``image_index``,
    ``target`` (the class explained), and the view settings switched in the browser without the kernel:
    ``opacity`` (0..1), ``colormap`` (magma, viridis, gray, coolwarm), ``normalization`` ("map" or "shared"),
    ``sign`` ("positive", "negative", "absolute", or "both" on a range symmetric about 0; default ``DEFAULT_SIGN``,
    chosen by measured faithfulness, see there). The sign is drawn by the view alone, and the curves rank pixels
    by it too: a change of sign recomputes the curves of the maps whose ranking it changes (a map with no negative
    values ranks the same under "positive", "absolute" and "both"), kept per sign. Read-only: ``n_images``,
    ``methods``, ``running``, ``error`` (the last refused value or failure, shown in the widget), ``status``,
    ``progress``. A bad value, from Python (a CnnWidgetError) or the page, is refused and ``error`` says why.
    The numbers: ``maps`` ({method: (H, W) float32}), ``faithfulness`` (the curves and their areas under the
    current sign) and ``reference`` (a random map's AUCs and curves).

    The widget shows at once; everything is computed on its worker thread. Saliency, gradient × input, guided
    backprop, Grad-CAM and Grad-CAM++ come first (a change of image or class from Python returns once they are
    there); the other methods, then the curves, follow, each map streamed to the view as it finishes, with
    progress; ``cancel()`` (or Cancel) stops within one batch of passes and keeps the maps made so far;
    ``compute()`` (or Compute) resumes; ``wait()`` blocks until all is done. Results are kept per (image, class),
    so coming back is free.
    """

    _esm = bundle("attribution_map.js")
    _worker_name = "cnnwidget-attribution"
    _actions = {"compute": "compute", "cancel": "cancel"}  # the view's buttons (base: _on_action)

    # set by a person (Python or the page)
    image_index = t.Int(0, help="the image explained").tag(sync=True)
    target = t.Int(0, help="the class explained").tag(sync=True)
    opacity = t.Float(0.6, help="of the heat map over the image, 0..1").tag(sync=True)
    colormap = t.Unicode("magma").tag(sync=True)
    normalization = t.Unicode("map", help='"map": each map on its own range; "shared": one for all').tag(sync=True)
    sign = t.Unicode(DEFAULT_SIGN, help="which part of a signed map is drawn, and ranks the curves").tag(sync=True)
    # set by Python only: the wire format of the view (see _show)
    curves = t.Bool(True, help="also compute the deletion/insertion curves (the view hides their charts if not)").tag(
        **_PY)
    n_images = t.Int(1).tag(**_PY)
    image = t.Bytes(b"").tag(**_PY)  # uint8 RGB (H, W, 3) of the selected image
    image_shape = t.List(t.Int()).tag(**_PY)  # [H, W]
    predictions = t.List(t.Dict()).tag(**_PY)  # top classes, highest first: [{"index", "label", "p"}]
    class_names = t.List(t.Unicode()).tag(**_PY)
    methods = t.List(t.Unicode()).tag(**_PY)
    map_bytes = t.Bytes(b"").tag(**_PY)  # uint8 (k, H, W), one map per method, each over its own signed range
    map_ranges = t.Bytes(b"").tag(**_PY)  # float32 (k, 2) [lo, hi]: byte q means lo + (hi - lo) q / 255
    maps_meta = t.Dict().tag(**_PY)  # {"k", "h", "w", "done": [bool] * k, "labels", "colors", "image_index", ...}
    scores = t.List(t.Dict()).tag(**_PY)  # per method {"deletion": AUC or None, "insertion": ..., "error": str}
    # a random map's AUCs and curves (the mean of attr.random_reference's draws): {"deletion": AUC, "insertion": AUC,
    # "deletion_curve": [curve_steps + 1 floats], "insertion_curve": [...]}; {} until computed
    reference = t.Dict().tag(**_PY)
    deletion_chart = t.Instance(bqplot.Figure, allow_none=True).tag(**_PY, **ipywidgets.widget_serialization)
    insertion_chart = t.Instance(bqplot.Figure, allow_none=True).tag(**_PY, **ipywidgets.widget_serialization)

    def __init__(self, model_or_probe, images, methods=DEFAULT_METHODS, *, image_index: int = 0, target=None,
                 layer: str | None = None, curves: bool = True, curve_steps: int = 10, opacity: float = 0.6,
                 colormap: str = "magma", normalization: str = "map", sign: str = DEFAULT_SIGN, **options):
        self.probe = as_probe(model_or_probe, **{k: options.pop(k) for k in PROBE_OPTIONS if k in options})
        self._batch = self._images(images)  # float32 (N, H, W, C), checked against the model; warning set
        self._methods = _method_names(methods, self.probe)
        unknown = sorted(set(options) - set(self._methods))
        if unknown:
            raise OptionError(f"options given for {unknown}, which are not among the methods {list(self._methods)}; "
                              "pass options as method_name={...}.")
        self._options = {m: self._method_options(m, options.get(m, {}), layer) for m in self._methods}
        curves = bool(curves)
        self.curve_steps = curve_steps
        # (image index, target) -> {"maps": {method: (H, W)}, "curves": {method: dict}, "errors": {method: str}}
        self._results: dict[tuple[int, int], dict] = {}
        self._probs: dict[int, np.ndarray] = {}  # image index -> class probabilities, made on the worker
        n, (h, w) = len(self._batch), self._batch.shape[1:3]
        index("image_index", image_index, n)
        self._auto_target = target is None  # the first job explains the image's predicted class
        target = 0 if target is None else index("target", target, self.probe.num_classes)
        for name, value in (("colormap", colormap), ("normalization", normalization), ("sign", sign)):
            choice(name, value, _CHOICES[name])
        fraction("opacity", opacity)
        self._check_options(image_index, target)
        super().__init__(
            n_images=n, image_shape=[h, w], class_names=[str(c) for c in self.probe.class_names],
            methods=list(self._methods), image_index=int(image_index), target=target, opacity=float(opacity),
            colormap=colormap, normalization=normalization, sign=sign, curves=curves,
            deletion_chart=_curve_chart("deletion (lower is better)"),
            insertion_chart=_curve_chart("insertion (higher is better)"),
            maps_meta=self._meta(int(image_index), target, {}), status="computing…")
        self._start(self._fast_job)  # the first maps on the worker: the widget shows at once

    def _describe(self):
        return [", ".join(self._methods), f"{len(self._batch)} image{'s' if len(self._batch) != 1 else ''}"]

    # -- public --------------------------------------------------------------------------------------------------

    @property
    def maps(self) -> dict[str, np.ndarray]:
        """The maps of the selected image and class computed so far: {method: float32 (H, W)}, in input pixels."""
        with self._locked():
            return dict(self._current()["maps"])

    @property
    def faithfulness(self) -> dict[str, dict]:
        """The curves computed so far, pixels ranked by the current ``sign``: {method: {"deletion":
        (curve_steps + 1,) float32 target probabilities at fractions 0, 1/steps, ..., 1 of pixels removed,
        "insertion": the same for pixels put back, "deletion_auc": float, "insertion_auc": float}}. A random
        map's, the reference, are in the ``reference`` trait."""
        with self._locked():
            result = self._current()
            return {m: curve for m in self._methods if (curve := self._curve(result, m)) is not None}

    def compute(self) -> Job | None:
        """Start the maps and curves the selected image and class still lack on the worker (the fast maps first,
        then the slow ones as a job of their own; ``wait()`` waits for both); None if nothing is missing."""
        with self._locked():
            result = self._current()
            fast = [m for m in self._methods if m in FAST and m not in result["maps"] and m not in result["errors"]]
            if not fast and not any(self._pending(result)):
                return None
            return self._start(self._fast_job)

    def explain(self, image_index: int, target: int | None = None) -> Job | None:
        """Show image ``image_index`` explained for class ``target`` in one step (both checked first; a bad one
        changes nothing). ``target=None``: the image's predicted class, as choosing an image in the view does.
        Returns the job started, or None if that image and class are shown and complete."""
        index("image_index", image_index, len(self._batch))
        if target is not None:
            target = index("target", target, self.probe.num_classes)
        with self._locked():
            same = image_index == self.image_index and (target is None or target == self.target)
            if same and (target is not None or not self._auto_target):
                return self.compute()
            self._auto_target = target is None
            self._push(image_index=int(image_index), error="", **({} if target is None else {"target": target}))
            return self._start(self._fast_job)

    def set_options(self, method: str, **options):
        """Change a method's options (e.g. ``set_options("lime", samples=300)``) and recompute its map. A bad
        option is shown in the widget and raised; the method keeps its options."""
        with self._locked():
            try:
                if method not in self._methods:
                    raise OptionError(f"{method!r} is not shown here; the methods are {list(self._methods)}.")
                proposed = self._method_options(method, {**self._options[method], **options}, None)
                image_index, target = self.image_index, self.target
                if method in FAST:  # running it is the check, and its map is kept
                    value = attr.method(method)(self.probe, self._batch[image_index:image_index + 1],
                                                 target=target, **proposed)[0]
                else:
                    self._check_options(image_index, target, {method: proposed})
            except CnnWidgetError as exc:
                self._show_refusal(f"{LABELS.get(method, method)}: {exc}")
                raise
            self._options[method] = proposed
            for result in self._results.values():
                for kind in ("maps", "errors"):
                    result[kind].pop(method, None)
                for key in [k for k in result["curves"] if k[0] == method]:
                    del result["curves"][key]
            if method in FAST:
                self._current()["maps"][method] = value
            self._push(error="")
            job = self._start(self._fast_job)
        self._settle([job])

    # -- checks: the same for Python and the page ----------------------------------------------------------------

    @checks("image_index")
    def _check_image(self, value):
        return index("image_index", value, len(self._batch))

    @checks("target")
    def _check_target(self, value):
        return index("target", value, self.probe.num_classes)

    @checks("colormap", "normalization", "sign")
    def _check_choice(self, value, name):
        return choice(name, value, _CHOICES[name])

    @checks("opacity")
    def _check_opacity(self, value):
        fraction("opacity", value)
        return value

    def _method_options(self, method: str, options: dict, layer) -> dict:
        """``options`` checked by name against the core function's signature; CAMs get ``layer`` unless given, and
        a CAM's layer is checked now (the maps themselves are made on the worker)."""
        if not isinstance(options, dict):
            raise OptionError(f"options of {method} must be a dict, e.g. {method}={{...}}; got {options!r}.")
        accepted = [p for p in inspect.signature(attr.method(method)).parameters if p not in _RESERVED]
        bad = sorted(set(options) - set(accepted))
        if bad:
            raise OptionError(f"{method} takes no option {bad}; it takes {', '.join(accepted)}.")
        if method in CAMS and layer is not None and "layer" not in options:
            options = {**options, "layer": layer}
        if method in CAMS and options.get("layer") is not None:
            _cam_layer(self.probe, options["layer"], method)  # LayerError: unknown, or not a feature map
        return dict(options)

    def _check_options(self, image_index: int, target: int, options: dict | None = None):
        """Raise the CnnWidgetError core gives for a bad option of a slow method or the curves, without their
        work: they run with their cancel event already set, so core checks everything, then stops before its
        first batch of passes. (Fast methods are checked when they run.)"""
        x = self._batch[image_index:image_index + 1]
        stop = threading.Event()
        stop.set()
        for method, opts in (options or self._options).items():
            if method in FAST:
                continue
            try:
                attr.method(method)(self.probe, x, target=target, cancel=stop, **opts)
            except attr.Cancelled:
                pass
        if options is None and self.curves:
            try:
                attr.deletion(self.probe, x, np.zeros(x.shape[:3], np.float32), target=target,
                              steps=self.curve_steps, cancel=stop)
            except attr.Cancelled:
                pass

    # -- reacting to changes -------------------------------------------------------------------------------------

    @reacts("image_index")
    def _on_image(self, change):
        self._auto_target = True  # a new image is explained for its own prediction
        self._push(error="")
        self._start(self._fast_job, settle=True)

    @reacts("target")
    def _on_target(self, change):
        self._auto_target = False
        self._push(error="")
        self._start(self._fast_job, settle=True)

    @reacts("colormap", "normalization", "opacity")
    def _on_setting(self, change):
        self._push(error="")  # drawn by the view alone

    @reacts("sign")
    def _on_sign(self, change):
        """Drawn by the view alone; the scores and curves shown become the new sign's, and the curves of maps it
        ranks differently (not kept from before) are computed on the worker; the change does not wait for them."""
        self._push(error="")
        if self.curves:
            self._draw(self.image_index, self.target)
            self.compute()

    # -- computing (worker thread) -------------------------------------------------------------------------------

    def _current(self) -> dict:
        return self._result(self.image_index, self.target)

    def _result(self, image_index: int, target: int) -> dict:
        return self._results.setdefault((image_index, target),
                                        {"maps": {}, "curves": {}, "errors": {}, "reference": None})

    def _curve(self, result: dict, method: str, sign: str | None = None) -> dict | None:
        """``method``'s curves under ``sign`` (default the current one), or None if not computed."""
        if method not in result["maps"]:
            return None
        return result["curves"].get((method, _ranking(result["maps"][method], sign or self.sign)))

    def _prob(self, image_index: int) -> np.ndarray:
        if image_index not in self._probs:
            self._probs[image_index] = self.probe.predict(self._batch[image_index:image_index + 1])[0]
        return self._probs[image_index]

    def _fast_job(self, job):
        """The selected image's class and fast maps; then the slow maps and curves, as a job of their own."""
        with self._locked():
            image_index = self.image_index
        probs = self._prob(image_index)
        with self._locked():
            if self._auto_target and image_index == self.image_index:
                if not self._report(job, target=int(probs.argmax())):
                    return None
                self._auto_target = False
            target = self.target
            result = self._result(image_index, target)
            todo = [m for m in self._methods if m in FAST and m not in result["maps"] and m not in result["errors"]]
        x = self._batch[image_index:image_index + 1]
        for method in todo:
            if job.cancelled:
                return None
            try:
                value = attr.method(method)(self.probe, x, target=target, **self._options[method])[0]
            except CnnWidgetError as exc:  # this method cannot run here; the others still can
                with self._locked():
                    result["errors"][method] = str(exc)
            else:
                with self._locked():
                    result["maps"][method] = value
        with self._locked():
            state = dict(image=_transport.image_bytes(x[0], self.probe.input_range),
                         predictions=self._top(image_index, target))
            if not self._show(job, image_index, target, **state):
                return None
            if any(self._pending(result)):
                self._start_slow(image_index, target)  # supersedes this job, which ends here
                return None
            return {"status": self._summary(result)}

    def _start_slow(self, image_index: int, target: int) -> Job:
        total = _cost(*self._pending(self._result(image_index, target)))
        return self._start(lambda job: self._slow_job(job, image_index, target),
                           progress={"done": 0, "total": total, "method": "", "step": 0, "steps": 1})

    def _slow_job(self, job, image_index: int, target: int) -> dict | None:
        """The slow maps, one by one, then a random map's curves (the reference), then the curves of every map
        ranked by the sign shown when the job began; each kept and shown as it finishes."""
        x = self._batch[image_index:image_index + 1]
        with self._locked():
            result = self._result(image_index, target)
            maps, curves, reference = self._pending(result)
            sign = self.sign
        total, started = _cost(maps, curves, reference), time.monotonic()
        done = 0

        def report(what: str, step: int = 0, steps: int = 1, status: str | None = None):
            self._report(job, throttle=0 < step < steps,
                         progress={"done": done, "total": total, "method": what, "step": int(step),
                                   "steps": int(steps)},
                         status=status or f"{what}: {step} of {steps} passes")

        def reporter(what: str):
            return lambda step, steps: report(what, step, steps)

        try:
            for method in maps:
                # Named at once: a method's first progress comes only after its set-up (a segmentation, a pass).
                report(LABELS[method], status=f"{LABELS[method]}: starting")
                try:
                    value = attr.method(method)(self.probe, x, target=target, progress=reporter(LABELS[method]),
                                                 cancel=job.cancel_event, **self._options[method])[0]
                except attr.Cancelled:
                    raise
                except CnnWidgetError as exc:  # this method cannot run on this input; the others still can
                    self._keep(job, result, "errors", method, str(exc), image_index, target)
                else:
                    self._keep(job, result, "maps", method, value, image_index, target)
                done += 1
            options = dict(target=target, steps=self.curve_steps, cancel=job.cancel_event)
            if reference:
                ref = attr.random_reference(self.probe, x, return_curves=True, progress=reporter("random map"),
                                            **options)
                done += 2
                with self._locked():
                    result["reference"] = {"deletion": ref["deletion_curves"][0],
                                           "insertion": ref["insertion_curves"][0],
                                           "deletion_auc": float(ref["deletion"][0]),
                                           "insertion_auc": float(ref["insertion"][0])}
                    self._show(job, image_index, target)
            for method in curves:
                if method not in result["maps"]:  # its map failed
                    done += 2
                    continue
                m = result["maps"][method]
                key = (method, _ranking(m, sign))
                if key in result["curves"]:  # the same ranking as a sign done before
                    done += 2
                    continue
                d_auc, d_curve = attr.deletion(self.probe, x, m[None], sign=sign, return_curves=True,
                                               progress=reporter(f"deletion of {LABELS[method]}"), **options)
                done += 1
                i_auc, i_curve = attr.insertion(self.probe, x, m[None], sign=sign, return_curves=True,
                                                progress=reporter(f"insertion of {LABELS[method]}"), **options)
                done += 1
                self._keep(job, result, "curves", key,
                           {"deletion": d_curve[0], "insertion": i_curve[0], "deletion_auc": float(d_auc[0]),
                            "insertion_auc": float(i_auc[0])}, image_index, target)
        except attr.Cancelled:
            with self._locked():
                return {"status": f"cancelled: {self._summary(result)}"}
        with self._locked():
            return {"status": f"{self._summary(result)} in {time.monotonic() - started:.1f} s"}

    def _keep(self, job, result: dict, kind: str, key, value, image_index: int, target: int):
        """Keep one result (whatever job made it, it is right for its image and class); show it if current."""
        with self._locked():
            result[kind][key] = value
            self._show(job, image_index, target)

    def _top(self, image_index: int, target: int) -> list[dict]:
        """The top classes of the image, highest first, and the target among them even if it is not in the top."""
        probs, names = self._prob(image_index), self.probe.class_names
        order = [int(i) for i in np.argsort(-probs, kind="stable")[:_TOP]]
        if target not in order:
            order.append(target)
        return [{"index": i, "label": str(names[i]), "p": float(probs[i])} for i in order]

    def _pending(self, result: dict) -> tuple[list[str], list[str], bool]:
        """(slow methods without a map, methods without curves under the current sign, whether the random map's
        curves are missing), in display order."""
        maps = [m for m in self._methods if m not in FAST and m not in result["maps"] and m not in result["errors"]]
        if not self.curves:
            return maps, [], False
        curves = [m for m in self._methods if m not in result["errors"] and self._curve(result, m) is None]
        return maps, curves, result["reference"] is None

    def _summary(self, result: dict) -> str:
        maps = sum(m in result["maps"] for m in self._methods)
        text = f"{maps} of {len(self._methods)} maps"
        curves = sum(self._curve(result, m) is not None for m in self._methods)
        return text + (f", {curves} curves" if self.curves else "")

    # -- sending -------------------------------------------------------------------------------------------------

    def _meta(self, image_index: int, target: int, maps: dict) -> dict:
        h, w = self._batch.shape[1:3]
        labels = [LABELS[m] + (f" · {self._options[m]['layer']}" if "layer" in self._options[m] else "")
                  for m in self._methods]
        return {"k": len(self._methods), "h": h, "w": w, "labels": labels,
                "colors": [PALETTE[i % len(PALETTE)] for i in range(len(self._methods))],
                "done": [m in maps for m in self._methods], "image_index": image_index, "target": target}

    def _show(self, job, image_index: int, target: int, **extra) -> bool:
        """Put (image, class)'s maps, scores and curves on the view and charts, if ``job`` is still the newest and
        (image, class) still selected; returns whether they were shown."""
        with self._locked():
            if not self._jobs.is_current(job) or self._closed or \
                    (image_index, target) != (self.image_index, self.target):
                return False
            self._draw(image_index, target, **extra)
            return True

    def _draw(self, image_index: int, target: int, **extra):
        """Put (image, class)'s maps, its scores and curves under the current sign, and the reference, on the view
        and the charts."""
        with self._locked():
            result = self._result(image_index, target)
            h, w = self._batch.shape[1:3]
            stack = np.zeros((len(self._methods), h, w), np.float32)
            for i, method in enumerate(self._methods):
                if method in result["maps"]:
                    stack[i] = result["maps"][method]
            data, ranges = _transport.quantize(stack)
            curves = {m: self._curve(result, m) or {} for m in self._methods}
            lo, hi = self.probe.input_range
            scores = [{"deletion": curves[m].get("deletion_auc"), "insertion": curves[m].get("insertion_auc"),
                       "error": result["errors"].get(m, ""),
                       # a map that cannot be trusted (NaN, one value, negligible) says so under it
                       "warning": attr.map_warning(result["maps"][m], m, hi - lo) if m in result["maps"] else ""}
                      for m in self._methods]
            ref = result["reference"]
            reference = {} if ref is None else {
                "deletion": ref["deletion_auc"], "insertion": ref["insertion_auc"],
                "deletion_curve": [float(v) for v in ref["deletion"]],
                "insertion_curve": [float(v) for v in ref["insertion"]]}
            errors = [f"{LABELS[m]}: {result['errors'][m]}" for m in self._methods if m in result["errors"]]
            if errors:
                extra["error"] = "\n".join(errors)
            self._push(map_bytes=data, map_ranges=ranges, maps_meta=self._meta(image_index, target, result["maps"]),
                       scores=scores, reference=reference, **extra)
            self._plot({m: c for m, c in curves.items() if c}, ref)

    def _plot(self, curves: dict, reference: dict | None):
        """One line per method with curves (in its colour), and the random map's, grey and dashed."""
        shown = [m for m in self._methods if m in curves]
        fractions = np.linspace(0.0, 1.0, self.curve_steps + 1, dtype=np.float32)
        empty = np.zeros(0, np.float32)
        for chart, kind in ((self.deletion_chart, "deletion"), (self.insertion_chart, "insertion")):
            line, ref = chart.marks
            with line.hold_sync():
                if shown:
                    line.x = fractions
                    line.y = np.stack([curves[m][kind] for m in shown]).astype(np.float32)
                else:
                    line.x, line.y = empty, empty
                line.colors = [PALETTE[self._methods.index(m) % len(PALETTE)] for m in shown] or [PALETTE[0]]
            with ref.hold_sync():
                ref.x, ref.y = (fractions, np.asarray(reference[kind], np.float32)) if reference else (empty, empty)


def _ranking(m: np.ndarray, sign: str) -> str:
    """The sign ``m``'s pixels are ranked by under ``sign``, the same name for signs that rank ``m`` alike: a map
    with no negative values ranks the same under "positive", "absolute" and "both", one with no positive values
    the same under "negative" and "absolute". Curves are kept per (method, this)."""
    if sign in ("positive", "absolute", "both") and m.min() >= 0:
        return "positive"
    if sign in ("negative", "absolute") and m.max() <= 0:
        return "negative"
    return sign


def _cost(maps: list, curves: list, reference: bool) -> int:
    """Progress units of a slow job: one per map, one per curve, two for the random map's pair."""
    return len(maps) + 2 * len(curves) + 2 * bool(reference)


def _method_names(methods, probe) -> tuple[str, ...]:
    names = (methods,) if isinstance(methods, str) else tuple(methods)
    known = attr.methods_for(probe)
    unknown = [m for m in names if m not in known]
    if unknown or not names:
        why = "".join(f" ({m} needs a model with self-attention over image patches; this one has none)"
                      for m in unknown if m in attr.MODEL_METHODS)
        raise OptionError(f"unknown methods {unknown}{why}; choose from {', '.join(known)}." if unknown else
                          "methods must name at least one method.")
    if len(set(names)) != len(names):
        raise OptionError(f"each method may appear once; got {list(names)}.")
    return names


def _curve_chart(title: str) -> bqplot.Figure:
    """Target probability against the fraction of pixels removed or put back; one line per method, in the colour
    of the swatch beside its map's name in the view (which also shows the AUCs: a bqplot legend of a dozen long
    names would cover the curves)."""
    # y padded by 5%: its "0.0" sits above the axis line, clear of the x axis's "0.0" below it (ticks stay 0..1)
    x, y = bqplot.LinearScale(min=0.0, max=1.0), bqplot.LinearScale(min=-0.05, max=1.05)
    line = bqplot.Lines(x=np.zeros(0, np.float32), y=np.zeros(0, np.float32), scales={"x": x, "y": y},
                        colors=[PALETTE[0]], stroke_width=2)
    reference = bqplot.Lines(x=np.zeros(0, np.float32), y=np.zeros(0, np.float32), scales={"x": x, "y": y},
                             colors=[REFERENCE_COLOR], stroke_width=1.5, line_style="dashed")
    axes = [_axes.axis(x, "fraction of pixels"), _axes.axis(y, "p(target)", vertical=True)]
    return _axes.follow(bqplot.Figure(marks=[line, reference], axes=axes, title=title,
                                      layout=ipywidgets.Layout(width="360px", height="240px"),
                                      fig_margin={"top": 48, "bottom": 40, "left": 48, "right": 16}))
