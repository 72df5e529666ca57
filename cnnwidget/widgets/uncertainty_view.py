"""UncertaintyView: how sure the model is about each image (MC dropout done right), how stable its saliency map is
across dropout samples, and, with labelled data, how well calibrated it is (reliability diagram, ECE before and
after temperature scaling, the most uncertain images). Everything is computed by core.uncertainty on the widget's
worker; this module only encodes results for the view (js/uncertainty_view.js) and its bqplot charts."""

from __future__ import annotations

import bqplot
import ipywidgets
import numpy as np
import traitlets as t

from ..core import Cancelled, CnnWidgetError, OptionError, as_probe
from ..core import options
from ..core import uncertainty as U
from ..core.options import PROBE_OPTIONS
from . import _axes, _transport
from ._base import CnnWidget, checks, reacts
from ._esm import bundle

_PY = dict(sync=True, owner="python")
SPREAD_METHODS = ("saliency", "grad_cam")
SPREAD_LABELS = {"saliency": "Saliency", "grad_cam": "Grad-CAM"}
MAX_WIDGET_SAMPLES = 1000  # the widget recomputes on every change: more would make a slider wait minutes
BEFORE, AFTER, DIAGONAL = "#4c72b0", "#dd8452", "#9e9e9e"  # also in js/uncertainty_view.js LEGEND
CANCELLED = "cancelled: what was finished stays; Compute resumes"


class UncertaintyView(CnnWidget):
    """Monte Carlo dropout on a few images, and calibration on a labelled data set, in one view.

    ``model``: a Keras model or ModelProbe (or a model and ModelProbe's options: ``preprocess``, ``input_range``,
    ...). ``images``: display-space (N, H, W, C) or (H, W, C). ``data``: optional (images, labels) arrays or a
    tf.data.Dataset of such pairs, for the calibration part (at least 100 images; see
    ``core.uncertainty.calibration``). ``class_names``: labels of the classes (rendered as text).

    Per image: the predictive distribution (mean probability per class across dropout samples, with a bar of
    ± one standard deviation), the predictive entropy, the mutual information (the model's own, epistemic
    uncertainty) and a plain-words reading of them; the image, the mean saliency (or Grad-CAM) map across dropout
    samples (at most 50 of them: one gradient pass each), and its per-pixel standard deviation: where the
    explanation is stable and where it is noise. A model
    with no dropout layer is said to have zero epistemic uncertainty by construction (not an error). With
    ``data``: the reliability diagram on the evaluation split before and after temperature scaling (T fitted on a
    held-out split), ECE/NLL before and after, a histogram of confidences, and the most uncertain images.

    Public traits (real traitlets: ``link``, ``jslink``, ``observe`` work), checked from Python and from the page:
    ``image_index``, ``samples`` (1..1000 dropout samples), ``seed`` (>= 0; the same seed gives the same samples),
    ``spread_method`` ("saliency" or "grad_cam"). Read-only: ``summary`` (the numbers of the image shown),
    ``calibration`` (the calibration numbers), ``running``, ``progress``, ``status``, ``error``. The numbers:
    ``result`` (core.uncertainty.Uncertainty of every image), ``spread`` (ExplanationSpread of the image shown),
    ``calibration_result`` (core.uncertainty.Calibration). Work runs on the worker; ``cancel()`` (or Cancel) stops
    it within one call, ``wait()`` blocks until it is done, ``close()`` frees everything.
    """

    _esm = bundle("uncertainty_view.js")
    _worker_name = "cnnwidget-uncertainty"
    _actions = {"compute": "_compute_clicked", "cancel": "cancel"}  # the view's buttons (base: _on_action)

    image_index = t.Int(0, help="the image shown").tag(sync=True)
    samples = t.Int(50, help="dropout samples per image").tag(sync=True)
    seed = t.Int(0, help="seed of the dropout samples").tag(sync=True)
    spread_method = t.Unicode("saliency", help="the map whose spread is shown").tag(sync=True)

    n_images = t.Int(1).tag(**_PY)
    class_names = t.List(t.Unicode()).tag(**_PY)
    image = t.Bytes(b"").tag(**_PY)  # uint8 RGB (H, W, 3) of the image shown
    maps = t.Bytes(b"").tag(**_PY)  # uint8 (2, H, W): mean map, std map, each over its own range
    map_ranges = t.Bytes(b"").tag(**_PY)  # float32 (2, 2)
    maps_meta = t.Dict().tag(**_PY)  # {"k", "h", "w", "labels", "image_index", "done"}
    summary = t.Dict().tag(**_PY)  # the numbers of the image shown, and the reading in words
    has_data = t.Bool(False).tag(**_PY)
    calibration = t.Dict().tag(**_PY)  # ECE, MCE, NLL, Brier before/after, temperature, counts, note
    uncertain = t.Bytes(b"").tag(**_PY)  # uint8 (k, H, W, 3): the most uncertain images of the data
    uncertain_meta = t.List(t.Dict()).tag(**_PY)  # per image {"index", "label", "predicted", "entropy"}
    distribution_chart = t.Instance(bqplot.Figure, allow_none=True).tag(**_PY, **ipywidgets.widget_serialization)
    reliability_chart = t.Instance(bqplot.Figure, allow_none=True).tag(**_PY, **ipywidgets.widget_serialization)
    confidence_chart = t.Instance(bqplot.Figure, allow_none=True).tag(**_PY, **ipywidgets.widget_serialization)

    def __init__(self, model, images, data=None, class_names=None, *, image_index: int = 0, samples: int = 50,
                 seed: int = 0, spread_method: str = "saliency", bins: int = 15, holdout: float = 0.5,
                 **probe_options):
        unknown = [k for k in probe_options if k not in PROBE_OPTIONS]
        if unknown:
            raise OptionError(f"UncertaintyView got unknown options {', '.join(map(repr, unknown))}; it takes "
                              f"image_index, samples, seed, spread_method, bins, holdout and ModelProbe's "
                              f"{', '.join(PROBE_OPTIONS)}.")
        if class_names is not None and not isinstance(model, U.ModelProbe):
            probe_options["class_names"] = class_names
        self.probe = as_probe(model, **probe_options)
        self._batch = self._images(images)  # checked; float values far outside input_range set `warning`
        names = self.probe.class_names if class_names is None else [str(c) for c in class_names]
        if len(names) != max(self.probe.num_classes, 2):
            raise OptionError(f"class_names has {len(names)} names, but the model outputs {self.probe.num_classes} "
                              "classes.")
        self._names = names
        self._bins = options.positive_int("bins", bins, 2)
        self._holdout = options.fraction("holdout", holdout)
        self._data = None
        if data is not None:
            self._data = U.check_calibration_data(self.probe, data)
            if not 0.0 < self._holdout < 1.0:
                raise OptionError(f"holdout must be a number strictly between 0 and 1; got {holdout!r}.")
        self.result: U.Uncertainty | None = None
        self.spread: U.ExplanationSpread | None = None
        self.calibration_result: U.Calibration | None = None
        self._spreads: dict = {}
        self._refusal = ""  # the message of the last value refused, while `error` shows it
        self.distribution_chart_, self._bars, self._whiskers = _distribution_figure()
        charts = {}
        if self._data is not None:
            charts["reliability_chart"], self._reliability = _reliability_figure()
            charts["confidence_chart"], self._histogram = _histogram_figure()
        super().__init__(image_index=image_index, samples=samples, seed=seed, spread_method=spread_method,
                         n_images=len(self._batch), class_names=names, has_data=self._data is not None,
                         distribution_chart=self.distribution_chart_, **charts)
        self._show_image()
        self.compute()

    def _describe(self):
        return [f"{len(self._batch)} images", f"{self.samples} samples"] + (["with data"] if self._data else [])

    # -- public -------------------------------------------------------------------------------------------------

    def compute(self):
        """(Re)start the work on the worker: MC dropout of every image, the spread of the shown image's map, and
        the calibration pass (each kept once done). Returns its Job."""
        return self._compute(keep_refusal=False)

    def _compute(self, keep_refusal: bool):
        """``keep_refusal``: the page's Compute keeps the message of a value the page just had refused (a Samples
        box left at 0 sends its value on blur, just before the click: clearing the message would make the refusal
        silent, the box simply going back to the kept value)."""
        with self._locked():
            if not (keep_refusal and self._refusal and self.error == self._refusal):
                self._push(error="")
                self._refusal = ""
            return self._start(self._work, status=f"MC dropout: {self.samples} samples of {len(self._batch)} "
                                                  "images...", progress={"stage": "dropout", "fraction": 0.0})

    def cancel(self):
        """Stop the work at its next call (the samples, maps and calibration finished so far stay)."""
        with self._locked():
            if self.running:
                self._push(status=CANCELLED)
            super().cancel()

    def close(self):
        super().close()
        self.result = self.spread = self.calibration_result = None
        self._spreads = {}
        self._batch = self._data = None

    # -- checks and reactions ----------------------------------------------------------------------------------

    @checks("image_index")
    def _check_image(self, value):
        return options.index("image_index", value, len(self._batch), "the images")

    @checks("samples")
    def _check_samples(self, value):
        value = U.check_samples(value)
        if value > MAX_WIDGET_SAMPLES:
            raise OptionError(f"samples must be an integer in [1, {MAX_WIDGET_SAMPLES}] in the widget; got {value} "
                              "(call core.uncertainty.mc_dropout for more).")
        return value

    @checks("seed")
    def _check_seed(self, value):
        return options.seed(value)

    @checks("spread_method")
    def _check_method(self, value):
        return options.choice("spread_method", value, SPREAD_METHODS)

    @reacts("image_index")
    def _on_image(self, change):
        self._show_image()
        if self.result is not None:
            self._draw_result()
        # quick (the samples are kept; one image's maps): a change returns once they are drawn; the calibration
        # pass, if it is still to do, follows in a job of its own
        self._start(lambda job: self._work(job, calibrate=False), settle=True, revert={"image_index": change["old"]})

    @reacts("samples", "seed", "spread_method")
    def _on_sampling(self, change):
        self._push(error="")
        self._refusal = ""
        self._start(self._work, revert={change["name"]: change["old"]},
                    status=f"MC dropout: {self.samples} samples...", progress={"stage": "dropout", "fraction": 0.0})

    def _show_refusal(self, message: str):
        super()._show_refusal(message)
        self._refusal = message

    def _refuse(self, change, exc: CnnWidgetError):
        super()._refuse(change, exc)
        self._refusal = str(exc)

    def _compute_clicked(self):
        """The page's Compute: as compute(), keeping a refusal shown rather than raising it."""
        self._compute(keep_refusal=True)

    # -- the work (worker thread) ------------------------------------------------------------------------------

    def _work(self, job, calibrate: bool = True):
        """MC dropout of every image (unless kept), the shown image's map spread, then the calibration pass.
        ``calibrate=False``: a quick job a change waits for (a new image): it draws from the kept samples and
        hands new samples or the calibration pass to a job of its own."""
        with self._locked():
            samples, seed, method, index = self.samples, self.seed, self.spread_method, self.image_index
            batch, data = self._batch, self._data
        if batch is None:
            return None

        def progress(stage, share, start=0.0):
            def report(done, total):
                if job.cancelled:
                    return
                fraction = start + share * (done / total if total else 0.0)
                self._report(job, throttle=done != total,
                             progress={"stage": stage, "done": done, "total": total, "fraction": fraction},
                             status=f"{stage}: {done} of {total or '?'}")
            return report

        def hand_off(status):  # long work a quick job does not do: a job of its own follows (no one waits)
            with self._locked():
                if self._is_current(job):
                    self._start(self._work, status=status, progress={"stage": "dropout", "fraction": 0.0})

        try:
            result = self.result
            if result is None or (result.samples, result.seed) != (samples, seed):
                if not calibrate:
                    return hand_off(f"MC dropout: {samples} samples...")
                result = U.mc_dropout(self.probe, batch, samples=samples, seed=seed,
                                      progress=progress("dropout samples", 0.4), cancel=job.cancel_event)
                with self._locked():
                    if not self._is_current(job):
                        return None
                    self.result, self._spreads = result, {}
                    self._draw_result()
            key = (index, samples, seed, method)
            spread = self._spreads.get(key)
            if spread is None:
                spread = U.explanation_spread(self.probe, batch[index:index + 1], method=method,
                                              samples=min(samples, 50), seed=seed,
                                              target=int(result.predicted[index]),
                                              progress=progress(f"{SPREAD_LABELS[method]} spread", 0.3, 0.4),
                                              cancel=job.cancel_event)
                self._spreads[key] = spread
            with self._locked():
                if not self._is_current(job):
                    return None
                self.spread = spread
                self._draw_spread(index, method, spread)
            if data is not None and self.calibration_result is None and not calibrate:
                return hand_off("calibration...")
            if data is not None and self.calibration_result is None:
                calibration = U.calibration(self.probe, data, bins=self._bins, holdout=self._holdout,
                                            progress=progress("calibration", 0.3, 0.7), cancel=job.cancel_event)
                with self._locked():
                    if not self._is_current(job):
                        return None
                    self.calibration_result = calibration
                    self._draw_calibration(calibration)
        except Cancelled:
            return {"status": CANCELLED}
        note = f"; {result.note}" if result.note else ""
        return {"progress": {"stage": "done", "fraction": 1.0},
                "status": f"done: {samples} dropout samples of {len(batch)} images{note}"}

    # -- drawing (under the lock) ------------------------------------------------------------------------------

    def _show_image(self):
        h, w = self._batch.shape[1:3]
        self._push(image=_transport.image_bytes(self._batch[self.image_index], self.probe.input_range),
                   maps_meta={"k": 2, "h": int(h), "w": int(w), "image_index": int(self.image_index),
                              "labels": [], "done": False})

    def _draw_result(self):
        r, i = self.result, self.image_index
        mean, std = r.mean[i].astype(np.float64), r.std[i].astype(np.float64)
        with self._bars.hold_sync(), self._whiskers.hold_sync():
            self._bars.x, self._bars.y = self._names, mean
            self._whiskers.x = np.array([[n, n] for n in self._names])
            self._whiskers.y = np.stack([np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1)], 1)
        c = int(mean.argmax())
        self._push(summary={
            "image_index": int(i), "predicted": c, "label": self._names[c], "p": float(mean[c]),
            "std": float(std[c]), "entropy": float(r.predictive_entropy[i]),
            "expected_entropy": float(r.expected_entropy[i]), "mutual_information": float(r.mutual_information[i]),
            "max_entropy": r.max_entropy, "samples": int(r.samples), "seed": int(r.seed),
            "stochastic": list(r.stochastic), "note": r.note, "reading": U.reading(r, i, self._names)})

    def _draw_spread(self, index, method, spread):
        h, w = spread.mean.shape[1:3]
        data, ranges = _transport.quantize(np.stack([np.abs(spread.mean[0]), spread.std[0]]))
        label = SPREAD_LABELS[method]
        self._push(maps=data, map_ranges=ranges,
                   maps_meta={"k": 2, "h": int(h), "w": int(w), "image_index": int(index), "done": True,
                              "labels": [f"{label}: mean of {spread.samples} samples",
                                         f"{label}: std across samples"],
                              "note": spread.note})

    def _draw_calibration(self, c: U.Calibration):
        centers = (c.edges[:-1] + c.edges[1:]) / 2
        for line, metrics in zip(self._reliability[1:], (c.before, c.after)):
            full = metrics.count > 0
            with line.hold_sync():
                line.x, line.y = metrics.confidence[full], metrics.bin_accuracy[full]
        with self._histogram.hold_sync():
            self._histogram.x, self._histogram.y = centers, c.overall.count.astype(np.float64)

        def m(x):
            return {"ece": x.ece, "mce": x.mce, "nll": x.nll, "brier": x.brier, "accuracy": x.accuracy, "n": x.n}

        kept = c.uncertain_images
        self._push(calibration={"before": m(c.before), "after": m(c.after), "overall": m(c.overall),
                                "temperature": c.temperature, "bins": len(centers), "holdout": c.holdout,
                                "note": c.note},
                   uncertain=b"".join(_transport.image_bytes(x, self.probe.input_range) for x in kept),
                   uncertain_meta=[{"index": int(i), "entropy": float(e), "label": self._names[y],
                                    "predicted": self._names[p]} for i, e, y, p in c.most_uncertain])


def _figure(title, marks, axes, height="280px", **options):
    # min_width within JupyterLab's 300 px sidebar (a view there is ~250 px wide): at 260 px the chart's right end,
    # its last x tick label ("100%") and its title's end were cut off by the panel's edge; titles short enough
    # for that width
    fig = bqplot.Figure(marks=marks, axes=axes, title=title,
                        fig_margin=options.pop("fig_margin", {"top": 48, "bottom": 60, "left": 60, "right": 16}),
                        layout=ipywidgets.Layout(width="100%", max_width="440px", min_width="200px", height=height),
                        **options)
    return _axes.follow(fig)


def _distribution_figure():
    x, y = bqplot.OrdinalScale(), bqplot.LinearScale(min=0.0, max=1.0)
    bars = bqplot.Bars(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y}, colors=[BEFORE], padding=0.2)
    whiskers = bqplot.Lines(x=np.zeros((0, 2)), y=np.zeros((0, 2)), scales={"x": x, "y": y}, colors=["#222222"],
                            stroke_width=2)
    axes = [_axes.axis(x, "class", kind="ordinal", rotate=-90),  # upright names never overlap their neighbours
            _axes.axis(y, "probability (mean ± std)", kind="percent", vertical=True)]
    return _figure("predictive distribution", [bars, whiskers], axes), bars, whiskers


def _reliability_figure():
    x, y = bqplot.LinearScale(min=0.0, max=1.0), bqplot.LinearScale(min=0.0, max=1.0)
    # No legend box in the plot: points can fall anywhere (above the diagonal when under-confident, below when
    # over-confident), so any corner may hide some. The view draws the legend under the chart (js: LEGEND, same
    # colours as BEFORE and AFTER).
    diagonal = bqplot.Lines(x=np.array([0.0, 1.0]), y=np.array([0.0, 1.0]), scales={"x": x, "y": y},
                            colors=[DIAGONAL], line_style="dashed", labels=["perfect"], display_legend=False)
    before = bqplot.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y}, colors=[BEFORE], marker="circle",
                          labels=["before (T = 1)"], display_legend=False)
    after = bqplot.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y}, colors=[AFTER], marker="circle",
                         labels=["after temperature scaling"], display_legend=False)
    axes = [_axes.axis(x, "confidence", kind="percent"), _axes.axis(y, "accuracy", kind="percent", vertical=True)]
    fig = _figure("reliability (evaluation)", [diagonal, before, after], axes, height="320px")
    return fig, (diagonal, before, after)


def _histogram_figure():
    # x padded: the "0%" under the first bar would sit on the count axis's "0"
    x, y = bqplot.LinearScale(min=-0.04, max=1.04), bqplot.LinearScale()
    bars = bqplot.Bars(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y}, colors=[BEFORE], padding=0.05)
    axes = [_axes.axis(x, "confidence", kind="percent"), _axes.axis(y, "images", kind="count", vertical=True)]
    return _figure("confidence (all data)", [bars], axes), bars
