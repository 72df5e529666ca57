"""Every attribution method against a reference worked out without it, on toy models small enough to know the
answer: a GradientTape, numpy, or a closed form.

Three toys, each chosen so that a wrong formula gives a different number:

- ``cam_model``: conv -> ReLU -> Flatten -> Dense. The gradient at the ReLU output is the Dense kernel, which
  differs at every position, so pooling it with a max instead of a mean (or over the wrong axes) changes the map.
  (Global average pooling after the CAM layer, as in the demo model, makes it the same everywhere.)
- ``step_model``: logit_0 = sum_p w_p relu(x_p - 0.5), one pixel per unit. Its gradient is w_p [x_p > 0.5], so
  guided backpropagation, SmoothGrad's noise and Integrated Gradients' path integral have closed forms.
- ``linear_model``: logit_t = W_t . x + b_t. Hiding a set S of pixels (replacing them by ``fill``) lowers the logit
  by sum over S of W_t (x - fill), so occlusion, LIME and Kernel SHAP have closed forms, and the deletion and
  insertion curves can be recomputed from plain logits.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnwidget.core import ModelProbe
from cnnwidget.core import attribution as attr

# The methods this file checks by value; a method added to attr.METHODS must be added here, with its reference.
REFERENCED = {"saliency", "gradient_x_input", "smoothgrad", "integrated_gradients", "guided_backprop", "grad_cam",
              "grad_cam_plus_plus", "score_cam", "occlusion", "rise", "lime", "kernel_shap"}


def test_every_registered_method_has_a_reference_test_here():
    assert set(attr.METHODS) == REFERENCED


# -- the toys --------------------------------------------------------------------------------------------------

def cam_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inp)
    x = keras.layers.ReLU(name="relu")(x)
    out = keras.layers.Dense(3, name="out")(keras.layers.Flatten(name="flat")(x))
    model = keras.Model(inp, out)
    conv = model.get_layer("conv")
    conv.bias.assign(np.array([0.1, -0.1, 0.05, 0.0], np.float32))  # some units off, some on
    return model


def step_model(w):
    """logit_0 = sum_p w_p relu(x_p - 0.5) over a 4x4 grey image; logit_1 = -logit_0."""
    inp = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(1, 1, name="shift")(inp)
    x = keras.layers.ReLU(name="relu")(x)
    out = keras.layers.Dense(2, use_bias=False, name="out")(keras.layers.Flatten(name="flat")(x))
    model = keras.Model(inp, out)
    model.get_layer("shift").set_weights([np.ones((1, 1, 1, 1), np.float32), np.array([-0.5], np.float32)])
    model.get_layer("out").set_weights([np.stack([w, -w], 1).astype(np.float32)])
    return model


def linear_model(h=8, w=8, c=3, classes=2, seed=0):
    """logit = W . x + b, with W (h, w, c, classes) returned for the closed forms."""
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(h, w, c, classes)).astype(np.float32)
    bias = rng.normal(size=classes).astype(np.float32)
    model = pixels_then_dense((h, w, c), kernel.reshape(-1, classes), bias)
    return model, kernel, bias


def pixels_then_dense(shape, kernel, bias):
    """Dense on the flattened pixels; an identity 1x1 convolution first gives the probe its spatial layer."""
    inp = keras.Input(shape)
    pixels = keras.layers.Conv2D(shape[-1], 1, use_bias=False, name="pixels")
    out = keras.layers.Dense(kernel.shape[-1], name="out")(keras.layers.Flatten(name="flat")(pixels(inp)))
    pixels.set_weights([np.eye(shape[-1], dtype=np.float32)[None, None]])
    model = keras.Model(inp, out)
    model.get_layer("out").set_weights([kernel, bias])
    return model


@pytest.fixture(scope="module")
def cam():
    model = cam_model()
    return model, ModelProbe(model), np.random.default_rng(1).random((3, 8, 8, 2), dtype=np.float32)


@pytest.fixture(scope="module")
def linear():
    model, kernel, bias = linear_model()
    return model, ModelProbe(model), kernel, bias, np.random.default_rng(2).random((2, 8, 8, 3), dtype=np.float32)


W_STEP = np.array([1.0, -2.0, 0.5, 3.0, -1.0, 2.0, -0.5, 1.5, 2.5, -3.0, 1.0, -1.5, 0.75, 2.0, -2.5, 1.25], np.float32)
# Pixel values spread around the step at 0.5 (none on it), in a scrambled order.
X_STEP = np.random.default_rng(3).permutation(np.linspace(0.2, 0.8, 16) + 0.013).reshape(1, 4, 4, 1).astype(
    np.float32)


@pytest.fixture(scope="module")
def step():
    model = step_model(W_STEP)
    return ModelProbe(model), W_STEP.reshape(4, 4), X_STEP[0, ..., 0]


TARGETS = [0, 1, 2]  # one class per image of the cam toy, given explicitly (no argmax near a tie)


def tape_layer_gradient(model, x, layer, target):
    """(A, d logit_t / d A) of ``layer`` for images ``x``, float64, straight from a GradientTape."""
    sub = keras.Model(model.inputs, [model.get_layer(layer).output, model.output])
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        a, logits = sub(x)
        score = tf.gather(logits, tf.constant(target), batch_dims=1)
    return a.numpy().astype(np.float64), tape.gradient(score, a).numpy().astype(np.float64)


def tape_input_gradient(model, x, target):
    """d logit_t / d x (N, H, W, C) from a GradientTape."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.gather(model(x), tf.constant(target), batch_dims=1)
    return tape.gradient(score, x).numpy()


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# -- CAMs on a layer whose gradient varies over positions ------------------------------------------------------

def test_the_cam_toys_gradient_varies_over_positions_so_mean_and_max_pooling_differ(cam):
    model, _, x = cam
    _, g = tape_layer_gradient(model, x, "relu", TARGETS)
    assert np.abs(g.max(axis=(1, 2)) - g.mean(axis=(1, 2))).min() > 0.05


def test_grad_cam_weights_each_channel_by_the_spatial_mean_of_its_gradient(cam):
    model, probe, x = cam
    a, g = tape_layer_gradient(model, x, "relu", TARGETS)
    want = np.maximum(np.einsum("nijk,nk->nij", a, g.mean(axis=(1, 2))), 0)
    got = attr.grad_cam(probe, x, target=TARGETS, layer="relu", upsample=False)
    assert want.max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * want.max())


def test_grad_cam_plus_plus_weights_follow_the_papers_alpha_where_the_gradient_varies(cam):
    model, probe, x = cam
    a, g = tape_layer_gradient(model, x, "relu", TARGETS)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = g ** 2 / (2 * g ** 2 + a.sum(axis=(1, 2), keepdims=True) * g ** 3)  # Chattopadhay et al., eq. 19
    weights = (np.nan_to_num(alpha) * np.maximum(g, 0)).sum(axis=(1, 2))
    want = np.maximum(np.einsum("nijk,nk->nij", a, weights), 0)
    got = attr.grad_cam_plus_plus(probe, x, target=TARGETS, layer="relu", upsample=False)
    assert want.max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * want.max())


def _score_cam_reference(model, x, target, keep=None):
    """Wang et al.: each channel, scaled to [0, 1], masks the image (black elsewhere); its weight is the target
    probability of the masked image. The layer has the input's resolution, so no upsampling is involved."""
    a, _ = tape_layer_gradient(model, x, "relu", target)
    lo, hi = a.min(axis=(1, 2), keepdims=True), a.max(axis=(1, 2), keepdims=True)
    masks = (a - lo) / np.where(hi > lo, hi - lo, 1)  # (N, h, w, k)
    weights = np.zeros((a.shape[0], a.shape[-1]))
    for i in range(len(x)):
        channels = range(a.shape[-1]) if keep is None else np.argsort(-a[i].var(axis=(0, 1)))[:keep]
        for k in channels:
            masked = x[i] * masks[i, ..., k, None]
            weights[i, k] = softmax(model(masked[None].astype(np.float32)).numpy().astype(np.float64))[0, target[i]]
    return np.maximum(np.einsum("nijk,nk->nij", a, weights), 0)


@pytest.mark.parametrize("keep", [None, 2])
def test_score_cam_weights_channels_by_the_probability_of_the_image_they_mask(cam, keep):
    model, probe, x = cam
    want = _score_cam_reference(model, x, TARGETS, keep)
    got = attr.score_cam(probe, x, target=TARGETS, layer="relu", channels=keep, upsample=False)
    assert want.max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * want.max())


# -- gradient methods --------------------------------------------------------------------------------------------

def test_saliency_and_gradient_x_input_are_the_tapes_gradient_reduced_over_channels(cam):
    model, probe, x = cam
    g = tape_input_gradient(model, x, TARGETS)
    np.testing.assert_allclose(attr.saliency(probe, x, target=TARGETS), np.abs(g).max(-1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(attr.gradient_x_input(probe, x, target=TARGETS), (g * x).sum(-1), rtol=1e-5,
                               atol=1e-7)


@pytest.mark.parametrize("method", ["trapezoid", "gausslegendre"])
def test_integrated_gradients_equal_the_quadrature_of_tape_gradients_along_the_same_path(cam, method):
    model, probe, x = cam
    steps, base = 7, np.full((8, 8, 2), 0.3, np.float32)
    if method == "trapezoid":
        alphas, weights = np.linspace(0, 1, steps), np.full(steps, 1 / (steps - 1))
        weights[[0, -1]] /= 2
    else:
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        alphas, weights = (nodes + 1) / 2, weights / 2
    integral = sum(wk * tape_input_gradient(model, (base + a * (x - base)).astype(np.float32), TARGETS)
                   for a, wk in zip(alphas, weights))
    want = ((x - base) * integral).sum(-1)
    got = attr.integrated_gradients(probe, x, target=TARGETS, steps=steps, baseline=base, method=method)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())


def test_integrated_gradients_of_a_step_reach_its_closed_form(step):
    # From black, pixel p contributes w_p x_p * (fraction of the path above the step) = w_p (x_p - 0.5)^+.
    probe, w, x = step
    got = attr.integrated_gradients(probe, X_STEP, target=0, steps=201, baseline="black")[0]
    np.testing.assert_allclose(got, w * np.maximum(x - 0.5, 0), atol=0.02)


def test_guided_backprop_lets_only_positive_gradients_back_through_the_relu(step):
    # At the ReLU the incoming gradient is w_p: plain backprop passes it where x_p > 0.5, guided backprop only
    # where it is also positive. Saliency takes |.|, so the two differ exactly at the negative weights.
    probe, w, x = step
    on = x > 0.5
    np.testing.assert_allclose(attr.saliency(probe, X_STEP, target=0)[0], np.abs(w) * on, atol=1e-6)
    np.testing.assert_allclose(attr.guided_backprop(probe, X_STEP, target=0)[0], np.maximum(w, 0) * on, atol=1e-6)
    np.testing.assert_allclose(attr.guided_backprop(probe, X_STEP, target=1)[0], np.maximum(-w, 0) * on, atol=1e-6)


def test_smoothgrad_without_noise_is_saliency_and_has_no_variance(cam):
    _, probe, x = cam
    sal = attr.saliency(probe, x, target=TARGETS)
    np.testing.assert_allclose(attr.smoothgrad(probe, x, target=TARGETS, samples=3, noise=0), sal, rtol=1e-5)
    np.testing.assert_allclose(attr.smoothgrad(probe, x, target=TARGETS, samples=3, noise=0, variant="squared"),
                               sal ** 2, rtol=1e-4)
    np.testing.assert_allclose(attr.smoothgrad(probe, x, target=TARGETS, samples=3, noise=0, variant="variance"),
                               0, atol=1e-6 * sal.max() ** 2)


@pytest.mark.slow
def test_smoothgrad_averages_the_gradient_over_gaussian_noise_of_the_given_spread(step):
    # Under noise of sd s the step's gradient w_p [x_p + e > 0.5] is on with probability P = Phi((x_p - 0.5) / s):
    # mean |w_p| P, squared w_p^2 P, variance w_p^2 P (1 - P); each within 4 standard errors of 4096 draws (a
    # noise of 0.15 instead of 0.2 moves P by up to 0.08, twenty standard errors).
    probe, w, x = step
    s, samples = 0.2, 4096
    p = 0.5 * (1 + np.vectorize(math.erf)((x - 0.5) / (s * math.sqrt(2))))
    tol = 4 * np.sqrt(p * (1 - p) / samples) + 1e-4
    got = {v: attr.smoothgrad(probe, X_STEP, target=0, samples=samples, noise=s, variant=v)[0]
           for v in ("mean", "squared", "variance")}
    assert np.all(np.abs(got["mean"] / np.abs(w) - p) <= tol)
    assert np.all(np.abs(got["squared"] / w ** 2 - p) <= tol)
    assert np.all(np.abs(got["variance"] / w ** 2 - p * (1 - p)) <= tol)


# -- perturbation methods on a linear model ----------------------------------------------------------------------

FILL = 0.25


def _hidden_drop(kernel, x, t):
    """(H, W): how much hiding each pixel (to FILL) lowers logit t of the linear toy."""
    return (kernel[..., t] * (x - FILL)).sum(-1)


def _occlusion_reference(drop, patch, stride):
    """Each pixel: the mean over the patches covering it of the patch's drop; patches every ``stride`` px, the last
    one moved flush with the edge when the stride does not reach it."""
    def starts(size):
        s = list(range(0, size - patch + 1, stride))
        return s if s[-1] == size - patch else s + [size - patch]

    total, count = np.zeros(drop.shape), np.zeros(drop.shape)
    for y in starts(drop.shape[0]):
        for x in starts(drop.shape[1]):
            total[y:y + patch, x:x + patch] += drop[y:y + patch, x:x + patch].sum()
            count[y:y + patch, x:x + patch] += 1
    return total / count


@pytest.mark.parametrize("patch, stride", [(4, 4), (4, 2), (3, 2), (1, 1)])
def test_occlusion_is_the_mean_logit_drop_of_the_patches_covering_each_pixel(linear, patch, stride):
    _, probe, kernel, _, x = linear
    got = attr.occlusion(probe, x, target=[0, 1], patch=patch, stride=stride, fill=FILL)
    for i, t in enumerate([0, 1]):
        want = _occlusion_reference(_hidden_drop(kernel, x[i], t), patch, stride)
        np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-4)


SEGMENTS = (np.arange(8)[:, None] // 2) * 4 + np.arange(8)[None, :] // 2  # 16 blocks of 2x2 px


def _per_segment(drop):
    return np.array([drop[SEGMENTS == s].sum() for s in range(16)])[SEGMENTS]


@pytest.mark.parametrize("name", ["lime", "kernel_shap"])
def test_lime_and_kernel_shap_recover_a_linear_models_contribution_per_superpixel(linear, name):
    # Scores of coalitions are exactly linear in the coalition, so an unpenalized fit (lime alpha=0) and the
    # Shapley values both give each superpixel the drop of hiding it.
    _, probe, kernel, _, x = linear
    options = {"alpha": 0.0} if name == "lime" else {}
    got = attr.METHODS[name](probe, x, target=[1, 0], samples=64, segments=SEGMENTS, fill=FILL, **options)
    for i, t in enumerate([1, 0]):
        np.testing.assert_allclose(got[i], _per_segment(_hidden_drop(kernel, x[i], t)), rtol=1e-3, atol=1e-3)


def test_rise_with_every_cell_kept_is_the_score_everywhere(linear):
    model, probe, _, _, x = linear
    got = attr.rise(probe, x, target=[0, 1], masks=8, keep=1.0, fill=FILL)
    logits = model(x).numpy()
    np.testing.assert_allclose(got, np.broadcast_to(logits[[0, 1], [0, 1]][:, None, None], got.shape), rtol=1e-5)


@pytest.mark.slow
def test_rise_finds_the_one_pixel_a_model_reads():
    # f(x * M) = M(q) for a model reading pixel q of a white image: the map is E[M(q) M(p)] / keep, largest at q
    # and about keep (independent cells) far from it.
    kernel = np.zeros((16, 16, 1, 2), np.float32)
    q = (5, 11)
    kernel[q + (0, 0)] = 1.0
    model = pixels_then_dense((16, 16, 1), kernel.reshape(-1, 2), np.zeros(2, np.float32))
    got = attr.rise(model, np.ones((1, 16, 16, 1), np.float32), target=0, masks=4000, grid=4, keep=0.5, fill=0.0)[0]
    assert np.unravel_index(got.argmax(), got.shape) == q
    assert got[q] > 0.6 and abs(got[15, 0] - 0.5) < 0.1


# -- faithfulness metrics ----------------------------------------------------------------------------------------

def test_deletion_and_insertion_curves_are_the_probabilities_of_the_partly_hidden_images(linear):
    model, probe, _, _, x = linear
    maps = np.random.default_rng(4).random((2, 8, 8)).astype(np.float32)  # no ties: one order of pixels
    steps, target = 4, [1, 0]
    deletion, del_curves = attr.deletion(probe, x, maps, target=target, steps=steps, baseline=FILL,
                                         return_curves=True)
    insertion, ins_curves = attr.insertion(probe, x, maps, target=target, steps=steps, baseline=FILL,
                                           return_curves=True)
    for i, t in enumerate(target):
        order = np.argsort(-maps[i].ravel())
        want_del, want_ins = [], []
        for j in range(steps + 1):
            top = np.zeros(64, bool)
            top[order[:j * 64 // steps]] = True
            top = top.reshape(8, 8, 1)
            deleted = np.where(top, FILL, x[i])
            inserted = np.where(top, x[i], FILL)
            p = softmax(model(np.stack([deleted, inserted]).astype(np.float32)).numpy())[:, t]
            want_del.append(p[0])
            want_ins.append(p[1])
        np.testing.assert_allclose(del_curves[i], want_del, rtol=1e-4)
        np.testing.assert_allclose(ins_curves[i], want_ins, rtol=1e-4)
        np.testing.assert_allclose(deletion[i], np.mean((np.array(want_del[1:]) + want_del[:-1]) / 2), rtol=1e-4)
        np.testing.assert_allclose(insertion[i], np.mean((np.array(want_ins[1:]) + want_ins[:-1]) / 2), rtol=1e-4)


def test_spearman_is_one_for_the_same_order_minus_one_for_the_reverse_and_averages_ties():
    m = np.random.default_rng(5).random((3, 6, 6))
    np.testing.assert_allclose(attr.spearman(m, m), 1, atol=1e-6)
    np.testing.assert_allclose(attr.spearman(m, -m), -1, atol=1e-6)
    np.testing.assert_allclose(attr.spearman(m, 2 * m ** 3 + 1), 1, atol=1e-6)  # ranks only
    assert attr.spearman(np.array([[1, 2, 3, 4]]), np.array([[1, 3, 2, 4]]))[0] == pytest.approx(0.8)  # 1-6*2/60
    # ties get their mean rank: [1, 2.5, 2.5, 4] against [1, 2, 3, 4] -> Pearson of the ranks
    assert attr.spearman(np.array([[0, 1, 1, 2]]), np.array([[0, 1, 2, 3]]))[0] == pytest.approx(
        np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1])
