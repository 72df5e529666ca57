"""Attribution methods on the demo model and a small nested model: exactness, shapes, refusals, no retracing."""

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnwidget import demo
from cnnwidget.core import ImageError, LayerError, ModelProbe, OptionError
from cnnwidget.core import attribution as attr

N = 4
FAST = {  # every method with its cheapest sensible options, for shape and refusal tests
    "saliency": {}, "gradient_x_input": {}, "guided_backprop": {}, "smoothgrad": {"samples": 4},
    "integrated_gradients": {"steps": 4}, "grad_cam": {}, "grad_cam_plus_plus": {}, "score_cam": {"channels": 8},
    "occlusion": {"patch": 32, "stride": 32}, "rise": {"masks": 16}, "lime": {"samples": 16},
    "kernel_shap": {"samples": 16},
}


@pytest.fixture(scope="module")
def model():
    return demo.load_model()


@pytest.fixture(scope="module")
def probe(model):
    return ModelProbe(model)


@pytest.fixture(scope="module")
def images():
    return demo.shapes(N, seed=7).images  # seeds 0 and 1 trained the model


def _logits(model, x):
    """The demo model's pre-softmax output, computed directly (not through the probe)."""
    head = model.get_layer("predictions")
    features = keras.Model(model.input, head.input)(x)
    return tf.matmul(features, head.kernel) + head.bias


def test_saliency_equals_the_gradient_taken_with_a_tape(model, probe, images):
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = _logits(model, x)
        score = tf.gather(logits, tf.argmax(logits, -1), batch_dims=1)
    want = np.abs(tape.gradient(score, x).numpy()).max(-1)
    np.testing.assert_allclose(attr.saliency(probe, images), want, atol=1e-5)


def test_grad_cam_plus_plus_weights_follow_the_papers_alpha(model, probe, images):
    x = tf.constant(images)
    relu4 = keras.Model(model.input, model.get_layer("block4_relu").output)
    rest = keras.Sequential([model.get_layer(n) for n in ("block4_dropout", "gap", "gap_dropout")])
    head = model.get_layer("predictions")
    with tf.GradientTape() as tape:
        a = relu4(x)
        tape.watch(a)
        logits = tf.matmul(rest(a), head.kernel) + head.bias
        score = tf.gather(logits, tf.argmax(logits, -1), batch_dims=1)
    a, g = a.numpy().astype(np.float64), tape.gradient(score, a).numpy().astype(np.float64)
    alpha = g ** 2 / (2 * g ** 2 + a.sum(axis=(1, 2), keepdims=True) * g ** 3)  # Chattopadhay et al., eq. 19
    weights = (np.nan_to_num(alpha) * np.maximum(g, 0)).sum(axis=(1, 2))
    want = np.maximum(np.einsum("nijk,nk->nij", a, weights), 0)
    got = attr.grad_cam_plus_plus(probe, images, layer="block4_relu", upsample=False)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * want.max())


@pytest.mark.slow
def test_integrated_gradients_add_up_to_the_logit_change_within_5_percent(probe):
    images = demo.shapes(8, seed=7).images
    maps, gap = attr.integrated_gradients(probe, images, steps=50, return_gap=True)
    print(f"IG completeness gap at 50 steps (mean baseline): max {np.abs(gap).max():.4f}, "
          f"mean {np.abs(gap).mean():.4f}")
    assert np.abs(gap).max() < 0.05
    np.testing.assert_allclose(attr.completeness_gap(probe, images, maps, None), gap, atol=1e-5)


@pytest.mark.parametrize("name", sorted(FAST))
def test_every_method_returns_one_float32_per_input_pixel(probe, images, name):
    out = attr.METHODS[name](probe, images, **FAST[name])
    assert out.shape == (N, 64, 64) and out.dtype == np.float32 and np.isfinite(out).all()


def test_methods_take_a_plain_model_one_image_and_a_target_per_image(model, images):
    assert attr.grad_cam(model, images[0], target=3).shape == (1, 64, 64)
    assert attr.saliency(model, images, target=[0, 1, 2, 3]).shape == (N, 64, 64)


def test_changing_the_target_or_the_batch_size_does_not_retrace(probe, images):
    attr.saliency(probe, images, target=0)
    attr.grad_cam(probe, images, target=0)
    attr.smoothgrad(probe, images, target=0, samples=2)
    attr.occlusion(probe, images, target=0, patch=32, stride=32)
    before = probe.trace_count
    for target in (1, [2, 3, 4, 5], None):
        attr.saliency(probe, images[:3], target=target if not isinstance(target, list) else target[:3])
        attr.grad_cam(probe, images, target=target)
        attr.smoothgrad(probe, images, target=target, samples=3)
        attr.occlusion(probe, images, target=target, patch=32, stride=32)
    assert probe.trace_count == before


@pytest.mark.slow
def test_guided_backprop_differs_from_saliency_and_leaves_the_model_as_it_was(images):
    model = demo.load_model()
    before = model.predict(images, verbose=0)
    probe = ModelProbe(model)
    guided = attr.guided_backprop(probe, images)
    assert not np.allclose(guided, attr.saliency(probe, images))
    assert guided.min() >= 0
    np.testing.assert_allclose(model.predict(images, verbose=0), before, atol=1e-6)
    assert all(getattr(layer, "activation", None) in (None, keras.activations.relu, keras.activations.softmax,
                                                      keras.activations.linear) for layer in model.layers)
    # A plain tape on the same model still takes the ordinary ReLU gradient.
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.reduce_sum(_logits(model, x)[:, 0])
    assert (tape.gradient(score, x).numpy() < 0).any()


def _nested():
    inp = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(4, name="pool")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    base = keras.Model(inp, x, name="base")
    base.trainable = False  # the transfer-learning case: a frozen base
    head = keras.layers.Dense(5, activation="softmax", name="out")
    return keras.Sequential([keras.Input((64, 64, 3)), base, keras.layers.GlobalAveragePooling2D(), head]), base, head


def test_grad_cam_works_on_layers_inside_a_nested_base_model(images):
    model, base, head = _nested()
    raw = attr.grad_cam(model, images, target=2, layer="base/conv2", upsample=False)
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        a = base(x)
        score = tf.matmul(tf.reduce_mean(a, (1, 2)), head.kernel)[:, 2] + head.bias[2]
    g = tape.gradient(score, a).numpy()
    want = np.maximum(np.einsum("nijk,nk->nij", a.numpy(), g.mean((1, 2))), 0)
    np.testing.assert_allclose(raw, want, rtol=1e-4, atol=1e-6)
    inner = attr.grad_cam(model, images, layer="base/conv1")
    assert inner.shape == (N, 64, 64) and inner.max() > 0
    assert attr.grad_cam(model, images, layer="conv1", upsample=False).shape == (N, 64, 64)
    assert attr.default_layer(ModelProbe(model)) == "base/conv2"


def test_the_default_cam_layer_is_the_last_conv_or_activation_output(probe):
    assert attr.default_layer(probe) == "block4_relu"  # not block4_dropout after it


def test_kernel_shap_values_add_up_to_the_full_minus_the_empty_coalition(probe, images):
    seg = attr.superpixels(images, n_segments=16)
    maps = attr.kernel_shap(probe, images, samples=64, segments=seg, fill=0.0)
    empty = ModelProbe(probe.model).forward((), logits=True)(tf.zeros_like(images))[-1].numpy()
    logits = _logits(probe.model, images).numpy()
    t = logits.argmax(-1)
    for i in range(N):
        per_segment = np.array([maps[i][seg[i] == s][0] for s in range(seg[i].max() + 1)])
        np.testing.assert_allclose(per_segment.sum(), logits[i, t[i]] - empty[i, t[i]], rtol=1e-3, atol=1e-3)


def test_superpixels_label_every_pixel_with_about_the_asked_number_of_segments(images):
    seg = attr.superpixels(images, n_segments=25)
    assert seg.shape == (N, 64, 64) and seg.dtype == np.int32
    for s in seg:
        assert np.array_equal(np.unique(s), np.arange(s.max() + 1)) and 10 <= s.max() + 1 <= 25


def test_deletion_and_insertion_give_one_area_per_image_and_the_curves(probe, images):
    maps = attr.grad_cam(probe, images)
    auc, curves = attr.deletion(probe, images, maps, steps=8, return_curves=True)
    assert auc.shape == (N,) and curves.shape == (N, 9) and ((0 <= auc) & (auc <= 1)).all()
    p = probe.predict(images)
    t = p.argmax(-1)
    np.testing.assert_allclose(curves[:, 0], p.max(-1), rtol=1e-4)
    # the default baseline is each image's mean colour: all pixels removed, or none inserted yet
    flat = np.broadcast_to(images.mean(axis=(1, 2), keepdims=True), images.shape)
    p_flat = probe.predict(flat)[np.arange(N), t]
    np.testing.assert_allclose(curves[:, -1], p_flat, rtol=1e-4, atol=1e-6)
    auc, curves = attr.insertion(probe, images, maps, steps=8, return_curves=True)
    assert auc.shape == (N,) and curves.shape == (N, 9)
    np.testing.assert_allclose(curves[:, 0], p_flat, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(curves[:, -1], p.max(-1), rtol=1e-4)
    np.testing.assert_allclose(auc, ((curves[:, 1:] + curves[:, :-1]) / 2).mean(1), rtol=1e-5)


@pytest.mark.slow
def test_randomization_compares_maps_with_a_randomized_copy_and_spares_the_model(model):
    images = demo.shapes(16, seed=7).images
    weights = [w.copy() for w in model.get_weights()]
    keras.utils.set_random_seed(0)  # the re-drawn weights; mean rho over 16 images was 0.10-0.28 for seeds 0-5
    rho = attr.randomization(model, images, attr.grad_cam)
    assert rho.shape == (16,) and rho.mean() < 0.5, np.round(rho, 2)  # Grad-CAM explains the model
    # A "map" that only shows the image (its brightness) is the same for any weights: the check flags it.
    brightness = attr.randomization(model, images, lambda probe, x, t: x.mean(-1))
    np.testing.assert_allclose(brightness, 1.0, atol=1e-6)
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    top = attr.randomized_model(model, layers=["predictions"])
    assert not np.allclose(top.get_layer("predictions").kernel, model.get_layer("predictions").kernel)
    np.testing.assert_array_equal(top.get_layer("block1_conv").kernel, model.get_layer("block1_conv").kernel)


def test_cancel_stops_a_long_method_and_progress_reports_chunks(probe, images):
    seen = []
    attr.lime(probe, images, samples=40, batch_size=32, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (N * 40, N * 40) and len(seen) == 5
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(attr.Cancelled):
        attr.lime(probe, images, samples=40, cancel=cancel)


@pytest.mark.parametrize("call, error, words", [
    (lambda p, x: attr.saliency(p, x, target=10), OptionError, "[0, 9]"),
    (lambda p, x: attr.saliency(p, x, target=-1), OptionError, "out of range"),
    (lambda p, x: attr.saliency(p, x, target=[1, 2]), OptionError, "one class per image"),
    (lambda p, x: attr.saliency(p, x, target="cat"), OptionError, "an int"),
    (lambda p, x: attr.integrated_gradients(p, x, steps=0), OptionError, "steps must be an integer >= 1"),
    (lambda p, x: attr.smoothgrad(p, x, samples=0), OptionError, "samples must be an integer >= 1"),
    (lambda p, x: attr.lime(p, x, samples=0), OptionError, "samples"),
    (lambda p, x: attr.kernel_shap(p, x, samples=2), OptionError, ">= 3"),
    (lambda p, x: attr.smoothgrad(p, x, noise=-1), OptionError, "noise"),
    (lambda p, x: attr.smoothgrad(p, x, variant="median"), OptionError, "'variance'"),
    (lambda p, x: attr.integrated_gradients(p, x, baseline="white"), OptionError, "'blur'"),
    (lambda p, x: attr.integrated_gradients(p, x, baseline=np.zeros((3, 3))), OptionError, "(H, W, C)"),
    (lambda p, x: attr.occlusion(p, x, patch=100), OptionError, "at most the image side (64 px)"),
    (lambda p, x: attr.occlusion(p, x, fill="grey"), OptionError, "'mean'"),
    (lambda p, x: attr.rise(p, x, keep=1.5), OptionError, "probability"),
    (lambda p, x: attr.grad_cam(p, x, layer="gap"), LayerError, "needs a spatial layer"),
    (lambda p, x: attr.score_cam(p, x, layer="gap"), LayerError, "(128,)"),
    (lambda p, x: attr.grad_cam(p, x, layer="block9_conv"), LayerError, "block4_conv"),
    (lambda p, x: attr.saliency(p, x[:, :32]), ImageError, "64x64"),
    (lambda p, x: attr.lime(p, x, segments=np.zeros((5, 5), int)), OptionError, "segments"),
    (lambda p, x: attr.deletion(p, x, np.zeros((1, 64, 64))), OptionError, "(N, H, W)"),
    (lambda p, x: attr.randomization(p, x, "grad_cam"), OptionError, "attribution function"),
])
def test_bad_input_is_refused_with_a_message_that_says_what_was_expected(probe, images, call, error, words):
    with pytest.raises(error) as info:
        call(probe, images)
    assert words in str(info.value)
