"""TrainingMonitor, FilterGrid and LayerSimilarity in process: what they show after a short fit or a data pass,
and how they take bad input. Models are tiny (32 px inputs, a few thousand weights) so the module runs in seconds.
"""

import numpy as np
import pytest

import cnnwidget as cw
from cnnwidget.core import OptionError
from cnnwidget.demo import shapes

# a view that raises while it draws is reported by the callback as this warning: here it fails the test
pytestmark = pytest.mark.filterwarnings("error:a DiagnosticsCallback subscriber:RuntimeWarning")


@pytest.fixture(scope="module")
def data():
    d = shapes(192, seed=3, size=32)
    return d.images, d.labels


def small_cnn(activation="relu", depth=0):
    import keras

    keras.utils.set_random_seed(0)  # the same weights every run: the assertions below hold for this model
    layers = [keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, activation=activation, name="conv1"),
              keras.layers.MaxPooling2D(2), keras.layers.Conv2D(16, 3, activation=activation, name="conv2"),
              keras.layers.GlobalAveragePooling2D()]
    layers += [keras.layers.Dense(16, activation=activation, name=f"deep{i}") for i in range(depth)]
    model = keras.Sequential(layers + [keras.layers.Dense(10, activation="softmax", name="out")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.slow
def test_monitor_follows_a_fit_and_keeps_its_history(data):
    x, y = data
    mon = cw.TrainingMonitor((x[:32], y[:32]), every=2, max_rate=0)  # max_rate 0: redraw on every update
    small_cnn().fit(x, y, validation_split=0.25, epochs=2, batch_size=32, callbacks=[mon.callback], verbose=0)
    h = mon.history
    assert len(h["step"]) == 10 and len(h["epoch"]) == 2
    assert list(mon._raw.x) == list(h["step"]) and np.allclose(mon._smooth.y, h["batch_loss_smoothed"])
    assert list(mon._epoch_loss.labels) == ["loss", "val_loss"] and mon._epoch_loss.y.shape == (2, 2)
    assert "accuracy" in mon._epoch_metric.labels
    # the heatmap: one row per weight layer, one column per probe step, log10 of the gradient norm
    assert list(mon._grad.row) == ["conv1", "conv2", "out"]
    assert np.allclose(mon._grad.color, np.log10(h["grad_norm"]).T)
    assert list(mon._dead.x) == ["conv1", "conv2"] and np.allclose(mon._dead.y, h["dead_fraction"][-1])
    assert np.allclose(mon._ratio.y, np.log10(h["update_ratio"][-1]))
    assert mon.hist_step.max == len(h["probe_step"]) - 1 and mon._hist.y.sum() == 8 * 3 * 3 * 3 + 8  # kernel + bias
    mon.hist_layer.value = "activations: conv2"
    assert mon.hist_fig.title.startswith("conv2 at step")
    assert mon.status.startswith("step 10, epoch 2 done")
    assert mon.to_dataframe("epochs").shape[0] == 2
    mon.close()


@pytest.mark.slow
def test_monitor_throttles_redraws_while_batches_arrive(data):
    x, y = data
    mon = cw.TrainingMonitor((x[:16], y[:16]), every=1, max_rate=0.001)
    small_cnn().fit(x, y, epochs=2, batch_size=16, callbacks=[mon.callback], verbose=0)
    # 24 batches and 24 probes, but only begin, the first batch, two epoch ends and the end redraw
    assert mon.draws <= 5, mon.draws
    assert len(mon._raw.x) == 24  # the last redraw shows everything
    mon.close()


def test_monitor_status_says_when_the_budget_put_probe_steps_off():
    mon = cw.TrainingMonitor()
    assert mon.callback.budget == 0.1
    mon.refresh()
    assert "put off" not in mon.status
    mon.callback._budget.deferred = 3  # as a fit whose probe steps cost more than 10% of its time leaves it
    mon.refresh()
    assert mon.status == "step 0, 0 probe steps (3 put off to keep probing within 10% of the fit's time)"
    assert mon._status_label.value == mon.status
    mon.close()


@pytest.mark.slow
def test_monitor_lists_a_vanishing_gradient_warning(data):
    x, y = data
    mon = cw.TrainingMonitor((x[:32], y[:32]), every=1, warn=["vanishing_gradients"])
    small_cnn("sigmoid", depth=8).fit(x, y, epochs=1, batch_size=32, callbacks=[mon.callback], verbose=0)
    kinds = {w.kind for w in mon.warnings}
    assert kinds == {"vanishing_gradients"}
    assert len(mon._warning_box.children) == len(mon.warnings)
    assert mon._warning_box.children[0].value.startswith("vanishing_gradients at step")
    assert mon.body.children.index(mon._warning_box) == 1  # right under the status, above the charts


@pytest.mark.slow
def test_monitor_without_probe_data_draws_the_rest_and_says_how_to_see_gradients(data):
    x, y = data
    mon = cw.TrainingMonitor(every=2, max_rate=0)
    small_cnn().fit(x, y, validation_split=0.25, epochs=2, batch_size=32, callbacks=[mon.callback], verbose=0)
    h = mon.history
    assert mon._epoch_loss.y.shape == (2, 2) and len(mon._raw.x) == 10
    assert list(mon._ratio.x) == ["conv1", "conv2", "out"]
    assert np.allclose(mon._ratio.y, np.log10(h["update_ratio"][-1]))
    assert mon.hist_layer.options == ("weights: conv1", "weights: conv2", "weights: out") and mon._hist.y.sum() > 0
    # no empty heatmap or dead-unit chart: a message in their place, on the page
    assert mon.grad_fig is None and mon.dead_fig is None
    shown = [w for box in mon.body.children for w in getattr(box, "children", ())]
    assert mon.no_probe_note in shown and "pass probe_data=(x, y)" in mon.no_probe_note.value
    mon.close()


def test_monitor_refuses_bad_options_with_a_message():
    with pytest.raises(OptionError, match="probe_data must be a pair"):
        cw.TrainingMonitor(np.zeros((4, 32, 32, 3)))
    with pytest.raises(OptionError, match="unknown warning kind"):
        cw.TrainingMonitor((np.zeros((4, 32, 32, 3)), np.zeros(4)), warn=["slow"])
    with pytest.raises(OptionError, match="measured on a probe batch"):
        cw.TrainingMonitor(warn=["dead_units"])


def test_filter_grid_shows_first_layer_kernels_as_rgb_and_deeper_ones_per_input_channel():
    from cnnwidget.core import filters

    model = small_cnn()
    grid = cw.FilterGrid(model)
    meta = grid.view.meta
    assert grid.layer == "conv1" and (meta["k"], meta["h"], meta["w"], meta["c"]) == (8, 3, 3, 3)
    expected = filters.first_layer_filters(model, "conv1").images
    got = np.frombuffer(grid.view.tiles, np.uint8).reshape(8, 3, 3, 3)
    assert np.abs(got / 254.0 - expected).max() <= 0.5 / 254 + 1e-6  # 0..254: byte 127 is a zero weight
    assert grid.hist.title == "kernel weights of conv1" and grid._bars.y.sum() == 8 * 27
    grid.layer = "conv2"  # 16 filters of 8 input channels, 16 a page by default: one page
    meta = grid.view.meta
    assert (meta["k"], meta["cols"], meta["c"], meta["per_input"], grid.view.n_pages) == (128, 8, 1, True, 1)
    assert len(grid.view.tiles) == 128 * 9 and grid._bars.y.sum() == 16 * 8 * 9
    grid.show = "norms"
    assert (grid.view.meta["h"], grid.view.meta["w"]) == (16, 8) and max(grid.view.tiles) == 255


def test_filter_grid_pages_and_refuses_bad_input_with_a_message():
    grid = cw.FilterGrid(small_cnn(), "conv2", grid_page_size=5)
    assert grid.view.n_pages == 4
    grid.page = 3
    assert grid.view.meta["filters"] == [15]
    with pytest.raises(OptionError, match="page must be in"):
        grid.page = 4
    assert grid.page == 3 and "page must be in" in grid.error  # reverted, still working
    with pytest.raises(cw.LayerError, match="not a 2-D convolution"):
        grid.layer = "out"
    assert grid.layer == "conv2"
    grid.page = 0
    assert grid.error == "" and grid.view.meta["filters"] == [0, 1, 2, 3, 4]


def test_layer_similarity_of_a_model_with_itself_has_a_unit_diagonal(data):
    x, _ = data
    model = small_cnn()
    sim = cw.LayerSimilarity(model, data=x[:128], layers=["conv1", "conv2", "out"])
    assert sim.job.wait(120) and not sim.running and sim.error == ""
    assert sim.cka.shape == (3, 3) and np.allclose(np.diag(sim.cka), 1.0, atol=1e-4)
    assert np.allclose(sim._grid.color, sim.cka) and list(sim._grid.row) == ["conv1", "conv2", "out"]
    assert sim.progress["fraction"] == 1.0 and sim.status == "done: 3 layers"


@pytest.mark.slow
def test_layer_similarity_of_a_fine_tuned_copy_gives_drift_and_verdicts(data):
    import keras

    x, y = data
    base = small_cnn()
    tuned = keras.models.clone_model(base)
    tuned.set_weights(base.get_weights())
    tuned.compile("adam", "sparse_categorical_crossentropy")
    cw.freeze_until(tuned, "conv1")
    tuned.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    tuned.fit(x, (y + 1) % 10, epochs=2, batch_size=32, verbose=0)
    sim = cw.LayerSimilarity(base, tuned, (x[:128], y[:128]), layers=["conv1", "conv2", "out"])
    assert sim.job.wait(120) and sim.error == ""
    comp = sim.comparison
    assert comp.drift[0] == 0.0 and comp.drift[1] > 0 and comp.verdict[0] == "generic"
    texts = [label.value for label in sim._verdicts.children[1:]]
    assert texts[0].startswith("conv1: generic (CKA 1.000, drift 0")
    assert list(sim._drift.x) == ["conv1", "conv2", "out"]


@pytest.mark.slow
def test_layer_similarity_cancel_stops_the_pass_and_keeps_working(data):
    x, _ = data
    sim = cw.LayerSimilarity(small_cnn(), data=np.repeat(x, 20, axis=0), layers=["conv1", "conv2"], batch_size=16,
                             autostart=False)
    job = sim.run()
    sim.cancel()
    assert job.wait(120) and sim.cka is None and sim.status.startswith("cancelled") and not sim.running
    assert sim.run().wait(300) and sim.cka.shape == (2, 2)


def test_layer_similarity_refuses_bad_input_with_a_message(data):
    import keras

    x, _ = data
    other = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, name="c"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, name="d")])
    with pytest.raises(cw.LayerError, match="do not match"):
        cw.LayerSimilarity(small_cnn(), other, x[:16])
    with pytest.raises(cw.LayerError):
        cw.LayerSimilarity(small_cnn(), other, x[:16], layers=["conv1"])
    with pytest.raises(cw.ImageError):
        cw.LayerSimilarity(small_cnn(), data=np.zeros((8, 16, 16, 3)))
