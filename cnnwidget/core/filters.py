"""Learned convolution filters made ready to show: first-layer kernels as RGB images, deeper kernels as
per-input-channel grids or norms, pages of them, and weight histograms.

Layers are named as everywhere in cnnwidget: by path ("base/block1_conv" inside a nested model) or unique name.
Display values are in [0, 1] with 0.5 for a zero weight, scaled per output filter: pixel = 0.5 + k / (2 s), where
s = max |k| over that filter (all its input channels and taps). So a filter's sign pattern and its colour balance
are kept (one scale for its three colour channels), and every filter uses the full range whatever its magnitude;
``scale`` (s per filter) is returned so that true values can be shown: k = (pixel - 0.5) * 2 * s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np

from . import options
from .errors import LayerError, OptionError
from .probe import as_probe

_CONV = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


@dataclass(frozen=True, eq=False)
class Filters:
    """Kernels of one layer, for display.

    layer:  the layer's path.
    images: float32 in [0, 1] (0.5 = zero weight). From ``first_layer_filters``: (n, kh, kw, 3), one RGB image
            per output filter. From ``kernel_grid``: (n, in, kh, kw), one grey tile per (output, input channel).
    scale:  (n,) float32, max |weight| of each output filter (see the module docstring).
    index:  (n,) int, the output-filter indices these rows are (a page of them).
    """

    layer: str
    images: np.ndarray
    scale: np.ndarray
    index: np.ndarray


def kernel(model_or_probe, layer=None) -> tuple[str, np.ndarray]:
    """(path, kernel) of a convolution layer as float32 (out, in, kh, kw); ``layer`` None = the first one.

    Conv2D kernels (kh, kw, in, out) are transposed; a DepthwiseConv2D (kh, kw, in, mult) or the depthwise part of
    a SeparableConv2D gives out = in * mult filters of one input channel each (in = 1).
    """
    probe = as_probe(model_or_probe)
    path, obj = _conv_layer(probe, layer)
    if isinstance(obj, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)):
        k = np.asarray(obj.depthwise_kernel if hasattr(obj, "depthwise_kernel") else obj.kernel)
        kh, kw, cin, mult = k.shape
        return path, k.reshape(kh, kw, cin * mult).transpose(2, 0, 1)[:, None].astype(np.float32)
    return path, np.asarray(obj.kernel).transpose(3, 2, 0, 1).astype(np.float32)


def first_layer_filters(model_or_probe, layer=None, page: int = 0, page_size: int | None = None) -> Filters:
    """First-layer kernels as RGB images (n, kh, kw, 3) in [0, 1], one per output filter, scaled per filter.

    ``layer`` (default: the first convolution) must take 3 input channels (RGB) or 1 (shown grey); a deeper layer
    raises LayerError pointing at ``kernel_grid``. ``page``/``page_size`` select output filters (all by default).
    """
    path, k = kernel(model_or_probe, layer)
    if k.shape[1] not in (1, 3):
        raise LayerError(f"{path!r} takes {k.shape[1]} input channels, not an RGB or grey image, so its kernels are "
                         "not images: use kernel_grid (per-input-channel tiles) or kernel_norms for it.")
    index = np.arange(*page_slice(len(k), page, page_size).indices(len(k)))
    images, scale = _to_display(k[index])
    images = images.transpose(0, 2, 3, 1)  # (n, kh, kw, in)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return Filters(path, images, scale, index)


def kernel_grid(model_or_probe, layer=None, page: int = 0, page_size: int | None = 64) -> Filters:
    """Per-input-channel kernels of a page of output filters: images (n, in, kh, kw) in [0, 1], scaled per output
    filter (one scale over all its input channels, so their relative strength shows). Default: 64 filters a page."""
    path, k = kernel(model_or_probe, layer)
    index = np.arange(*page_slice(len(k), page, page_size).indices(len(k)))
    images, scale = _to_display(k[index])
    return Filters(path, images, scale, index)


def kernel_norms(model_or_probe, layer=None) -> tuple[str, np.ndarray]:
    """(path, norms): float32 (out, in), the L2 norm of each kh x kw kernel: how strongly each output filter reads
    each input channel. A compact view of a deep layer (e.g. 128 x 64 values instead of 128 x 64 tiles)."""
    path, k = kernel(model_or_probe, layer)
    return path, np.sqrt(np.square(k).sum(axis=(2, 3))).astype(np.float32)


def weight_histogram(model_or_probe, layer=None, bins: int = 50, which: str = "kernel"):
    """(counts (bins,) int64, edges (bins + 1,) float64) of a layer's weights.

    ``layer`` None = the first convolution. ``which``: "kernel" (the layer's kernel), "all" (every weight the
    layer has: kernel, bias, batch-norm scale and statistics...). Edges span the values' range.
    """
    probe = as_probe(model_or_probe)
    bins = options.positive_int("bins", bins)
    if which == "kernel":
        _, k = kernel(probe, layer)
        values = k.ravel()
    elif which == "all":
        path, obj = _layer(probe, layer) if layer is not None else _conv_layer(probe, None)
        if not obj.weights:
            raise LayerError(f"{path!r} ({type(obj).__name__}) has no weights.")
        values = np.concatenate([np.asarray(w).ravel() for w in obj.weights])
    else:
        raise OptionError(f"which must be 'kernel' or 'all'; got {which!r}.")
    return np.histogram(values.astype(np.float64), bins=bins)


def num_pages(n: int, page_size: int | None) -> int:
    """How many pages of ``page_size`` items ``n`` items fill (page_size None: one page)."""
    if page_size is None:
        return 1
    if isinstance(page_size, bool) or not isinstance(page_size, (int, np.integer)) or page_size < 1:
        raise OptionError(f"page_size must be a positive integer or None; got {page_size!r}.")
    return max(1, math.ceil(n / int(page_size)))


def page_slice(n: int, page: int, page_size: int | None) -> slice:
    """The slice of ``n`` items on page ``page`` (0-based) of ``page_size``; OptionError past the last page."""
    pages = num_pages(n, page_size)
    if isinstance(page, bool) or not isinstance(page, (int, np.integer)) or not 0 <= page < pages:
        raise OptionError(f"page must be in [0, {pages - 1}] ({n} filters, {page_size} a page); got {page!r}.")
    if page_size is None:
        return slice(0, n)
    start = int(page) * int(page_size)
    return slice(start, min(n, start + int(page_size)))


def _to_display(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, ...) kernels -> (display values in [0, 1] with 0.5 for zero, per-filter scale (n,))."""
    scale = np.abs(k).reshape(len(k), -1).max(axis=1).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0).reshape((-1,) + (1,) * (k.ndim - 1))
    return (0.5 + k / (2 * safe)).astype(np.float32), scale


def _layer(probe, layer):
    info = probe.layer(layer)
    return info.path, probe.keras_layer(info.path)


def _conv_layer(probe, layer):
    if layer is None:
        for info in probe.layers:
            obj = probe.keras_layer(info.path)
            if isinstance(obj, _CONV):
                return info.path, obj
        raise LayerError(f"{probe.model.name!r} has no 2-D convolution layer (Conv2D, DepthwiseConv2D, "
                         "SeparableConv2D) whose filters could be shown.")
    path, obj = _layer(probe, layer)
    if not isinstance(obj, _CONV):
        convs = [i.path for i in probe.layers if isinstance(probe.keras_layer(i.path), _CONV)]
        raise LayerError(f"{path!r} is a {type(obj).__name__}, not a 2-D convolution, so it has no filters to show. "
                         f"Convolution layers: {', '.join(repr(c) for c in convs[:12]) or 'none'}.")
    return path, obj
