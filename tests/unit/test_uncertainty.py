"""core.uncertainty: MC dropout with only the dropout family sampled, ensembles, explanation spread, calibration.

Small random models built here (16 x 16 inputs) keep the quick tests well under a second each; the
out-of-distribution test trains a dropout head over the demo model's features and is marked slow.
"""

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnwidget.core import Cancelled, ModelError, ModelProbe, OptionError
from cnnwidget.core import probe as probe_module
from cnnwidget.core import uncertainty as U

H = 16


def _images(n=6, seed=0):
    return np.random.default_rng(seed).random((n, H, H, 3), dtype=np.float32)


def _model(dropout=0.5, bn=False, classes=3, seed=0, kind="Dropout", name="m", scale=1.0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((H, H, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inp)
    if bn:
        x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    if kind == "SpatialDropout2D":
        x = keras.layers.SpatialDropout2D(dropout, name="sdrop")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    if dropout is not None and kind == "Dropout":
        x = keras.layers.Dropout(dropout, name="drop")(x)
    elif kind == "GaussianDropout":
        x = keras.layers.GaussianDropout(dropout, name="gdrop")(x)
    elif kind == "AlphaDropout":
        x = keras.layers.AlphaDropout(dropout, name="adrop")(x)
    elif kind == "GaussianNoise":
        x = keras.layers.GaussianNoise(dropout, name="gnoise")(x)
    out = keras.layers.Dense(classes, activation="softmax", name="out")(x)
    model = keras.Model(inp, out, name=name)
    if scale != 1.0:  # an over-confident model: logits scaled up
        w, b = model.get_layer("out").get_weights()
        model.get_layer("out").set_weights([w * scale, b * scale])
    if bn:  # moving statistics far from any batch's: the naive recipe's batch statistics then differ
        layer = model.get_layer("bn")
        gamma, beta, mean, var = layer.get_weights()
        rng = np.random.default_rng(1)
        layer.set_weights([gamma, beta, rng.normal(0.3, 0.2, mean.shape), rng.uniform(0.05, 0.2, var.shape)])
    return model


def test_batchnorm_stays_in_inference_every_sample_equals_the_prediction_exactly():
    model = _model(dropout=0.0, bn=True)
    probe = ModelProbe(model)
    x = _images(8)
    want = probe.predict(x)
    result = U.mc_dropout(probe, x, samples=5)
    assert result.stochastic == ["drop"]
    for s in range(5):
        np.testing.assert_array_equal(result.probabilities[s], want)
    # The naive recipe on the same model: BatchNormalization switches to batch statistics, so its "samples"
    # differ from the prediction although Dropout(rate=0) draws nothing (and it moves the moving averages).
    bn = model.get_layer("bn")
    moving = [w.copy() for w in bn.get_weights()[2:]]
    naive = np.stack([keras.ops.convert_to_numpy(model(x, training=True)) for _ in range(3)])
    assert np.abs(naive - want[None]).max() > 1e-3
    assert any(not np.array_equal(a, b) for a, b in zip(moving, bn.get_weights()[2:]))


def test_the_users_model_is_not_changed():
    model = _model(bn=True)
    before = [w.copy() for w in model.get_weights()]
    x = _images(4)
    p0 = keras.ops.convert_to_numpy(model(x))
    U.mc_dropout(model, x, samples=4)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x)), p0)
    assert type(model.get_layer("drop")) is keras.layers.Dropout


def test_no_stochastic_layer_gives_exactly_zero_mutual_information_and_says_so():
    result = U.mc_dropout(_model(dropout=None), _images(), samples=7)
    assert result.probabilities.shape == (7, 6, 3)
    assert np.all(result.mutual_information == 0) and np.all(result.variance == 0)
    assert result.note.startswith("no stochastic layer") and not result.has_epistemic
    assert "0 by construction" in U.reading(result, 0)


def test_dropout_gives_positive_mutual_information_and_consistent_summaries():
    result = U.mc_dropout(_model(dropout=0.5), _images(), samples=40)
    p = result.probabilities.astype(np.float64)
    assert (result.mutual_information > 0).all()
    np.testing.assert_allclose(result.mean, p.mean(0), atol=1e-6)
    np.testing.assert_allclose(result.variance, p.var(0), atol=1e-6)
    ent = lambda q: -(q * np.log(q)).sum(-1)  # noqa: E731
    np.testing.assert_allclose(result.predictive_entropy, ent(p.mean(0)), atol=1e-5)
    np.testing.assert_allclose(result.expected_entropy, ent(p).mean(0), atol=1e-5)
    np.testing.assert_allclose(result.mutual_information, ent(p.mean(0)) - ent(p).mean(0), atol=1e-5)
    assert "mutual information" in U.reading(result, 1, ["a", "b", "c"])


@pytest.mark.parametrize("kind", ["SpatialDropout2D", "GaussianDropout", "AlphaDropout"])
def test_every_dropout_kind_is_sampled(kind):
    result = U.mc_dropout(_model(dropout=0.3, kind=kind), _images(3), samples=8)
    assert len(result.stochastic) == 1 and result.mutual_information.max() > 0


def test_gaussian_noise_only_when_asked():
    model = _model(dropout=0.5, kind="GaussianNoise")
    assert U.mc_dropout(model, _images(3), samples=4).note.startswith("no stochastic layer")
    assert U.mc_dropout(model, _images(3), samples=4, noise=True).mutual_information.max() > 0


def test_dropout_inside_a_nested_model():
    inner = _model(dropout=0.5, name="inner")
    inp = keras.Input((H, H, 3))
    outer = keras.Model(inp, inner(inp), name="outer")
    result = U.mc_dropout(outer, _images(3), samples=6)
    assert result.stochastic == ["inner/drop"] and result.mutual_information.max() > 0


def test_the_part_before_the_first_dropout_runs_once_and_the_head_is_split_there():
    model = _model(dropout=0.5)
    sampler = U._sampler(ModelProbe(model), False)
    # the head reads the hidden layer's output only: the convolution and pooling are in the prefix
    assert len(sampler.prefix.get_concrete_function().structured_outputs) == 1
    head_inputs = sampler.head.get_concrete_function().structured_input_signature[0][0]
    assert [tuple(s.shape) for s in head_inputs] == [(None, 16)]


def test_same_seed_same_result_other_seed_other_result_and_no_retrace():
    probe = ModelProbe(_model(dropout=0.5))
    x = _images(5)
    a = U.mc_dropout(probe, x, samples=10, seed=3)
    before = probe.trace_count
    b = U.mc_dropout(probe, x, samples=10, seed=3)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    c = U.mc_dropout(probe, x, samples=25, seed=4)
    U.mc_dropout(probe, x[:2], samples=3, seed=9)
    assert not np.array_equal(a.probabilities, c.probabilities[:10])
    assert probe.trace_count == before  # new samples, seed and batch size: values, not traces
    assert probe_module.traces("uncertainty") > 0


def test_options_are_checked():
    model = _model()
    for kwargs, word in [({"samples": 0}, "samples"), ({"samples": 2.5}, "samples"), ({"seed": -1}, "seed"),
                         ({"noise": "yes"}, "noise"), ({"samples": U.MAX_SAMPLES + 1}, "samples")]:
        with pytest.raises(OptionError, match=word):
            U.mc_dropout(model, _images(2), **kwargs)


def test_nan_probabilities_are_refused():
    model = _model()
    w, b = model.get_layer("out").get_weights()
    model.get_layer("out").set_weights([np.full_like(w, np.nan), b])
    with pytest.raises(U.ResultError, match="NaN"):
        U.mc_dropout(model, _images(2), samples=3)


def test_cancel_before_the_first_pass():
    event = threading.Event()
    event.set()
    with pytest.raises(Cancelled):
        U.mc_dropout(_model(), _images(2), samples=3, cancel=event)


def test_ensemble_summaries():
    a, b = _model(dropout=None, seed=1, name="a"), _model(dropout=None, seed=2, name="b")
    result = U.ensemble([a, b], _images(4))
    assert result.kind == "ensemble" and result.probabilities.shape == (2, 4, 3)
    assert result.stochastic == ["a", "b"] and (result.mutual_information > 0).all()
    one = U.ensemble([a], _images(4))
    assert np.all(one.mutual_information == 0) and one.note.startswith("no spread")
    with pytest.raises(ModelError, match="same classes"):
        U.ensemble([a, _model(dropout=None, classes=4, name="c")], _images(2))
    with pytest.raises(OptionError):
        U.ensemble(a, _images(2))


@pytest.mark.slow
def test_explanation_spread_of_saliency_and_grad_cam():
    model = _model(dropout=0.5, bn=True)
    weights = [w.copy() for w in model.get_weights()]
    x = _images(3)
    spread = U.explanation_spread(model, x, samples=6, seed=1)
    assert spread.std.shape == (3, H, H) and spread.maps.shape == (6, 3, H, H) and spread.std.max() > 0
    np.testing.assert_allclose(spread.std, spread.maps.std(0), atol=1e-6)
    again = U.explanation_spread(model, x, samples=6, seed=1)
    np.testing.assert_array_equal(spread.maps, again.maps)
    cam = U.explanation_spread(model, x, method="grad_cam", samples=4, layer="relu")
    assert cam.mean.shape == (3, H, H)
    flat = U.explanation_spread(_model(dropout=None), x, samples=4)
    assert np.all(flat.std == 0) and flat.note
    with pytest.raises(OptionError, match="method"):
        U.explanation_spread(model, x, method="lime")
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))


def _direct_ece(p, y, bins=15):
    conf, pred = p.max(1), p.argmax(1)
    ece = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = (conf > lo) & (conf <= hi) if b else (conf >= lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs((pred[inside] == y[inside]).mean() - conf[inside].mean())
    return ece


def _calibration_data(n=240, seed=0):
    x = np.random.default_rng(seed).random((n, H, H, 3), dtype=np.float32)
    y = np.random.default_rng(seed + 1).integers(0, 3, n)
    return x, y


def test_ece_equals_a_direct_numpy_computation():
    model = _model(dropout=None, scale=20.0)
    x, y = _calibration_data()
    result = U.calibration(model, (x, y))
    p = ModelProbe(model).predict(x).astype(np.float64)
    assert abs(result.overall.ece - _direct_ece(p, y)) < 1e-6
    evaluation = ~result.split
    assert abs(result.before.ece - _direct_ece(p[evaluation], y[evaluation])) < 1e-6
    nll = -np.log(p[np.arange(len(y)), y]).mean()
    assert abs(result.overall.nll - nll) < 1e-4
    brier = ((p - np.eye(3)[y]) ** 2).sum(1).mean()
    assert abs(result.overall.brier - brier) < 1e-5
    assert result.overall.count.sum() == len(y)


def test_temperature_scaling_lowers_the_nll_on_the_held_out_split():
    model = _model(dropout=None, scale=20.0)  # over-confident on random labels
    result = U.calibration(model, _calibration_data(), bins=10, holdout=0.5)
    assert result.temperature > 1
    assert result.after.nll < result.before.nll
    assert result.fit_nll[1] <= result.fit_nll[0]
    assert result.after.ece < result.before.ece
    assert len(result.most_uncertain) == 8 and result.uncertain_images.shape == (8, H, H, 3)
    ent = [e for _, e, _, _ in result.most_uncertain]
    assert ent == sorted(ent, reverse=True)


def test_a_dataset_gives_the_same_result_as_arrays_and_progress_is_reported():
    model = _model(dropout=None, scale=5.0)
    x, y = _calibration_data()
    seen = []
    a = U.calibration(model, (x, y), batch_size=50, progress=lambda d, t: seen.append((d, t)))
    b = U.calibration(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(50))
    assert seen[-1] == (5, 5)
    assert abs(a.overall.ece - b.overall.ece) < 1e-9 and a.temperature == b.temperature
    np.testing.assert_array_equal(a.split, b.split)


def test_calibration_refuses_too_few_images_and_bad_options():
    model = _model(dropout=None)
    x, y = _calibration_data(60)
    with pytest.raises(U.ResultError, match="at least 100 images"):
        U.calibration(model, (x, y))
    x, y = _calibration_data(200)
    for kwargs, word in [({"bins": 1}, "bins"), ({"holdout": 0.0}, "holdout"), ({"holdout": 1.5}, "holdout")]:
        with pytest.raises(OptionError, match=word):
            U.calibration(model, (x, y), **kwargs)
    with pytest.raises(OptionError, match="out of range"):
        U.calibration(model, (x, np.full(200, 7)))
    with pytest.raises(OptionError, match="labels"):
        U.calibration(model, (x, y[:10]))


@pytest.mark.slow
def test_mutual_information_is_higher_on_noise_than_on_held_out_shapes():
    """The demo model itself is no use here: it maps uniform noise to one class with p = 1.0000 (MI ~1e-14,
    softmax saturation; measured). A dropout head trained over its frozen features (Dense 64 -> Dropout 0.5)
    is the MC-dropout model this test needs; 50 images each, 20 samples (measured: mean MI shapes 0.108, noise
    0.669; with 100 images and 50 samples 0.135 and 0.733, at 4x the CPU)."""
    from cnnwidget import demo

    keras.utils.set_random_seed(0)
    base = demo.load_model()
    train = demo.shapes(600, seed=1)
    features = ModelProbe(base).activations(train.images, ["gap"])["gap"]
    inp = keras.Input(features.shape[1:])
    h = keras.layers.Dense(64, activation="relu", name="mc_dense")(inp)
    h = keras.layers.Dropout(0.5, name="mc_dropout")(h)
    out = keras.layers.Dense(10, activation="softmax", name="mc_out")(h)
    head = keras.Model(inp, out)
    head.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    head.fit(features, train.labels, epochs=20, batch_size=100, verbose=0)
    x = base.get_layer("gap").output
    for layer in head.layers[1:]:
        x = layer(x)
    model = keras.Model(base.input, x)
    held_out = demo.shapes(50, seed=99).images
    noise = np.random.default_rng(0).uniform(0, 1, (50, 64, 64, 3)).astype(np.float32)
    shapes_mi = U.mc_dropout(model, held_out, samples=20).mutual_information.mean()
    noise_mi = U.mc_dropout(model, noise, samples=20).mutual_information.mean()
    assert noise_mi > shapes_mi > 0


def test_a_near_uniform_prediction_is_read_as_the_model_not_telling_classes_apart_not_an_ambiguous_image():
    rng = np.random.default_rng(0)
    flat = np.full((10, 2, 10), 0.1) + rng.normal(0, 1e-4, (10, 2, 10))  # an untrained model: 10% each class
    flat[:, 1] = np.eye(10)[3] * 0.55 + 0.05  # image 1: 60% on one class, the rest spread
    result = U.summarize(flat / flat.sum(-1, keepdims=True), kind="mc_dropout", stochastic=["drop"], samples=10)
    text = U.reading(result, 0)
    assert "does not distinguish the classes" in text and "aleatoric" not in text and "1/10 = 0.10" in text
    assert "does not distinguish" not in U.reading(result, 1)
    fixed = U.summarize(flat[:1] / flat[:1].sum(-1, keepdims=True), kind="mc_dropout", stochastic=[],
                        deterministic=True)
    assert "0 by construction" in U.reading(fixed, 0) and "does not distinguish" in U.reading(fixed, 0)
