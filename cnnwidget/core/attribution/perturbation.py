"""Perturbation attributions: occlusion, RISE, LIME and Kernel SHAP. They only run the model forward.

Every method: ``method(probe_or_model, images, target=None, **options) -> (N, H, W) float32``. Hidden pixels take
``fill`` (see ``_common.fill_images``; default "mean", each image's mean colour: black would keep a dark object's
silhouette). The score is the target logit unless ``score="probability"``. All passes of all images are rows of
one stream, cut into chunks of ``batch_size`` images (default: the size the probe measured fastest for these images,
``_common.masked_scores``), and each mask is built inside the compiled pass from a few numbers (a box, a
coalition), so only scores come back to numpy. The unmasked images are scored once, by the pass that resolves the
target class; occlusion, LIME and Kernel SHAP use those scores rather than scoring the images again.
``progress(done, total)`` is called after each chunk; setting the ``cancel`` event stops within one chunk
(raises ``Cancelled``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from . import _common as c
from .segmentation import as_segments, superpixels

_SCORES = ("logit", "probability")


def _prepare(model, images, target, fill, score):
    """(probe, images, targets (PREDICTED unresolved), fill): the inputs checked, no pass made yet."""
    probe = c.as_probe(model)
    batch = probe.images(images)
    target = c.targets(probe, len(batch), target)
    c.choice("score", score, _SCORES)
    return probe, batch, target, c.fill_images(probe, batch, fill)


def _own_scores(probe, batch, target, score, batch_size, cancel):
    """(resolved targets (N,) int32, the images' own target scores (N,)): the one pass over the unmasked images,
    whose scores the methods use instead of scoring the unmasked images again. Made after every option is
    checked, and not at all when ``cancel`` is already set (a caller checking options only)."""
    c.stop_if_cancelled(cancel, "before the first pass")
    bs, fn = c.batch_size_of(probe, batch_size), c.logit_fn(probe)
    logits = np.concatenate([np.asarray(fn(tf.constant(batch[i:i + bs]))) for i in range(0, len(batch), bs)])
    target = np.where(target == c.PREDICTED, logits.argmax(-1), target).astype(np.int32)
    if score == "probability":
        logits = np.asarray(tf.nn.softmax(logits, -1))
    return target, logits[np.arange(len(batch)), target].astype(np.float32)


def _with_own(progress, n: int):
    """``progress`` counting the ``n`` unmasked images among the passes (scored first, by ``_prepare``)."""
    return None if progress is None else (lambda done, total: progress(done + n, total + n))


def _starts(size: int, patch: int, stride: int) -> np.ndarray:
    """Patch starts along one axis; the last patch is moved flush with the edge so every pixel is covered."""
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return np.asarray(starts, np.int32)


def occlusion(model, images, target=None, patch=16, stride=8, fill="mean", score="logit", batch_size=None,
              progress=None, cancel=None) -> np.ndarray:
    """Occlusion (Zeiler and Fergus 2014): slide a ``patch`` x ``patch`` square of ``fill`` with ``stride`` px;
    each pixel gets the mean score drop f(x) - f(x occluded) over the patches that cover it.

    ((H - patch) / stride + 1)^2 passes per image (one more row/column when the stride does not reach the edge).
    Returns (N, H, W) float32, signed (positive: hiding the pixel lowers the score), in score units.
    """
    probe, batch, target, fill = _prepare(model, images, target, fill, score)
    h, w = batch.shape[1:3]
    patch = c.positive_int("patch", patch)
    if patch > min(h, w):
        raise c.OptionError(f"patch must be at most the image side ({min(h, w)} px); got {patch}.")
    stride = c.positive_int("stride", stride)
    target, own = _own_scores(probe, batch, target, score, batch_size, cancel)
    ys, xs = _starts(h, patch, stride), _starts(w, patch, stride)
    boxes = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)  # (P, 2) top-left corners
    n, p = len(batch), len(boxes)

    def build(idx, size, side, corner):  # size and patch side are values: a new image size needs no trace
        y = tf.range(size[0])[None, :, None] - corner[:, 0, None, None]
        x = tf.range(size[1])[None, None, :] - corner[:, 1, None, None]
        return 1.0 - tf.cast((y >= 0) & (y < side) & (x >= 0) & (x < side), tf.float32)

    idx = np.repeat(np.arange(n, dtype=np.int32), p)
    corners = np.tile(boxes, (n, 1)).astype(np.int32)
    # The mask's size comes from the images fed, not from the first images this pass was traced for: a free-size
    # model's next images may differ (a build that baked h and w in gave them the first size's masks).
    scores = c.masked_scores(probe, "occlusion", build, batch, fill, target, idx, params=(corners,),
                             context=(np.asarray([h, w], np.int32), np.int32(patch)), score=score,
                             batch_size=batch_size, progress=_with_own(progress, n), cancel=cancel).reshape(n, p)
    drop = (own[:, None] - scores).reshape(n, len(ys), len(xs))
    rows = (np.arange(h)[None] - ys[:, None] >= 0) & (np.arange(h)[None] - ys[:, None] < patch)  # (Py, H)
    cols = (np.arange(w)[None] - xs[:, None] >= 0) & (np.arange(w)[None] - xs[:, None] < patch)  # (Px, W)
    total = np.einsum("nab,ah,bw->nhw", drop, rows.astype(np.float32), cols.astype(np.float32))
    count = np.einsum("ah,bw->hw", rows.astype(np.float32), cols.astype(np.float32))
    return (total / count).astype(np.float32)


def _rise_masks(grids, shifts, size, mi):
    """(B, H, W) smooth masks (Petsiuk et al.) for mask indices ``mi`` (B,), from grids (M, g, g), shifts (M, 2) and
    the image size (2,) int32, all tensors: the size is read when the pass runs, so one trace serves every size."""
    grid = tf.shape(grids)[1]
    cell = -(-size // grid)  # ceil(H / g), ceil(W / g)
    up = tf.image.resize(tf.gather(grids, mi)[..., None], (grid + 1) * cell, "bilinear")[..., 0]
    shift = tf.gather(shifts, mi)
    up = tf.gather(up, shift[:, :1] + tf.range(size[0])[None], batch_dims=1)  # rows shifted per mask
    return tf.gather(up, shift[:, 1:] + tf.range(size[1])[None], axis=2, batch_dims=1)


def rise(model, images, target=None, masks=2000, grid=7, keep=0.5, fill="mean", score="logit", seed=0,
         batch_size=None, progress=None, cancel=None) -> np.ndarray:
    """RISE (Petsiuk et al. 2018): sum_i f(x * M_i) M_i / (masks * keep), M_i random ``grid`` x ``grid`` binary
    grids (each cell kept with probability ``keep``), upsampled bilinearly and randomly shifted by under one cell.

    ``masks`` passes per image; the same masks for every image (from ``seed``). Returns (N, H, W) float32 in
    score units: the expected score when the pixel is kept.
    """
    probe, batch, target, fill = _prepare(model, images, target, fill, score)
    masks, grid = c.positive_int("masks", masks), c.positive_int("grid", grid)
    keep = c.positive_float("keep", keep)
    if keep > 1:
        raise c.OptionError(f"keep is a probability in (0, 1]; got {keep}.")
    target, _ = _own_scores(probe, batch, target, score, batch_size, cancel)
    h, w = batch.shape[1:3]
    rng = np.random.default_rng(seed)
    grids = (rng.random((masks, grid, grid)) < keep).astype(np.float32)
    shifts = np.stack([rng.integers(0, -(-h // grid), masks), rng.integers(0, -(-w // grid), masks)],
                      -1).astype(np.int32)
    size = np.asarray([h, w], np.int32)
    n = len(batch)
    mi = np.tile(np.arange(masks, dtype=np.int32), n)
    idx = np.repeat(np.arange(n, dtype=np.int32), masks)
    scores = c.masked_scores(probe, "rise", lambda _, *args: _rise_masks(*args), batch, fill, target, idx,
                             params=(mi,), context=(grids, shifts, size), score=score, batch_size=batch_size,
                             progress=progress, cancel=cancel).reshape(n, masks)
    return _rise_sum(scores, grids, shifts, size, c.batch_size_of(probe, batch_size)) / np.float32(masks * keep)


def _rise_sum(scores, grids, shifts, size, batch_size):
    """sum_i scores[:, i] M_i (N, H, W), remaking the masks in chunks: all of them at once could take gigabytes."""
    g, s, hw = tf.constant(grids), tf.constant(shifts), tf.constant(size)
    total = 0.0
    for start in range(0, grids.shape[0], batch_size):
        mi = tf.range(start, min(start + batch_size, grids.shape[0]))
        total += tf.einsum("nb,bhw->nhw", scores[:, start:start + batch_size], _rise_masks(g, s, hw, mi))
    return total.numpy().astype(np.float32)


def _coalition_mask(idx, segments, z):
    """TF builder: row b keeps the superpixels of image idx[b] that coalition z[b] (B, P) turns on."""
    return tf.gather(z, tf.gather(segments, idx), batch_dims=1)


def _segments(probe, batch, segments, n_segments):
    if segments is None:
        return superpixels(batch, n_segments=c.positive_int("n_segments", n_segments))
    return as_segments(segments, len(batch), batch.shape[1:3])


def _coalition_scores(probe, kind, batch, fill, target, seg, z, score, batch_size, progress, cancel, full, own):
    """f(coalition) for coalitions z (N, S, P): (N, S) float32. Column ``full`` is the all-on coalition, the
    image itself, whose scores ``own`` (N,) are known: it is not scored again."""
    n, s, _ = z.shape
    rest = np.arange(s) != full
    y = np.empty((n, s), np.float32)
    y[:, full] = own
    if s > 1:
        y[:, rest] = c.masked_scores(probe, kind, _coalition_mask, batch, fill, target,
                                     np.repeat(np.arange(n, dtype=np.int32), s - 1),
                                     params=(z[:, rest].reshape(n * (s - 1), -1),), context=(seg,), score=score,
                                     batch_size=batch_size, progress=_with_own(progress, n),
                                     cancel=cancel).reshape(n, s - 1)
    return y


def lime(model, images, target=None, samples=1000, segments=None, n_segments=50, kernel_width=0.25, alpha=1.0,
         fill="mean", score="logit", seed=0, batch_size=None, progress=None, cancel=None) -> np.ndarray:
    """LIME for images (Ribeiro et al. 2016), as ``lime.lime_image``: ``samples`` random coalitions of
    superpixels (each on with probability 1/2, the first all on), weighted by the exponential kernel
    sqrt(exp(-d^2 / kernel_width^2)) on the cosine distance d to the all-on coalition, fit by weighted ridge
    regression (``alpha``, with intercept); each pixel gets its superpixel's coefficient.

    segments: (H, W) or (N, H, W) integer labels; default ``superpixels(images, n_segments)``.
    ``samples`` passes per image. Returns (N, H, W) float32, signed, in score units per superpixel.
    """
    probe, batch, target, fill = _prepare(model, images, target, fill, score)
    samples = c.positive_int("samples", samples)
    width = c.positive_float("kernel_width", kernel_width)
    alpha = c.positive_float("alpha", alpha, allow_zero=True)
    seg = _segments(probe, batch, segments, n_segments)
    target, own = _own_scores(probe, batch, target, score, batch_size, cancel)
    p = seg.reshape(len(batch), -1).max(1) + 1  # superpixels per image
    rng = np.random.default_rng(seed)
    z = (rng.random((len(batch), samples, p.max())) < 0.5).astype(np.float32)
    z[:, 0] = 1
    z *= np.arange(p.max())[None, None] < p[:, None, None]  # padding columns stay off
    y = _coalition_scores(probe, "lime", batch, fill, target, seg, z, score, batch_size, progress, cancel, 0, own)
    # Cosine distance to the all-on coalition: 1 - |z|_1 / (|z|_2 sqrt(P)); 1 for the empty coalition.
    on = z.sum(-1)
    d = 1 - on / np.maximum(np.sqrt(on * p[:, None]), 1e-12)
    weights = np.sqrt(np.exp(-(d ** 2) / width ** 2))
    maps = np.empty(seg.shape, np.float32)
    for i in range(len(batch)):
        coef = _weighted_ridge(z[i, :, :p[i]], y[i], weights[i], alpha)
        maps[i] = coef[seg[i]]
    return maps


def _weighted_ridge(x, y, w, alpha):
    """Coefficients of sum_s w_s (y_s - b - x_s . beta)^2 + alpha |beta|^2 (intercept b not penalized)."""
    total = w.sum()
    w = w / total
    xm, ym = w @ x, w @ y
    xc, yc = x - xm, y - ym
    # Dividing the objective by sum(w) divides the penalty too: alpha is sklearn's Ridge alpha, as lime uses it.
    gram = (xc * w[:, None]).T @ xc + alpha / total * np.eye(x.shape[1])
    return np.linalg.solve(gram, (xc * w[:, None]).T @ yc).astype(np.float32)


def kernel_shap(model, images, target=None, samples=1000, segments=None, n_segments=50, fill="mean",
                score="logit", seed=0, batch_size=None, progress=None, cancel=None) -> np.ndarray:
    """Kernel SHAP (Lundberg and Lee 2017) over superpixels: Shapley values of the superpixels, estimated from
    ``samples`` passes per image (including the empty and the full coalition).

    Coalition sizes s in 1..P-1 are drawn with probability proportional to the Shapley kernel's total weight
    of that size, (P - 1) / (s (P - s)), members uniformly, each with its complement (paired sampling); drawn
    from the kernel, the samples are fit with equal weights, under the efficiency constraint
    sum(phi) = f(x) - f(empty) (solved exactly by eliminating one variable, as the ``shap`` package does).
    Returns (N, H, W) float32, signed; each pixel has its superpixel's Shapley value in score units, so the
    superpixels' values add up to f(x) - f(all hidden).
    """
    probe, batch, target, fill = _prepare(model, images, target, fill, score)
    samples = c.positive_int("samples", samples, minimum=3)
    seg = _segments(probe, batch, segments, n_segments)
    target, own = _own_scores(probe, batch, target, score, batch_size, cancel)
    n = len(batch)
    p = seg.reshape(n, -1).max(1) + 1
    rng = np.random.default_rng(seed)
    z = np.zeros((n, samples, p.max()), np.float32)
    z[:, 1] = np.arange(p.max())[None] < p[:, None]  # row 0: none, row 1: all (of this image's superpixels)
    for i in range(n):
        z[i, 2:, :p[i]] = _shapley_coalitions(rng, p[i], samples - 2)
    y = _coalition_scores(probe, "kernel_shap", batch, fill, target, seg, z, score, batch_size, progress, cancel, 1,
                          own)
    maps = np.empty(seg.shape, np.float32)
    for i in range(n):
        maps[i] = _constrained_fit(z[i, 2:, :p[i]], y[i, 2:], y[i, 0], y[i, 1])[seg[i]]
    return maps


def _shapley_coalitions(rng, p: int, count: int) -> np.ndarray:
    """(count, p) coalitions drawn from the Shapley kernel, in complementary pairs."""
    if p < 2:
        return np.ones((count, p), np.float32)
    sizes = np.arange(1, p)
    prob = (p - 1) / (sizes * (p - sizes))
    half = (count + 1) // 2
    s = rng.choice(sizes, half, p=prob / prob.sum())
    z = (np.argsort(rng.random((half, p)), 1) < s[:, None]).astype(np.float32)  # s random members each
    return np.concatenate([z, 1 - z])[:count]


def _constrained_fit(z, y, f_empty, f_full):
    """Least squares of y - f_empty on z with sum(phi) = f_full - f_empty; phi (p,) float32."""
    total = f_full - f_empty
    if z.shape[1] == 1:
        return np.array([total], np.float32)
    x = z[:, :-1] - z[:, -1:]
    phi = np.linalg.lstsq(x, y - f_empty - z[:, -1] * total, rcond=None)[0]
    return np.append(phi, total - phi.sum()).astype(np.float32)
