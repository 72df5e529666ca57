"""Linear CKA (exactness, invariances, the minibatch estimator), layer similarity of models, weight drift, the
generic/specific verdict and freeze_until; and the learned-filter helpers of core/filters.py, the other half of
the transfer-learning and filter views. Small random models: the whole file runs in about 20 s on 2 cores."""

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

import cnnwidget
from cnnwidget.core import Cancelled, ImageError, LayerError, ModelError, ModelProbe, OptionError
from cnnwidget.core import filters
from cnnwidget.core import similarity as sim

H = 16


def small_model(name="small", seed=0, classes=5):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((H, H, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, keras.layers.Dense(classes, activation="softmax", name="out")(x), name=name)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((96, H, H, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(1)


# -- linear CKA ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, d", [(300, 20), (20, 300)])  # d x d feature products, and n x n Gram matrices
@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_of_a_representation_with_itself_is_one(rng, n, d, unbiased):
    x = rng.normal(size=(n, d))
    assert sim.linear_cka(x, x, unbiased=unbiased) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("n, d", [(300, 20), (20, 300)])
@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_is_one_for_an_orthogonally_rotated_and_isotropically_scaled_copy(rng, n, d, unbiased):
    x = rng.normal(size=(n, d)) + 3.0  # a mean, to exercise the centering
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    assert sim.linear_cka(x, 7.5 * x @ q, unbiased=unbiased) == pytest.approx(1.0, abs=1e-5)


def test_cka_flattens_feature_maps_and_is_symmetric(rng):
    x, y = rng.normal(size=(40, 4, 4, 3)), rng.normal(size=(40, 7))
    assert sim.linear_cka(x, y) == pytest.approx(sim.linear_cka(y, x.reshape(40, -1)))


def test_both_hsic_forms_agree(rng):
    x, y = rng.normal(size=(60, 5)), rng.normal(size=(60, 9))
    x, y = x - x.mean(0), y - y.mean(0)
    for unbiased in (False, True):
        assert sim._feature_hsic(x, y, unbiased) == pytest.approx(sim._gram_hsic(x @ x.T, y @ y.T, unbiased))


def test_cka_of_unrelated_representations_is_small(rng):
    assert sim.linear_cka(rng.normal(size=(2000, 10)), rng.normal(size=(2000, 10))) < 0.02


def test_minibatch_estimator_agrees_with_the_full_data_unbiased_estimate(rng):
    # Like with like: both are the unbiased HSIC estimator, once over all 4,096 inputs (every pair of inputs) and
    # once summed over 32 minibatches of 128 (pairs within a batch only), so they differ by estimation noise alone.
    n = 4096
    x = rng.normal(size=(n, 32))
    y = np.tanh(x[:, :8] @ rng.normal(size=(8, 16))) + 0.5 * rng.normal(size=(n, 16))
    full = sim.linear_cka(x, y, unbiased=True)
    streamed = sim.minibatch_cka((x[i:i + 128], y[i:i + 128]) for i in range(0, n, 128))
    assert 0.2 < full < 0.8  # a representation pair that is neither identical nor unrelated
    assert streamed == pytest.approx(full, abs=1e-2)


def test_cka_refuses_mismatched_inputs(rng):
    with pytest.raises(OptionError, match="same inputs"):
        sim.linear_cka(rng.normal(size=(10, 3)), rng.normal(size=(11, 3)))
    with pytest.raises(OptionError, match="at least 4"):
        sim.linear_cka(rng.normal(size=(3, 3)), rng.normal(size=(3, 3)), unbiased=True)
    with pytest.raises(OptionError, match="no batches"):
        sim.minibatch_cka([])


# -- layers of models --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_layer_by_layer_matrix_of_a_model_with_itself_has_a_unit_diagonal(images):
    model = small_model()
    data = tf.data.Dataset.from_tensor_slices((images, np.zeros(len(images)))).batch(32)  # (images, labels)
    cka = sim.layer_similarity(model, model, data)
    assert cka.shape == (5, 5)
    np.testing.assert_allclose(np.diag(cka), 1.0, atol=1e-9)
    np.testing.assert_allclose(cka, cka.T, atol=1e-9)
    assert (cka[np.isfinite(cka)] <= 1 + 1e-9).all()


def test_layer_similarity_takes_arrays_and_a_strategy_and_names_layers(images):
    model = small_model()
    probe = ModelProbe(model)
    by_array = sim.layer_similarity(probe, None, images, layers=["conv1", "gap"], batch_size=32)
    data = tf.data.Dataset.from_tensor_slices(images).batch(32)
    under = sim.layer_similarity(probe, None, data, layers=["conv1", "gap"],
                                 strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    assert by_array.shape == (2, 2)
    np.testing.assert_allclose(by_array, under, atol=1e-9)
    # the minibatch value equals the stream of the same layer outputs through minibatch_cka
    acts = probe.activations(images, ["conv1", "gap"])
    want = sim.minibatch_cka((acts["conv1"][i:i + 32], acts["gap"][i:i + 32]) for i in range(0, 96, 32))
    assert by_array[0, 1] == pytest.approx(want, abs=1e-6)


@pytest.mark.slow
def test_two_models_compare_layer_by_layer_with_different_widths(images):
    # Row i is the first model's layer i, column j the second's layer j: each cell is the minibatch CKA of those
    # two layers' outputs streamed in the same batches.
    a, b = small_model("a", seed=0), small_model("b", seed=1)
    layers = ["conv1", "relu2", "out"]
    cka = sim.layer_similarity(a, b, images, layers=layers, batch_size=48)
    assert cka.shape == (3, 3)
    acts_a, acts_b = ModelProbe(a).activations(images, layers), ModelProbe(b).activations(images, layers)
    for i, j in [(0, 1), (1, 0), (2, 0), (1, 1)]:
        want = sim.minibatch_cka((acts_a[layers[i]][k:k + 48], acts_b[layers[j]][k:k + 48]) for k in (0, 48))
        assert cka[i, j] == pytest.approx(want, abs=1e-6), (i, j)
    assert np.isfinite(cka).all() and (cka < 1).all()


def test_mismatched_models_are_refused_with_a_layer_error(images):
    a = small_model("a")
    inp = keras.Input((H, H, 3))
    x = keras.layers.Conv2D(4, 3, name="other_conv")(inp)
    b = keras.Model(inp, keras.layers.Dense(2, name="out")(keras.layers.GlobalAveragePooling2D(name="gap")(x)))
    with pytest.raises(LayerError, match="do not match.*only in the first: \\['conv1'"):
        sim.layer_similarity(a, b, images)
    with pytest.raises(LayerError, match="in the second model.*conv1"):
        sim.layer_similarity(a, b, images, layers=["conv1", "gap"])


def test_models_with_different_inputs_and_bad_data_are_refused(images):
    a = small_model("a")
    inp = keras.Input((H * 2, H * 2, 3))
    b = keras.Model(inp, keras.layers.Conv2D(2, 3, name="conv1")(inp))
    with pytest.raises(ModelError, match="different inputs"):
        sim.layer_similarity(a, b, images, layers=["conv1"])
    with pytest.raises(ImageError, match="Batch an image data set"):
        sim.layer_similarity(a, None, tf.data.Dataset.from_tensor_slices(images))
    with pytest.raises(ImageError, match="takes images"):
        sim.layer_similarity(a, None, tf.data.Dataset.from_tensor_slices(images[:, :8, :8]).batch(8))


# -- transfer learning -------------------------------------------------------------------------------------------

def fine_tuned_copy(model):
    """A copy of ``model`` whose conv2 kernel was replaced (a "specific" layer) and the rest kept."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    layer = copy.get_layer("conv2")
    layer.kernel.assign(np.random.default_rng(5).normal(size=layer.kernel.shape).astype(np.float32) * 0.3)
    return copy


def test_weight_drift_is_zero_for_kept_layers_and_positive_for_changed_ones():
    base = small_model()
    drift = sim.weight_drift(base, fine_tuned_copy(base))
    assert set(drift) == {"conv1", "conv2", "out"}
    assert drift["conv1"] == 0.0 and drift["out"] == 0.0 and drift["conv2"] > 0.5


def test_weight_drift_marks_a_replaced_head_and_refuses_it_when_named():
    base, other = small_model(classes=5), small_model(classes=3)
    drift = sim.weight_drift(base, other)
    assert np.isnan(drift["out"])
    with pytest.raises(LayerError, match="cannot be compared"):
        sim.weight_drift(base, other, layers=["out"])


@pytest.mark.slow
def test_compare_models_calls_kept_layers_generic_and_the_changed_one_specific(images):
    base = small_model()
    result = sim.compare_models(base, fine_tuned_copy(base), images, batch_size=48)
    verdict = dict(zip(result.layers, result.verdict))
    assert verdict["conv1"] == "generic"
    assert verdict["conv2"] == "specific"
    assert result.cka.shape == (5, 5) and result.drift.shape == (5,)
    assert result.trainable == [True, True, None, None, True]
    with pytest.raises(OptionError, match="threshold"):
        sim.compare_models(base, base, images, threshold=1.5)


def test_freeze_until_freezes_through_a_layer_inside_a_nested_model():
    base = small_model("base")
    inp = keras.Input((H, H, 3))
    outer = keras.Model(inp, keras.layers.Dense(2, name="head")(base(inp)), name="outer")
    frozen = cnnwidget.freeze_until(outer, "conv2")  # resolves to base/conv2
    assert frozen == ["base/conv1", "base/conv2"]
    assert not base.get_layer("conv1").trainable and not base.get_layer("conv2").trainable
    assert base.get_layer("out").trainable and outer.get_layer("head").trainable
    # base/out and head train: 2 Dense layers, kernel and bias each
    assert len(outer.trainable_weights) == 4
    assert cnnwidget.freeze_until(outer, "base/conv1") == ["base/conv1"]  # moving the boundary back unfreezes
    assert base.get_layer("conv2").trainable
    with pytest.raises(LayerError, match="Did you mean"):
        cnnwidget.freeze_until(outer, "conv3")


# -- learned filters (core/filters.py) --------------------------------------------------------------------------

def test_first_layer_filters_are_rgb_images_scaled_per_filter():
    model = small_model()
    kernel = np.asarray(model.get_layer("conv1").kernel)  # (3, 3, 3, 8)
    result = filters.first_layer_filters(model)
    assert result.layer == "conv1" and result.images.shape == (8, 3, 3, 3)
    assert result.images.min() >= 0 and result.images.max() <= 1
    np.testing.assert_allclose(result.scale, np.abs(kernel).max(axis=(0, 1, 2)), rtol=1e-6)
    recovered = (result.images - 0.5) * 2 * result.scale[:, None, None, None]
    np.testing.assert_allclose(recovered, kernel.transpose(3, 0, 1, 2), atol=1e-6)
    with pytest.raises(LayerError, match="kernel_grid"):
        filters.first_layer_filters(model, "conv2")


def test_kernel_grid_pages_and_norms_work_inside_a_nested_model():
    base = small_model("base")
    inp = keras.Input((H, H, 3))
    outer = keras.Model(inp, base(inp))
    page = filters.kernel_grid(outer, "base/conv2", page=1, page_size=3)
    assert page.images.shape == (3, 8, 3, 3) and list(page.index) == [3, 4, 5]
    assert filters.num_pages(8, 3) == 3 and filters.page_slice(8, 2, 3) == slice(6, 8)
    _, norms = filters.kernel_norms(outer, "base/conv2")
    kernel = np.asarray(base.get_layer("conv2").kernel)
    np.testing.assert_allclose(norms, np.sqrt((kernel ** 2).sum(axis=(0, 1))).T, rtol=1e-5)
    counts, edges = filters.weight_histogram(outer, "base/conv2", bins=10)
    assert counts.sum() == kernel.size and len(edges) == 11
    with pytest.raises(OptionError, match="page must be in"):
        filters.kernel_grid(outer, "base/conv2", page=3, page_size=3)
    with pytest.raises(LayerError, match="not a 2-D convolution"):
        filters.kernel_grid(outer, "base/gap")


def test_the_cka_pass_reports_progress_and_stops_on_cancel():
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.Conv2D(2, 3, name="c")(keras.layers.Conv2D(2, 3, name="b")(inp)))
    images = np.random.default_rng(0).random((40, 8, 8, 3), dtype=np.float32)
    seen = []
    sim.layer_similarity(model, None, images, batch_size=10, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled, match="after 0 batches"):
        sim.layer_similarity(model, None, images, batch_size=10, cancel=cancel)
