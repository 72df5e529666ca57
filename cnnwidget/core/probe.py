"""ModelProbe: one Keras model, its layers by path, and compiled passes that return any layers' outputs."""

from __future__ import annotations

import functools
import importlib.resources
import json
import threading
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

from . import _graph
from . import options as _options
from .errors import CnnWidgetWarning, ModelError, OptionError, did_you_mean, unknown_layer
from .images import as_image_batch


@dataclass(frozen=True)
class LayerInfo:
    """One layer of a probed model.

    ``path`` is unique ("base/block_6_expand_relu" for a layer inside a nested model, "name:1" for the second call
    of a shared layer); ``name`` is the layer's own name; ``output_shape`` has no batch axis; ``is_spatial`` is
    True for outputs (H, W, C), the ones shown as feature-map grids.
    """

    name: str
    class_name: str
    output_shape: tuple
    is_spatial: bool
    path: str


class ModelProbe:
    """Wraps a Keras model to read any layer's output for display-space images.

    ``input_range``: the range of display-space pixel values. Default: [0, 255] when the model starts with a
    ``Rescaling`` layer that maps 0..255 pixels to a small range (keras.applications models built with their own
    preprocessing: MobileNetV3, EfficientNet, ConvNeXt...), else [0, 1]; ``range_source`` says which was taken.
    ``preprocess`` maps display space to what the model expects (for a Keras application without built-in
    preprocessing, e.g. ``lambda x: preprocess_input(x * 255)``); it must be made of TensorFlow/Keras ops, since it runs
    inside compiled passes and gradients flow through it. ``class_names`` labels the model's outputs.
    Accepts functional models, Sequential models (built or not: an unbuilt one is built from the first images it is
    given) and models nested inside either, whose inner layers are listed and reachable by path.
    ``output``: for a model with several outputs, the one explained (its index or its layer's name); default the
    first, with a CnnWidgetWarning saying so. Options are checked here (OptionError); a ``preprocess`` that is not
    callable or cannot run inside a compiled pass is refused here too, not at the first pass.
    """

    def __init__(self, model, preprocess: Callable | None = None, class_names: Sequence[str] | None = None,
                 input_range: tuple[float, float] | None = None, batch_size: int = 32, output=None):
        self.model = _check_model(model)
        self._source = _one_output(self.model, output)  # what the graph is replayed from: the model, or one output
        self._size_note = ""  # set when the first images fixed an unbuilt Sequential's input size
        self.preprocess = _options.preprocess(preprocess)
        # None: what the model declares (a leading Rescaling of 0..255 pixels, as keras.applications models with
        # built-in preprocessing have), else [0, 1]; ``range_source`` says which
        if input_range is not None:
            self.range_source = "given"
        elif preprocess is None:
            input_range, self.range_source = _declared_range(self.model)
        else:  # a preprocess maps [0, 1] (or the range given) to what the model takes
            input_range, self.range_source = (0.0, 1.0), "default"
        self.input_range = _options.input_range(input_range)
        self.batch_size = _options.positive_int("batch_size", batch_size)
        self._class_names = None if class_names is None else [str(c) for c in class_names]
        self._graph: _graph.FlatGraph | None = None
        self._layers: list[LayerInfo] = []
        self._fns: OrderedDict = OrderedDict()  # compiled(): key -> value, least recently used first
        self._building: dict = {}  # key -> the lock held while that key's value is made
        self._lock = threading.Lock()  # guards _fns and _building, never held while anything is made or traced
        self.trace_count = 0  # how many times a compiled pass was traced; steady state adds none
        shape = _known_input_shape(self.model)
        if shape is not None:
            self._build(shape)
            _check_preprocess(self.preprocess, self.input_shape)

    # -- the model ---------------------------------------------------------------------------------------------

    spatial_required = True  # a model without feature maps is refused (core.diagnostics' own probe allows it)
    _model = None  # the Keras model, held strongly (a probe the user made) ...
    _model_ref = None  # ... or weakly (the probe ``probe_for`` remembers for a model, which must not keep it alive)

    @property
    def model(self) -> keras.Model:
        """The probed Keras model (the very object given: same layers, same weights)."""
        if self._model is not None:
            return self._model
        model = self._model_ref() if self._model_ref is not None else None
        if model is None:
            raise ModelError("this probe was made by cnnwidget for a Keras model passed to a function (probe_for), "
                             "and that model has since been deleted, so the probe has nothing left to explain. "
                             "Pass the model itself, or make ModelProbe(model) to keep a model and its probe "
                             "together.")
        return model

    @model.setter
    def model(self, model):
        self._model, self._model_ref = model, None

    # -- compiled passes: one cache, one lock, one trace counter ---------------------------------------------

    def compiled(self, key, make: Callable):
        """The value cached under ``key``, made by ``make()`` the first time: every compiled pass of this probe
        (activations, attribution, feature visualization, similarity, diagnostics) lives here.

        ``key`` is a hashable tuple whose first item names the family ("activations", "attribution", ...); it
        must describe everything the value depends on besides the probe. ``make`` runs at most once per key
        at a time: a thread asking for a key that another thread is making waits for it, so a pass is made
        and traced once however many threads ask at once. The cache keeps the ``MAX_COMPILED`` most recently
        used values (a dropped one is made again when asked for). Values are held by this probe only, so
        they go when it does; they must not hold the probe itself (``tf_function`` counts traces through a
        weak reference).
        """
        with self._lock:
            if key in self._fns:
                self._fns.move_to_end(key)
                return self._fns[key]
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                if key in self._fns:  # made by the thread we waited for
                    self._fns.move_to_end(key)
                    return self._fns[key]
            try:
                value = make()
                with self._lock:
                    self._fns[key] = value
                    while len(self._fns) > MAX_COMPILED:
                        self._fns.popitem(last=False)
                return value
            finally:
                with self._lock:
                    if self._building.get(key) is building:
                        del self._building[key]

    def forget(self, key) -> None:
        """Drop the value cached under ``key``, if any (for values that depend on another object that is gone)."""
        with self._lock:
            self._fns.pop(key, None)

    def tf_function(self, fn: Callable, **options):
        """``tf.function(fn, **options)`` whose traces add one to ``trace_count`` (and to ``traces(family)`` for
        the ``family`` option, default "other"): the one trace counter. The counter reaches the probe through a
        weak reference, so the function does not keep the probe alive."""
        family = options.pop("family", "other")
        ref = weakref.ref(self)

        def traced(*args, **kwargs):  # runs only while TensorFlow traces
            probe = ref()
            with _COUNT_LOCK:  # passes of one probe may trace at once on two threads
                if probe is not None:
                    probe.trace_count += 1
                _TRACES[family] = _TRACES.get(family, 0) + 1
            del probe
            return fn(*args, **kwargs)

        # A partial per pass: TF counts traces per Python function object, and would warn about "retracing"
        # once a person has looked at five layers, though each pass is traced once.
        return tf.function(functools.partial(traced), **options)

    # -- the model's structure -------------------------------------------------------------------------------

    @property
    def layers(self) -> list[LayerInfo]:
        """Every layer in model order, nested models flattened (their inner layers by path)."""
        self._require_built()
        return list(self._layers)

    @property
    def input_shape(self) -> tuple:
        """(H, W, C) the model takes; None for a size it leaves free."""
        self._require_built()
        return tuple(self._graph.input.shape[1:])

    @property
    def num_classes(self) -> int:
        """Width of the model's output (1 for a single sigmoid unit)."""
        self._require_built()
        return int(self._graph.output.shape[-1])

    @property
    def class_names(self) -> list[str]:
        """Names of the output classes: those given; else ImageNet's 1000 for a keras.applications classifier
        (1000 outputs from a layer named "predictions", as every keras.applications model names its head; shipped
        with the package, no download); else "0", "1", .... ``class_source`` says which."""
        if self._class_names is not None:
            return list(self._class_names)
        if self.class_source == "imagenet":
            return imagenet_class_names()
        n = self.num_classes
        return [str(i) for i in range(2 if n == 1 else n)]

    def output_classes(self, layer) -> list[int] | None:
        """The class each unit of ``layer`` stands for, as indices into ``class_names``, when ``layer`` is the
        model's output (the layer whose output the probe predicts from); None for any other layer.

        N > 1 units: unit i is class i (softmax, or logits ``predict`` puts through one). One unit: a binary
        model's probability (or logit) of class 1, since ``predict`` reads it as (1 - p, p): ``[1]``. The one rule
        for naming output units (ActivationGrid's hover, ChannelCard, DatasetExamples) and for rendering one
        (ChannelCard's class log-odds)."""
        info = self.layer(layer)
        if self._graph.outputs.get(info.path) is not self._graph.output or len(info.output_shape) != 1:
            return None
        n = int(info.output_shape[0])
        if n != self.num_classes:
            return None
        return [1] if n == 1 else list(range(n))

    @property
    def class_source(self) -> str:
        """Where ``class_names`` come from: "given", "imagenet" (a keras.applications head) or "index"."""
        if self._class_names is not None:
            return "given"
        last = self.model.layers[-1] if self.model.layers else None
        # keras.applications names its classifier "predictions" (ConvNeXt: "<name>_head_dense")
        head = last is not None and (last.name.lower() == "predictions" or last.name.endswith("_head_dense"))
        if head and self.num_classes == 1000:
            return "imagenet"
        return "index"

    @property
    def spatial_layers(self) -> list[LayerInfo]:
        """Layers whose output is a feature map (H, W, C)."""
        return [info for info in self.layers if info.is_spatial]

    @property
    def attention_layers(self) -> list:
        """Every attention site, in model order, nested models included: [AttentionSite(path, kind, name,
        class_name, shape, ...)] with kind "mha" (a MultiHeadAttention call), "channel_gate" (a feature map
        multiplied by a (N, 1, 1, C) gate, e.g. squeeze-excitation) or "spatial_gate" (by a (N, H, W, 1) gate).
        See cnnwidget.core.attention."""
        from .attention import find_sites  # attention builds on the probe

        return find_sites(self)

    def layer(self, layer) -> LayerInfo:
        """Look a layer up by path, by unique name, by LayerInfo or by the Keras layer object."""
        self._require_built()
        by_path = {info.path: info for info in self._layers}
        if isinstance(layer, LayerInfo):
            layer = layer.path
        if isinstance(layer, keras.layers.Layer):
            for path, obj in self._graph.layers.items():
                if obj is layer:
                    return by_path[path]
            raise unknown_layer(layer.name, list(by_path))
        if isinstance(layer, str):
            if layer in by_path:
                return by_path[layer]
            named = [info for info in self._layers if info.name == layer]
            if len(named) == 1:
                return named[0]
            if len(named) > 1:
                paths = ", ".join(repr(i.path) for i in named)
                raise unknown_layer(f"{layer} (ambiguous: give one of {paths})", list(by_path))
        raise unknown_layer(layer, list(by_path))

    def keras_layer(self, layer) -> keras.layers.Layer:
        """The Keras layer object behind a path or name (the same object the model holds: same weights)."""
        return self._graph.layers[self.layer(layer).path]

    def source_of(self, layer) -> str | None:
        """Path of the layer whose output feeds ``layer``'s first input, or None when that is the model's input."""
        inp = self._graph.inputs[self.layer(layer).path]
        return next((path for path, out in self._graph.outputs.items() if out is inp), None)

    # -- passes ----------------------------------------------------------------------------------------------

    def images(self, images) -> np.ndarray:
        """Check ``images`` against the model's input and return them as float32 (N, H, W, C) in display space."""
        if self._model is None:
            self.model  # noqa: B018 - ModelError for a remembered probe whose model was deleted (see probe_for)
        if self._graph is None:  # an unbuilt Sequential: take the shape from the first images
            batch = as_image_batch(images, input_range=self.input_range, warn=False)
            self._build_sequential(batch.shape[1:])
        h, w, c = self.input_shape
        return as_image_batch(images, height=h, width=w, channels=c, input_range=self.input_range,
                              size_note=self._size_note)

    def activations(self, images, layers: Iterable | str | None = None, reduce: Callable | None = None) -> dict:
        """Outputs of ``layers`` (default: all) for ``images``, from one forward pass per batch.

        Returns {key: np.ndarray (N, H, W, C) for spatial layers, (N, C) for vectors}, keyed by what was asked
        for: a name gives a name key, a path a path key (a LayerInfo or Keras layer gives its path; ``layers``
        None gives every path). The pass is a compiled
        function cached per layer set; it computes only what the deepest asked-for layer needs. ``reduce``, if
        given, is applied to each layer's output tensor inside the compiled pass (e.g. a summary that is much
        smaller than the feature map); it is part of the cache key, so pass the same function object each time.
        """
        batch = self.images(images)
        if layers is None:
            paths = tuple(info.path for info in self._layers)
        else:
            single = (str, LayerInfo, keras.layers.Layer, int, float, np.number)  # numbers: LayerError, not TypeError
            layers = [layers] if isinstance(layers, single) else list(layers)
            paths = tuple(self.layer(name).path for name in layers)
        fn = self._compiled(paths, reduce)
        outs = self._run_batched(fn, batch)
        keys = paths if layers is None else [k if isinstance(k, str) else p for k, p in zip(layers, paths)]
        return dict(zip(keys, outs))

    def predict(self, images) -> np.ndarray:
        """Class probabilities (N, classes) for ``images``; logits are put through a softmax, a single sigmoid
        unit becomes two columns (1 - p, p)."""
        batch = self.images(images)
        return self._run_batched(self._compiled(None, None), batch)[0]

    def forward(self, layers: Sequence = (), logits: bool = False, guided: bool = False) -> Callable:
        """A differentiable function of display-space images: ``f(x) -> [outputs of layers..., (logits)]``.

        ``x`` is a float32 tensor (N, H, W, C); ``preprocess`` is applied inside, so gradients are taken with
        respect to display-space pixels. With ``logits=True`` the last item is the model's pre-softmax output
        (N, classes), found even when the last layer applies the softmax itself. Not compiled: call it inside
        your own ``tf.function`` (a gradient step, an optimization loop); built once per layer set and reused.
        With ``guided=True`` every ReLU (a ReLU layer, or a layer whose activation is relu) lets only positive
        gradients back through it (guided backpropagation); the outputs are the same. The rule lives in a
        replay of the model's graph made for it: no layer of the model is changed, even for a moment.
        """
        self._require_built()
        paths = tuple(self.layer(name).path for name in layers)
        key = ("forward", paths, bool(logits), bool(guided))
        return self.compiled(key, lambda: self._make_forward(paths, logits=bool(logits), guided=bool(guided)))

    # -- internals -------------------------------------------------------------------------------------------

    def _make_forward(self, paths: tuple, logits: bool = False, output: bool = False, guided: bool = False) -> Callable:
        graph = self._graph if not guided else self.compiled(("graph", "guided"), self._guided_graph)
        outputs = [graph.outputs[p] for p in paths] + ([graph.output] if output else [])
        head = None
        if logits:
            last = next(reversed(graph.layers))
            head = _pre_activation(graph.layers[last])
            outputs.append(graph.inputs[last] if head is not None else graph.output)
        sub = keras.Model(graph.input, outputs)
        preprocess = self.preprocess

        def forward(x, training=False):
            if preprocess is not None:
                x = preprocess(x)
            outs = sub(x, training=training)
            outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
            if head is not None:
                outs[-1] = head(outs[-1])
            return outs

        return forward

    def _last_layer(self):
        """The layer that makes the model's output (the last one replayed, nested models flattened)."""
        return self._graph.layers[next(reversed(self._graph.layers))]

    def _guided_graph(self) -> _graph.FlatGraph:
        """The model replayed again with guided-backpropagation gradients at every ReLU (see ``forward``)."""
        return _graph.flatten(self._source or self.model, tuple(self._graph.input.shape[1:]), guided=True)

    def _compiled(self, paths: tuple | None, reduce: Callable | None):
        return self.compiled(("activations", paths, reduce), lambda: self._make_function(paths, reduce))

    def _make_function(self, paths, reduce):
        graph = self._graph
        if paths is None:  # the model's own output, as probabilities
            forward_fn, reduce = self._make_forward((), output=True), _probability_fn(self._last_layer())
        else:
            forward_fn = self._make_forward(paths)

        def run(x):
            outs = forward_fn(x)
            return [reduce(o) for o in outs] if reduce is not None else outs

        spec = tf.TensorSpec((None,) + tuple(graph.input.shape[1:]), tf.float32)
        return self.tf_function(run, input_signature=[spec], family="activations")

    def _run_batched(self, fn, batch: np.ndarray) -> list[np.ndarray]:
        chunks = [fn(tf.constant(batch[i:i + self.batch_size])) for i in range(0, len(batch), self.batch_size)]
        if len(chunks) == 1:  # no copy: a whole-model fetch is hundreds of MB on a large network
            return [np.asarray(out) for out in chunks[0]]
        return [np.concatenate([np.asarray(c[j]) for c in chunks]) for j in range(len(chunks[0]))]

    def _build_sequential(self, shape):
        try:
            self.model.build((None,) + tuple(shape))
        except Exception as exc:
            raise ModelError(f"could not build {self.model.name!r} for images of shape {tuple(shape)}: {exc}") from None
        self._build(shape)
        h, w, c = shape
        self._size_note = (f" {self.model.name!r} is a Sequential model without an Input, so the first images given "
                           f"to this probe fixed its input size to {h}x{w}. To take images of any size, give it "
                           f"keras.Input((None, None, {c})) as first layer; or make a new ModelProbe for the new size.")
        _check_preprocess(self.preprocess, self.input_shape)

    def _build(self, shape):
        _refuse_channels_first(self.model)
        graph = _graph.flatten(self._source or self.model, shape)
        layers = [
            LayerInfo(name=layer.name, class_name=type(layer).__name__,
                      output_shape=tuple(graph.outputs[path].shape[1:]),
                      is_spatial=len(graph.outputs[path].shape) == 4, path=path)
            for path, layer in graph.layers.items()
        ]
        if self.spatial_required and not any(info.is_spatial for info in layers):
            described = ", ".join(f"{i.path} {i.output_shape}" for i in layers[:8])
            raise ModelError(
                f"{self.model.name!r} has no spatial layer: cnnwidget looks inside convolutional networks, whose "
                f"layers output feature maps (N, H, W, C), but every layer here outputs vectors ({described})."
            )
        n_out = graph.output.shape[-1]
        if self._class_names is not None and len(self._class_names) != max(int(n_out), 2 if n_out == 1 else 0):
            raise ModelError(f"class_names has {len(self._class_names)} names, but the model outputs {n_out} classes.")
        self._graph, self._layers = graph, layers

    def _require_built(self):
        if self._graph is None:
            raise ModelError(
                f"{self.model.name!r} is a Sequential model without an Input, so its layer shapes are not known yet. "
                "Pass images once (probe.activations(images)) or give it a keras.Input as first layer."
            )

    def __repr__(self):
        state = f"{len(self._layers)} layers" if self._graph is not None else "not built yet"
        declared = "" if self.range_source in ("given", "default") else f", input_range {self.input_range}"
        if self._graph is not None and self.class_source == "imagenet":
            declared += ", ImageNet class names (a keras.applications head; class_names= to name others)"
        return f"ModelProbe({self.model.name!r}, {state}{declared})"


MAX_COMPILED = 64  # values ModelProbe.compiled keeps per probe (the least recently used is dropped first)
_TRACES: dict = {}  # family -> traces in this process, see traces()
_COUNT_LOCK = threading.Lock()


def traces(family: str | None = None) -> int:
    """How many times compiled passes of ``family`` ("activations", "attribution", "featurevis", ...; None: all)
    were traced in this process, by every probe; ``probe.trace_count`` is one probe's. Steady state adds none."""
    with _COUNT_LOCK:
        return sum(_TRACES.values()) if family is None else _TRACES.get(family, 0)


_REMEMBERED: "weakref.WeakKeyDictionary[keras.Model, ModelProbe]" = weakref.WeakKeyDictionary()
_REMEMBER_LOCK = threading.Lock()


def probe_for(model_or_probe) -> ModelProbe:
    """A probe unchanged, or for a Keras model the one probe remembered for it, so that its compiled passes
    are reused from call to call (``attr.saliency(model, x)`` traces once, not on every call).

    The remembered probe holds its model weakly, and the memo holds the model weakly: both go when the user
    lets go of the model. That probe has the default options; for ``preprocess``, ``class_names`` and the like,
    make a ModelProbe and pass it. What core functions call on every model or probe they are given.

    Never hands out a probe whose model is gone: a remembered probe kept by a user after its model was deleted
    raises ModelError here, at the call, saying so (not later, from deep inside a pass).
    """
    if isinstance(model_or_probe, ModelProbe):
        model_or_probe.model  # noqa: B018 - ModelError if it is a remembered probe whose model was deleted
        return model_or_probe
    if not isinstance(model_or_probe, keras.Model):
        return ModelProbe(model_or_probe)  # raises ModelError saying what was expected
    with _REMEMBER_LOCK:  # one probe per model, even when two threads ask at once
        probe = _REMEMBERED.get(model_or_probe)
        if probe is None or probe._model_ref is None or probe._model_ref() is not model_or_probe:
            probe = ModelProbe(model_or_probe)
            probe._model, probe._model_ref = None, weakref.ref(model_or_probe)
            _REMEMBERED[model_or_probe] = probe
        return probe


def as_probe(model_or_probe, **kwargs) -> ModelProbe:
    """Return a ModelProbe for a Keras model (extra keyword arguments go to ModelProbe), or a probe unchanged.

    A new probe that holds its model, for an object that keeps a probe (a widget); ``probe_for`` is the
    remembered probe a function uses for the length of a call."""
    if isinstance(model_or_probe, ModelProbe):
        if kwargs:
            raise TypeError(f"{', '.join(kwargs)} belong to the ModelProbe; this one is already made, so set them "
                            "there: ModelProbe(model, ...).")
        return model_or_probe
    return ModelProbe(model_or_probe, **kwargs)


def _check_model(model):
    if not isinstance(model, keras.Model):
        kind = f"{type(model).__module__}.{type(model).__name__}"
        hint = ""
        if "tf_keras" in kind or "keras.engine" in kind or "keras.src.engine" in kind:
            hint = " It looks like a Keras 2 (tf_keras) model: save it and load it with Keras 3 (keras.saving.load_model)."
        raise ModelError(f"expected a Keras 3 model (keras.Model) or a cnnwidget.ModelProbe; got {kind}.{hint}")
    if not isinstance(model, keras.Sequential) and not _graph.is_functional(model):
        raise _graph.subclassed_error(model)
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if inputs is not None and len(inputs) > 1:
        names = ", ".join(f"{t.name} {tuple(t.shape)}" for t in inputs)
        raise ModelError(
            f"{model.name!r} takes {len(inputs)} inputs ({names}); cnnwidget probes models with one image input. "
            "Wrap it in a functional model with a single image input and the other inputs fixed, e.g. "
            "keras.Model(image_input, model([image_input, constant]))."
        )
    return model


def _declared_range(model) -> tuple[tuple[float, float], str]:
    """The display range a model declares by its first layer: (0, 255) when it is a ``Rescaling`` whose scale maps
    255 to at most about 2 (1/255, 1/127.5: pixels in, a unit range out), looked for through nested models; else
    (0, 1). Returns (range, source) with source a sentence for the probe's repr."""
    layer = model
    for _ in range(8):  # a nested base model's own first layer (transfer learning), a few levels at most
        inner = [l for l in getattr(layer, "layers", []) if not isinstance(l, keras.layers.InputLayer)]
        if not inner:
            break
        layer = inner[0]
        if isinstance(layer, keras.layers.Rescaling):
            scale = np.asarray(layer.scale, dtype=np.float64)
            if scale.size == 1 and 0 < float(scale) * 255 <= 2.5:
                return (0.0, 255.0), (f"0..255 pixels, as the model's first layer {layer.name!r} "
                                      f"(Rescaling by {float(scale):.4g}) expects")
            break
        if not isinstance(layer, keras.Model):
            break
    return (0.0, 1.0), "default"


def _known_input_shape(model):
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    return tuple(inputs[0].shape[1:])


def _pre_activation(layer) -> Callable | None:
    """Maps the last layer's input to its pre-activation output (the logits), or None when its output already is."""
    activation = getattr(layer, "activation", None)
    if activation is None or getattr(activation, "__name__", "") == "linear":
        return None
    if isinstance(layer, keras.layers.Activation):
        return lambda x: x
    if isinstance(layer, keras.layers.Dense):
        return lambda x: (tf.matmul(x, layer.kernel) + layer.bias) if layer.use_bias else tf.matmul(x, layer.kernel)
    raise ModelError(f"cannot find the logits of {layer.name!r} ({type(layer).__name__}): its activation "
                     f"{activation.__name__!r} is applied inside it. End the model with a Dense layer or an "
                     "Activation layer.")


def _probability_fn(last):
    """Softmax unless the model's last layer already outputs probabilities (softmax or sigmoid activation)."""
    name = getattr(getattr(last, "activation", None), "__name__", "")

    def probabilities(out):
        if out.shape[-1] == 1:
            p = out if name == "sigmoid" else tf.sigmoid(out)
            return tf.concat([1.0 - p, p], axis=-1)
        return out if name == "softmax" else tf.nn.softmax(out, axis=-1)

    return probabilities


def _one_output(model, output):
    """None for a model with one output (replay the model itself); for several, a functional view of the one
    chosen by ``output`` (an index or an output layer's name; default the first, with a CnnWidgetWarning). The
    view shares the model's layers and weights and changes nothing in it."""
    try:
        outputs = list(model.outputs)
    except (AttributeError, ValueError):  # an unbuilt Sequential: one output
        outputs = []
    if len(outputs) <= 1:
        if output not in (None, 0) and output not in list(getattr(model, "output_names", None) or []):
            raise OptionError(f"output={output!r} picks one of several outputs, but {model.name!r} has one; leave "
                              "output=None.")
        return None
    names = [str(n) for n in getattr(model, "output_names", None) or [t.name for t in outputs]]
    listing = ", ".join(f"{i}: {n!r} {tuple(t.shape[1:])}" for i, (n, t) in enumerate(zip(names, outputs)))
    if output is None:
        warnings.warn(f"{model.name!r} has {len(outputs)} outputs ({listing}); cnnwidget explains one, so it uses the "
                      f"first, {names[0]!r}. Pass ModelProbe(model, output=...) with an index or a name to choose.",
                      CnnWidgetWarning, stacklevel=3)
        output = 0
    if isinstance(output, str):
        if output not in names:
            raise OptionError(f"output={output!r} is not an output of {model.name!r}; its outputs are {listing}."
                              f"{did_you_mean(output, names)}")
        output = names.index(output)
    index = _options.index("output", output, len(outputs), f"the outputs of {model.name!r} ({listing})")
    return keras.Model(model.inputs, outputs[index], name=model.name)


def _refuse_channels_first(model):
    """ModelError for a model with channels-first layers: their (N, C, H, W) maps would be read as (N, H, W, C)."""
    found = []
    stack = list(model.layers)
    while stack:
        layer = stack.pop(0)
        if isinstance(layer, keras.Model):
            stack[:0] = list(layer.layers)
        elif getattr(layer, "data_format", None) == "channels_first":
            found.append(f"{layer.name} ({type(layer).__name__})")
    if found:
        shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
        raise ModelError(
            f"{model.name!r} has layers with data_format='channels_first': {shown}. cnnwidget reads images and "
            "feature maps channels-last (N, H, W, C). Build the model with data_format='channels_last' (the Keras "
            "default; see keras.config.image_data_format()) and copy the weights over: convolution kernels have "
            "the same shape in both.")


def _check_preprocess(preprocess, input_shape):
    """Trace ``preprocess`` once on a symbolic batch, so that one that cannot run inside a compiled pass (calls
    .numpy(), uses Python control flow on values, returns no tensor) is refused now, with what is expected."""
    if preprocess is None:
        return
    spec = tf.TensorSpec((None,) + tuple(input_shape), tf.float32)
    try:
        out = tf.function(lambda x: preprocess(x), autograph=False).get_concrete_function(spec).structured_outputs
    except Exception as exc:  # noqa: BLE001 - whatever it raised, the message says what was expected
        raise OptionError(
            f"preprocess could not run inside a compiled pass: {type(exc).__name__}: {str(exc).splitlines()[0]}. It "
            "must map a float32 tensor (N, H, W, C) of display-space images to the model's input with TensorFlow/"
            "Keras ops (no .numpy(), no numpy functions of the tensor), e.g. lambda x: "
            "keras.applications.mobilenet_v2.preprocess_input(x * 255).") from None
    if not isinstance(out, tf.Tensor) or out.shape.rank != 4:
        raise OptionError(f"preprocess must return one image tensor (N, H, W, C); for images {tuple(input_shape)} it "
                          f"returned {out!r}.")


@functools.lru_cache(maxsize=1)
def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet (ILSVRC-2012) class labels in keras.applications' output order ("tench", "goldfish", ...),
    read from the copy shipped in cnnwidget/data (keras' decode_predictions downloads the same index)."""
    text = (importlib.resources.files("cnnwidget") / "data" / "imagenet_classes.json").read_text("utf-8")
    return list(json.loads(text)["names"])
