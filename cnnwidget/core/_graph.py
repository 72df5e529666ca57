"""Rebuild a Keras model as one flat functional graph, so that every layer, nested models' included, has an
output tensor connected to the outer input.

Keras keeps a nested model's layers in the inner model's own graph, whose tensors are not connected to the outer
model's input, so `keras.Model(outer.input, inner_layer.output)` fails (the transfer-learning case that breaks
keract, tf-explain and others). Here the outer graph is replayed on a fresh `keras.Input`, and each nested
model is replayed inline, layer by layer: the same layer objects (same weights) are called on new symbolic
tensors. This reads Keras 3's functional-graph internals (`_nodes_by_depth`, `Node.arguments`) in this one
module; tests/unit/test_probe.py covers every model form, so a Keras change that breaks it fails there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras

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


def flatten(model: keras.Model, input_shape: tuple) -> FlatGraph:
    """Replay ``model`` on a new ``keras.Input(input_shape)`` (no batch axis), recording every layer's output."""
    x = keras.Input(shape=tuple(input_shape), name="cnnwidget_input")
    graph = FlatGraph(input=x, output=None)
    graph.output = _replay(model, [x], "", graph)
    return graph


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
        out = op(*args, **kwargs)
    # Nested models are containers: their output is their last layer's, already recorded under its path.
    if isinstance(op, keras.layers.Layer) and not isinstance(op, (keras.layers.InputLayer, keras.Model)):
        # A layer used twice (shared weights) gets one entry per call: "name", "name:1", ...
        key, n = path, 1
        while key in graph.outputs:
            key, n = f"{path}:{n}", n + 1
        graph.outputs[key] = keras.tree.flatten(out)[0]
        graph.inputs[key] = keras.tree.flatten(args)[0] if args else None
        graph.layers[key] = op
    return out
