"""Class activation maps: Grad-CAM, Grad-CAM++ and Score-CAM, on any spatial layer of the probed model.

``layer`` is a path as listed by ``probe.layers``, so a layer inside a nested base model ("mobilenetv2/out_relu")
works: the probe replays nested models inline, which is what tf-keras-vis, tf-explain and the Keras Grad-CAM
example cannot do ("Graph disconnected"). Default layer: the last spatial layer that is a convolution
(any class with "Conv" in its name) or an activation (Activation, ReLU, LeakyReLU, PReLU, ELU), i.e. the
deepest feature map before pooling, dropout or flattening; pooling would only make the map coarser.

Every method returns (N, H, W) float32 >= 0 upsampled (bilinear) to the input, or with ``upsample=False`` the raw
(N, h, w) map at the layer's own resolution. The explained score is the target logit for the gradient CAMs and
the target probability for Score-CAM (as its authors define it).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..errors import LayerError
from . import _common as c

_ACTIVATIONS = {"Activation", "ReLU", "LeakyReLU", "PReLU", "ELU"}


def default_layer(probe) -> str:
    """The path of the layer CAMs use when none is given (see the module docstring for the rule)."""
    candidates = [i for i in probe.spatial_layers if "Conv" in i.class_name or i.class_name in _ACTIVATIONS]
    if not candidates:
        candidates = probe.spatial_layers
    return candidates[-1].path


def _layer(probe, layer, method: str) -> str:
    if layer is None:
        return default_layer(probe)
    info = probe.layer(layer)  # LayerError with suggestions for unknown names
    if not info.is_spatial:
        spatial = ", ".join(repr(i.path) for i in probe.spatial_layers[-6:])
        raise LayerError(f"{method} needs a spatial layer, whose output is a feature map (H, W, C); {info.path!r} "
                         f"outputs {info.output_shape}. The deepest spatial layers are: {spatial}.")
    return info.path


def _activations_and_gradients(probe, batch, target, path, batch_size):
    """(A (N, h, w, k), d logit_t / d A (N, h, w, k)) numpy, in chunks."""
    fn = c.layer_gradient_fn(probe, path)
    bs = c.batch_size_of(probe, batch_size)
    acts, grads = [], []
    for i in range(0, len(batch), bs):
        a, g, _, _ = fn(tf.constant(batch[i:i + bs]), tf.constant(target[i:i + bs]))
        acts.append(a)
        grads.append(g)
    return tf.concat(acts, 0).numpy(), tf.concat(grads, 0).numpy()


def _finish(batch: np.ndarray, raw: np.ndarray, upsample: bool) -> np.ndarray:
    raw = np.maximum(raw, 0).astype(np.float32)  # only features that raise the score (Selvaraju et al.)
    # The images' own size: a model that takes any size has None in probe.input_shape.
    return c.upsample(raw, batch.shape[1:3]) if upsample else raw


def _prepare(model, images, target, layer, method):
    probe = c.as_probe(model)
    batch = probe.images(images)
    target = c.targets(probe, len(batch), target)
    return probe, batch, target, _layer(probe, layer, method)


def grad_cam(model, images, target=None, layer=None, upsample=True, batch_size=None) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017): ReLU(sum_k w_k A_k) with w_k the spatial mean of d logit_t / d A_k.

    One forward and backward pass per image. Returns (N, H, W) float32 >= 0 in logit units, or the raw
    (N, h, w) map with ``upsample=False``. Non-spatial ``layer`` -> LayerError."""
    probe, batch, target, path = _prepare(model, images, target, layer, "grad_cam")
    a, g = _activations_and_gradients(probe, batch, target, path, batch_size)
    return _finish(batch, np.einsum("nijk,nk->nij", a, g.mean(axis=(1, 2))), upsample)


def grad_cam_plus_plus(model, images, target=None, layer=None, upsample=True, batch_size=None) -> np.ndarray:
    """Grad-CAM++ (Chattopadhay et al. 2018): channel weights sum_ij alpha_ij ReLU(g_ij), with
    alpha = g^2 / (2 g^2 + sum_ij(A) g^3) for g = d logit_t / d A.

    The paper's exp(logit) factors cancel in alpha and scale every weight by the same positive number, so they
    are left out (they overflow for large logits). Returns (N, H, W) float32 >= 0 (``upsample=False``: raw)."""
    probe, batch, target, path = _prepare(model, images, target, layer, "grad_cam_plus_plus")
    a, g = _activations_and_gradients(probe, batch, target, path, batch_size)
    # g^2 (2 + sum(A) g) is 2 g^2 + sum(A) g^3 without a cube: numpy's float32 ** 3 is a pow call, 16 ms on
    # MobileNetV2's last layer, a quarter of the whole method (benchmarks/attribution.py).
    g2 = g * g
    denom = g2 * (2 + a.sum(axis=(1, 2), keepdims=True) * g)
    alpha = np.divide(g2, denom, out=np.zeros_like(g2), where=denom != 0)
    weights = (alpha * np.maximum(g, 0)).sum(axis=(1, 2))
    return _finish(batch, np.einsum("nijk,nk->nij", a, weights), upsample)


def score_cam(model, images, target=None, layer=None, channels=None, fill="black", upsample=True,
              batch_size=None, progress=None, cancel=None) -> np.ndarray:
    """Score-CAM (Wang et al. 2020): ReLU(sum_k p_t(x * M_k) A_k), M_k the upsampled channel k of the layer
    scaled to [0, 1], and p_t the target probability of the masked image (pixels outside the mask become
    ``fill``, black by default as in the paper; see ``_common.fill_images``).

    One forward pass per channel per image, batched under ``batch_size`` across images and channels.
    channels: keep only the ``channels`` channels of largest spatial variance per image (Faster Score-CAM);
              None = all.
    Returns (N, H, W) float32 >= 0 (``upsample=False``: raw (N, h, w)). ``progress``/``cancel`` as in
    ``_common.masked_scores``.
    """
    probe, batch, target, path = _prepare(model, images, target, layer, "score_cam")
    fill = c.fill_images(probe, batch, fill)
    channels = None if channels is None else c.positive_int("channels", channels)
    target, _ = c.predicted(probe, batch, target, batch_size, cancel)
    a = probe.activations(batch, [path])[path]  # (N, h, w, k)
    n, k = len(batch), a.shape[-1]
    keep = k if channels is None else min(channels, k)
    order = np.argsort(-a.var(axis=(1, 2)), axis=1, kind="stable")[:, :keep].astype(np.int32)  # (N, keep)
    lo, hi = a.min(axis=(1, 2), keepdims=True), a.max(axis=(1, 2), keepdims=True)
    masks = np.transpose((a - lo) / np.where(hi > lo, hi - lo, 1), (0, 3, 1, 2)).astype(np.float32)  # (N, k, h, w)
    size = np.asarray(batch.shape[1:3], np.int32)  # fed as a value: a free-size model's next size needs no trace

    def build(idx, masks, size, channel):
        low = tf.gather_nd(masks, tf.stack([idx, channel], 1))  # (B, h, w)
        return tf.image.resize(low[..., None], tf.reshape(size, [2]), "bilinear")[..., 0]

    scores = c.masked_scores(probe, "score_cam", build, batch, fill, target,
                             np.repeat(np.arange(n, dtype=np.int32), keep), params=(order.reshape(-1),),
                             context=(masks, size), score="probability", batch_size=batch_size, progress=progress,
                             cancel=cancel).reshape(n, keep)
    weights = np.zeros((n, k), np.float32)
    np.put_along_axis(weights, order, scores, axis=1)
    return _finish(batch, np.einsum("nijk,nk->nij", a, weights), upsample)
