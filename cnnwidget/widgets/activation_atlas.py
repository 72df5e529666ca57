"""ActivationAtlas: a layer's activation atlas (Carter et al. 2019) over a data set, with zoom and hover."""

from __future__ import annotations

import time

import numpy as np
import traitlets as t

from ..core import CnnWidgetError, OptionError, as_probe
from ..core import atlas as core_atlas
from ..core.options import PROBE_OPTIONS, WHOLE, positive_float, positive_int
from ._base import CnnWidget, checks, reacts
from ._esm import bundle
from ._jobs import Job

ZOOM_RANGE = (0.25, 8.0)
_PY = dict(sync=True, owner="python")


class ActivationAtlas(CnnWidget):
    """The activation atlas of one layer over a data set: what the layer's activations look like, as a map.

    ``model_or_probe``: a Keras model or ModelProbe (or a model and ModelProbe's options). ``data``: display-space
    images (numpy (N, H, W, C) or (images, labels)), a ``tf.data.Dataset`` or a generator of batches, read once
    (the sample is kept; a generator cannot be read again, so after a cancelled pass over one, Compute finds it
    empty: pass an array or a ``tf.data.Dataset`` to be able to resume).
    ``layer``: a spatial or vector layer. ``grid``: cells a side. The other options go to
    ``cnnwidget.core.atlas.activation_atlas`` (``samples``, ``per_image``, ``layout``, ``seed``, ``examples``,
    ``thumbnail``, ``batch_size``, ``strategy``, ``size``, ``steps``, ``render_batch``, ``cossim_pow``).

    Everything is computed on the widget's worker: one pass over the data (a random sample of activation vectors),
    a 2-D layout (UMAP if ``umap-learn`` is installed, else t-SNE; ``layout_method`` says which), binning into
    ``grid`` x ``grid`` cells, then each cell's feature visualization of its mean direction, rendered in batches and
    streamed to the view. The view draws every non-empty cell, its icon sized by its count (grey until rendered);
    hovering a cell shows its count, the class it most supports and a strip of the images behind it; zoom with the
    +/- buttons or Ctrl + wheel. ``cancel()`` (or Cancel) stops within one step and keeps what was made (the icons
    of whole batches); ``compute()`` (or Compute) goes on. Changing ``grid`` re-bins the same layout and renders the
    new cells.

    Public traits: ``grid`` (2..256), ``zoom`` (0.25..8, the view's scale); read-only: ``layer``,
    ``layout_method``, ``class_names``, ``running``, ``progress`` ({"stage", "done", "total"}), ``status``,
    ``error``. Wire: ``icons`` uint8 (m, s, s, 3) RGB, one per cell in ``cells`` order; ``thumbs`` uint8
    (k, t, t, 3); ``cells`` {"grid", "m", "row", "col", "count", "label" (-1 unknown), "support", "strip" (per
    cell, indices into thumbs), "images" (per cell, global image indices), "rendered", "renderable" (False:
    every activation vector in the cell is zero, so it has no direction to render and never gets an icon), "icon"
    (s), "thumb" (t), "max_count", "samples", "class_source"}. The numbers: ``atlas`` (a ``core.atlas.Atlas``).
    """

    _esm = bundle("activation_atlas.js")
    _worker_name = "cnnwidget-atlas"
    _actions = {"compute": "compute", "cancel": "cancel"}  # the view's buttons (base: _on_action)

    grid = t.Int(20, help="cells a side").tag(sync=True)
    zoom = t.Float(1.0, help="the view's scale").tag(sync=True)
    layer = t.Unicode("").tag(**_PY)
    layout_method = t.Unicode("").tag(**_PY)
    class_names = t.List(t.Unicode()).tag(**_PY)
    cells = t.Dict().tag(**_PY)
    icons = t.Bytes(b"").tag(**_PY)
    thumbs = t.Bytes(b"").tag(**_PY)

    def __init__(self, model_or_probe, data, layer, grid: int = 20, *, zoom: float = 1.0, **options):
        self.probe = as_probe(model_or_probe, **{k: options.pop(k) for k in PROBE_OPTIONS if k in options})
        info = core_atlas._layer(self.probe, layer)  # LayerError before anything runs
        self._data = data
        self._options = _atlas_options(options)
        self._check_grid_value(grid)
        self._check_zoom_value(zoom)
        self._sample = None  # the collected Atlas with its layout (coords), kept across grid changes
        self._atlas = None  # the current atlas (cells, icons)
        super().__init__(layer=info.path, grid=int(grid), zoom=float(zoom),
                         class_names=[str(c) for c in self.probe.class_names], status="reading the data…")
        self._start(self._job, progress={"stage": "collect", "done": 0, "total": None})

    def _describe(self):
        return [f"layer {self.layer!r}", f"grid {self.grid}"]

    # -- public ----------------------------------------------------------------------------------------------------

    @property
    def atlas(self):
        """The atlas as computed so far (``core.atlas.Atlas``), or None before its layout."""
        with self._locked():
            return self._atlas

    def _holds(self) -> dict:
        """For ``to_numpy`` / ``save_npz``: the wire bytes, and the atlas in full precision (the sample's vectors,
        image indices, positions, labels, predictions, thumbnails and layout; the cells' rows, columns, counts,
        means, classes, class shares, example images; the icons and which are rendered)."""
        out = super()._holds()
        with self._locked():
            a = self._atlas if self._atlas is not None else self._sample
        if a is None:
            return out
        for name in ("vectors", "image_index", "position", "label", "predicted", "thumbnails", "coords", "cell_of"):
            value = getattr(a, name)
            if value is not None:
                out[f"sample_{name}"] = np.asarray(value)
        if a.cells is not None:
            for name in ("row", "col", "count", "mean", "label", "support", "examples"):
                out[f"cell_{name}"] = np.asarray(getattr(a.cells, name))
        if a.icons is not None:
            out["cell_icons"] = np.asarray(a.icons)
            out["cell_rendered"] = np.asarray(a.rendered)
        return out

    def compute(self) -> Job | None:
        """Go on where the atlas stopped (after a cancel): the pass, the layout, or the icons still missing. None if
        nothing is missing."""
        with self._locked():
            a = self._atlas
            if a is not None and a.rendered is not None and bool(a.rendered[a.cells.renderable].all()):
                return None
            self._push(error="")
            return self._start(self._job, progress={"stage": "", "done": 0, "total": None})

    # -- checks ----------------------------------------------------------------------------------------------------

    @checks("grid")
    def _check_grid(self, value):
        return self._check_grid_value(value)

    @checks("zoom")
    def _check_zoom(self, value):
        return self._check_zoom_value(value)

    @staticmethod
    def _check_grid_value(value) -> int:
        value = positive_int("grid", value, 2, WHOLE)
        if value > 256:
            raise OptionError(f"grid must be a whole number from 2 to 256 (cells a side); got {value}.")
        return value

    @staticmethod
    def _check_zoom_value(value) -> float:
        value = positive_float("zoom", value)
        lo, hi = ZOOM_RANGE
        if not lo <= value <= hi:
            raise OptionError(f"zoom must be a number from {lo} to {hi}; got {value!r}.")
        return float(value)

    @reacts("grid")
    def _on_grid(self, change):
        with self._locked():
            if self._sample is None and self.running:  # the pass goes on; it lays out at the grid of its end
                self._push(error="")
                return
            if self._sample is not None and self._sample.coords is not None:
                self._atlas = core_atlas.place(self._sample, self._sample.coords, self._sample.method, self.grid,
                                               self._options["examples"])
                self._show_atlas(self._atlas)
            self._push(error="")
            self._start(self._job, progress={"stage": "render", "done": 0, "total": None})

    # -- the job ---------------------------------------------------------------------------------------------------

    def _job(self, job: Job):
        o = self._options
        started = time.monotonic()
        cancel = job.cancel_event
        with self._locked():
            sample = self._sample
        if sample is None:
            def collected(done, total, partial):
                self._report(job, throttle=True, progress={"stage": "collect", "done": int(done),
                                                           "total": None if total is None else int(total)},
                             status=f"reading the data: {partial.images} images, {partial.samples} vectors kept")

            sample = core_atlas.collect(self.probe, self._data, self.layer, samples=o["samples"],
                                        per_image=o["per_image"], thumbnail=o["thumbnail"], seed=o["seed"],
                                        batch_size=o["batch_size"], strategy=o["strategy"], grid=self.grid,
                                        progress=collected, cancel=cancel)
            if sample.cancelled:
                return {"status": f"cancelled while reading the data ({sample.images} images read); Compute "
                                  "starts again"}
            self._report(job, progress={"stage": "layout", "done": 0, "total": 1},
                         status=f"laying out {sample.samples} vectors…")
            coords, method = core_atlas.layout_2d(sample.vectors, o["layout"], seed=o["seed"], cancel=cancel)
            if coords is None:
                return {"status": "cancelled during the layout; Compute starts it again"}
            with self._locked():
                self._sample = sample = core_atlas.place(sample, coords, method, self.grid, o["examples"])
                self._atlas = None
        with self._locked():
            if self._atlas is None or self._atlas.grid != self.grid:
                self._atlas = core_atlas.place(sample, sample.coords, sample.method, self.grid, o["examples"])
            atlas = self._atlas
            if not self._report(job, layout_method=sample.method):
                return None
            self._show_atlas(atlas)
        todo = np.flatnonzero(atlas.cells.renderable & ~atlas.rendered)
        total = len(todo)
        latest = [atlas]  # this job's newest atlas: kept as the widget's unless a grid change replaced it

        def keep(partial):
            if self._atlas is latest[0]:
                self._atlas = partial
            latest[0] = partial

        def rendered(done, _total, partial):
            with self._locked():
                keep(partial)
                if self._is_current(job):
                    self._show_atlas(partial)
                    self._push(progress={"stage": "render", "done": int(done), "total": total},
                               status=f"rendering cells: {done} of {total}")

        self._report(job, progress={"stage": "render", "done": 0, "total": total},
                     status=f"rendering cells: 0 of {total}")
        out = core_atlas.render_atlas(self.probe, atlas, size=o["size"], steps=o["steps"], batch=o["render_batch"],
                                      seed=o["seed"], cossim_pow=o["cossim_pow"], progress=rendered,
                                      cancel=cancel, only=todo)
        with self._locked():
            keep(out)
            if self._is_current(job):
                self._show_atlas(out)
        n = int(out.rendered.sum())
        if out.cancelled:
            return {"status": f"cancelled: {n} of {int(out.cells.renderable.sum())} cells rendered; Compute goes on"}
        blank = int((~out.cells.renderable).sum())
        zero = f"; {blank} with every activation zero have nothing to render" if blank else ""
        return {"status": f"{len(out.cells)} cells from {sample.samples} vectors of {sample.images} images "
                          f"({sample.method}) in {time.monotonic() - started:.1f} s{zero}"}

    # -- sending ---------------------------------------------------------------------------------------------------

    def _show_atlas(self, atlas):
        """Put ``atlas``'s cells, icons and the thumbnails of their images on the view."""
        cells = atlas.cells
        m = len(cells)
        lo, hi = self.probe.input_range
        size = 0
        icons = b""
        if atlas.icons is not None and atlas.icons.ndim == 4 and atlas.icons.shape[1]:
            size = int(atlas.icons.shape[1])
            pics = np.nan_to_num(atlas.icons, nan=lo)
            rgb = np.clip(np.rint((pics - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)
            if rgb.shape[-1] == 1:
                rgb = np.repeat(rgb, 3, axis=-1)
            icons = np.ascontiguousarray(rgb[..., :3]).tobytes()
        rows = cells.example_samples
        used = np.unique(rows[rows >= 0])
        strip = np.searchsorted(used, rows)
        thumb = 0
        thumbs = b""
        if atlas.thumbnails is not None and len(used):
            thumb = int(atlas.thumbnails.shape[1])
            thumbs = np.ascontiguousarray(atlas.thumbnails[used]).tobytes()
        meta = {"grid": int(atlas.grid), "m": m, "row": cells.row.tolist(), "col": cells.col.tolist(),
                "count": cells.count.tolist(), "label": cells.label.tolist(),
                "support": [round(float(s), 4) for s in cells.support],
                "strip": [[int(s) for s, r in zip(sr, rr) if r >= 0] for sr, rr in zip(strip, rows)] if thumb else
                [[] for _ in range(m)],
                "images": [[int(i) for i in e if i >= 0] for e in cells.examples],
                "rendered": [bool(r) for r in (atlas.rendered if atlas.rendered is not None else np.zeros(m, bool))],
                "renderable": [bool(r) for r in cells.renderable],
                "icon": size, "thumb": thumb, "max_count": int(cells.count.max()) if m else 0,
                "samples": int(atlas.samples), "class_source": atlas.class_source}
        self._push(cells=meta, icons=icons, thumbs=thumbs)


def _atlas_options(options: dict) -> dict:
    """The core options the widget passes on, with their defaults; unknown names refused."""
    defaults = dict(samples=core_atlas.DEFAULT_SAMPLES, per_image=1, layout="auto", seed=0,
                    examples=core_atlas.DEFAULT_EXAMPLES, thumbnail=32, batch_size=None, strategy=None, size=None,
                    steps=128, render_batch=16, cossim_pow=1.0)
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise OptionError(f"unknown options {unknown}; ActivationAtlas takes {sorted(defaults)} and the model "
                          f"options {list(PROBE_OPTIONS)}.")
    out = {**defaults, **options}
    positive_int("samples", out["samples"], core_atlas.MIN_VECTORS, WHOLE)
    for name in ("per_image", "examples", "steps", "render_batch"):
        positive_int(name, out[name], 1, WHOLE)
    positive_int("thumbnail", out["thumbnail"], 1, WHOLE)
    positive_int("seed", out["seed"], 0, WHOLE)
    if out["layout"] not in core_atlas.LAYOUTS:
        raise OptionError(f"layout must be one of {', '.join(core_atlas.LAYOUTS)}; got {out['layout']!r}.")
    if out["layout"] == "umap" and not core_atlas.umap_available():
        raise OptionError("layout='umap' needs the umap-learn package (pip install umap-learn); layout='auto' "
                          "uses t-SNE without it.")
    positive_float("cossim_pow", out["cossim_pow"], allow_zero=True)
    return out
