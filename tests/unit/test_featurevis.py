"""Feature visualization core (cnnwidget.core.featurevis): objectives, parameterizations, transforms and render, on
the demo model with few steps. The proofs that optimization reaches its objective are in test_featurevis_quality.py.
"""

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnwidget.core import LayerError, ModelError, ModelProbe, OptionError
from cnnwidget.core import featurevis as fv

LAYER = "block3_relu"  # (16, 16, 64) on the demo model


@pytest.fixture(scope="module")
def probe():
    from cnnwidget import demo

    return ModelProbe(demo.load_model())


def activations(probe, layer=LAYER, batch=2, seed=0):
    """An accessor holding real activations of ``layer`` for random images, for evaluating objectives by hand."""
    images = np.random.default_rng(seed).random((batch, 64, 64, 3), dtype=np.float32)
    act = tf.constant(probe.activations(images, [layer])[layer])
    logits = tf.constant(np.random.default_rng(seed).normal(size=(batch, 10)).astype(np.float32))
    return fv.Activations({layer: act}, logits, tf.constant(images)), act.numpy(), logits.numpy(), images


def value(objective, probe, T):
    return float(objective(T, [tf.constant(v) for v in objective.bind(probe)]))


# -- objectives and their algebra -------------------------------------------------------------------------------

def test_channel_is_the_spatial_mean_summed_over_images(probe):
    T, act, _, _ = activations(probe)
    assert value(fv.channel(LAYER, 5), probe, T) == pytest.approx(act[..., 5].mean(axis=(1, 2)).sum(), rel=1e-5)


def test_objectives_add_subtract_negate_and_scale_by_numbers(probe):
    T, act, logits, _ = activations(probe)
    a, b = fv.channel(LAYER, 1), fv.class_logit(3)
    va, vb = act[..., 1].mean(axis=(1, 2)).sum(), logits[:, 3].sum()
    assert value(a + b, probe, T) == pytest.approx(va + vb, rel=1e-5)
    assert value(a - 2 * b, probe, T) == pytest.approx(va - 2 * vb, rel=1e-5)
    assert value(-a / 4, probe, T) == pytest.approx(-va / 4, rel=1e-5)
    assert value(0.5 * (a - b) * 3, probe, T) == pytest.approx(1.5 * (va - vb), rel=1e-5)
    assert set((a + b).layers) == {LAYER} and (a + b).logits and not a.logits


def test_objective_names_read_like_the_expression():
    objective = fv.channel(LAYER, 12) - 1e-3 * fv.total_variation()
    assert repr(objective) == "channel('block3_relu', 12) - 0.001 * total_variation()"
    assert repr(-(fv.l1() + fv.blur())) == "-(l1(0.5) + blur())"


def test_numbers_stay_out_of_the_key_so_the_compiled_step_is_shared():
    assert fv.channel(LAYER, 3).key == fv.channel(LAYER, 40).key
    assert (2 * fv.deepdream(LAYER)).key == (7 * fv.deepdream(LAYER)).key
    assert fv.channel(LAYER, 3).key != fv.channel("block2_relu", 3).key
    assert fv.channels(LAYER, [0, 1]).key != fv.channels(LAYER, [0, 1, 2]).key  # the batch is structure


def test_objectives_multiply_by_numbers_only():
    with pytest.raises(TypeError):
        fv.channel(LAYER, 0) * fv.channel(LAYER, 1)
    with pytest.raises(TypeError):
        fv.channel(LAYER, 0) + 1.0


def test_neuron_reads_one_position_default_the_centre(probe):
    T, act, _, _ = activations(probe)
    assert value(fv.neuron(LAYER, 2), probe, T) == pytest.approx(act[:, 8, 8, 2].sum(), rel=1e-5)
    assert value(fv.neuron(LAYER, 2, x=3, y=11), probe, T) == pytest.approx(act[:, 11, 3, 2].sum(), rel=1e-5)


def test_deepdream_is_the_mean_squared_activation(probe):
    T, act, _, _ = activations(probe)
    assert value(fv.deepdream(LAYER), probe, T) == pytest.approx((act ** 2).mean(axis=(1, 2, 3)).sum(), rel=1e-5)


def test_direction_is_the_dot_product_with_the_unit_vector(probe):
    T, act, _, _ = activations(probe)
    vector = np.random.default_rng(1).normal(size=64)
    dot = act @ (vector / np.linalg.norm(vector))
    assert value(fv.direction(LAYER, vector), probe, T) == pytest.approx(dot.mean(axis=(1, 2)).sum(), rel=1e-4)
    cos = np.maximum(dot / np.linalg.norm(act, axis=-1), 0.1)  # Lucid floors the cosine at 0.1
    assert value(fv.direction(LAYER, vector, cossim_pow=2.0), probe, T) == pytest.approx(
        (dot * cos ** 2).mean(axis=(1, 2)).sum(), rel=1e-3)


def test_diversity_is_zero_for_orthogonal_styles_and_minus_one_per_image_for_identical(probe):
    a = np.zeros((2, 4, 4, 64), np.float32)
    a[0, ..., 0], a[1, ..., 1] = 1, 1  # no channel shared: Gram matrices orthogonal
    assert value(fv.diversity(LAYER), probe, fv.Activations({LAYER: tf.constant(a)})) == pytest.approx(0.0)
    same = np.repeat(a[:1], 3, axis=0)
    assert value(fv.diversity(LAYER), probe, fv.Activations({LAYER: tf.constant(same)})) == pytest.approx(-2.0)


def test_penalties_measure_the_image_in_unit_range(probe):
    flat = fv.Activations({}, images=tf.fill([2, 8, 8, 3], 0.5))
    assert value(fv.total_variation(), probe, flat) == 0
    assert value(fv.l1(), probe, flat) == 0
    assert value(fv.blur(), probe, flat) == pytest.approx(0.0, abs=1e-7)
    stripes = np.zeros((1, 8, 8, 3), np.float32)
    stripes[:, :, ::2] = 1
    noisy = fv.Activations({}, images=tf.constant(stripes))
    assert value(fv.total_variation(), probe, noisy) == pytest.approx(1.0)  # every horizontal step changes by 1
    assert value(fv.l1(), probe, noisy) == pytest.approx(0.5)
    assert value(fv.blur(), probe, noisy) > 0


def test_batch_objectives_give_each_image_its_own_unit(probe):
    T, act, logits, _ = activations(probe)
    assert value(fv.channels(LAYER, [4, 9]), probe, T) == pytest.approx(
        act[0, ..., 4].mean() + act[1, ..., 9].mean(), rel=1e-5)
    assert value(fv.class_logits([7, 2]), probe, T) == pytest.approx(logits[0, 7] + logits[1, 2], rel=1e-5)
    one_each = fv.batch(fv.channel(LAYER, 4), 0) + fv.batch(fv.channel(LAYER, 9), 1)
    assert value(one_each, probe, T) == pytest.approx(value(fv.channels(LAYER, [4, 9]), probe, T), rel=1e-5)
    assert one_each.min_batch == 2 and fv.channels(LAYER, [4, 9]).batch == 2


def test_class_logit_can_subtract_a_smooth_maximum_of_the_other_logits(probe):
    T, _, logits, _ = activations(probe)
    others = np.log(np.exp(np.delete(logits, 3, axis=1)).sum(axis=1))
    assert value(fv.class_logit(3, others=0.5), probe, T) == pytest.approx((logits[:, 3] - 0.5 * others).sum(),
                                                                           rel=1e-5)
    assert value(fv.class_logits([3, 3], others=0.5), probe, T) == pytest.approx(
        value(fv.class_logit(3, others=0.5), probe, T), rel=1e-5)


def test_layer_channel_strings_are_channel_objectives():
    assert fv.as_objective("block3_relu:7").name == "channel('block3_relu', 7)"


# -- bad objectives: each message says what is wrong and what is allowed ----------------------------------------

@pytest.mark.parametrize("objective, error, words", [
    (fv.channel("block3_rel", 0), LayerError, ["No layer named 'block3_rel'", "Did you mean", "'block3_relu'"]),
    (fv.channel(LAYER, 64), OptionError, ["channel 64 is out of range", "64 channels", "0 to 63"]),
    (fv.channel(LAYER, -1), OptionError, ["0 to 63"]),
    (fv.channels(LAYER, [0, 99]), OptionError, ["channel 99", "0 to 63"]),
    (fv.neuron("gap", 0), LayerError, ["neuron needs a spatial layer", "'gap'", "vector"]),
    (fv.diversity("gap"), LayerError, ["diversity needs a spatial layer"]),
    (fv.neuron(LAYER, 0, x=16), OptionError, ["x 16 is out of range", "16 wide", "0 to 15"]),
    (fv.class_logit(10), OptionError, ["class index 10 is out of range", "10 classes", "0 to 9"]),
    (fv.class_logits([0, 12]), OptionError, ["class index 12"]),
    (fv.direction(LAYER, np.ones(5)), OptionError, ["one entry per channel", "(64,)", "(5,)"]),
    (fv.direction(LAYER, np.zeros(64)), OptionError, ["non-zero"]),
])
def test_bad_objectives_are_refused_when_bound_with_a_clear_message(probe, objective, error, words):
    with pytest.raises(error) as info:
        objective.bind(probe)
    for word in words:
        assert word in str(info.value)


def test_batch_objectives_of_different_sizes_do_not_combine():
    with pytest.raises(OptionError, match="batch of 2 images.*batch of 3"):
        fv.channels(LAYER, [0, 1]) + fv.channels(LAYER, [0, 1, 2])


@pytest.mark.parametrize("kwargs, words", [
    (dict(objective=fv.channels(LAYER, [0, 1, 2]), batch=2), ["optimizes 3 images", "batch=2"]),
    (dict(objective=fv.diversity(LAYER), batch=1), ["at least 2 images"]),
    (dict(steps=-1), ["steps must be a whole number >= 0"]),
    (dict(learning_rate=0), ["learning_rate must be a number > 0"]),
    (dict(seed=1.5), ["seed must be a whole number >= 0"]),
    (dict(size=4), ["size must be a whole number >= 8"]),
    (dict(transforms=[fv.jitter(80)]), ["too small for the transforms", "jitter"]),
    (dict(steps=4, thresholds=[2, 9]), ["thresholds [9] are past the last step (4)"]),
    (dict(param="fft"), ["param must be made by fv.fft_image"]),
    (dict(transforms=["jitter"]), ["transforms must be made by fv.pad"]),
    (dict(objective="block3_relu"), ["'layer:channel' string"]),
    (dict(optimizer="adam"), ["optimizer must be a Keras optimizer"]),
])
def test_bad_render_options_are_refused_with_a_clear_message(probe, kwargs, words):
    kwargs.setdefault("objective", fv.channel(LAYER, 0))
    with pytest.raises(OptionError) as info:
        fv.render(probe, steps=kwargs.pop("steps", 2), **kwargs)
    for word in words:
        assert word in str(info.value)


def test_render_refuses_what_is_not_a_model():
    with pytest.raises(ModelError, match="expected a Keras 3 model"):
        fv.render("model.keras", fv.channel(LAYER, 0))


def test_a_size_a_free_size_model_cannot_take_is_refused():
    inp = keras.Input((None, None, 3))
    x = inp
    for i in range(4):  # 3x3 'valid' convolutions: each takes 2 pixels off
        x = keras.layers.Conv2D(4, 3, name=f"conv{i}")(x)
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    with pytest.raises(OptionError, match="cannot take images of 8 px"):
        fv.render(model, fv.channel("conv3", 0), size=8, steps=1, transforms=[])


def test_nan_loss_stops_says_so_and_keeps_the_last_good_images(probe):
    # sqrt of the grey images minus 0.6 is NaN from the first step
    broken = fv.Objective(lambda T, v: tf.reduce_sum(tf.sqrt(T.images - 0.6)), "broken()", ("broken",))
    with pytest.raises(fv.NaNLossError, match="NaN or infinite at step 1 of 5") as info:
        fv.render(probe, broken, steps=5, transforms=[])
    assert info.value.step == 0 and info.value.images.shape == (1, 64, 64, 3)
    assert np.all(np.isfinite(info.value.images))


# -- render ----------------------------------------------------------------------------------------------------

def test_render_returns_images_of_the_model_size_in_the_display_range(probe):
    images = fv.render(probe, fv.channel(LAYER, 3), steps=3)
    assert images.shape == (1, 64, 64, 3) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1


@pytest.mark.slow
def test_other_sizes_are_fitted_into_a_fixed_size_model(probe):
    assert fv.render(probe, fv.channel(LAYER, 3), size=96, steps=2).shape == (1, 96, 96, 3)


@pytest.mark.slow
def test_same_seed_same_pixels_other_seed_other_pixels(probe):
    objective = fv.channel(LAYER, 3) - 1e-2 * fv.total_variation()
    a = fv.render(probe, objective, steps=6, seed=1)
    b = fv.render(probe, objective, steps=6, seed=1)
    c = fv.render(probe, objective, steps=6, seed=2)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3


def test_another_channel_of_the_same_layer_does_not_retrace(probe):
    fv.render(probe, fv.channel(LAYER, 3), steps=2)
    before = fv.trace_count()
    fv.render(probe, fv.channel(LAYER, 17), steps=2, seed=5, learning_rate=0.1)
    fv.render(probe, fv.channels(LAYER, [1, 2]), steps=2)  # a new structure traces ...
    after_new = fv.trace_count()
    fv.render(probe, fv.channels(LAYER, [30, 40]), steps=2)  # ... once
    assert before < after_new == fv.trace_count()
    assert fv.trace_count() - before == after_new - before  # the channel change added nothing


def test_a_plain_keras_model_works_and_reuses_its_compiled_step(probe):
    model = probe.model
    fv.render(model, fv.channel(LAYER, 1), steps=2)
    before = fv.trace_count()
    assert fv.render(model, fv.channel(LAYER, 2), steps=2).shape == (1, 64, 64, 3)
    assert fv.trace_count() == before


def test_thresholds_keep_snapshots_and_the_last_one_is_the_result(probe):
    images, snapshots = fv.render(probe, fv.channel(LAYER, 3), steps=6, thresholds=[2, 6])
    assert sorted(snapshots) == [2, 6]
    np.testing.assert_array_equal(snapshots[6], images)
    assert np.abs(snapshots[2] - snapshots[6]).mean() > 0


def test_callback_sees_progress_and_can_stop_the_render(probe):
    seen = []

    def callback(step, loss, images):
        seen.append((step, loss, images.shape))
        return step < 4

    fv.render(probe, fv.channel(LAYER, 3), steps=20, callback=callback, callback_every=2)
    assert [s for s, _, _ in seen] == [2, 4]
    assert all(isinstance(loss, float) and shape == (1, 64, 64, 3) for _, loss, shape in seen)


def test_cancel_stops_within_one_step_and_returns_the_last_images(probe):
    cancel, steps_seen, last = threading.Event(), [], {}

    def callback(step, loss, images):
        steps_seen.append(step)
        last["images"] = images
        if step == 3:
            cancel.set()  # as a Cancel button would, from another thread, between two steps

    images = fv.render(probe, fv.channel(LAYER, 3), steps=50, callback=callback, callback_every=1, cancel=cancel)
    assert steps_seen == [1, 2, 3]
    np.testing.assert_array_equal(images, last["images"])


def test_cancel_set_from_another_thread_stops_the_render(probe):
    # A second thread sets the event once the render reports step 3; the render must stop long before its 400
    # steps, and must not have stopped before the thread could act.
    cancel, reached, steps_seen = threading.Event(), threading.Event(), []
    canceller = threading.Thread(target=lambda: reached.wait(60) and cancel.set())
    canceller.start()

    def callback(step, loss, images):
        steps_seen.append(step)
        if step == 3:
            reached.set()

    fv.render(probe, fv.channel(LAYER, 3), steps=400, cancel=cancel, callback_every=1, callback=callback)
    canceller.join()
    assert cancel.is_set() and 3 <= len(steps_seen) < 400


def test_a_dead_relu_channel_comes_alive_through_the_redirected_gradient(probe):
    grey = np.full((1, 64, 64, 3), 0.5, np.float32)
    dead = [c for c in range(64) if probe.activations(grey, [LAYER])[LAYER][0, ..., c].max() == 0]
    assert dead, "the demo model has channels silent on grey, where the plain ReLU gradient is zero"
    images = fv.render(probe, fv.channel(LAYER, dead[0]), steps=24)
    assert probe.activations(images, [LAYER])[LAYER][0, ..., dead[0]].mean() > 0


@pytest.mark.slow
def test_each_image_of_a_batch_objective_raises_its_own_channel(probe):
    # Channels 0 and 9 of block3 go up together, so "image i has channel c_i highest" does not hold; relative to
    # each channel's mean over the batch, image i stands out on its own channel (seeds 0-2, 16 and 24 steps).
    channels = [0, 5, 9]
    images = fv.render(probe, fv.channels(LAYER, channels), steps=24)
    means = probe.activations(images, [LAYER])[LAYER].mean(axis=(1, 2))[:, channels]
    assert list((means / means.mean(axis=0)).argmax(axis=1)) == [0, 1, 2], np.round(means, 3)


@pytest.mark.slow
def test_batch_objectives_render_one_image_per_unit(probe):
    assert fv.render(probe, fv.class_logits([1, 2]), steps=2).shape == (2, 64, 64, 3)
    diverse = fv.channel(LAYER, 3) + 0.1 * fv.diversity(LAYER)
    assert fv.render(probe, diverse, steps=2).shape == (2, 64, 64, 3)
    assert fv.render(probe, fv.direction(LAYER, np.ones(64)), steps=2, batch=3).shape == (3, 64, 64, 3)


@pytest.mark.slow
def test_pixel_parameterization_and_a_custom_optimizer_raise_the_objective(probe):
    losses = []
    images = fv.render(probe, fv.channel(LAYER, 3), steps=8, param=fv.pixel_image(),
                       optimizer=keras.optimizers.Adam(0.2), callback_every=1,
                       callback=lambda step, loss, images: losses.append(loss))
    assert images.shape == (1, 64, 64, 3) and len(losses) == 8
    assert losses[-1] < losses[0] - 0.05, np.round(losses, 3)  # the loss is minus the channel's mean


def test_render_starts_from_given_images_with_pixel_init(probe):
    from cnnwidget import demo

    start = demo.shapes(1, seed=3).images
    images = fv.render(probe, fv.deepdream(LAYER), steps=1, param=fv.pixel_image(init=start), learning_rate=1e-4,
                       transforms=[])
    assert np.abs(images - np.clip(start, 0.01, 0.99)).max() < 0.01


@pytest.mark.slow
def test_display_range_other_than_unit():
    from cnnwidget import demo

    probe = ModelProbe(demo.load_model(), preprocess=lambda x: x / 255.0, input_range=(0, 255))
    images = fv.render(probe, fv.channel(LAYER, 3), steps=2)
    assert images.max() > 2 and 0 <= images.min() and images.max() <= 255


@pytest.mark.slow
def test_grey_models_render_one_channel_images():
    inp = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    images = fv.render(model, fv.channel("conv", 1), steps=2)
    assert images.shape == (1, 16, 16, 1)
    with pytest.raises(OptionError, match="colour correlation matrix is for RGB"):
        fv.render(model, fv.channel("conv", 1), steps=1, param=fv.fft_image(color=np.eye(3)))


# -- parameterizations and transforms --------------------------------------------------------------------------

def test_a_parameterization_gives_variables_and_an_images_function():
    variables, images_fn = fv.fft_image()(batch=2, size=16, seed=0, input_range=(-1, 1))
    images = images_fn().numpy()
    assert images.shape == (2, 16, 16, 3) and -1 <= images.min() and images.max() <= 1
    assert all(isinstance(v, tf.Variable) for v in variables)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(images_fn())
    assert tape.gradient(total, variables)[0] is not None


# Lucid's lucid/optvis/param/color.py: color_correlation_svd_sqrt, scaled by its largest column norm, mixes
# components into RGB as rgb = components @ matrix.T, so component j alone moves RGB along column j.
LUCID_COLOR = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
ASYMMETRIC = np.array([[0.5, 0.1, -0.2], [0.3, 0.4, 0.1], [-0.1, 0.2, 0.6]])  # no row equals a column


@pytest.mark.parametrize("color", [None, ASYMMETRIC], ids=["imagenet", "custom"])
@pytest.mark.parametrize("kind", ["fft", "pixel"])
def test_colour_component_j_moves_rgb_along_column_j_of_the_normalized_matrix(kind, color):
    matrix = LUCID_COLOR if color is None else color
    column_of = matrix / np.linalg.norm(matrix, axis=0).max()
    for j in range(3):
        if kind == "fft":  # the DC coefficient (the basis' first, constant function) of component j
            variables, images_fn = fv.fft_image(color=color)(batch=1, size=8)
            latent = np.zeros((1, 3, 8, 8), np.float32)
            latent[0, j, 0, 0] = 1.0
        else:
            variables, images_fn = fv.pixel_image(decorrelate=True, color=color)(batch=1, size=8)
            latent = np.zeros((1, 8, 8, 3), np.float32)
            latent[..., j] = 1.0
        variables[0].assign(latent)
        images = images_fn().numpy().astype(np.float64)
        rgb = np.log(images / (1 - images))  # before the sigmoid
        np.testing.assert_allclose(rgb, np.broadcast_to(rgb[:, :1, :1], rgb.shape), atol=1e-5)  # flat
        offset = rgb[0, 0, 0]
        scale = offset @ column_of[:, j] / (column_of[:, j] @ column_of[:, j])
        assert scale > 0
        np.testing.assert_allclose(offset, scale * column_of[:, j], atol=1e-5)
        if kind == "pixel":
            assert scale == pytest.approx(1.0, abs=1e-5)


def test_fourier_images_start_near_grey_with_lucids_spread():
    _, images_fn = fv.fft_image()(batch=8, size=64, seed=0)
    images = images_fn().numpy()
    assert abs(images.mean() - 0.5) < 0.01 and 0.001 < images.std() < 0.01


@pytest.mark.slow
def test_color_correlation_is_the_square_root_of_the_pixel_covariance():
    from cnnwidget import demo

    images = demo.shapes(20, seed=0).images
    matrix = fv.color_correlation(images)
    covariance = np.cov(images.reshape(-1, 3), rowvar=False)
    np.testing.assert_allclose(matrix @ matrix.T, covariance, atol=1e-5)
    assert fv.render(ModelProbe(demo.load_model()), fv.channel(LAYER, 0), steps=2,
                     param=fv.fft_image(color=matrix)).shape == (1, 64, 64, 3)


def test_standard_transforms_are_lucids():
    pad, jitter1, scale, rotate, jitter2 = fv.standard_transforms()
    assert pad.key == ("pad", 12, "constant", 0.5) and jitter1.key == ("jitter", 8) and jitter2.key == ("jitter", 4)
    assert scale.key[1] == tuple(1 + (i - 5) / 50 for i in range(11))
    assert rotate.key[1] == tuple(float(a) for a in list(range(-10, 11)) + [0] * 5)


def test_fused_transforms_equal_padding_cropping_and_resizing_done_one_by_one():
    from cnnwidget.core.featurevis.transforms import compose

    x = tf.random.uniform((2, 20, 20, 3), seed=1)
    g = tf.random.Generator.from_seed(0)
    padded = tf.pad(x, [[0, 0], [3, 3], [3, 3], [0, 0]], constant_values=0.5)
    np.testing.assert_allclose(compose([fv.pad(3)])(x, g), padded, atol=1e-6)
    np.testing.assert_allclose(compose([fv.pad(3)], output=(13, 13))(x, g), tf.image.resize(padded, (13, 13)),
                               atol=1e-5)
    np.testing.assert_allclose(compose([fv.random_scale([1.0]), fv.random_rotate([0])])(x, g), x, atol=1e-6)
    np.testing.assert_allclose(compose([fv.random_rotate([90])])(x, g)[0], np.rot90(x[0].numpy(), -1), atol=1e-5)
    cropped = compose([fv.jitter(4)])(x, g).numpy()
    for i in range(2):
        assert any(np.array_equal(cropped[i], x[i, a:a + 16, b:b + 16]) for a in range(5) for b in range(5))
    # (the offsets' distribution: test_jitter_offsets_spread_evenly_over_0_to_d_on_both_axes)
    np.testing.assert_allclose(compose([fv.pad(2, mode="reflect")])(x, g),
                               tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT"))


def test_jitter_offsets_spread_evenly_over_0_to_d_on_both_axes():
    # Each pixel holds its own (row, column), so the crop's top-left pixel is the offset drawn for that image.
    from cnnwidget.core.featurevis.transforms import compose

    d, n, side = 4, 64, 12
    rows, cols = np.mgrid[0:side, 0:side].astype(np.float32)
    x = np.broadcast_to(np.stack([rows, cols, np.zeros_like(rows)], -1), (n, side, side, 3))
    out = compose([fv.jitter(d)])(tf.constant(x), tf.random.Generator.from_seed(0)).numpy()
    dy, dx = out[:, 0, 0, 0], out[:, 0, 0, 1]
    np.testing.assert_array_equal(out[..., 0], dy[:, None, None] + rows[:side - d, :side - d])  # a shift, no blur
    np.testing.assert_array_equal(out[..., 1], dx[:, None, None] + cols[:side - d, :side - d])
    for offsets in (dy, dx):
        assert set(offsets) == set(range(d + 1))  # 64 draws from 5 values: a missing one has p < 1e-5
        assert abs(offsets.mean() - d / 2) < 0.5  # standard error 0.18


def test_transforms_are_differentiable_and_repeat_for_a_seed():
    from cnnwidget.core.featurevis.transforms import compose

    pipeline = compose(fv.standard_transforms(), output=(32, 32))
    x = tf.Variable(tf.random.uniform((2, 32, 32, 3), seed=2))
    runs = []
    for _ in range(2):
        with tf.GradientTape() as tape:
            y = pipeline(x, tf.random.Generator.from_seed(7))
            total = tf.reduce_sum(y * y)
        runs.append(y.numpy())
        assert y.shape == (2, 32, 32, 3) and float(tf.reduce_sum(tf.abs(tape.gradient(total, x)))) > 0
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.slow
def test_a_render_on_a_fresh_model_leaves_nothing_in_tensorflows_gradient_registry():
    """tf.custom_gradient in a traced function registers a gradient in a global registry that is never emptied (and
    keeps the traced graph it closes over): Keras's optimizer all-reduce and the redirected ReLU did so at every
    trace, ~2.5 MB a fresh model (tests/unit/test_widget_leaks.py measures the RSS)."""
    from tensorflow.python.framework import ops

    def fresh():
        inp = keras.Input((16, 16, 3))
        x = keras.layers.ReLU(name="relu")(keras.layers.Conv2D(4, 3, name="conv")(inp))
        model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
        fv.render(ModelProbe(model), fv.channel("relu", 1), steps=2, size=16)

    fresh()
    before = len(ops._gradient_registry._registry)
    fresh()
    fresh()
    assert len(ops._gradient_registry._registry) == before
