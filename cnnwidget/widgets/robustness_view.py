"""RobustnessView: an adversarial sandbox: how little it takes to change the model's mind, and where inside it
the change happens."""

from __future__ import annotations

import math
import threading

import bqplot
import ipywidgets
import numpy as np
import traitlets as t

from ..core import CnnWidgetError, OptionError, as_probe
from ..core import adversarial as adv
from ..core import options
from ..core import attribution as attr
from ..core.options import PROBE_OPTIONS, WHOLE, positive_int
from . import _axes, _transport
from ._base import CnnWidget, checks, reacts
from ._esm import bundle
from ._jobs import Job

_PY = dict(sync=True, owner="python")
_TOP = 5
EPSILON = "a number >= 0, or a fraction such as 8/255"  # what the widget's messages call a good epsilon
BAR_PX = 16  # the divergence chart's height per layer, up to DIVERGENCE_PX
DIVERGENCE_PX = (240, 480)  # its smallest and largest height
NAME_PX = 16  # at least this far apart the layer names on its y axis (a deep model names every k-th bar)
TIE = 1e-3  # top probabilities closer than this (0.1 percentage point) are called tied
LABELS = {"pgd": "PGD", "fgsm": "FGSM", "inf": "L∞", "2": "L2"}


class RobustnessView(CnnWidget):
    """Adversarial examples for one image at a time, with what they do to the prediction, the Grad-CAM and every
    layer's activations; with ``data=``, the model's accuracy against epsilon over a data set.

    ``model_or_probe``: a Keras model or ``ModelProbe`` (or a model and ModelProbe's options: ``class_names``,
    ``input_range``, ``preprocess``, ...). ``images``: display-space (N, H, W, C) or (H, W, C).
    ``data``: (images, labels) arrays or a ``tf.data.Dataset`` of (images, labels) batches for the
    accuracy-against-epsilon curve (untargeted, away from the true labels, with the widget's attack, norm and
    steps at ``curve_epsilons``, default 9 from 0 to ``epsilon_max``).
    ``epsilon_max``: the slider's top (default 16/255 of the input range for L-inf; for L2 the norm of that L-inf
    perturbation over a quarter of the pixels). ``layers``: the layers of the divergence chart (default: all).

    Public traits (real traitlets, checked from Python and from the page; a bad value is refused, ``error`` says
    why and the widget keeps its state): ``epsilon`` (display units, >= 0, at most the input range's span for L-inf
    or span x sqrt(H*W*C) for L2; default 8/255 of the span), ``attack`` ("pgd", "fgsm"), ``norm``
    ("inf", "2"), ``steps`` (PGD, >= 1), ``target`` (None: untargeted, away from the clean prediction; else the
    class to reach), ``image_index``. Read-only: ``result`` (the last core ``AttackResult``), ``divergence``
    (its ``LayerDivergence``), ``curve`` (the robustness curve as a dict), ``running``, ``status``, ``progress``.

    Each change runs the attack on the widget's worker (progress per step; ``cancel()`` or Cancel stops within
    one step and keeps the last drawing); ``wait()`` blocks until it is done. The curve follows as a job of its
    own once the image is drawn, and again when the attack, norm or steps change.
    """

    _esm = bundle("robustness_view.js")
    _worker_name = "cnnwidget-robustness"
    _actions = {"attack": "_restart", "cancel": "cancel"}  # the view's buttons (base: _on_action)

    # set by a person (Python or the page)
    epsilon = t.Float(8 / 255, help="size of the perturbation, in display units").tag(sync=True)
    attack = t.Unicode("pgd", help='"pgd" or "fgsm"').tag(sync=True)
    norm = t.Unicode("inf", help='"inf" or "2"').tag(sync=True)
    steps = t.Int(20, help="PGD steps").tag(sync=True)
    target = t.Int(None, allow_none=True, help="None: untargeted; else the class the attack pushes towards").tag(
        sync=True)
    image_index = t.Int(0, help="the image attacked").tag(sync=True)
    # set by Python only
    n_images = t.Int(1).tag(**_PY)
    image_shape = t.List(t.Int()).tag(**_PY)  # [H, W]
    class_names = t.List(t.Unicode()).tag(**_PY)
    epsilon_max = t.Float(16 / 255).tag(**_PY)  # the slider's top for the current norm
    epsilon_step = t.Float(1 / 255).tag(**_PY)  # the slider's step
    clean_image = t.Bytes(b"").tag(**_PY)  # uint8 RGB (H, W, 3)
    adv_image = t.Bytes(b"").tag(**_PY)
    perturbation_image = t.Bytes(b"").tag(**_PY)  # 0.5 grey + the perturbation amplified (see shown.amplification)
    cam_bytes = t.Bytes(b"").tag(**_PY)  # uint8 (2, H, W): Grad-CAM of the clean and the adversarial image
    cam_ranges = t.Bytes(b"").tag(**_PY)  # float32 (2, 2)
    predictions = t.Dict().tag(**_PY)  # {"clean": [{"index", "label", "p"}], "adversarial": [...]}
    shown = t.Dict().tag(**_PY)  # what is drawn: epsilon, attack, norm, steps, target, image_index, norms, ...
    curve = t.Dict().tag(**_PY)  # the robustness curve of the current attack, norm and steps ({} without data)
    divergence_chart = t.Instance(bqplot.Figure, allow_none=True).tag(**_PY, **ipywidgets.widget_serialization)
    curve_chart = t.Instance(bqplot.Figure, allow_none=True).tag(**_PY, **ipywidgets.widget_serialization)

    def __init__(self, model_or_probe, images, data=None, class_names=None, *, epsilon: float | None = None,
                 attack: str = "pgd", norm: str = "inf", steps: int = 20, target=None, image_index: int = 0,
                 epsilon_max: float | None = None, curve_epsilons=None, layers=None, **probe_options):
        unknown = sorted(set(probe_options) - set(PROBE_OPTIONS))
        if unknown:
            raise OptionError(f"RobustnessView takes no option {unknown}; it takes epsilon, attack, norm, steps, "
                              f"target, image_index, epsilon_max, curve_epsilons, layers and the probe's "
                              f"{', '.join(PROBE_OPTIONS)}.")
        if class_names is not None:
            probe_options["class_names"] = class_names
        self.probe = as_probe(model_or_probe, **probe_options)
        self._batch = self._images(images)  # checked; float values far outside input_range set `warning`
        n, (h, w) = len(self._batch), self._batch.shape[1:3]
        self._classes = 2 if self.probe.num_classes == 1 else self.probe.num_classes
        norm = adv.check_norm(norm)
        self._epsilon_max = None if epsilon_max is None else adv.check_epsilon(epsilon_max, "epsilon_max")
        if self._epsilon_max == 0:
            raise OptionError("epsilon_max must be > 0; got 0.")
        self._layers = None if layers is None else [self.probe.layer(name).path for name in
                                                    ([layers] if isinstance(layers, str) else layers)]
        self._data = data
        if data is not None:
            adv._labelled_batches(self.probe, data, self.probe.batch_size)  # ImageError/OptionError now
        self._curve_epsilons = None if curve_epsilons is None else sorted(
            adv.check_epsilon(e, "curve_epsilons") for e in curve_epsilons)
        self._curves: dict[tuple, dict] = {}  # (attack, norm, steps) -> curve dict
        self._cams: dict[int, np.ndarray] = {}  # image index -> Grad-CAM of the clean image (its predicted class)
        self.result: adv.AttackResult | None = None
        self.divergence: adv.LayerDivergence | None = None
        # every value through the same checks as later changes
        if epsilon is None:  # 8 grey levels of the input range: 8/255 for [0, 1] images, 8 for [0, 255] ones
            lo, hi = self.probe.input_range
            epsilon = 8 / 255 * (hi - lo)
        values = dict(epsilon=self._epsilon(epsilon, norm), attack=adv.check_attack(attack), norm=norm,
                      steps=positive_int("steps", steps, 1, WHOLE), target=_target(target, self._classes),
                      image_index=options.index("image_index", image_index, n, "the images"))
        top, step = self._slider(norm)
        super().__init__(
            **values, n_images=n, image_shape=[h, w], class_names=[str(c) for c in self.probe.class_names],
            epsilon_max=top, epsilon_step=step,
            divergence_chart=_divergence_chart(self._layers or [i.path for i in self.probe.layers]),
            curve_chart=None if data is None else _curve_chart(self.probe.input_range, norm),
            clean_image=_transport.image_bytes(self._batch[values["image_index"]], self.probe.input_range),
            status="attacking…")
        self.compute()

    def _describe(self):
        return [f"{LABELS[self.attack]} {LABELS[self.norm]} epsilon={self.epsilon:.4g}",
                f"{len(self._batch)} image{'s' if len(self._batch) != 1 else ''}"]

    def _slider(self, norm: str) -> tuple[float, float]:
        lo, hi = self.probe.input_range
        if self._epsilon_max is not None:
            top = self._epsilon_max
        else:
            top = float(adv.default_epsilons((lo, hi), norm, 2, shape=self._batch.shape[1:])[-1])
        return top, (hi - lo) / 255 if norm == "inf" else top / 256

    # -- checks: the same for Python and the page ----------------------------------------------------------------

    def _epsilon(self, value, norm: str) -> float:
        """``value`` as an epsilon for ``norm``: >= 0 and at most the input range's span (L-inf) or span x
        sqrt(H*W*C) (L2)."""
        bound = adv.epsilon_bound(self.probe, norm, self._batch.shape[1:])
        return adv.check_epsilon(value, bound=bound, norm=norm, noun=EPSILON)

    @checks("epsilon")
    def _check_epsilon(self, value):
        return self._epsilon(value, self.norm)

    @checks("attack")
    def _check_attack(self, value):
        return adv.check_attack(value)

    @checks("norm")
    def _check_norm(self, value):
        norm = adv.check_norm(value)
        bound = adv.epsilon_bound(self.probe, norm, self._batch.shape[1:])
        if self.epsilon > bound:
            raise OptionError(f"norm {LABELS[norm]} cannot take the current epsilon {self.epsilon:.6g}: for that "
                              f"norm epsilon must be <= {bound:.6g}; set a smaller epsilon first.")
        return norm

    @checks("steps")
    def _check_steps(self, value):
        return positive_int("steps", value, 1, WHOLE)

    def _value_message(self, name, value, exc):
        # A value of the wrong type from the page or Python (the text "abc" for epsilon, 2.5 for steps) is refused
        # with the same words as a value of the right type that is out of bounds.
        check = {"epsilon": lambda v: self._epsilon(v, self.norm),
                 "steps": lambda v: positive_int("steps", v, 1, WHOLE)}.get(name)
        if check is not None and not isinstance(exc, CnnWidgetError):
            try:
                check(value)
            except CnnWidgetError as refusal:
                return str(refusal)
        return super()._value_message(name, value, exc)

    @checks("target")
    def _check_target(self, value):
        return _target(value, self._classes)

    @checks("image_index")
    def _check_image(self, value):
        return options.index("image_index", value, len(self._batch), "the images")

    # -- reacting to changes -------------------------------------------------------------------------------------

    @reacts("norm")
    def _on_norm(self, change):
        top, step = self._slider(change["new"])
        self._push(error="", epsilon_max=top, epsilon_step=step)
        self.compute()

    @reacts("epsilon", "attack", "steps", "target", "image_index")
    def _on_change(self, change):
        self._push(error="")
        if change["name"] == "image_index":
            self._push(clean_image=_transport.image_bytes(self._batch[change["new"]], self.probe.input_range))
        if change["name"] == "epsilon":
            self._mark_epsilon()
        self.compute()

    def compute(self) -> Job:
        """Attack the selected image again with the current settings on the worker (e.g. after a ``cancel()``);
        returns its Job."""
        steps = 1 if self.attack == "fgsm" else self.steps
        return self._start(self._attack_job, status="attacking…", progress={"what": "attack", "done": 0, "total": steps})

    # -- computing (worker thread) -------------------------------------------------------------------------------

    def _settings(self) -> dict:
        with self._locked():
            return dict(epsilon=self.epsilon, attack=self.attack, norm=self.norm, steps=self.steps,
                        target=self.target, image_index=self.image_index)

    def _attack_job(self, job):
        s = self._settings()
        i = s["image_index"]
        x = self._batch[i:i + 1]

        def progress(done, total):
            self._report(job, throttle=done < total, progress={"what": "attack", "done": done, "total": total},
                         status=f"{LABELS[s['attack']]}: step {done} of {total}")

        try:
            result = adv.attack(self.probe, x, s["epsilon"], s["attack"], target=s["target"], norm=s["norm"],
                                steps=s["steps"], progress=progress, cancel=job.cancel_event)
        except adv.Cancelled:
            return {"status": "cancelled: the last drawing stays"}
        if job.cancelled:
            return {"status": "cancelled: the last drawing stays"}
        clean_pred, adv_pred = int(result.clean_pred[0]), int(result.adv_pred[0])
        if i not in self._cams:
            self._cams[i] = attr.grad_cam(self.probe, x, target=clean_pred)[0]
        cam_adv = attr.grad_cam(self.probe, result.adversarial, target=adv_pred)[0]
        divergence = adv.layer_divergence(self.probe, x, result.adversarial, layers=self._layers)
        delta = result.perturbation[0]
        biggest = float(np.abs(delta).max())
        lo, hi = self.probe.input_range
        amplification = (hi - lo) / (2 * biggest) if biggest > 0 else 0.0
        grey = 0.5 + (delta / (2 * biggest) if biggest > 0 else 0 * delta)
        cams, cam_ranges = _transport.quantize(np.stack([self._cams[i], cam_adv]))
        names = self.probe.class_names
        # The verdict is about the classes shown: untargeted, changed iff the shown clean and adversarial classes
        # differ; targeted, reached iff the shown adversarial class is the target.
        success = adv_pred == s["target"] if s["target"] is not None else adv_pred != clean_pred
        shown = {**s, "success": bool(success), "clean_class": clean_pred, "adv_class": adv_pred,
                 "clean_tied": _tied(result.clean_probs[0], clean_pred),
                 "adv_tied": _tied(result.adv_probs[0], adv_pred),
                 "clean_label": str(names[clean_pred]), "adv_label": str(names[adv_pred]),
                 "target_label": None if s["target"] is None else str(names[s["target"]]),
                 "linf": float(np.abs(delta).max()), "l2": float(np.sqrt((delta.astype(np.float64) ** 2).sum())),
                 "amplification": float(amplification)}
        with self._locked():
            if not self._is_current(job):
                return None
            self.result, self.divergence = result, divergence
            self._push(clean_image=_transport.image_bytes(x[0], self.probe.input_range),
                       adv_image=_transport.image_bytes(result.adversarial[0], self.probe.input_range),
                       perturbation_image=_transport.image_bytes(grey, (0.0, 1.0)), cam_bytes=cams,
                       cam_ranges=cam_ranges, shown=shown,
                       predictions={"clean": self._top(result.clean_probs[0], result.clean_logits, clean_pred),
                                    "adversarial": self._top(result.adv_probs[0], result.adv_logits, adv_pred,
                                                             s["target"])})
            self._plot_divergence(divergence)
            status = self._verdict(shown)
            key = (s["attack"], s["norm"], s["steps"])
            if self._data is not None:
                if key in self._curves:
                    self._show_curve(self._curves[key])
                    status = f"{status} · {_accuracy(self._curves[key], s['epsilon'], s['norm'])}"
                else:
                    self._show_curve({})  # a curve of other settings is not shown beside this attack
                    self._push(status=status)
                    self._start(lambda j: self._curve_job(j, key, status),
                                progress={"what": "curve", "done": 0, "total": 1})
                    return None
            return {"status": status}

    def _curve_job(self, job, key, status: str):
        attack, norm, steps = key
        epsilons = self._curve_epsilons or np.linspace(0.0, self._slider(norm)[0], 9)
        self._report(job, status=f"{status} · accuracy against epsilon: starting")

        def progress(done, total):
            self._report(job, throttle=done != total,
                         progress={"what": "curve", "done": done, "total": total or 0},
                         status=f"{status} · accuracy against epsilon: step {done} of {total or '?'}")

        try:
            curve = adv.robustness_curve(self.probe, self._data, epsilons, attack=attack, norm=norm, steps=steps,
                                         progress=progress, cancel=job.cancel_event).as_dict()
        except adv.Cancelled:
            return {"status": f"{status} · curve cancelled"}
        with self._locked():
            self._curves[key] = curve
            if not self._is_current(job):
                return None
            self._show_curve(curve)
            with self._locked():
                epsilon = self.shown.get("epsilon", self.epsilon)
            return {"status": f"{status} · {_accuracy(curve, epsilon, norm)}"}

    def _verdict(self, shown: dict) -> str:
        name = LABELS[shown["attack"]]
        if shown["target"] is not None:
            done = "reached" if shown["success"] else "did not reach"
            text = f"{name} {done} {shown['target_label']}: the model says {shown['adv_label']}"
        elif shown["success"]:
            text = f"{name} changed {shown['clean_label']} into {shown['adv_label']}"
        else:
            text = f"{name} did not change the prediction: still {shown['clean_label']}"
        return text + _ties(shown)

    def _top(self, probs: np.ndarray, logits, pred: int, also=None) -> list[dict]:
        """The top classes, highest first by the logits the prediction came from (tied probabilities keep the
        predicted class first), and ``also`` (the target) if it is not among them."""
        names = self.probe.class_names
        score = probs if logits is None else np.asarray(logits)[0]
        order = [int(k) for k in np.argsort(-score, kind="stable")[:_TOP]]
        if pred not in order:  # cannot happen (pred is the argmax) unless scores are NaN; never hide the shown class
            order = [int(pred)] + order[:-1]
        if also is not None and also not in order:
            order.append(int(also))
        return [{"index": k, "label": str(names[k]), "p": float(probs[k])} for k in order]

    # -- charts --------------------------------------------------------------------------------------------------

    def _plot_divergence(self, divergence: adv.LayerDivergence):
        bars = self.divergence_chart.marks[0]
        values = np.nan_to_num(divergence.mean, nan=0.0).astype(np.float32)
        names = list(divergence.layers)
        with bars.hold_sync():
            bars.x = np.asarray(names)
            bars.y = values

    def _show_curve(self, curve: dict):
        self._push(curve=curve)
        line = self.curve_chart.marks[0]
        with line.hold_sync():
            line.x = np.asarray(curve.get("epsilons", []), np.float32)
            line.y = np.asarray(curve.get("accuracy", []), np.float32)
        self._mark_epsilon()

    def _mark_epsilon(self):
        if self.curve_chart is None:
            return
        marker = self.curve_chart.marks[1]
        with marker.hold_sync():
            if self.curve:
                marker.x = np.asarray([self.epsilon, self.epsilon], np.float32)
                marker.y = np.asarray([0.0, 1.0], np.float32)
            else:
                marker.x, marker.y = np.zeros(0, np.float32), np.zeros(0, np.float32)


def _tied(probs: np.ndarray, pred: int) -> list[int]:
    """The classes whose probability is within ``TIE`` of the predicted one's (the predicted one first), or [] when
    the prediction stands alone."""
    close = [int(k) for k in np.flatnonzero(probs[pred] - probs <= TIE) if k != pred]
    return [int(pred)] + close if close else []


def _ties(shown: dict) -> str:
    """What the verdict adds when a shown prediction is a tie: the argmax picked one of several equal classes."""
    parts = []
    for kind, what in (("clean_tied", "clean"), ("adv_tied", "adversarial")):
        tied = shown.get(kind) or []
        if tied:
            parts.append(f"the {what} image's top {len(tied)} classes are tied within {TIE:.1%}")
    if not parts:
        return ""
    return f" ({' and '.join(parts)}: the class shown is the first of them, so this verdict says little)"


def _accuracy(curve: dict, epsilon: float, norm: str) -> str:
    """The curve's accuracy at ``epsilon``, or at the curve point nearest it, named as such."""
    eps = np.asarray(curve["epsilons"], np.float64)
    i = int(np.argmin(np.abs(eps - epsilon)))
    acc = f"{curve['accuracy'][i]:.0%} of {curve['n_images']} images"
    if abs(eps[i] - epsilon) <= 1e-6 * max(abs(epsilon), 1e-12):
        return f"accuracy at this {LABELS[norm]} epsilon {epsilon:.4g}: {acc}"
    return f"accuracy at the nearest curve point, {LABELS[norm]} epsilon {eps[i]:.4g} (not {epsilon:.4g}): {acc}"


def _target(value, classes: int):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < classes:
        raise OptionError(f"target {value!r} is out of range: it must be None (untargeted) or a class index in "
                          f"[0, {classes - 1}].")
    return int(value)


def _divergence_chart(names: list[str]) -> bqplot.Figure:
    """Horizontal bars, one a layer in model order from the top, names on the y axis, unrotated: every name while
    they fit ``NAME_PX`` apart, else every k-th (the first included); hovering a bar shows its layer and value. The
    figure is ``BAR_PX`` a layer tall within ``DIVERGENCE_PX``: a deep model's chart keeps a bounded height."""
    x, y = bqplot.OrdinalScale(reverse=True), bqplot.LinearScale(min=0.0)
    tooltip = bqplot.Tooltip(fields=["x", "y"], labels=["layer", "relative distance"], formats=["", ".4g"])
    bars = bqplot.Bars(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y}, colors=["#c44e52"], padding=0.15,
                       orientation="horizontal", tooltip=tooltip)
    top, bottom = 48, 56
    lo, hi = DIVERGENCE_PX
    height = min(hi, max(lo, top + bottom + BAR_PX * len(names)))
    every = max(1, math.ceil(len(names) / max(1, (height - top - bottom) // NAME_PX)))
    names_axis = _axes.axis(x, kind="ordinal", vertical=True)
    if every > 1:
        # bqplot ignores tick_values on an ordinal scale; with num_ticks it names every floor(n / (num_ticks - 1))-th
        # category from the first: at least `every` apart, so the names fit.
        names_axis.num_ticks = len(names) // every + 1
    # min_width within JupyterLab's 300 px sidebar (a view there is ~250 px wide; the Explorer's robustness panel
    # too): at 360 px the chart ran past the panel. Title and axis label short enough for that width.
    axes = [names_axis, _axes.axis(y, "||a(adv) − a|| / ||a||")]
    fig = bqplot.Figure(marks=[bars], axes=axes, title="divergence per layer",
                        fig_margin={"top": top, "bottom": bottom, "left": 60, "right": 24},
                        layout=ipywidgets.Layout(width="100%", max_width="520px", min_width="220px",
                                                 height=f"{height}px"))
    return _axes.follow(fig)


def _curve_chart(input_range, norm: str) -> bqplot.Figure:
    x, y = bqplot.LinearScale(min=0.0), bqplot.LinearScale(min=-0.05, max=1.05)
    line = bqplot.Lines(x=np.zeros(0, np.float32), y=np.zeros(0, np.float32), scales={"x": x, "y": y},
                        colors=["#4c72b0"], stroke_width=2, marker="circle", marker_size=24)
    marker = bqplot.Lines(x=np.zeros(0, np.float32), y=np.zeros(0, np.float32), scales={"x": x, "y": y},
                          colors=["#c44e52"], stroke_width=1.5, line_style="dashed")
    axes = [_axes.axis(x, "epsilon"), _axes.axis(y, "accuracy", kind="percent", vertical=True)]
    return _axes.follow(bqplot.Figure(marks=[line, marker], axes=axes, title="accuracy against epsilon",
                                      layout=ipywidgets.Layout(width="100%", max_width="360px",
                                                               min_width="220px", height="260px"),
                                      fig_margin={"top": 48, "bottom": 40, "left": 56, "right": 16}))
