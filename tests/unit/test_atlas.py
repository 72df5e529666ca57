"""core.atlas: the bottom-k reservoir (bounded, exact, independent of batching and source), a deterministic layout,
binning whose counts sum to the sample, two separated classes in different regions, cancel keeps partial results
flagged, too few vectors refused (expected vs given)."""

import threading

import keras
import numpy as np
import pytest

from cnnwidget.core import ModelProbe, OptionError
from cnnwidget.core import atlas as A


@pytest.fixture(scope="module")
def probe():
    """8x8x3 -> conv (2 channels: red minus blue, blue minus red) -> relu -> gap -> out (2): red images light
    channel 0, blue ones channel 1, everywhere."""
    inp = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(2, 1, name="conv")
    x = keras.layers.ReLU(name="relu")(conv(inp))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    dense = keras.layers.Dense(2, activation="softmax", name="out")
    model = keras.Model(inp, dense(x))
    conv.set_weights([np.array([[[[1, -1], [0, 0], [-1, 1]]]], np.float32), np.zeros(2, np.float32)])
    dense.set_weights([np.eye(2, dtype=np.float32) * 4, np.zeros(2, np.float32)])
    return ModelProbe(model, class_names=["red", "blue"])


def two_classes(n=48, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.uniform(0.0, 0.3, (n, 8, 8, 3)).astype(np.float32)
    images[labels == 0, :, :, 0] += rng.uniform(0.5, 0.7, (int((labels == 0).sum()), 8, 8))
    images[labels == 1, :, :, 2] += rng.uniform(0.5, 0.7, (int((labels == 1).sum()), 8, 8))
    return images, labels


@pytest.mark.slow
def test_reservoir_is_bounded_and_exact(probe):
    """A generator of 20 batches into a reservoir of 16: never more than 16 vectors, and they are exactly the 16
    smallest-key draws of the whole pass (the first 16 of a reservoir large enough to keep every draw)."""
    images, labels = two_classes(160)
    sizes = []

    def batches():
        for i in range(0, 160, 8):
            yield images[i:i + 8], labels[i:i + 8]

    small = A.collect(probe, batches(), "relu", samples=16, per_image=2, thumbnail=0, seed=5,
                      progress=lambda done, total, a: sizes.append(a.samples))
    assert small.vectors.shape == (16, 2) and small.images == 160 and small.drawn == 320
    assert max(sizes) <= 16 and small.thumbnails is None
    everything = A.collect(probe, (images, labels), "relu", samples=320, per_image=2, thumbnail=0, seed=5,
                           batch_size=64)
    assert everything.samples == 320
    np.testing.assert_array_equal(small.image_index, everything.image_index[:16])
    np.testing.assert_array_equal(small.position, everything.position[:16])
    np.testing.assert_allclose(small.vectors, everything.vectors[:16], rtol=1e-5, atol=1e-6)
    assert (small.label == labels[small.image_index]).all()
    # each kept vector is the layer's value at its recorded position
    acts = probe.activations(images[small.image_index], ["relu"])["relu"]
    y, x = small.position[:, 0], small.position[:, 1]
    np.testing.assert_allclose(small.vectors, acts[np.arange(16), y, x], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_sample_does_not_depend_on_batching(probe):
    images, labels = two_classes(40)
    one = A.collect(probe, images, "conv", samples=16, seed=1, batch_size=1, thumbnail=4)
    many = A.collect(probe, images, "conv", samples=16, seed=1, batch_size=40, thumbnail=4)
    np.testing.assert_array_equal(one.image_index, many.image_index)
    np.testing.assert_allclose(one.vectors, many.vectors, rtol=1e-5, atol=1e-6)
    assert one.thumbnails.shape == (16, 4, 4, 3) and one.thumbnails.dtype == np.uint8
    assert (one.label == -1).all() and not one.labelled
    other = A.collect(probe, images, "conv", samples=16, seed=2, batch_size=40, thumbnail=0)
    assert not np.array_equal(other.image_index, many.image_index) or not np.array_equal(other.position,
                                                                                          many.position)


def test_layout_is_deterministic_with_a_seed():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (30, 8)) + 1, rng.normal(0, 0.1, (30, 8)) - 1])
    a, method = A.layout_2d(x, "tsne", seed=3, iterations=150)
    b, _ = A.layout_2d(x, "tsne", seed=3, iterations=150)
    assert method == "tsne" and a.shape == (60, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    pca, method = A.layout_2d(x, "pca", seed=0)
    assert method == "pca" and pca.shape == (60, 2)


def test_layout_refuses_too_few_vectors():
    with pytest.raises(OptionError, match=r"at least 16 activation vectors; got 5"):
        A.layout_2d(np.ones((5, 3)), "tsne")
    with pytest.raises(OptionError, match="umap-learn"):
        if A.umap_available():
            pytest.skip("umap-learn is installed here")
        A.layout_2d(np.ones((20, 3)), "umap")


@pytest.mark.slow  # traces a pass: 1-2 s on a loaded machine
def test_too_few_vectors_from_data_refused(probe):
    images, labels = two_classes(6)
    with pytest.raises(OptionError, match=r"at least 16 activation vectors .* gave 6 \(6 images x 1"):
        A.collect(probe, images, "gap", samples=16)


def test_binning_counts_sum_to_the_sample():
    rng = np.random.default_rng(1)
    coords = rng.random((200, 2)).astype(np.float32)
    coords[:3] = [[1.0, 1.0], [0.0, 0.0], [1.0, 0.0]]  # the border falls inside the grid
    vectors = rng.random((200, 5)).astype(np.float32)
    classes = rng.integers(0, 3, 200)
    cells, cell_of = A.bin_cells(coords, vectors, classes, 7, image_index=np.arange(200) // 2, examples=4)
    assert cells.count.sum() == 200 and (cells.count > 0).all()
    assert set(np.unique(cell_of)) == set(cells.row * 7 + cells.col)
    assert cell_of[0] == 48 and cell_of[1] == 0 and cell_of[2] == 6
    for i in range(len(cells)):
        members = cell_of == cells.row[i] * 7 + cells.col[i]
        np.testing.assert_allclose(cells.mean[i], vectors[members].mean(0), rtol=1e-5)
        votes = np.bincount(classes[members], minlength=3)
        assert cells.label[i] == votes.argmax() and cells.support[i] == pytest.approx(votes.max() / members.sum())
        kept = cells.examples[i][cells.examples[i] >= 0]
        assert len(kept) == min(4, len(np.unique(np.arange(200)[members] // 2))) and len(set(kept)) == len(kept)


@pytest.mark.slow  # traces a pass: 1-2 s on a loaded machine
def test_two_separated_classes_land_in_different_regions(probe):
    images, labels = two_classes(64)
    atlas = A.activation_atlas(probe, (images, labels), "relu", grid=6, samples=64, layout="tsne", seed=0,
                               render=False, thumbnail=0)
    assert atlas.stage == "done" and not atlas.partial and atlas.class_source == "labels"
    assert atlas.cells.count.sum() == 64 and atlas.count_grid().sum() == 64
    by_class = [atlas.coords[atlas.label == k] for k in (0, 1)]
    # no cell holds both classes, and each class's cells support it wholly
    for i in range(len(atlas.cells)):
        members = atlas.cell_of == atlas.cells.row[i] * 6 + atlas.cells.col[i]
        assert len(set(atlas.label[members])) == 1
        assert atlas.cells.support[i] == 1.0 and atlas.cells.label[i] == atlas.label[members][0]
    gap = np.linalg.norm(by_class[0].mean(0) - by_class[1].mean(0))
    assert gap > 0.5, gap  # in a unit square
    # without labels, the model's predictions name the cells (here the same classes)
    assert (atlas.predicted == atlas.label).all()


@pytest.mark.slow  # traces a pass: 1-2 s on a loaded machine
def test_cancel_keeps_partial_results_flagged(probe):
    images, labels = two_classes(64)
    cancel = threading.Event()

    def progress(stage, done, total, atlas):
        if stage == "collect":
            cancel.set()  # at the first report, after the first batch

    atlas = A.activation_atlas(probe, (images, labels), "relu", grid=4, samples=32, batch_size=8,
                               progress=progress, cancel=cancel, thumbnail=0)
    assert atlas.cancelled and atlas.partial and atlas.stage == "collect"
    assert atlas.images == 8 and atlas.samples == 8 and atlas.cells is None


@pytest.mark.slow
def test_render_streams_icons_and_cancel_keeps_whole_batches(probe):
    images, labels = two_classes(64)
    atlas = A.activation_atlas(probe, (images, labels), "relu", grid=4, samples=32, layout="pca", render=False,
                               thumbnail=0)
    m = int(atlas.cells.renderable.sum())
    assert m >= 2
    cancel = threading.Event()
    seen = []

    def progress(done, total, a):
        seen.append((done, total, int(a.rendered.sum())))
        cancel.set()  # after the first batch

    out = A.render_atlas(probe, atlas, steps=4, batch=1, progress=progress, cancel=cancel)
    assert out.cancelled and out.partial and out.stage == "render"
    assert seen == [(1, m, 1)] and out.rendered.sum() == 1
    first = int(np.flatnonzero(out.rendered)[0])
    assert np.isfinite(out.icons[first]).all() and np.isnan(out.icons[~out.rendered]).all()
    assert out.icons.shape[1:] == (8, 8, 3)
    done = A.render_atlas(probe, atlas, steps=4, batch=4)
    assert done.stage == "done" and not done.partial and done.rendered.sum() == m
    assert np.isfinite(done.icons[done.rendered]).all()


def test_directions_objective_equals_fv_direction_per_image(probe):
    """The batch objective is fv.direction's term for each image's own vector, summed (spatial and vector layers)."""
    import tensorflow as tf

    from cnnwidget.core import featurevis as fv

    rng = np.random.default_rng(0)
    for layer, shape in (("relu", (3, 4, 4, 2)), ("gap", (3, 2))):
        acts = tf.constant(rng.random(shape, dtype=np.float32) - 0.3)
        vecs = rng.normal(size=(3, 2)).astype(np.float32)
        T = fv.Activations({layer: acts})
        batch = A.directions_objective(layer, vecs, cossim_pow=2.0)
        assert batch.batch == 3 and batch.key == ("atlas_directions", layer, 3)
        got = float(batch(T, [tf.constant(v) for v in batch.bind(probe)]))
        want = 0.0
        for i, v in enumerate(vecs):
            one = fv.direction(layer, v, cossim_pow=2.0)
            want += float(one(T.select(tf.constant(i)), [tf.constant(x) for x in one.bind(probe)]))
        assert got == pytest.approx(want, rel=1e-5)
    with pytest.raises(OptionError, match=r"shape \(1, 2\); got shape \(1, 3\)"):
        A.directions_objective("relu", np.ones((1, 3))).bind(probe)
    with pytest.raises(OptionError, match="non-zero"):
        A.directions_objective("relu", np.zeros((2, 2))).bind(probe)


def test_auto_layout_uses_umap_when_it_imports(monkeypatch):
    """umap-learn is optional (not installed here): a stand-in module checks what the atlas asks of it."""
    import sys
    import types

    calls = []

    class UMAP:
        def __init__(self, **kw):
            calls.append(kw)

        def fit_transform(self, x):
            return x[:, :2] * 10.0

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=UMAP))
    rng = np.random.default_rng(0)
    coords, method = A.layout_2d(rng.random((20, 4)), "auto", seed=7)
    assert method == "umap" and coords.shape == (20, 2) and coords.min() == 0 and coords.max() == 1
    assert calls == [dict(n_components=2, n_neighbors=15, min_dist=0.01, metric="cosine", random_state=7)]
