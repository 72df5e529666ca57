"""Perturbation methods on a model that takes images of any size, and the batch size they score masks at."""

import keras
import numpy as np
import pytest

from cnnwidget.core import ModelProbe
from cnnwidget.core import attribution as attr
from cnnwidget.core.attribution import _common


@pytest.fixture(scope="module")
def free_size_model():
    return _free_size_model()


def _free_size_model():
    """Any image size in; logits out (linear head "head"), so the occlusion score is the model's own output."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, name="head")(x))


def _images(n, side, seed):
    return np.random.default_rng(seed).random((n, side, side, 3), dtype=np.float32)


def _occlusion_by_hand(model, images, patch, stride):
    """Occlusion computed box by box with the model itself: fill = each image's mean colour, score = logit of the
    class predicted on the image, each pixel the mean drop over the boxes covering it."""
    out = []
    for image in images:
        h, w = image.shape[:2]
        logits = np.asarray(model(image[None]))[0]
        t = int(logits.argmax())
        total, count = np.zeros((h, w)), np.zeros((h, w))
        for y in list(range(0, h - patch + 1, stride)):
            for x in list(range(0, w - patch + 1, stride)):
                hidden = image.copy()
                hidden[y:y + patch, x:x + patch] = image.mean(axis=(0, 1))
                total[y:y + patch, x:x + patch] += logits[t] - np.asarray(model(hidden[None]))[0, t]
                count[y:y + patch, x:x + patch] += 1
        out.append(total / count)
    return np.stack(out)


@pytest.mark.slow
def test_occlusion_masks_a_second_image_size_at_that_size(free_size_model):
    probe = ModelProbe(free_size_model)
    attr.occlusion(probe, _images(2, 24, 0), patch=8, stride=8)  # traces the pass for 24 x 24 images
    second = _images(2, 40, 1)
    got = attr.occlusion(probe, second, patch=8, stride=8)
    np.testing.assert_allclose(got, _occlusion_by_hand(free_size_model, second, 8, 8), atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("method, options", [
    ("occlusion", {"patch": 8, "stride": 8}), ("rise", {"masks": 8, "grid": 4}),
    ("lime", {"samples": 8, "n_segments": 6}), ("kernel_shap", {"samples": 8, "n_segments": 6}),
])
def test_a_second_image_size_reuses_the_compiled_pass_and_maps_like_a_fresh_probe(free_size_model, method, options):
    probe = ModelProbe(free_size_model)
    run = getattr(attr, method)
    run(probe, _images(2, 24, 0), **options)
    traced = probe.trace_count
    second = _images(2, 40, 1)
    got = run(probe, second, **options)
    assert probe.trace_count == traced, f"{method} traced again for 40 x 40 images"
    np.testing.assert_allclose(got, run(ModelProbe(free_size_model), second, **options), atol=1e-4)


@pytest.mark.slow
def test_deletion_and_insertion_score_a_second_image_size_like_a_fresh_probe(free_size_model):
    probe = ModelProbe(free_size_model)
    first, second = _images(2, 24, 0), _images(2, 40, 1)
    for curve in (attr.deletion, attr.insertion):
        curve(probe, first, first.mean(-1), score="logit")
    traced = probe.trace_count
    for curve in (attr.deletion, attr.insertion):
        got = curve(probe, second, second.mean(-1), score="logit")
        np.testing.assert_allclose(got, curve(ModelProbe(free_size_model), second, second.mean(-1), score="logit"),
                                   atol=1e-5)
    assert probe.trace_count == traced


def test_randomization_traces_once_and_leaves_the_model_alone():
    from cnnwidget.core import probe as probe_module
    from cnnwidget.core.attribution import metrics

    free_size_model = _free_size_model()
    probe = ModelProbe(free_size_model)
    weights = [w.copy() for w in free_size_model.get_weights()]
    x = _images(2, 24, 0)
    first = attr.randomization(probe, x, attr.saliency, layers=["head"])
    traced = probe_module.traces()
    again = attr.randomization(probe, x, attr.saliency, layers=["head"])
    assert probe_module.traces() == traced, "the second randomization check traced again"
    np.testing.assert_allclose(again, first)  # the same copy: its random weights are drawn once
    for before, after in zip(weights, free_size_model.get_weights()):
        np.testing.assert_array_equal(before, after)
    # Weights the check keeps follow the model when it changes (e.g. after training); the model's stay its own.
    conv = free_size_model.layers[1]
    conv.set_weights([w + 1 for w in conv.get_weights()])
    copy = metrics._randomized_probe(probe, ["head"]).model
    np.testing.assert_array_equal(copy.layers[1].get_weights()[0], conv.get_weights()[0])
    head = free_size_model.get_layer("head").get_weights()[0]
    assert not np.array_equal(copy.get_layer("head").get_weights()[0], head)


def _chunks(run, images=0):
    """The chunk sizes a perturbation method scored its masks in, from its progress calls (which count the
    ``images`` scored unmasked first when the method reuses those scores: occlusion, LIME, Kernel SHAP)."""
    done = [images]
    run(lambda d, total: done.append(d))
    return list(np.diff(done))


def _neighbours(size):
    i = _common.TRIAL_SIZES.index(size)
    return set(_common.TRIAL_SIZES[max(i - 1, 0):i + 2])


def test_a_long_stream_tries_each_chunk_size_twice_then_keeps_the_fastest(free_size_model):
    probe = ModelProbe(free_size_model)
    images = _images(4, 32, 0)
    rows = 4 * 7 * 7  # occlusion 8/4 on 32 x 32: 7 x 7 boxes, four images
    assert rows >= 2 * sum(_common.TRIAL_SIZES)
    chunks = _chunks(lambda pr: attr.occlusion(probe, images, patch=8, stride=4, progress=pr), 4)
    trials = list(_common.TRIAL_SIZES) * 2
    assert chunks[:len(trials)] == trials
    best = _common.best_batch_size(probe, images.shape[1:])
    assert best in _common.TRIAL_SIZES
    # After the trials: the fastest, with one chunk in EXPLORE_EVERY at a neighbour of it.
    after = chunks[len(trials):-1]
    assert set(after) <= set(_common.TRIAL_SIZES) and len(after) >= 1
    # Measured once per probe and image size: the next stream goes straight to it (and keeps learning).
    again = _chunks(lambda pr: attr.rise(probe, images, masks=64, progress=pr))[:-1]
    assert again[0] == best and set(again) <= _neighbours(best) | {best}


def test_the_chunk_size_follows_the_least_time_seen(free_size_model):
    """Trials that met a load burst picked a slow size; exploring a neighbour corrects it."""
    probe = ModelProbe(free_size_model)
    shape = (32, 32, 3)
    chooser = _common._ChunkChooser(probe, shape, rows=1000)
    for size in chooser.trials[:]:
        chooser.next()
        chooser.timed(size, size * (0.001 if size == 2 else 0.002))  # 2 looks fastest in the trials
    sizes = [chooser.next() for _ in range(_common.EXPLORE_EVERY)]
    assert sizes[:-1] == [2] * (_common.EXPLORE_EVERY - 1) and sizes[-1] == 4  # the neighbour's turn
    chooser.timed(4, 4 * 0.0005)  # 4 is really faster: the next chunks use it
    assert chooser.next() == 4 and _common.best_batch_size(probe, shape) == 4


def test_a_batch_size_given_is_the_chunk_size(free_size_model):
    probe = ModelProbe(free_size_model)
    chunks = _chunks(lambda pr: attr.occlusion(probe, _images(2, 32, 0), patch=8, stride=4, batch_size=6,
                                               progress=pr), 2)
    assert set(chunks[:-1]) == {6}
    assert _common.best_batch_size(probe, (32, 32, 3)) is None


def test_a_short_stream_uses_the_probes_batch_size(free_size_model):
    probe = ModelProbe(free_size_model, batch_size=5)  # trials would be 2, 4, 2, 4: more than the 9 boxes
    assert _chunks(lambda pr: attr.occlusion(probe, _images(1, 24, 0), patch=8, stride=8, progress=pr), 1) == [5, 4]
    assert _common.best_batch_size(probe, (24, 24, 3)) is None
