"""Rebuild a Keras model as one flat functional graph, so that every layer, nested models' included, has an
output tensor connected to the outer input.

Keras keeps a nested model's layers in the inner model's own graph, whose tensors are not connected to the outer
model's input, so `keras.Model(outer.input, inner_layer.output)` fails (the transfer-learning case that breaks
keract, tf-explain and others). Here the outer graph is replayed on a fresh `keras.Input`, and each nested
model is replayed inline, layer by layer: the same layer objects (same weights) are called on new symbolic
tensors. This reads Keras 3's functional-graph internals (`_nodes_by_depth`, `Node.arguments`) in this one
module; tests/unit/test_probe.py covers every model form, so a Keras change that breaks it fails there.

The replay is also where a gradient rule is put in without touching the model: ``flatten(..., guided=True)``
follows every ReLU's output with an identity whose gradient is ``relu(dy)`` (guided backpropagation). The layers
are the model's own, called as they are; only the graph around them differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import tensorflow as tf
from tensorflow.python.eager import record as _tape  # the tape API tf.custom_gradient itself records with

from .errors import ModelError

try:  # Keras 3 keeps Functional out of the public namespace.
    from keras.src.models.functional import Functional
except ImportError:  # pragma: no cover - very old or very new Keras
    Functional = None


@dataclass
class FlatGraph:
    """A model replayed on one input: ``outputs[path]`` is each layer's output tensor, in model order."""

    input: object
    output: object
    outputs: dict = field(default_factory=dict)  # path -> KerasTensor
    inputs: dict = field(default_factory=dict)  # path -> the KerasTensor the layer was called on (first argument)
    layers: dict = field(default_factory=dict)  # path -> keras.Layer
    guided: bool = False  # ReLUs pass only positive gradients back (see flatten)
    replace: object = None  # layer -> the callable run in its place, or None (see flatten)


def flatten(model: keras.Model, input_shape: tuple, guided: bool = False, replace=None) -> FlatGraph:
    """Replay ``model`` on a new ``keras.Input(input_shape)`` (no batch axis), recording every layer's output.

    ``guided``: what flows on from every ReLU (a ReLU layer, or any layer whose activation is relu) passes
    through ``_GuidedGradient``, so gradients taken through the replay follow guided backpropagation
    (Springenberg et al. 2015): at each ReLU, d/dz = relu(dy) * relu'(z), only positive gradients pass. The
    recorded ``outputs`` and the forward values are the same as without.

    ``replace``: a function of each (non-model) layer returning None (the layer is called, as always) or a layer
    of the replay's own that is called in its place on the same arguments (core/uncertainty.py puts sampled
    dropout there). ``layers`` still records the model's own layer under its path; the model is not changed.
    """
    x = keras.Input(shape=tuple(input_shape), name="cnnwidget_input")
    graph = FlatGraph(input=x, output=None, guided=guided, replace=replace)
    graph.output = _replay(model, [x], "", graph)
    return graph


def _positive_gradient(x):
    """Identity, whose gradient lets only positive values through. After a ReLU's output y = relu(z), the
    ReLU's own backward then gives relu(dy) * relu'(z): the guided rule, with relu'(z) of whatever the ReLU is
    (a ReLU6's cap, a threshold, a leaky slope) taken from the layer itself.

    The rule is recorded on the gradient tapes alone (``record_operation``, as ``tf.custom_gradient`` does), not
    registered in TensorFlow's global gradient registry as ``tf.custom_gradient`` also does in a traced function:
    that registry keeps every trace's rule and the graph it closes over for the life of the process. The guided
    pass is differentiated by a tape (the probe's gradient functions), never by ``tf.gradients``."""
    out = tf.identity(x)
    _tape.record_operation("PositiveGradient", [out], [x], lambda dy: [tf.nn.relu(dy)])
    return out


class _GuidedGradient(keras.layers.Layer):
    """A layer of the replay only (never of the model): ``_positive_gradient``."""

    def call(self, x):
        return _positive_gradient(x)

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, x.dtype)


def _is_relu(layer) -> bool:
    """A ReLU layer, or a layer (Conv2D, Dense, Activation, ...) whose activation is ``keras.activations.relu``."""
    return isinstance(layer, keras.layers.ReLU) or getattr(layer, "activation", None) is keras.activations.relu


def _replay(model, inputs: list, prefix: str, graph: FlatGraph):
    if isinstance(model, keras.Sequential):
        x = inputs[0]
        for layer in model.layers:  # .layers leaves out the InputLayer
            x = _call(layer, (x,), {}, prefix, graph)
        return x
    if is_functional(model):
        return _replay_functional(model, inputs, prefix, graph)
    raise subclassed_error(model, prefix)


def is_functional(model) -> bool:
    """True for models built as keras.Model(inputs, outputs), whose layer graph is known without calling them."""
    return Functional is not None and isinstance(model, Functional)


def subclassed_error(model, prefix: str = "") -> ModelError:
    """The refusal for a subclassed model (or one nested inside the probed model), saying what to do instead."""
    return ModelError(
        f"{prefix}{model.name!r} is a subclassed model ({type(model).__name__}): Keras only knows how its layers "
        "connect while call() runs, so its inner layers cannot be reached. Build it as a functional model "
        "(keras.Model(inputs, outputs)) or a keras.Sequential, or pass the functional part that holds the "
        "convolutional layers."
    )


def _replay_functional(model, inputs: list, prefix: str, graph: FlatGraph):
    tensors = {id(ref): value for ref, value in zip(model.inputs, inputs)}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if not node.operation or node.is_input:
                continue
            if any(id(t) not in tensors for t in node.input_tensors):
                continue  # a branch not fed by these inputs
            args, kwargs = node.arguments.fill_in(tensors)
            out = _call(node.operation, args, kwargs, prefix, graph)
            for ref, value in zip(node.outputs, keras.tree.flatten(out)):
                tensors[id(ref)] = value
    outs = [tensors[id(t)] for t in model.outputs]
    return outs[0] if len(outs) == 1 else outs


def _call(op, args, kwargs, prefix: str, graph: FlatGraph):
    path = prefix + op.name
    if isinstance(op, keras.Model):
        out = _replay(op, list(args[:1]) if not isinstance(args[0], (list, tuple)) else list(args[0]),
                      path + "/", graph)
    else:
        stand_in = graph.replace(op) if graph.replace is not None else None
        out = (stand_in or op)(*args, **kwargs)
    # Nested models are containers: their output is their last layer's, already recorded under its path.
    if isinstance(op, keras.layers.Layer) and not isinstance(op, (keras.layers.InputLayer, keras.Model)):
        # A layer used twice (shared weights) gets one entry per call: "name", "name:1", ...
        key, n = path, 1
        while key in graph.outputs:
            key, n = f"{path}:{n}", n + 1
        graph.outputs[key] = keras.tree.flatten(out)[0]
        graph.inputs[key] = keras.tree.flatten(args)[0] if args else None
        graph.layers[key] = op
        if graph.guided and _is_relu(op) and not isinstance(out, (list, tuple, dict)):
            out = _GuidedGradient(name=f"cnnwidget_guided_{len(graph.layers)}")(out)  # what later layers get
    return out
