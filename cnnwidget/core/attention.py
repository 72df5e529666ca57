"""What attention attends to: MultiHeadAttention scores, attention rollout, and the channel and spatial gates of CNNs.

    from cnnwidget.core import attention
    probe.attention_layers                                   # [AttentionSite(path, kind, ...)]
    maps = attention.attention_maps(probe, images)           # {path: scores or gates}, one compiled pass
    heat = attention.attention_rollout(probe, images)        # (N, H, W) on the image grid, like an attribution map

Three kinds of site are found (``probe.attention_layers``, nested models included, by path):

- ``"mha"``: a call of a ``keras.layers.MultiHeadAttention``; its value is the attention weights (N, heads,
  queries, keys), softmax-normalized over keys (what ``return_attention_scores=True`` returns).
- ``"channel_gate"``: a ``keras.layers.Multiply`` of a feature map (N, H, W, C) by a gate (N, 1, 1, C), e.g.
  EfficientNet's ``block*_se_excite`` and MobileNetV3's squeeze-excite; its value is the gate (N, C).
- ``"spatial_gate"``: a ``Multiply`` of a feature map (N, H, W, C) by a gate (N, H, W, 1) (CBAM-style spatial
  attention); its value is the gate (N, H, W).

How the scores are read without touching the model: Keras's MultiHeadAttention returns its scores only when
called with ``return_attention_scores=True``. The probe replays the model's graph on a fresh input
(``core/_graph.py``); for attention it replays it once more (cached by the probe as ``("graph", "attention")``)
with every MultiHeadAttention call made through a replay-only stand-in layer that calls the *same* layer object
with ``return_attention_scores=True`` and passes its output on, and every Multiply through a stand-in that
records what it multiplies. No layer of the model is changed, wrapped or re-built; the model's own graph and
outputs stay as they were. (The stand-in exists because Keras's functional-graph check reads a layer's *first*
call to count its outputs, so calling the user's layer a second time with two outputs cannot be put in a
``keras.Model``.) Gates made with ``keras.ops`` (``x * g`` on symbolic tensors) instead of a Multiply layer are
operations, not layers, and are not found.

Rollout (Abnar and Zuidema 2020): for a stack of self-attention layers over the same tokens, each layer's
attention is fused over heads (``head_fusion`` mean, max or min), optionally the lowest ``discard_ratio`` of its
weights are set to zero (Gildenblat's variant), the residual path is added as ``0.5 A + 0.5 I`` (``residual``),
rows are renormalized, and the layers' matrices are multiplied, last layer on the left. The map of token
relevance is the class token's row (a model with a class token) or the mean over all query tokens (a model
without: mean pooling), placed on the patch grid and upsampled (bilinear) to the image.

Token placement: the tokens of a site are an (h, w) grid of patches in row-major order with the image's aspect
ratio, optionally preceded by ONE extra token (a class token) at index 0: T = h * w or h * w + 1. Models that put
the class token last or carry several extra tokens (registers, distillation tokens) are refused with a message,
never read wrong.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from . import _graph
from . import options as _options
from .errors import Cancelled, LayerError, ModelError, OptionError, did_you_mean
from .probe import ModelProbe, probe_for

KINDS = ("mha", "channel_gate", "spatial_gate")
HEAD_FUSIONS = ("mean", "max", "min")

__all__ = ["AttentionSite", "HEAD_FUSIONS", "KINDS", "attention_maps", "attention_rollout", "find_sites",
           "head_maps", "mean_gates", "rollout_layers", "token_grid"]


@dataclass(frozen=True)
class AttentionSite:
    """One attention site of a probed model.

    ``path``: the layer's path (as in ``probe.layers``); ``kind``: "mha", "channel_gate" or "spatial_gate";
    ``name`` and ``class_name``: the Keras layer's own; ``shape``: the value's shape per image, (heads, queries,
    keys) for "mha", (C,) for a channel gate, (H, W) for a spatial gate; ``self_attention``: for "mha", True when
    queries and keys are the same tokens (query, key and value the same tensor); ``gated``: for gates, the path
    of the layer whose feature map is gated (None when it is the model's input or not a layer's output).
    """

    path: str
    kind: str
    name: str
    class_name: str
    shape: tuple
    self_attention: bool = False
    gated: str | None = None


# -- the replay with scores ---------------------------------------------------------------------------------------

class _WithScores(keras.layers.Layer):
    """Replay-only stand-in for one MultiHeadAttention call: calls that same layer object with
    ``return_attention_scores=True`` and returns (output, scores). Holds the layer untracked (it is not this
    layer's sublayer: nothing about it changes)."""

    def __init__(self, target):
        super().__init__(name=f"cnnwidget_scores_{next(_UIDS)}")
        object.__setattr__(self, "_target", target)
        self.supports_masking = True
        self.built = True

    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None, attention_mask=None,
             return_attention_scores=False, training=None, use_causal_mask=False):
        return self._target(query, value, key=key, query_mask=query_mask, value_mask=value_mask, key_mask=key_mask,
                            attention_mask=attention_mask, return_attention_scores=True, training=training,
                            use_causal_mask=use_causal_mask)

    def compute_mask(self, inputs, previous_mask=None):
        return None  # the attention output keeps the mask MultiHeadAttention itself puts on it


class _Recorded(keras.layers.Layer):
    """Replay-only stand-in for one Multiply call: calls that same layer object; its node records the inputs."""

    def __init__(self, target):
        super().__init__(name=f"cnnwidget_recorded_{next(_UIDS)}")
        object.__setattr__(self, "_target", target)
        self.supports_masking = True
        self.built = True

    def call(self, inputs, **kwargs):
        return self._target(inputs, **kwargs)

    def compute_output_spec(self, inputs, **kwargs):
        return self._target.compute_output_spec(inputs)

    def compute_mask(self, inputs, previous_mask=None):
        return self._target.compute_mask(inputs, previous_mask)


_UIDS = itertools.count()


@dataclass
class _AttentionGraph:
    graph: _graph.FlatGraph
    sites: list  # [AttentionSite] in model order
    tensors: dict  # path -> the KerasTensor of the site's value in the replay


def _attention_graph(probe: ModelProbe) -> _AttentionGraph:
    """The probe's replay of the model with attention scores and gate inputs exposed (cached by the probe)."""
    probe._require_built()
    if not any(isinstance(layer, (keras.layers.MultiHeadAttention, keras.layers.Multiply))
               for layer in probe._graph.layers.values()):
        return _AttentionGraph(probe._graph, [], {})  # nothing to find: no second replay
    return probe.compiled(("graph", "attention"), lambda: _make_attention_graph(probe))


def _make_attention_graph(probe: ModelProbe) -> _AttentionGraph:
    stand_ins: dict = {}  # id(layer) -> [stand-in per call, in call order]

    def replace(op):
        if isinstance(op, keras.layers.MultiHeadAttention):
            stand_in = _WithScores(op)
        elif isinstance(op, keras.layers.Multiply):
            stand_in = _Recorded(op)
        else:
            return None
        stand_ins.setdefault(id(op), []).append(stand_in)
        return stand_in

    graph = _graph.flatten(probe._source or probe.model, tuple(probe._graph.input.shape[1:]), replace=replace)
    producers = {id(t): path for path, t in graph.outputs.items()}
    sites, tensors = [], {}
    for path, layer in graph.layers.items():
        calls = stand_ins.get(id(layer))
        if not calls:
            continue
        node = calls.pop(0)._inbound_nodes[0]
        if isinstance(layer, keras.layers.MultiHeadAttention):
            scores = node.outputs[1]
            args = list(node.arguments.args) + [node.arguments.kwargs.get(k) for k in ("query", "value", "key")]
            args = [a for a in args if a is not None]
            key = node.arguments.kwargs.get("key")
            self_attention = len(args) >= 2 and args[0] is args[1] and (key is None or key is args[0])
            sites.append(AttentionSite(path, "mha", layer.name, type(layer).__name__, tuple(scores.shape[1:]),
                                       self_attention=bool(self_attention)))
            tensors[path] = scores
            continue
        inputs = keras.tree.flatten(node.input_tensors)
        if len(inputs) != 2 or any(len(t.shape) != 4 for t in inputs):
            continue
        for fmap, gate in (inputs, inputs[::-1]):
            (h, w, c), (gh, gw, gc) = fmap.shape[1:], gate.shape[1:]
            if c is None or c < 2 or (h, w) == (1, 1):
                continue
            if (gh, gw) == (1, 1) and gc == c:
                kind, shape = "channel_gate", (c,)
            elif gc == 1 and (gh, gw) == (h, w) and h is not None:
                kind, shape = "spatial_gate", (h, w)
            else:
                continue
            sites.append(AttentionSite(path, kind, layer.name, type(layer).__name__, shape,
                                       gated=producers.get(id(fmap))))
            tensors[path] = gate
            break
    return _AttentionGraph(graph, sites, tensors)


def find_sites(model_or_probe) -> list[AttentionSite]:
    """Every attention site of the model, in model order (what ``probe.attention_layers`` returns)."""
    return list(_attention_graph(probe_for(model_or_probe)).sites)


def _select(probe: ModelProbe, layer, kinds=KINDS) -> list[AttentionSite]:
    """The sites asked for: None (all of ``kinds``), a path or unique layer name, an AttentionSite, or a list."""
    sites = [s for s in _attention_graph(probe).sites if s.kind in kinds]
    if layer is None:
        return sites
    many = layer if isinstance(layer, (list, tuple)) else [layer]
    if not many:
        raise OptionError("layer is an empty list; give None (every attention site) or one or more site paths.")
    by_path = {s.path: s for s in sites}
    out = []
    for item in many:
        if isinstance(item, AttentionSite):
            item = item.path
        if not isinstance(item, str):
            raise OptionError(f"layer must be None, an attention site's path or name, or a list of them; got "
                              f"{item!r} ({type(item).__name__}).")
        site = by_path.get(item)
        if site is None:
            named = [s for s in sites if s.name == item]
            if len(named) == 1:
                site = named[0]
        if site is None:
            known = list(by_path)
            what = f" of kind {', '.join(kinds)}" if tuple(kinds) != KINDS else ""
            if known:
                raise LayerError(f"{item!r} is not an attention site{what} of {probe.model.name!r}; its sites are "
                                 f"{known}.{did_you_mean(item, known)}")
            raise LayerError(f"{item!r} is not an attention site: {probe.model.name!r} has no attention site{what} "
                             "(no MultiHeadAttention call, no Multiply by a (N, 1, 1, C) or (N, H, W, 1) gate).")
        out.append(site)
    return out


# -- raw maps ---------------------------------------------------------------------------------------------------------

def _maps_fn(probe: ModelProbe, paths: tuple):
    def make():
        ag = _attention_graph(probe)
        kinds = {s.path: s.kind for s in ag.sites}
        sub = keras.Model(ag.graph.input, [ag.tensors[p] for p in paths])
        preprocess = probe.preprocess
        squeeze = [kinds[p] for p in paths]

        def run(x):
            if preprocess is not None:
                x = preprocess(x)
            outs = sub(x, training=False)
            outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
            shaped = []
            for kind, o in zip(squeeze, outs):
                if kind == "channel_gate":
                    o = tf.reshape(o, (tf.shape(o)[0], o.shape[-1]))
                elif kind == "spatial_gate":
                    o = o[..., 0]
                shaped.append(tf.cast(o, tf.float32))
            return shaped

        spec = tf.TensorSpec((None,) + tuple(ag.graph.input.shape[1:]), tf.float32)
        return probe.tf_function(run, input_signature=[spec], family="attention")

    return probe.compiled(("attention", "maps", paths), make)


def attention_maps(model_or_probe, images, layer=None, kinds=KINDS) -> dict:
    """The raw scores or gates of the attention sites asked for, from one compiled pass per batch.

    ``layer``: None (every site of ``kinds``), a site's path or unique layer name, or a list of them.
    Returns {path: float32 array}: "mha" (N, heads, queries, keys), rows summing to 1 (masked keys 0);
    "channel_gate" (N, C); "spatial_gate" (N, H, W). Unknown layers raise LayerError listing the sites; a model
    without attention sites returns {} for ``layer=None`` and raises LayerError for a named layer.
    """
    probe = probe_for(model_or_probe)
    batch = probe.images(images)
    sites = _select(probe, layer, kinds)
    if not sites:
        return {}
    paths = tuple(s.path for s in sites)
    outs = probe._run_batched(_maps_fn(probe, paths), batch)
    return dict(zip(paths, outs))


def mean_gates(model_or_probe, images, layer=None) -> dict:
    """{path: (C,) mean channel gate over ``images``} for channel-gate sites: the data-set reference the
    AttentionMap widget draws each image's gates against."""
    maps = attention_maps(model_or_probe, images, layer, kinds=("channel_gate",))
    return {path: value.mean(axis=0) for path, value in maps.items()}


# -- tokens on the image grid -----------------------------------------------------------------------------------------

def token_grid(tokens: int, image_shape: tuple, class_token=None) -> tuple[int, int, int]:
    """(extra, h, w): how ``tokens`` sit on an image of ``image_shape`` (H, W, ...): ``extra`` (0 or 1) leading
    tokens (a class token) and an h x w row-major grid of patches with the image's aspect ratio.

    ``class_token``: None decides from the count (h * w + 1 tokens: one class token first), True or False says.
    A count that fits no grid raises ModelError.
    """
    height, width = (int(image_shape[0]), int(image_shape[1])) if image_shape[0] else (None, None)
    extras = (0, 1) if class_token is None else ((1,) if class_token else (0,))
    for extra in extras:
        n = tokens - extra
        for h in range(1, n + 1):
            if n % h:
                continue
            w = n // h
            if height is None and h == w:
                return extra, h, w
            if height is not None and h * width == w * height:
                return extra, h, w
    ratio = f"{height}x{width}" if height else "square"
    raise ModelError(
        f"cannot place {tokens} tokens on the image grid: expected h*w patch tokens in row-major order with the "
        f"image's aspect ratio ({ratio}), optionally after one class token at index 0"
        f"{' (class_token=' + repr(class_token) + ')' if class_token is not None else ''}. A class token placed last "
        "or several extra tokens (registers, distillation) are not supported.")


def head_maps(scores: np.ndarray, query: int, image_shape: tuple, class_token=None) -> np.ndarray:
    """(heads, h, w): where one query token looks, per head, on the patch grid.

    ``scores`` is one image's (heads, queries, keys) from ``attention_maps``; ``query`` a query token index
    (with a class token, 0 is the class token and patch tokens start at 1). Keys that are not patches (a class
    token) are left out.
    """
    scores = np.asarray(scores)
    if scores.ndim != 3:
        raise OptionError(f"scores must be one image's (heads, queries, keys); got shape {scores.shape}.")
    query = _options.index("query", query, scores.shape[1], "the query tokens")
    extra, h, w = token_grid(scores.shape[2], image_shape, class_token)
    return scores[:, query, extra:].reshape(scores.shape[0], h, w)


# -- rollout ----------------------------------------------------------------------------------------------------------

def rollout_layers(model_or_probe, layers=None) -> list[AttentionSite]:
    """The MultiHeadAttention sites rollout multiplies, in model order: ``layers`` if given (self-attention sites
    over the same tokens), else every self-attention site with as many tokens as the last one (the last stack:
    a hierarchical model's earlier stages over more tokens are left out)."""
    probe = probe_for(model_or_probe)
    sites = [s for s in _select(probe, layers, ("mha",))]
    if not sites:
        raise LayerError(f"{probe.model.name!r} has no MultiHeadAttention layer, so there is no attention to roll "
                         "out. Its attention sites: "
                         f"{[(s.path, s.kind) for s in _attention_graph(probe).sites] or 'none'}.")
    cross = [s.path for s in sites if not s.self_attention or s.shape[1] != s.shape[2] or len(s.shape) != 3]
    if cross and layers is not None:
        raise LayerError(f"rollout multiplies self-attention maps over the same tokens; {cross} attend across "
                         "different tokens (cross-attention) or more than one axis.")
    sites = [s for s in sites if s.path not in cross]
    if not sites:
        raise LayerError(f"{probe.model.name!r} has no self-attention layer (queries and keys the same tokens); "
                         f"rollout needs one. Its MultiHeadAttention sites: {cross}.")
    tokens = sites[-1].shape[1]
    if layers is not None:
        other = [s.path for s in sites if s.shape[1] != tokens]
        if other:
            raise LayerError(f"rollout multiplies maps over the same tokens; {other} have a different token count "
                             f"than {sites[-1].path!r} ({tokens}).")
        return sites
    return [s for s in sites if s.shape[1] == tokens]


def _rollout_fn(probe: ModelProbe, paths: tuple, head_fusion: str, residual: bool, extra: int, grid: tuple,
                size: tuple | None):
    def make():
        maps = _maps_fn(probe, paths)
        fuse = {"mean": tf.reduce_mean, "max": tf.reduce_max, "min": tf.reduce_min}[head_fusion]
        h, w = grid

        def run(x, discard):
            rolled = None
            for scores in maps(x):
                a = fuse(scores, axis=1)  # (N, T, T)
                a = tf.cond(discard > 0, lambda: _discard(a, discard, extra), lambda: a)  # no sort for 0
                if residual:
                    a = 0.5 * a + 0.5 * tf.eye(tf.shape(a)[-1], dtype=a.dtype)[None]
                a = tf.math.divide_no_nan(a, tf.reduce_sum(a, -1, keepdims=True))
                rolled = a if rolled is None else tf.matmul(a, rolled)
            relevance = rolled[:, 0, extra:] if extra else tf.reduce_mean(rolled, axis=1)
            out = tf.reshape(relevance, (-1, h, w))
            if size is not None:
                out = tf.image.resize(out[..., None], size, "bilinear")[..., 0]
            return out

        spec = tf.TensorSpec((None,) + tuple(probe.input_shape), tf.float32)
        return probe.tf_function(run, input_signature=[spec, tf.TensorSpec((), tf.float32)], family="attention")

    return probe.compiled(("attention", "rollout", paths, head_fusion, residual, extra, grid, size), make)


def _discard(a, ratio, extra):
    """Zero the lowest ``ratio`` of each image's fused weights (the class token's column, if any, is kept)."""
    n = tf.shape(a)[0]
    keep_column = tf.equal(tf.range(tf.shape(a)[-1]), 0) if extra else tf.zeros(tf.shape(a)[-1:], tf.bool)
    protected = tf.broadcast_to(keep_column[None, None, :], tf.shape(a))
    ranked = tf.sort(tf.reshape(tf.where(protected, tf.constant(np.inf, a.dtype), a), (n, -1)), axis=-1)
    candidates = tf.reduce_sum(tf.cast(~protected[0], tf.int32))
    k = tf.cast(tf.floor(ratio * tf.cast(candidates, tf.float32)), tf.int32)
    k = tf.minimum(k, candidates - 1)
    threshold = tf.gather(ranked, k, axis=1)[:, None, None]
    return tf.where(protected | (a >= threshold), a, tf.zeros_like(a))


def attention_rollout(model_or_probe, images, head_fusion="mean", discard_ratio=0.0, residual=True, *, target=None,
                      layers=None, class_token=None, upsample=True, batch_size=None, progress=None,
                      cancel=None) -> np.ndarray:
    """Attention rollout (Abnar and Zuidema 2020) on the image grid: (N, H, W) float32 >= 0, like an attribution map
    (``attr.deletion`` / ``attr.insertion`` take it).

    ``head_fusion``: "mean", "max" or "min" over heads. ``discard_ratio`` in [0, 1): the share of each layer's
    fused weights set to zero before the residual is added (lowest first; a class token's column is kept).
    ``residual``: add the identity for the skip connection (0.5 A + 0.5 I, rows renormalized); False multiplies
    the raw maps. ``layers``: the MultiHeadAttention sites to multiply (default ``rollout_layers``: every
    self-attention layer of the last stack over the same tokens). ``class_token``: None decides from the token
    count (see ``token_grid``); with one, the map is the class token's row, without, the mean over query tokens.
    ``upsample=False`` returns the (N, h, w) patch grid. ``target`` is accepted so rollout can stand beside the
    attribution methods, and does not change the map: rollout follows attention, not one class's score.
    ``progress(done, total)`` is called per batch; a set ``cancel`` event raises Cancelled between batches.
    """
    probe = probe_for(model_or_probe)
    head_fusion = _options.choice("head_fusion", head_fusion, HEAD_FUSIONS)
    discard = _options.fraction("discard_ratio", discard_ratio)
    if discard >= 1.0:
        raise OptionError(f"discard_ratio must be in [0, 1) (1 would discard every weight); got {discard_ratio!r}.")
    if not isinstance(residual, (bool, np.bool_)):
        raise OptionError(f"residual must be True or False; got {residual!r}.")
    if class_token not in (None, True, False):
        raise OptionError(f"class_token must be None (decide from the token count), True or False; got "
                          f"{class_token!r}.")
    if not isinstance(upsample, (bool, np.bool_)):
        raise OptionError(f"upsample must be True or False; got {upsample!r}.")
    bs = probe.batch_size if batch_size is None else _options.positive_int("batch_size", batch_size)
    batch = probe.images(images)
    sites = rollout_layers(probe, layers)
    extra, h, w = token_grid(sites[-1].shape[1], batch.shape[1:3], class_token)
    size = tuple(batch.shape[1:3]) if upsample else None
    fn = _rollout_fn(probe, tuple(s.path for s in sites), head_fusion, bool(residual), extra, (h, w), size)
    out = []
    for i in range(0, len(batch), bs):
        if cancel is not None and cancel.is_set():
            raise Cancelled("attention rollout cancelled.")
        out.append(fn(tf.constant(batch[i:i + bs]), tf.constant(discard, tf.float32)).numpy())
        if progress is not None:
            progress(min(i + bs, len(batch)), len(batch))
    return np.concatenate(out).astype(np.float32)


METHOD_LABEL = "Attention rollout"
"""The label to show for ``attention_rollout`` as an attribution method (it is not in ``attr.METHODS``: most
models have no MultiHeadAttention, and every method there must run on every model)."""


def has_rollout(model_or_probe) -> bool:
    """True when ``attention_rollout`` can run on the model (it has self-attention over image patches)."""
    probe = probe_for(model_or_probe)
    try:
        sites = rollout_layers(probe)
        token_grid(sites[-1].shape[1], probe.input_shape)
    except (LayerError, ModelError):
        return False
    return True

