"""AttentionMap: what attention attends to, per site of the model: MultiHeadAttention heads for a clicked query
patch with the rollout over the image, squeeze-excitation gates against their data-set mean, spatial gates."""

from __future__ import annotations

import numpy as np
import traitlets as t

from ..core import CnnWidgetError, LayerError, ModelError, OptionError, as_probe
from ..core import attention as att
from ..core.options import PROBE_OPTIONS
from . import _transport
from ._base import CnnWidget, checks, reacts
from ._esm import bundle

COLORMAPS = ("magma", "viridis", "gray", "coolwarm")
NORMALIZATIONS = ("map", "shared")
KIND_LABELS = {"mha": "attention", "channel_gate": "channel gate", "spatial_gate": "spatial gate"}
NO_SITES = ("This model has no attention site: no MultiHeadAttention layer, and no Multiply of a feature map by a "
            "(N, 1, 1, C) channel gate (squeeze-excitation) or a (N, H, W, 1) spatial gate. AttentionMap has nothing "
            "to show; try AttributionMap for where the model looks.")
_CHOICES = {"colormap": COLORMAPS, "normalization": NORMALIZATIONS, "head_fusion": att.HEAD_FUSIONS}
_PY = dict(sync=True, owner="python")


class AttentionMap(CnnWidget):
    """Attention weights of a model over its input images.

    ``model_or_probe``: a Keras model or ``ModelProbe`` (or a model and ModelProbe's options). ``images``:
    display-space (N, H, W, C) or (H, W, C); they are also the data set whose mean channel gate the gates are
    drawn against. ``layer``: the attention site shown first (default the first; see ``probe.attention_layers``).

    For a MultiHeadAttention site: where one query token looks, per head (a grid of maps over the image), for the
    ``query`` patch a person clicks on the image, and the attention rollout (``attention.attention_rollout``) over
    the image with ``head_fusion`` and ``discard_ratio`` controls. For a channel gate: each channel's gate value for
    this image as a bar, against the mean gate over ``images`` (which channels this image turns up or down). For a
    spatial gate: the gate over the image. A model with no attention site shows a message saying so (``message``).

    Public traits (real traitlets): ``image_index``, ``layer`` (a site's path), ``head`` (-1: every head; k: head k
    only), ``query`` (a query token: patches row-major, after a class token if the site has one),
    ``head_fusion`` ("mean", "max", "min"), ``discard_ratio`` (0 .. 0.99), ``residual``, and the view's own
    ``opacity``, ``colormap``, ``normalization`` ("map": each map on its own range; "shared": one range for every
    head), switched in the browser only. Read-only: ``sites``, ``message``, ``running``, ``error``, ``status``,
    ``progress``. Numbers: ``maps`` (the selected image's raw scores/gates by path), ``rollout`` ((H, W) or None).
    """

    _esm = bundle("attention_map.js")
    _worker_name = "cnnwidget-attention"
    _actions = {"cancel": "cancel"}  # the view's buttons (base: _on_action)

    image_index = t.Int(0).tag(sync=True)
    layer = t.Unicode("").tag(sync=True)
    head = t.Int(-1, help="-1: every head; k: head k only").tag(sync=True)
    query = t.Int(0, help="the query token whose attention is shown").tag(sync=True)
    head_fusion = t.Unicode("mean").tag(sync=True)
    discard_ratio = t.Float(0.0).tag(sync=True)
    residual = t.Bool(True).tag(sync=True)
    opacity = t.Float(0.6).tag(sync=True)
    colormap = t.Unicode("magma").tag(sync=True)
    normalization = t.Unicode("map").tag(sync=True)
    # set by Python only (the view's wire format)
    n_images = t.Int(1).tag(**_PY)
    image = t.Bytes(b"").tag(**_PY)  # uint8 RGB (H, W, 3) of the selected image
    image_shape = t.List(t.Int()).tag(**_PY)  # [H, W]
    sites = t.List(t.Dict()).tag(**_PY)  # [{"path", "kind", "label", "shape", "queries": [extra, h, w] | None, ...}]
    message = t.Unicode("").tag(**_PY)  # why there is nothing to show (no attention site)
    head_bytes = t.Bytes(b"").tag(**_PY)  # uint8 (heads, h, w): the query's attention per head, keys on the grid
    head_ranges = t.Bytes(b"").tag(**_PY)  # float32 (heads, 2) [lo, hi]
    heads_meta = t.Dict().tag(**_PY)  # {"k", "h", "w", "layer", "query", "image_index", "note"}
    rollout_bytes = t.Bytes(b"").tag(**_PY)  # uint8 (1, H, W)
    rollout_ranges = t.Bytes(b"").tag(**_PY)
    rollout_meta = t.Dict().tag(**_PY)  # {"k": 1, "h", "w", "image_index", "head_fusion", "discard_ratio", "note"}
    gate_values = t.Bytes(b"").tag(**_PY)  # float32 (C,) this image's channel gate
    gate_mean = t.Bytes(b"").tag(**_PY)  # float32 (C,) mean over the images
    gate_meta = t.Dict().tag(**_PY)  # {"kind", "layer", "c" | "h", "w", "image_index"}; spatial: gate_map_*
    gate_bytes = t.Bytes(b"").tag(**_PY)  # uint8 (1, h, w) spatial gate
    gate_ranges = t.Bytes(b"").tag(**_PY)

    def __init__(self, model_or_probe, images, *, layer: str | None = None, image_index: int = 0, head: int = -1,
                 query: int | None = None, head_fusion: str = "mean", discard_ratio: float = 0.0,
                 residual: bool = True, opacity: float = 0.6, colormap: str = "magma", normalization: str = "map",
                 **probe_options):
        unknown = sorted(set(probe_options) - set(PROBE_OPTIONS))
        if unknown:
            raise OptionError(f"AttentionMap takes no option {unknown}; it takes layer, image_index, head, query, "
                              f"head_fusion, discard_ratio, residual, opacity, colormap, normalization and the "
                              f"probe's {', '.join(PROBE_OPTIONS)}.")
        self.probe = as_probe(model_or_probe, **probe_options)
        self._batch = self.probe.images(images)
        self._sites = {s.path: s for s in self.probe.attention_layers}
        self._grids = {p: self._site_grids(s) for p, s in self._sites.items()}
        self._rollout_ok = att.has_rollout(self.probe)
        self._maps: dict[int, dict] = {}  # image index -> {path: one image's scores / gate}
        self._rollouts: dict[tuple, np.ndarray] = {}  # (image, fusion, discard, residual) -> (H, W)
        self._means: dict | None = None  # path -> mean channel gate over the images
        n, (hh, ww) = len(self._batch), self._batch.shape[1:3]
        _index(image_index, n, "image_index")
        for name, value in (("colormap", colormap), ("normalization", normalization), ("head_fusion", head_fusion)):
            _choice(name, value)
        _fraction("opacity", opacity, 1.0)
        _fraction("discard_ratio", discard_ratio, 0.99)
        first = self._site_path(layer) if layer is not None else next(iter(self._sites), "")
        q = self._default_query(first) if query is None else self._check_query_for(first, query)
        self._check_head_for(first, head)
        super().__init__(
            n_images=n, image_shape=[hh, ww], sites=[self._describe_site(s) for s in self._sites.values()],
            message="" if self._sites else NO_SITES, layer=first, image_index=int(image_index), head=int(head),
            query=q, head_fusion=head_fusion, discard_ratio=float(discard_ratio), residual=bool(residual),
            opacity=float(opacity), colormap=colormap, normalization=normalization,
            image=_transport.image_bytes(self._batch[image_index], self.probe.input_range),
            status="computing…" if self._sites else "no attention site")
        if self._sites:
            self._start(self._image_job)

    def _describe(self):
        return [f"{len(self._sites)} attention site{'s' if len(self._sites) != 1 else ''}",
                f"{len(self._batch)} image{'s' if len(self._batch) != 1 else ''}"]

    # -- public --------------------------------------------------------------------------------------------------

    @property
    def maps(self) -> dict:
        """The selected image's raw values by site path: "mha" (heads, queries, keys), "channel_gate" (C,),
        "spatial_gate" (H, W); {} until computed."""
        with self._locked():
            return dict(self._maps.get(self.image_index, {}))

    @property
    def rollout(self) -> np.ndarray | None:
        """The selected image's rollout (H, W) under the current head fusion, discard ratio and residual; None
        until computed or when the model has no self-attention over image patches."""
        with self._locked():
            return self._rollouts.get(self._rollout_key(self.image_index))

    # -- checks --------------------------------------------------------------------------------------------------

    @checks("image_index")
    def _check_image(self, value):
        return _index(value, len(self._batch), "image_index")

    @checks("layer")
    def _check_layer(self, value):
        return self._site_path(value)

    @checks("head")
    def _check_head(self, value):
        return self._check_head_for(self.layer, value)

    @checks("query")
    def _check_query(self, value):
        return self._check_query_for(self.layer, value)

    @checks("colormap", "normalization", "head_fusion")
    def _check_choice(self, value, name):
        _choice(name, value)
        return value

    @checks("opacity")
    def _check_opacity(self, value):
        return _fraction("opacity", value, 1.0)

    @checks("discard_ratio")
    def _check_discard(self, value):
        return _fraction("discard_ratio", value, 0.99)

    def _site_path(self, value) -> str:
        if not self._sites:
            if value in ("", None):
                return ""
            raise LayerError(f"{value!r} is not an attention site: {NO_SITES}")
        if not isinstance(value, str):
            raise OptionError(f"layer must be an attention site's path (a str); got {value!r}.")
        if value in self._sites:
            return value
        named = [p for p, s in self._sites.items() if s.name == value]
        if len(named) == 1:
            return named[0]
        raise LayerError(f"{value!r} is not an attention site of {self.probe.model.name!r}; its sites are "
                         f"{list(self._sites)}.")

    def _check_head_for(self, path, value) -> int:
        site = self._sites.get(path)
        heads = site.shape[0] if site is not None and site.kind == "mha" else 0
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not -1 <= value < max(heads, 0):
            raise OptionError(f"head must be -1 (every head) or a head index in [0, {heads - 1}] of {path!r}; got "
                              f"{value!r}." if heads else f"head must be -1: {path!r} has no heads; got {value!r}.")
        return int(value)

    def _check_query_for(self, path, value) -> int:
        site = self._sites.get(path)
        if site is None or site.kind != "mha":
            if value != 0:
                raise OptionError(f"query picks a query token of an attention layer; {path!r} is not one, so query "
                                  f"stays 0; got {value!r}.")
            return 0
        return _index(value, site.shape[1], "query")

    # -- reacting ------------------------------------------------------------------------------------------------

    @reacts("image_index")
    def _on_image(self, change):
        self._push(error="", image=_transport.image_bytes(self._batch[change["new"]], self.probe.input_range))
        self._start(self._image_job, settle=True, revert={"image_index": change["old"]})

    @reacts("layer")
    def _on_layer(self, change):
        updates = {"error": ""}
        if self.head != -1 and self.head >= self._heads(change["new"]):
            updates["head"] = -1
        if not (0 <= self.query < self._queries(change["new"])):
            updates["query"] = self._default_query(change["new"])
        self._push(**updates)
        self._draw()

    @reacts("head", "query")
    def _on_pick(self, change):
        self._push(error="")
        self._draw()

    @reacts("head_fusion", "discard_ratio", "residual")
    def _on_rollout(self, change):
        self._push(error="")
        if self._rollout_ok:
            self._start(self._image_job, settle=True, revert={change["name"]: change["old"]})

    @reacts("colormap", "normalization", "opacity")
    def _on_setting(self, change):
        self._push(error="")  # drawn by the view alone

    # -- computing (worker thread) -------------------------------------------------------------------------------

    def _rollout_key(self, image_index):
        return (image_index, self.head_fusion, round(float(self.discard_ratio), 6), bool(self.residual))

    def _image_job(self, job):
        """The selected image's maps (one pass), its rollout, and (once) the mean gates over the images."""
        with self._locked():
            image_index, key = self.image_index, self._rollout_key(self.image_index)
            need_maps = image_index not in self._maps
            need_rollout = self._rollout_ok and key not in self._rollouts
            need_means = self._means is None and any(s.kind == "channel_gate" for s in self._sites.values())
        total = int(need_maps) + int(need_rollout) + int(need_means)
        done = 0
        x = self._batch[image_index:image_index + 1]

        def step(what):
            nonlocal done
            self._report(job, progress={"done": done, "total": total, "step": what}, status=f"{what}…")

        if need_maps:
            step("attention maps")
            maps = {p: v[0] for p, v in att.attention_maps(self.probe, x).items()}
            with self._locked():
                self._maps[image_index] = maps
            done += 1
        if job.cancelled:
            return None
        if need_rollout:
            step("rollout")
            value = att.attention_rollout(self.probe, x, head_fusion=key[1], discard_ratio=key[2],
                                          residual=key[3], cancel=job.cancel_event)[0]
            with self._locked():
                self._rollouts[key] = value
            done += 1
        if job.cancelled:
            return None
        if need_means:
            step(f"mean gates over {len(self._batch)} images")
            means = {}
            for i in range(0, len(self._batch), self.probe.batch_size):
                if job.cancelled:
                    return None
                part = att.attention_maps(self.probe, self._batch[i:i + self.probe.batch_size],
                                          kinds=("channel_gate",))
                for p, v in part.items():
                    means[p] = means.get(p, 0.0) + v.sum(axis=0)
            with self._locked():
                self._means = {p: (v / len(self._batch)).astype(np.float32) for p, v in means.items()}
            done += 1
        with self._locked():
            if not self._is_current(job):
                return None
            self._draw()
            return {"status": "done", "progress": {"done": total, "total": total, "step": ""}}

    # -- sending -------------------------------------------------------------------------------------------------

    def _heads(self, path) -> int:
        site = self._sites.get(path)
        return site.shape[0] if site is not None and site.kind == "mha" else 0

    def _queries(self, path) -> int:
        site = self._sites.get(path)
        return site.shape[1] if site is not None and site.kind == "mha" else 1

    def _site_grids(self, site):
        """(query grid, key grid): each (extra, h, w) on the image, or None when those tokens are not patches."""
        if site.kind != "mha" or len(site.shape) != 3:
            return None, None
        out = []
        for n in site.shape[1:]:
            try:
                out.append(att.token_grid(n, self._batch.shape[1:3]))
            except ModelError:
                out.append(None)
        return tuple(out)

    def _default_query(self, path) -> int:
        grids = self._grids.get(path, (None, None))
        if grids[0] is None:
            return 0
        extra, h, w = grids[0]
        return extra + (h // 2) * w + w // 2  # the centre patch

    def _describe_site(self, site) -> dict:
        queries, keys = self._grids.get(site.path, (None, None))
        label = f"{site.path} · {KIND_LABELS[site.kind]}"
        if site.kind == "mha":
            label += f" · {site.shape[0]} heads" + ("" if site.self_attention else " · cross")
        return {"path": site.path, "kind": site.kind, "label": label, "shape": [int(v) for v in site.shape],
                "queries": list(queries) if queries else None, "keys": list(keys) if keys else None}

    def _draw(self):
        """Put the selected site's values for the selected image on the view (under the lock; no TF)."""
        with self._locked():
            image_index, path = self.image_index, self.layer
            site = self._sites.get(path)
            maps = self._maps.get(image_index)
            if site is None or maps is None:
                return
            values = maps[path]
            state = {}
            if site.kind == "mha":
                state.update(self._heads_state(site, values, image_index))
            elif site.kind == "channel_gate":
                mean = (self._means or {}).get(path)
                state.update(gate_values=np.asarray(values, "<f4").tobytes(),
                             gate_mean=b"" if mean is None else np.asarray(mean, "<f4").tobytes(),
                             gate_meta={"kind": site.kind, "layer": path, "c": int(site.shape[0]),
                                        "image_index": image_index, "n_images": len(self._batch)})
            else:
                data, ranges = _transport.quantize(np.asarray(values, np.float32)[None])
                state.update(gate_bytes=data, gate_ranges=ranges,
                             gate_meta={"kind": site.kind, "layer": path, "h": int(site.shape[0]),
                                        "w": int(site.shape[1]), "image_index": image_index})
            rollout = self._rollouts.get(self._rollout_key(image_index))
            if self._rollout_ok and rollout is not None:
                data, ranges = _transport.quantize(rollout[None])
                state.update(rollout_bytes=data, rollout_ranges=ranges,
                             rollout_meta={"k": 1, "h": int(rollout.shape[0]), "w": int(rollout.shape[1]),
                                           "image_index": image_index, "head_fusion": self.head_fusion,
                                           "discard_ratio": float(self.discard_ratio), "residual": self.residual,
                                           "note": ""})
            elif not self._rollout_ok:
                state.update(rollout_bytes=b"", rollout_ranges=b"", rollout_meta={
                    "k": 0, "note": "no rollout: it needs self-attention layers over image patches"})
            self._push(**state)

    def _heads_state(self, site, values, image_index) -> dict:
        queries, keys = self._grids[site.path]
        meta = {"layer": site.path, "query": int(self.query), "image_index": image_index, "heads": site.shape[0],
                "queries": list(queries) if queries else None}
        if keys is None:
            return dict(head_bytes=b"", head_ranges=b"", heads_meta={
                **meta, "k": 0, "note": f"the {site.shape[2]} keys of {site.path!r} are not image patches, so "
                                         "they cannot be drawn over the image"})
        extra, h, w = keys
        rows = np.asarray(values)[:, self.query, extra:].reshape(site.shape[0], h, w)
        if self.head >= 0:
            rows = rows[self.head:self.head + 1]
        data, ranges = _transport.quantize(rows.astype(np.float32))
        labels = [f"head {self.head}"] if self.head >= 0 else [f"head {i}" for i in range(site.shape[0])]
        return dict(head_bytes=data, head_ranges=ranges,
                    heads_meta={**meta, "k": len(rows), "h": h, "w": w, "labels": labels, "note": ""})


def _index(value, n: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < n:
        raise OptionError(f"{name} {value!r} is out of range: it must be a whole number in [0, {n - 1}].")
    return int(value)


def _choice(name: str, value):
    if value not in _CHOICES[name]:
        raise OptionError(f"{name} must be one of {', '.join(map(repr, _CHOICES[name]))}; got {value!r}.")


def _fraction(name: str, value, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not 0.0 <= value <= high:
        raise OptionError(f"{name} must be a number in [0, {high}]; got {value!r}.")
    return float(value)


__all__ = ["AttentionMap", "CnnWidgetError"]
