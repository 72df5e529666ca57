"""core.dataset.channel_examples: top-k per channel equals brute force (indices and values, ties by lowest index),
patches equal crops at the receptive field (checked against the gradient's support), or for a dense layer the whole
images (resized: block means), the same result whatever the batching or the source (numpy, tf.data, a generator),
cancel returns the partial top-k, statistics equal numpy's."""

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnwidget.core import ModelProbe, dataset
from cnnwidget.core.errors import ImageError, LayerError, OptionError
from cnnwidget.core.receptive_field import receptive_field

N = 40


@pytest.fixture(scope="module")
def probe():
    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(6, 3, padding="valid", dilation_rate=2, name="conv2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(5, activation="softmax", name="out")(x)
    return ModelProbe(keras.Model(inp, out))


@pytest.fixture(scope="module")
def data(probe):
    rng = np.random.default_rng(0)
    images = rng.random((N, 16, 16, 3), dtype=np.float32)
    best = int(probe.activations(images, "conv1")["conv1"][..., 0].max((1, 2)).argmax())
    images[[3, 7]] = images[best]  # exact ties at the top of conv1's channel 0: lower indices first
    labels = rng.integers(0, 5, N)
    return images, labels


LAYERS = ["conv1", "relu2", "gap", "out"]


@pytest.fixture(scope="module")
def result(probe, data):
    return dataset.channel_examples(probe, data, LAYERS, k=6, batch_size=16, bins=20)


def brute_topk(scores, k):
    """(C, k) indices and values: score descending, index ascending."""
    n, c = scores.shape
    idx = np.empty((c, k), np.int64)
    for ch in range(c):
        order = np.lexsort((np.arange(n), -scores[:, ch].astype(np.float64)))[:k]
        idx[ch] = order
    return idx, np.take_along_axis(scores.T, idx, 1)


def crop(images, i, box):
    y0, x0, y1, x1 = box
    h, w = images.shape[1:3]
    out = np.full((y1 - y0, x1 - x0, images.shape[3]), np.nan, np.float32)
    sy0, sx0, sy1, sx1 = max(y0, 0), max(x0, 0), min(y1, h), min(x1, w)
    out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = images[i, sy0:sy1, sx0:sx1]
    return out


@pytest.mark.parametrize("score", ["max", pytest.param("mean", marks=pytest.mark.slow)])
def test_top_k_equals_brute_force_for_spatial_and_dense_layers(probe, data, result, score):
    images, labels = data
    res = result if score == "max" else dataset.channel_examples(probe, images, LAYERS, k=6, score=score,
                                                                 batch_size=16)
    acts = probe.activations(images, LAYERS)
    for key in LAYERS:
        a = acts[key]
        scores = (a.max((1, 2)) if score == "max" else a.mean((1, 2))) if a.ndim == 4 else a
        idx, val = brute_topk(scores, 6)
        got = res[key]
        np.testing.assert_array_equal(got.indices, idx, err_msg=key)
        np.testing.assert_allclose(got.scores, val, rtol=1e-5, atol=1e-6, err_msg=key)
        if a.ndim == 4:  # the position is the channel's first maximum in that image
            flat = a.reshape(N, -1, a.shape[-1])
            where = np.take_along_axis(flat.argmax(1).T, idx, 1)
            np.testing.assert_array_equal(got.positions[..., 0] * a.shape[2] + got.positions[..., 1], where)
        else:  # a unit sees the whole image: its patches are the whole images (16x16 here, kept as they are)
            assert (got.positions == -1).all() and got.whole_image and got.receptive_field is None
            np.testing.assert_array_equal(got.patches, images[idx])
            assert (got.boxes == np.array([0, 0, 16, 16])).all()
            assert got.patch_note == "a unit of this layer sees the whole 16x16 image: each patch is the whole image"


@pytest.mark.slow
def test_dense_patches_are_the_whole_images_resized(probe, data):
    images, _ = data
    res = dataset.channel_examples(probe, images, ["gap", "out", "conv1"], k=4, batch_size=16, dense_patch=8)
    acts = probe.activations(images, ["gap", "out"])
    halves = images.reshape(N, 8, 2, 8, 2, 3).mean((2, 4))  # area average of 16x16 to 8x8: 2x2 block means
    for key in ("gap", "out"):
        got = res[key]
        idx, val = brute_topk(acts[key], 4)
        np.testing.assert_array_equal(got.indices, idx, err_msg=key)
        np.testing.assert_allclose(got.scores, val, rtol=1e-5, atol=1e-6)
        assert got.patches.shape == (acts[key].shape[1], 4, 8, 8, 3) and got.patch_size == (8, 8)
        np.testing.assert_allclose(got.patches, halves[idx], rtol=1e-6, atol=1e-6)
        assert got.patch_note.endswith("the whole 16x16 image: each patch is the whole image, resized to 8x8 "
                                       "(area average)")
    assert res["conv1"].patches.shape[2:4] == (3, 3)  # spatial layers keep their receptive field


def test_the_size_of_dense_patches_keeps_a_wide_layer_s_memory_bounded():
    size = dataset._dense_patch_size
    assert size((64, 64), 3, 10, 16, None) == (64, 64)  # the demo model's output: whole images as they are
    assert size((64, 64), 3, 128, 16, None) == (32, 32)  # 128 units x 16 at 64 px would take 96 MiB
    assert size((224, 224), 3, 1000, 16, None) == (16, 16)  # ImageNet's classes: the smallest size
    assert size((28, 28), 1, 10, 16, None) == (28, 28)  # never enlarged
    assert size((48, 96), 3, 10, 16, 32) == (16, 32)  # as asked, aspect kept


def test_ties_are_broken_by_the_lowest_index(result):
    top = result["conv1"]
    assert {3, 7} <= set(top.indices[0, :3].tolist())
    for key in LAYERS:
        got = result[key]
        tied = got.scores[:, 1:] == got.scores[:, :-1]
        assert (got.indices[:, 1:][tied] > got.indices[:, :-1][tied]).all()


def test_patches_equal_crops_of_the_input_at_the_receptive_field(probe, data, result):
    images, _ = data
    for key in ("conv1", "relu2"):
        got = result[key]
        rf = receptive_field(probe, key)
        assert not got.approximate and got.reason == ""
        for c in range(got.channels):
            for s in range(got.k):
                y, x = got.positions[c, s]
                box = rf.box(int(y), int(x))
                assert tuple(got.boxes[c, s]) == box
                np.testing.assert_array_equal(got.patches[c, s], crop(images, got.indices[c, s], box))
    assert result["conv1"].patches.shape == (4, 6, 3, 3, 3)
    # relu2: 3x3 conv (1 px) -> 2x2 pool -> 3x3 conv dilated 2 (4 px at stride 2): 2 + 1 + 8 = 11 px
    assert receptive_field(probe, "relu2").size == (12, 12) and receptive_field(probe, "relu2").jump == (2, 2)


def support_box(model, layer, y, x, c, shape):
    """Bounding box of the nonzero gradient of unit (y, x, c) of ``layer`` with respect to the input."""
    sub = keras.Model(model.input, model.get_layer(layer).output)
    img = tf.constant(np.random.default_rng(1).random((1,) + shape, dtype=np.float32))
    with tf.GradientTape() as tape:
        tape.watch(img)
        out = sub(img)[0, y, x, c]
    g = np.abs(tape.gradient(out, img).numpy()[0]).sum(-1)
    rows, cols = np.nonzero(g)
    if not len(rows):
        return None  # a unit that sees only padding
    return rows.min(), cols.min(), rows.max() + 1, cols.max() + 1


@pytest.mark.slow
def test_receptive_field_matches_the_support_of_the_gradient():
    keras.utils.set_random_seed(5)
    shape = (23, 21, 2)
    inp = keras.Input(shape)
    x = keras.layers.Conv2D(3, 3, strides=2, padding="same", name="c1")(inp)  # linear: no dead paths
    x = keras.layers.ZeroPadding2D(((1, 0), (2, 1)), name="zp")(x)
    x = keras.layers.AveragePooling2D(2, strides=1, name="ap")(x)  # average: every pixel reaches the gradient
    x = keras.layers.Conv2D(3, 5, padding="same", name="c2")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="valid", name="dw")(x)
    model = keras.Model(inp, x)
    probe = ModelProbe(model)
    for layer in ("c1", "ap", "c2", "dw"):
        rf = receptive_field(probe, layer)
        assert not rf.approximate
        h, w = probe.layer(layer).output_shape[:2]
        for y, xx in {(0, 0), (h - 1, w - 1), (h // 2, w // 2), (0, w - 1)}:
            y0, x0, y1, x1 = rf.box(y, xx)
            want = (max(y0, 0), max(x0, 0), min(y1, shape[0]), min(x1, shape[1]))
            if want[0] >= want[2] or want[1] >= want[3]:
                want = None
            assert support_box(model, layer, y, xx, 0, shape) == want, (layer, y, xx)


@pytest.mark.slow
def test_layers_of_unknown_geometry_are_flagged_approximate():
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(2, 3, name="c")(inp)
    x = keras.layers.UpSampling2D(name="up")(x)
    x = keras.layers.Conv2D(2, 3, name="after")(x)
    probe = ModelProbe(keras.Model(inp, keras.layers.GlobalAveragePooling2D()(x)))
    res = dataset.channel_examples(probe, np.zeros((3, 16, 16, 3), np.float32) + 0.5, ["c", "after"], k=2)
    assert not res["c"].approximate
    assert res["after"].approximate and "up (UpSampling2D)" in res["after"].reason


@pytest.mark.slow
def test_the_same_result_from_numpy_tf_data_and_a_generator_and_any_batch_size(probe, data, result):
    images, labels = data

    def gen(bs):
        for i in range(0, N, bs):
            yield images[i:i + bs], labels[i:i + bs]

    runs = {
        "numpy bs1": dataset.channel_examples(probe, data, LAYERS, k=6, batch_size=1, bins=20),
        "numpy bs256": dataset.channel_examples(probe, data, LAYERS, k=6, batch_size=256, bins=20),
        "tf.data batched 7": dataset.channel_examples(
            probe, tf.data.Dataset.from_tensor_slices((images, labels)).batch(7), LAYERS, k=6, bins=20),
        "tf.data unbatched": dataset.channel_examples(
            probe, tf.data.Dataset.from_tensor_slices((images, labels)), LAYERS, k=6, batch_size=7, bins=20),
        "generator 7": dataset.channel_examples(probe, gen(7), LAYERS, k=6, bins=20),
    }
    for name, res in runs.items():
        assert res.images == N and not res.partial and res.labels
        for key in LAYERS:
            a, b = result[key], res[key]
            np.testing.assert_array_equal(a.indices, b.indices, err_msg=f"{name} {key}")
            np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
            for stat in ("mean", "std", "min", "max", "zero_fraction"):
                np.testing.assert_allclose(getattr(a, stat), getattr(b, stat), rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(a.class_mean, b.class_mean, rtol=1e-4, atol=1e-6)
            if a.patches is not None:
                np.testing.assert_array_equal(a.patches, b.patches)
    # The histogram range is fixed by the first batch, so it depends on the batching: counts always add up.
    for res in runs.values():
        h = res["conv1"]
        assert (h.histogram.sum(1) + h.below + h.above == N * 16 * 16).all()


def test_statistics_equal_numpy_on_the_stacked_activations(probe, data, result):
    images, labels = data
    acts = probe.activations(images, LAYERS)
    for key in LAYERS:
        a = acts[key].astype(np.float64)
        v = a.reshape(-1, a.shape[-1])
        got = result[key]
        np.testing.assert_allclose(got.mean, v.mean(0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got.std, v.std(0), rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(got.min, v.min(0), rtol=1e-6)
        np.testing.assert_allclose(got.max, v.max(0), rtol=1e-6)
        np.testing.assert_allclose(got.zero_fraction, (v == 0).mean(0))
        np.testing.assert_array_equal(got.dead, v.min(0) == v.max(0))
        per_image = a.mean((1, 2)) if a.ndim == 4 else a
        for cls in range(5):
            np.testing.assert_allclose(got.class_mean[cls], per_image[labels == cls].mean(0), rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(got.class_counts, np.bincount(labels, minlength=5))
        for c in range(v.shape[1]):
            edges = got.histogram_edges[c]
            inside = v[:, c][(v[:, c] >= edges[0]) & (v[:, c] < edges[-1])]
            want, _ = np.histogram(inside, edges)
            assert np.abs(got.histogram[c] - want).sum() <= 2  # float32 binning vs float64 edges: an edge value
            assert got.below[c] == (v[:, c] < edges[0]).sum() and got.above[c] == (v[:, c] >= edges[-1]).sum()


@pytest.mark.slow
def test_the_histogram_covers_every_value_the_pass_saw_and_the_same_first_batch_gives_the_same_histogram(probe, data):
    images = data[0].copy()
    images[24:] = images[24:] * 4 - 1.5  # later batches far past the first batch's range (it was fixed by it)
    acts = probe.activations(images, ["conv1", "out"])
    runs = [dataset.channel_examples(probe, images, ["conv1", "out"], k=2, batch_size=8, bins=bins)
            for bins in (20, 1)]
    batched = dataset.channel_examples(probe, iter([images[:8], images[8:11], images[11:]]), ["conv1"], k=2, bins=20)
    for key in ("conv1", "out"):
        v = acts[key].reshape(-1, acts[key].shape[-1]).astype(np.float64)
        for res in runs:
            got = res[key]
            assert (got.histogram_edges[:, 0] <= v.min(0)).all() and (got.histogram_edges[:, -1] > v.max(0)).all()
            assert (got.histogram.sum(1) == len(v)).all() and not got.below.any() and not got.above.any()
            for c in range(v.shape[1]):
                want, _ = np.histogram(v[:, c], got.histogram_edges[c])
                assert np.abs(got.histogram[c] - want).sum() <= 2  # float32 binning vs float64 edges
    assert runs[1]["conv1"].histogram.shape == (4, 1)
    # batches after the first (its range is the base) and their split do not change it: bins merge exactly
    np.testing.assert_array_equal(batched["conv1"].histogram, runs[0]["conv1"].histogram)
    np.testing.assert_allclose(batched["conv1"].histogram_edges, runs[0]["conv1"].histogram_edges)


@pytest.mark.slow
def test_a_dead_channel_is_flagged():
    inp = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(2, 1, activation="relu", name="c")
    model = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(conv(inp)))
    conv.set_weights([np.array([1.0, -1.0], np.float32).reshape(1, 1, 1, 2), np.zeros(2, np.float32)])
    res = dataset.channel_examples(model, np.random.default_rng(0).random((5, 8, 8, 1), dtype=np.float32), "c", k=2)
    np.testing.assert_array_equal(res["c"].dead, [False, True])
    assert res["c"].zero_fraction[1] == 1.0


def test_cancel_mid_pass_returns_the_partial_top_k_and_the_flag(probe, data):
    images, _ = data
    cancel, seen = threading.Event(), []

    def progress(done, total, partial):
        seen.append((done, total, partial.partial, partial.images))
        cancel.set()  # after the first batch

    res = dataset.channel_examples(probe, data, LAYERS, k=6, bins=20, batch_size=8, progress=progress,
                                   cancel=cancel)
    assert res.cancelled and res.partial and res.images == 8 and res.batches == 1
    assert seen == [(1, 5, True, 8), (1, 5, True, 8)]  # the first batch, then the cancelled result
    acts = probe.activations(images[:8], LAYERS)
    np.testing.assert_array_equal(res["conv1"].indices, brute_topk(acts["conv1"].max((1, 2)), 6)[0])
    np.testing.assert_array_equal(res["gap"].indices, brute_topk(acts["gap"], 6)[0])
    np.testing.assert_allclose(res["gap"].mean, acts["gap"].mean(0), rtol=1e-5)


@pytest.mark.slow
def test_fewer_images_than_k_leave_empty_slots(probe, data):
    res = dataset.channel_examples(probe, data[0][:3], ["conv1", "gap"], k=5)
    for key in ("conv1", "gap"):
        got = res[key]
        assert (got.indices[:, 3:] == -1).all() and np.isnan(got.scores[:, 3:]).all()
        assert sorted(got.indices[0, :3]) != [] and set(got.indices[:, :3].ravel()) <= {0, 1, 2}
    assert np.isnan(res["conv1"].patches[:, 3:]).all() and np.isnan(res["gap"].patches[:, 3:]).all()
    assert (res["gap"].boxes[:, 3:] == -1).all() and (res["gap"].boxes[:, :3] == [0, 0, 16, 16]).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"k": 0}, "k must be an integer >= 1; got 0"),
    ({"score": "median"}, "score must be one of 'max', 'mean'; got 'median'"),
    ({"bins": 0}, "bins must be an integer >= 1"),
    ({"batch_size": 2.5}, "batch_size must be an integer >= 1"),
    ({"strategy": "mirrored"}, "strategy must be None or a tf.distribute.Strategy"),
    ({"cancel": True}, "cancel must be None or a threading.Event"),
    ({"dense_patch": 0}, "dense_patch must be an integer >= 1; got 0"),
])
def test_bad_options_are_refused_naming_option_and_value(probe, data, kwargs, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace(".", r"\.")):
        dataset.channel_examples(probe, data[0][:2], ["conv1"], **kwargs)


def test_bad_layers_and_data_are_refused(probe, data):
    with pytest.raises(LayerError, match="No layer named 'conv9'"):
        dataset.channel_examples(probe, data[0][:2], ["conv9"])
    with pytest.raises(ImageError, match=r"the model takes images \(16, 16, 3\)"):
        dataset.channel_examples(probe, tf.data.Dataset.from_tensor_slices(np.zeros((4, 8, 8, 3))).batch(2), "conv1")
    with pytest.raises(ImageError, match="labels outside"):
        dataset.channel_examples(probe, (data[0][:4], np.array([0, 1, 9, 2])), LAYERS, k=6, bins=20)
    bad = data[0][:4].copy()
    bad[1, 0, 0, 0] = np.nan
    with pytest.raises(ImageError, match="NaN or infinite"):
        dataset.channel_examples(probe, tf.data.Dataset.from_tensor_slices((bad, data[1][:4])).batch(2), LAYERS,
                                 k=6, bins=20)
    with pytest.raises(ImageError, match="no images"):
        dataset.channel_examples(probe, iter([]), "conv1")


def test_a_cancel_set_before_the_pass_checks_options_and_traces_nothing(probe, data):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(OptionError, match="k must be"):
        dataset.channel_examples(probe, data, LAYERS, k=-1, cancel=cancel)
    traces = probe.trace_count
    res = dataset.channel_examples(probe, data, ["conv1"], k=2, bins=3, cancel=cancel)
    assert res.cancelled and res.partial and res.images == 0 and probe.trace_count == traces
    assert (res["conv1"].indices == -1).all()
