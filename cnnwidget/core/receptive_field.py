"""Receptive fields from layer geometry: which input pixels a unit of a spatial layer can see.

A unit at position (y, x) of a layer sees the input rows ``[y * jump + start, y * jump + start + size)`` (and the
same for columns): ``jump`` is the product of the strides on the way, ``start`` the offset of unit 0 (negative where
padding was added) and ``size`` the extent. They are composed layer by layer, from the model's input to the layer,
along the flat graph the probe replays (nested models included). For a layer with kernel k, stride s, dilation d
and p pixels of padding before the input: ``jump' = s * jump``, ``start' = start - p * jump``,
``size' = size + (k - 1) * d * jump`` ("same" padding is TensorFlow's: p = max((ceil(n/s) - 1) s + (k-1) d + 1 - n,
0) // 2 for an input of n pixels).

Exact for conv/pool stacks (Conv2D, DepthwiseConv2D, SeparableConv2D, MaxPooling2D, AveragePooling2D, ZeroPadding2D,
Cropping2D) with per-position layers between them (batch norm, activations, dropout, rescaling, ...) and merges of
branches (Add, Concatenate, ...: the union of the branches' fields). The box is the bounding box: a dilated layer
leaves holes in it, and a max pool's gradient reaches only the pixels of its maximum. ``approximate`` is True, with a
``reason`` naming the layer, where the path has a layer whose geometry is not known (it is then taken as 1x1, or as a
k x k block with stride k where it changes the size by a factor k), or a gate computed from the whole image (a
squeeze-excitation multiply). ``preprocess`` is assumed to work pixel by pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras

from . import _graph
from .probe import ModelProbe

# Layers that work position by position: the field passes through unchanged.
_POINTWISE = tuple(getattr(keras.layers, name) for name in (
    "BatchNormalization", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax", "Dropout", "SpatialDropout2D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "Rescaling", "Normalization", "Identity",
    "UnitNormalization", "ActivityRegularization",
) if hasattr(keras.layers, name))
# Merges of same-sized branches: the union of the branches' fields.
_MERGES = tuple(getattr(keras.layers, name) for name in (
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
) if hasattr(keras.layers, name))
_POOLS = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
_CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


@dataclass(frozen=True)
class ReceptiveField:
    """The input rows and columns seen by the units of one spatial layer (see the module docstring).

    ``jump``, ``start``, ``size``: (rows, columns) each. ``box(y, x)`` is (y0, x0, y1, x1), end exclusive, in input
    pixels, and may reach past the image where the layers padded. ``approximate``/``reason``: see the module.
    """

    jump: tuple
    start: tuple
    size: tuple
    approximate: bool = False
    reason: str = ""

    def box(self, y: int, x: int) -> tuple:
        y0 = y * self.jump[0] + self.start[0]
        x0 = x * self.jump[1] + self.start[1]
        return (y0, x0, y0 + self.size[0], x0 + self.size[1])


_IDENTITY = ReceptiveField((1, 1), (0, 0), (1, 1))


def receptive_field(probe: ModelProbe, layer) -> ReceptiveField:
    """The receptive field of the units of a spatial layer of ``probe`` (a name, path or LayerInfo)."""
    info = probe.layer(layer)
    graph = probe._graph
    return _field(graph.outputs[info.path], graph, {})


def _field(tensor, graph: _graph.FlatGraph, memo: dict) -> ReceptiveField:
    key = id(tensor)
    if key in memo:
        return memo[key]
    if tensor is graph.input:
        return _IDENTITY
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return ReceptiveField((1, 1), (0, 0), (1, 1), True, "a tensor of unknown origin is on the path")
    op = history.operation
    node = op._inbound_nodes[history.node_index]
    inputs = [t for t in node.input_tensors if len(getattr(t, "shape", ())) == 4]
    if not inputs:  # e.g. a constant
        out = ReceptiveField((1, 1), (0, 0), (1, 1), True, f"{op.name} ({type(op).__name__}) has no image input")
    else:
        fields = [_field(t, graph, memo) for t in inputs]
        out = _through(op, inputs, tensor, fields)
    memo[key] = out
    return out


def _through(op, inputs, output, fields: list) -> ReceptiveField:
    name = f"{op.name} ({type(op).__name__})"
    src = fields[0]
    if isinstance(op, _MERGES):
        spatial = [(f, t) for f, t in zip(fields, inputs) if tuple(t.shape[1:3]) == tuple(output.shape[1:3])]
        gated = len(spatial) < len(fields)
        kept = [f for f, _ in spatial] or fields
        out = _union(kept)
        if gated:
            out = _flag(out, f"{name} multiplies by a gate computed from the whole image (e.g. squeeze-excitation); "
                             "the box is the field of the spatial path only")
        return out
    if isinstance(op, _POINTWISE):
        return src
    if isinstance(op, _CONVS) or isinstance(op, _POOLS):
        if isinstance(op, _POOLS):
            kernel, strides, dilation = op.pool_size, op.strides, (1, 1)
        else:
            kernel, strides, dilation = op.kernel_size, op.strides, op.dilation_rate
        padding = str(op.padding).lower()
        if padding not in ("valid", "same"):
            return _flag(_step(src, kernel, strides, dilation, (0, 0)), f"{name} has padding {padding!r}")
        pads = tuple(_same_pad(int(inputs[0].shape[1 + a]), kernel[a], strides[a], dilation[a])
                     if padding == "same" else 0 for a in range(2))
        return _step(src, kernel, strides, dilation, pads)
    if isinstance(op, keras.layers.ZeroPadding2D):
        (top, _), (left, _) = op.padding
        return _step(src, (1, 1), (1, 1), (1, 1), (top, left))
    if isinstance(op, keras.layers.Cropping2D):
        (top, _), (left, _) = op.cropping
        return _step(src, (1, 1), (1, 1), (1, 1), (-top, -left))
    # Geometry unknown: 1x1 when the size is kept, else a k x k block of stride k.
    hin, win = inputs[0].shape[1:3]
    hout, wout = output.shape[1:3]
    if None in (hin, win, hout, wout) or not hout or not wout:
        factor = (1, 1)
    else:
        factor = (max(1, round(hin / hout)), max(1, round(win / wout)))
    return _flag(_step(src, factor, factor, (1, 1), (0, 0)), f"the geometry of {name} is not known")


def _same_pad(n: int, k: int, s: int, d: int) -> int:
    effective = (k - 1) * d + 1
    out = math.ceil(n / s)
    return max((out - 1) * s + effective - n, 0) // 2


def _step(src: ReceptiveField, kernel, strides, dilation, pads) -> ReceptiveField:
    jump = tuple(src.jump[a] * int(strides[a]) for a in range(2))
    start = tuple(src.start[a] - int(pads[a]) * src.jump[a] for a in range(2))
    size = tuple(src.size[a] + (int(kernel[a]) - 1) * int(dilation[a]) * src.jump[a] for a in range(2))
    return ReceptiveField(jump, start, size, src.approximate, src.reason)


def _union(fields: list) -> ReceptiveField:
    first = fields[0]
    if any(f.jump != first.jump for f in fields):
        out = _flag(first, "branches with different strides are merged")
        return out
    start = tuple(min(f.start[a] for f in fields) for a in range(2))
    end = tuple(max(f.start[a] + f.size[a] for f in fields) for a in range(2))
    approx = [f for f in fields if f.approximate]
    return ReceptiveField(first.jump, start, tuple(end[a] - start[a] for a in range(2)), bool(approx),
                          approx[0].reason if approx else "")


def _flag(field: ReceptiveField, reason: str) -> ReceptiveField:
    reasons = "; ".join(r for r in (field.reason, reason) if r)
    return ReceptiveField(field.jump, field.start, field.size, True, reasons)
