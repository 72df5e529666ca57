"""Training diagnostics: the warning rules on synthetic histories (fast), the callback's bookkeeping and refusals on
tiny models (fast, a few seconds of fit), with and without a probe batch, and end-to-end runs (slow, each under
30 s on 2 cores): a deep sigmoid stack raises "vanishing_gradients", a tiny training set raises "overfitting", a
healthy run raises nothing, and the callback works under a two-replica MirroredStrategy (in a subprocess)."""

import keras
import numpy as np
import pytest

from cnnwidget import demo
from cnnwidget.core import ImageError, ModelError, OptionError
from cnnwidget.core import diagnostics as dg
from cnnwidget.core.diagnostics import DiagnosticsCallback, Thresholds

T = Thresholds()


# -- rules on synthetic histories ------------------------------------------------------------------------------

def test_vanishing_needs_four_orders_below_the_largest_on_confirm_probes_in_a_row():
    healthy = np.array([1.0, 0.5, 1e-3])
    vanishing = np.array([1.0, 0.5, 1e-5])
    assert dg.vanishing_layers(np.stack([vanishing, vanishing]), T) == [2]
    assert dg.vanishing_layers(np.stack([healthy, vanishing]), T) == []  # one probe is not enough
    assert dg.vanishing_layers(np.stack([healthy, healthy]), T) == []
    assert dg.vanishing_layers(vanishing[None], Thresholds(confirm=1)) == [2]


def test_exploding_on_nan_at_once_and_on_sustained_growth_by_three_orders():
    assert dg.exploding_layers(np.array([[1.0, np.nan]]), T) == [1]
    growing = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 10.0], [1.0, 2000.0]])
    assert dg.exploding_layers(growing, T) == [1]  # rose twice in a row, to 2000 x the median before (1)
    almost = growing.copy()
    almost[-1, 1] = 900.0  # not yet three orders
    assert dg.exploding_layers(almost, T) == []
    spike = np.array([[1.0], [1.0], [5000.0], [10.0]])  # a spike that came back down is not growth
    assert dg.exploding_layers(spike, T) == []


def test_dead_units_need_the_fraction_above_threshold_on_confirm_probes():
    fractions = np.array([[0.1, 0.6], [0.1, 0.7]])
    assert dg.dead_layers(fractions, T) == [1]
    assert dg.dead_layers(fractions, Thresholds(dead=0.8)) == []
    assert dg.dead_layers(fractions[:1], T) == []


def test_overfitting_is_validation_rising_from_its_best_for_patience_epochs_while_training_falls():
    loss = np.array([2.0, 1.5, 1.0, 0.7, 0.5, 0.3])
    val = np.array([2.0, 1.6, 1.4, 1.5, 1.6, 1.7])
    assert dg.overfitting(loss[:5], val[:5], T) is None  # best at epoch 2, only 2 epochs ago
    assert "rose from its best 1.4 to 1.7" in dg.overfitting(loss, val, T)
    assert dg.overfitting(loss, np.array([2.0, 1.6, 1.4, 1.3, 1.2, 1.1]), T) is None  # still improving
    assert dg.overfitting(np.array([2.0, 2.0, 2.0, 2.1, 2.2, 2.3]), val, T) is None  # training not falling
    # epochs without validation (validation_freq=2) are skipped, not read as a fall
    gappy = np.array([2.0, np.nan, 1.4, np.nan, 1.5, np.nan, 1.6, np.nan, 1.7])
    assert dg.overfitting(np.linspace(2, 0.2, 9), gappy, T) is not None


def test_underfitting_is_flat_and_high():
    chance = np.log(10)
    flat_high = np.array([2.5, 2.30, 2.29, 2.30, 2.29])
    assert "not learning" in dg.underfitting(flat_high, None, chance, T)
    assert dg.underfitting(flat_high, flat_high + 0.01, chance, T) is not None  # validation flat too
    assert dg.underfitting(flat_high, np.array([2.5, 2.3, 2.0, 1.8, 1.6]), chance, T) is None  # val still moving
    assert dg.underfitting(np.array([0.3, 0.05, 0.05, 0.05, 0.05]), None, chance, T) is None  # flat but low
    assert dg.underfitting(np.array([2.5, 2.3, 2.1, 1.9, 1.7]), None, chance, T) is None  # high but falling
    assert dg.underfitting(flat_high[:3], None, chance, T) is None  # fewer than patience + 1 epochs


# -- the callback: bookkeeping and refusals ------------------------------------------------------------------------

H = 16


def tiny_model(compiled=True, loss="sparse_categorical_crossentropy"):
    keras.utils.set_random_seed(0)
    inp = keras.Input((H, H, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="out")(x))
    if compiled:
        model.compile(optimizer="adam", loss=loss)
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((64, H, H, 3), dtype=np.float32), rng.integers(0, 3, 64)


def test_batch_loss_is_recovered_from_the_running_mean():
    cb = DiagnosticsCallback((np.zeros((1, H, H, 3)), np.zeros(1)))
    losses = [3.0, 1.0, 2.0, 6.0]
    means = np.cumsum(losses) / np.arange(1, 5)
    assert [cb._batch_loss_from_mean(i, m) for i, m in enumerate(means)] == pytest.approx(losses)
    cb._prev_index, cb._prev_mean = -1, 0.0  # steps_per_execution=2: the mean of the two steps since last call
    assert cb._batch_loss_from_mean(1, means[1]) == pytest.approx(2.0)
    assert cb._batch_loss_from_mean(3, means[3]) == pytest.approx(4.0)


@pytest.mark.slow
def test_a_fit_records_everything_traces_once_and_notifies_subscribers(data, tmp_path):
    x, y = data
    cb = DiagnosticsCallback((x[:16], y[:16]), every=3, bins=8, verbose=0)
    updates = []
    cb.on_update(lambda u: updates.append(u["kind"]))
    model = tiny_model()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[cb], validation_data=(x[:16], y[:16]))
    h = cb.history
    assert list(h["epoch"]) == [0, 1] and {"epoch/loss", "epoch/val_loss"} <= set(h)
    assert list(h["step"]) == list(range(1, 17)) and np.isfinite(h["batch_loss_smoothed"]).all()
    assert list(h["probe_step"]) == [1, 4, 7, 10, 13, 16]
    assert list(h["weight_layers"]) == ["conv", "out"] and list(h["activation_layers"]) == ["conv"]
    assert h["grad_norm"].shape == (6, 2) and (h["grad_norm"] > 0).all()
    assert h["update_ratio"].shape == (6, 2) and (h["update_ratio"] > 0).all() and (h["update_ratio"] < 1).all()
    assert h["dead_fraction"].shape == (6, 1)
    assert h["weight_hist"].shape == (6, 2, 8) and (h["weight_hist"].sum(axis=2) == [4 * 27 + 4, 4 * 3 + 3]).all()
    assert h["activation_hist"].sum(axis=2).tolist() == [[16 * H * H * 4]] * 6
    assert h["weight_edges"].shape == (2, 9) and h["activation_edges"][0, 0] == 0  # ReLU: lower edge at 0
    assert cb.trace_count == 1
    assert updates[0] == "begin" and updates[-1] == "end"
    assert updates.count("probe") == 6 and updates.count("epoch") == 2 and updates.count("batch") == 16
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[cb])  # a second fit starts a new history
    assert cb.trace_count == 1 and len(cb.history["step"]) == 8

    cb.save(tmp_path / "run.npz")
    history, warnings = dg.load(tmp_path / "run.npz")
    assert warnings == cb.warnings
    np.testing.assert_array_equal(history["grad_norm"], cb.history["grad_norm"])


@pytest.fixture(scope="module")
def dead_channel_run(data):
    """(Its three tests are slow: a Keras fit's first trace costs seconds of CPU, too much for the quick set.)
    A fit of 3 steps probed after each, conv channel 2 killed by a bias of -1000 (inputs are in [0, 1] and
    its 27 weights under 1, so it is below zero at every position of every probe image); with a GradientTape's
    per-layer gradient norms on the probe batch at the final weights, taken right after the fit."""
    import tensorflow as tf

    x, y = data
    model = tiny_model()
    model.get_layer("conv").bias.assign(np.array([0.0, 0.0, -1e3, 0.0], np.float32))
    cb = DiagnosticsCallback((x[:16], y[:16]), every=1, verbose=0)
    model.fit(x[:48], y[:48], batch_size=16, epochs=1, verbose=0, callbacks=[cb])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y[:16], model(x[:16], training=False)))
    grads = tape.gradient(loss, [model.get_layer("conv").trainable_weights, model.get_layer("out").trainable_weights])
    tape_norms = [np.sqrt(sum(float(tf.reduce_sum(g ** 2)) for g in layer)) for layer in grads]
    return model, cb, {k: np.array(v) for k, v in cb.history.items()}, tape_norms


@pytest.mark.slow
def test_a_channel_killed_by_its_bias_is_exactly_the_measured_dead_fraction(dead_channel_run):
    # One unit of 4 dead: 0.25, however many positions the other channels are positive at.
    _, _, history, _ = dead_channel_run
    np.testing.assert_array_equal(history["dead_fraction"], [[0.25]] * 3)


@pytest.mark.slow
def test_the_last_probes_gradient_norms_equal_a_tapes_on_the_probe_batch(dead_channel_run):
    # Probing after every step, the last probe sees the final weights, as the tape did.
    _, _, history, tape_norms = dead_channel_run
    assert list(history["probe_step"]) == [1, 2, 3]
    np.testing.assert_allclose(history["grad_norm"][-1], tape_norms, rtol=1e-4)
    assert not np.allclose(history["grad_norm"][0], tape_norms, rtol=1e-3)  # an earlier step's norms differ


@pytest.mark.slow
def test_with_the_bias_put_back_no_unit_is_dead(dead_channel_run, data):
    x, y = data
    model, cb, _, _ = dead_channel_run
    model.get_layer("conv").bias.assign(np.zeros(4, np.float32))
    model.fit(x[:32], y[:32], batch_size=16, epochs=1, verbose=0, callbacks=[cb])
    np.testing.assert_array_equal(cb.history["dead_fraction"], [[0.0], [0.0]])


@pytest.mark.slow
def test_layers_inside_a_nested_model_are_recorded_by_path(data):
    x, y = data
    base = tiny_model(compiled=False)
    inp = keras.Input((H, H, 3))
    outer = keras.Model(inp, base(inp))
    outer.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    cb = DiagnosticsCallback((x[:8], y[:8]), every=2, verbose=0)
    outer.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[cb])
    h = cb.history
    assert list(h["weight_layers"]) == [f"{base.name}/conv", f"{base.name}/out"]
    assert h["grad_norm"].shape == (2, 2) and (h["grad_norm"] > 0).all()


@pytest.mark.slow
def test_to_dataframe_when_pandas_is_there(data):
    x, y = data
    cb = DiagnosticsCallback((x[:16], y[:16]), every=4, verbose=0)  # the default warnings
    tiny_model().fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[cb])
    # Without validation data, overfitting is by default simply not checked: the fit runs on (this check was a
    # second fit of its own in the refusal test below, with the same options), pandas or not.
    assert "overfitting" not in {w.kind for w in cb.warnings} and len(cb.history["epoch"]) == 2
    pd = pytest.importorskip("pandas")
    epochs = cb.to_dataframe("epochs")
    assert list(epochs.columns) == ["epoch", "loss"] and list(epochs["epoch"]) == [1, 2]  # as Keras prints them
    probes = cb.to_dataframe("probes")
    assert isinstance(probes, pd.DataFrame) and set(probes["layer"]) == {"conv", "out"}
    assert probes.loc[probes["layer"] == "out", "dead_fraction"].isna().all()


@pytest.mark.slow
def test_a_failing_subscriber_does_not_stop_training(data):
    x, y = data
    cb = DiagnosticsCallback((x[:8], y[:8]), every=4, verbose=0)
    cb.on_update(lambda u: 1 / 0)
    with pytest.warns(RuntimeWarning, match="subscriber raised ZeroDivisionError"):
        tiny_model().fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[cb])
    assert len(cb.history["step"]) == 4


@pytest.mark.slow
def test_warnings_are_printed_once_and_returned_as_data(data):
    x, y = data
    printed = []
    cb = DiagnosticsCallback((x[:8], y[:8]), every=1, thresholds=Thresholds(dead=-1.0, confirm=1),
                             print_fn=printed.append)  # dead=-1: every activation layer counts as dead
    tiny_model().fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[cb])
    assert [(w.kind, w.layer, w.step) for w in cb.warnings] == [("dead_units", "conv", 1)]
    assert printed == ["cnnwidget dead_units at step 1: " + cb.warnings[0].message]


def test_an_uncompiled_model_is_refused(data):
    x, y = data
    cb = DiagnosticsCallback((x[:8], y[:8]))
    with pytest.raises(ModelError, match="not compiled"):
        cb.set_model(tiny_model(compiled=False))
    no_loss = tiny_model(compiled=False)
    no_loss.compile(optimizer="adam")
    with pytest.raises(ModelError, match="compile"):
        cb.set_model(no_loss)
    with pytest.raises(ValueError, match="compile"):  # in fit, Keras's own check comes first
        tiny_model(compiled=False).fit(x, y, epochs=1, verbose=0, callbacks=[cb])


def test_a_probe_batch_of_the_wrong_shape_is_refused_when_fit_starts(data):
    x, y = data
    cb = DiagnosticsCallback((np.zeros((4, 8, 8, 3), np.float32), y[:4]))
    with pytest.raises(ImageError, match="16x16"):
        tiny_model().fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    with pytest.raises(OptionError, match="one label each"):
        tiny_model().fit(x, y, epochs=1, verbose=0, callbacks=[DiagnosticsCallback((x[:4], y[:3]))])


@pytest.mark.slow
def test_overfitting_detection_asked_for_without_validation_data_is_refused(data):
    x, y = data
    cb = DiagnosticsCallback((x[:8], y[:8]), warn=["overfitting"])
    with pytest.raises(OptionError, match="no validation data"):
        tiny_model().fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[cb])
    # By default it is simply not checked: test_to_dataframe_when_pandas_is_there's fit asserts that.


def test_bad_options_are_refused():
    probe = (np.zeros((1, H, H, 3)), np.zeros(1))
    with pytest.raises(OptionError, match="unknown warning kind"):
        DiagnosticsCallback(probe, warn=["vanishing"])
    with pytest.raises(OptionError, match=r"pair \(images, labels\).*got ndarray of shape \(1, 16, 16, 3\)"):
        DiagnosticsCallback(np.zeros((1, H, H, 3)))
    with pytest.raises(OptionError, match="every"):
        DiagnosticsCallback(probe, every=0)
    with pytest.raises(OptionError, match=r"budget must be None or a fraction in \(0, 1\]"):
        DiagnosticsCallback(probe, budget=0)


def test_warnings_that_need_a_probe_batch_are_refused_without_one():
    with pytest.raises(OptionError, match=r"\['vanishing_gradients', 'dead_units'\].*pass probe_data=\(images"):
        DiagnosticsCallback(warn=["vanishing_gradients", "overfitting", "dead_units"])
    no_probe = DiagnosticsCallback(warn=["exploding_gradients", "overfitting", "underfitting"])  # need no probe batch
    assert set(no_probe.kinds) == {"exploding_gradients", "overfitting", "underfitting"}


# -- without probe data -------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_without_probe_data_update_ratios_and_weight_histograms_are_recorded_and_gradients_are_nan(data):
    x, y = data
    cb = DiagnosticsCallback(every=3, bins=8, verbose=0)
    tiny_model().fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[cb], validation_data=(x[:16], y[:16]))
    h = cb.history
    assert {"epoch/loss", "epoch/val_loss"} <= set(h) and len(h["batch_loss_smoothed"]) == 16
    assert list(h["probe_step"]) == [1, 4, 7, 10, 13, 16] and list(h["weight_layers"]) == ["conv", "out"]
    assert (h["update_ratio"] > 0).all() and (h["update_ratio"] < 1).all()
    assert (h["weight_hist"].sum(axis=2) == [4 * 27 + 4, 4 * 3 + 3]).all() and h["weight_edges"].shape == (2, 9)
    assert np.isnan(h["grad_norm"]).all() and h["grad_norm"].shape == (6, 2)
    assert list(h["activation_layers"]) == [] and h["dead_fraction"].shape == (6, 0)
    assert h["activation_hist"].shape == (6, 0, 8) and cb.trace_count == 1


@pytest.mark.slow
def test_without_probe_data_no_gradient_or_dead_unit_warning_is_claimed(data):
    x, y = data
    # thresholds under which every layer is vanishing and every activation dead, were they measured
    flag_all = Thresholds(vanishing=2.0, dead=-1.0, confirm=1)
    measured = DiagnosticsCallback((x[:8], y[:8]), every=1, thresholds=flag_all, verbose=0)
    blind = DiagnosticsCallback(every=1, thresholds=flag_all, verbose=0)
    # both watch one fit (two fits of the same model were half this test's time): they share no state
    tiny_model().fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[measured, blind])
    assert {w.kind for w in measured.warnings} == {"vanishing_gradients", "dead_units"}
    assert blind.warnings == [] and len(blind.history["probe_step"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("with_probe_data", [False, True])
def test_non_finite_weights_raise_exploding_for_their_layer_and_fit_goes_on(data, with_probe_data):
    x, y = data
    model = tiny_model()
    kernel = model.get_layer("conv").kernel
    kernel.assign(np.full(kernel.shape, np.inf, np.float32))
    cb = DiagnosticsCallback((x[:8], y[:8]) if with_probe_data else None, every=2, verbose=0)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[cb])  # NaN values are not binned
    conv = [w for w in cb.warnings if w.layer == "conv"]
    assert [w.kind for w in conv] == ["exploding_gradients"] and "weights of conv are not finite" in conv[0].message
    assert len(cb.history["probe_step"]) == 2


@pytest.mark.slow
def test_an_unbuilt_sequential_without_probe_data_is_probed_from_the_step_after_keras_builds_it(data):
    x, y = data
    model = keras.Sequential([keras.layers.Conv2D(2, 3, name="conv"), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, activation="softmax", name="out")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    cb = DiagnosticsCallback(every=2, verbose=0)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[cb])
    assert list(cb.history["probe_step"]) == [2, 4] and list(cb.history["weight_layers"]) == ["conv", "out"]


# -- histograms ----------------------------------------------------------------------------------------------------

def test_a_large_layer_is_sampled_for_its_histogram_across_every_channel():
    import tensorflow as tf

    channel_of = np.tile(np.arange(64, dtype=np.float32), 2048)  # a (2048, 64) map, flattened: 131,072 values
    sample = dg._sample(tf.constant(channel_of), 64).numpy()
    assert len(sample) <= dg._SAMPLE and set(sample) == set(range(64))  # a stride of 2 would see even channels only


def test_histograms_leave_out_nan_and_put_values_beyond_the_edges_in_the_end_bins():
    counts = dg._histograms([np.array([np.nan, -10.0, 0.25, 0.75, 10.0, np.inf])], np.array([[0.0, 0.5, 1.0]]), 2)
    assert counts.tolist() == [[2, 3]]


def test_chance_loss_is_known_for_cross_entropy_only():
    assert dg._chance_loss(tiny_model()) == pytest.approx(np.log(3))
    assert dg._chance_loss(tiny_model(loss=keras.losses.CategoricalCrossentropy())) == pytest.approx(np.log(3))
    assert dg._chance_loss(tiny_model(loss="mse")) is None


def test_the_budget_puts_off_a_due_probe_step_while_one_more_would_exceed_its_share_of_the_time():
    now = [0.0]
    budget = dg.ProbeBudget(0.1, clock=lambda: now[0])  # a fake clock: the rule, without sleeping or fitting
    assert budget.allows()  # before the first probe step
    now[0] = 2.0
    budget.spent(2.0, first=True)  # the trace's one-off starts the clock and is not counted
    now[0] = 3.0
    assert budget.allows()  # no probe step counted yet
    now[0] = 3.5
    budget.spent(0.5, first=False)
    now[0] = 5.0  # 1 s of training since: 0.5 s spent + 0.5 s more > 10% of it
    assert not budget.allows() and budget.deferred == 1
    now[0] = 12.0  # 9.5 s: 1.0 > 0.95, still waiting: the same probe step, counted once
    assert not budget.allows() and budget.deferred == 1
    now[0] = 12.6  # 10.1 s: 1.0 <= 1.01
    assert budget.allows()
    budget.spent(0.5, first=False)
    assert not budget.allows() and budget.deferred == 2
    unlimited = dg.ProbeBudget(None, clock=lambda: now[0])
    unlimited.spent(5.0, first=True)
    unlimited.spent(5.0, first=False)
    assert unlimited.allows() and unlimited.deferred == 0


# -- end to end (slow) ------------------------------------------------------------------------------------------

# Two replicas on one machine need two logical CPU devices, which TensorFlow allows only before it initializes:
# hence a fresh interpreter. The last probe step is the last training step (every=7 over 8 steps), so the last
# recorded gradient norms can be checked against a plain GradientTape on the final weights, outside the strategy.
MIRRORED = """
import json
import keras, numpy as np, tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)
from cnnwidget.core.diagnostics import DiagnosticsCallback
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x, y = rng.random((64, 16, 16, 3), dtype=np.float32), rng.integers(0, 3, 64)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    inp = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    out = keras.layers.Dense(3, activation="softmax", name="out")(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
cb = DiagnosticsCallback((x[:16], y[:16]), every=7, verbose=0)
model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[cb])
with tf.GradientTape() as tape:
    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y[:16], model(x[:16], training=False)))
grads = tape.gradient(loss, [model.get_layer("conv").trainable_weights, model.get_layer("out").trainable_weights])
reference = [float(tf.sqrt(sum(tf.reduce_sum(tf.square(g)) for g in layer))) for layer in grads]
h = cb.history
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "probe_step": h["probe_step"].tolist(),
                  "grad_norm": h["grad_norm"].tolist(), "update_ratio": h["update_ratio"].tolist(),
                  "loss": h["epoch/loss"].tolist(), "steps": len(h["step"]), "reference": reference}))
"""


@pytest.mark.slow
@pytest.mark.processes  # a fresh interpreter (two logical devices): run in the kernels group (tests/run_all.py)
def test_the_callback_records_true_gradient_norms_under_a_two_replica_mirrored_strategy():
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(root)}
    run = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2 and out["steps"] == 8 and len(out["loss"]) == 2 and np.isfinite(out["loss"]).all()
    grad = np.array(out["grad_norm"])
    assert out["probe_step"] == [1, 8] and np.isfinite(grad).all() and (grad > 0).all()
    assert (np.array(out["update_ratio"]) > 0).all()
    np.testing.assert_allclose(grad[-1], out["reference"], rtol=1e-4)


def _fit(model, x, y, callback, epochs, batch_size, validation=None):
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[callback], validation_data=validation)
    return {w.kind for w in callback.warnings}, callback


@pytest.mark.slow
def test_a_deep_sigmoid_stack_raises_vanishing_gradients():
    keras.utils.set_random_seed(0)
    d = demo.shapes(512, seed=11)
    x = d.images[:, ::4, ::4]  # 16 x 16
    inp = h = keras.Input((16, 16, 3))
    for i in range(10):
        h = keras.layers.Conv2D(8, 3, padding="same", activation="sigmoid", name=f"conv{i}")(h)
    out = keras.layers.Dense(10, activation="softmax", name="out")(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    kinds, cb = _fit(model, x, d.labels, DiagnosticsCallback((x[:64], d.labels[:64]), every=4, verbose=0), 1, 32)
    assert "vanishing_gradients" in kinds
    vanished = [w.layer for w in cb.warnings if w.kind == "vanishing_gradients"]
    assert "conv0" in vanished and "conv9" not in vanished  # the layers farthest from the loss


@pytest.mark.slow
def test_a_tiny_training_set_raises_overfitting():
    keras.utils.set_random_seed(0)
    train, val = demo.shapes(32, seed=12), demo.shapes(256, seed=13)
    x, xv = train.images[:, ::2, ::2], val.images[:, ::2, ::2]  # 32 x 32
    inp = keras.Input((32, 32, 3))
    h = keras.layers.MaxPooling2D(2)(keras.layers.Conv2D(16, 3, activation="relu")(inp))
    h = keras.layers.Dense(64, activation="relu")(keras.layers.Flatten()(h))  # memorizes 32 images easily
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(h))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    cb = DiagnosticsCallback((x, train.labels), every=10, warn=["overfitting"], verbose=0)
    # 6 epochs, not 12: validation loss is lowest after epoch 1 and rises at every epoch after; the rule fires at
    # step 8 (epoch 4, patience 3) either way, and with 6 a rule that waited twice the patience no longer passes
    kinds, cb = _fit(model, x, train.labels, cb, 6, 16, validation=(xv, val.labels))
    assert kinds == {"overfitting"}
    h = cb.history
    assert h["epoch/val_loss"][-1] > h["epoch/val_loss"].min() and h["epoch/loss"][-1] < h["epoch/loss"][0]


@pytest.mark.slow
def test_a_healthy_run_on_the_demo_data_raises_nothing():
    # 16 x 16 images (as the vanishing test's), not 32 x 32: the same 192 steps, 4 probe steps and 6 epochs for every
    # rule at a quarter of the pixels (20 -> 11 CPU-s, 2026-12-07). Measured: validation accuracy 0.10 -> 0.39,
    # loss 2.31 -> 1.54, no warning (at 32 x 32: 0.44, 1.72, none).
    keras.utils.set_random_seed(0)
    train, val = demo.shapes(2048, seed=14), demo.shapes(512, seed=15)
    x, xv = train.images[:, ::4, ::4], val.images[:, ::4, ::4]  # 16 x 16
    inp = h = keras.Input((16, 16, 3))
    for i, filters in enumerate((16, 32, 64)):
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(h)
        h = keras.layers.MaxPooling2D(2)(h)
    out = keras.layers.Dense(10, activation="softmax", name="out")(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    cb = DiagnosticsCallback((x[:64], train.labels[:64]), verbose=0)  # defaults: every rule, every 50 steps
    kinds, cb = _fit(model, x, train.labels, cb, 6, 64, validation=(xv, val.labels))
    assert cb.warnings == []
    h = cb.history
    assert h["epoch/val_accuracy"][-1] > 0.25  # it learns (chance is 0.1)
    assert len(h["probe_step"]) == 4
