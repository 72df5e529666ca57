"""ActivationGrid's state, in process: what it sends for each change, and how it takes bad input."""

import numpy as np
import pytest

import cnnwidget as cw


@pytest.fixture(scope="module")
def model(grid_model):
    return grid_model


@pytest.fixture
def grid(model):
    grid = cw.ActivationGrid(model, np.random.default_rng(0).random((3, 40, 40, 3)), page_size=64)
    grid.wait()  # the constructor returns at once; the first page is computed on the widget's worker
    return grid


def meta(grid):
    return grid.view.tile_meta


def test_it_starts_on_the_first_convolution_with_every_channel_as_a_tile(grid):
    m = meta(grid)
    assert grid.layer == "conv1" and m["channels"] == list(range(8)) and (m["h"], m["w"]) == (40, 40)
    assert len(grid.view.tiles) == 8 * 40 * 40 and len(grid.view.tile_ranges) == 8 * 8


def test_a_layer_with_more_channels_than_a_page_is_paged_not_truncated(grid):
    grid.layer = "conv2"
    assert meta(grid)["n_channels"] == 100 and meta(grid)["n_pages"] == 2 and meta(grid)["k"] == 64
    grid.page = 1
    assert meta(grid)["channels"] == list(range(64, 100))


def test_the_output_layers_units_carry_their_class_names_and_other_layers_none(model):
    grid = cw.ActivationGrid(model, np.random.default_rng(0).random((2, 40, 40, 3)), layer="out",
                             class_names=["<b>cat</b>", "dog", "eel"])
    grid.wait()
    m = meta(grid)
    assert [m["unit_names"][i] for i in np.argsort(m["channels"])] == ["<b>cat</b>", "dog", "eel"]
    grid.layer = "gap"
    grid.wait()
    assert "unit_names" not in meta(grid)


def test_large_maps_are_downsampled_for_the_grid_but_not_for_the_enlarged_channel(model):
    grid = cw.ActivationGrid(model, np.zeros((1, 40, 40, 3)), max_tile=16)
    grid.wait()
    assert (meta(grid)["h"], meta(grid)["source_h"]) == (16, 40)
    grid.selected_channel = 2
    assert (grid.view.focus_meta["h"], len(grid.view.focus)) == (40, 40 * 40)


def test_sorting_by_mean_puts_the_most_active_channel_first(grid):
    grid.sort = "mean"
    acts = grid.activations("conv1")[0]
    assert meta(grid)["channels"] == list(np.argsort(-acts.mean(axis=(0, 1)), kind="stable"))


def test_a_click_sends_the_channel_at_full_resolution_with_its_range(grid):
    grid.view.set_state({"selected_channel": 3})  # as the browser does
    fm = grid.view.focus_meta
    truth = grid.activations("conv1")[0, :, :, 3]
    assert grid.selected_channel == 3 and fm["channel"] == 3
    assert fm["lo"] == pytest.approx(truth.min()) and fm["hi"] == pytest.approx(truth.max())


def test_the_chart_shows_every_channels_mean_and_dead_fraction(grid):
    grid.layer = "relu1"
    bars, dots = grid.chart.marks
    acts = grid.activations("relu1")[0]
    np.testing.assert_allclose(bars.y, acts.mean(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(dots.y, (acts <= 0).mean(axis=(0, 1)), rtol=1e-5)


def test_the_depth_strip_has_a_thumbnail_for_every_layer(grid):
    sm = grid.view.strip_meta
    assert sm["layers"] == ["conv1", "relu1", "conv2", "gap", "out"]
    assert len(grid.view.strip) == 5 * sm["t"] ** 2


def test_changing_the_image_changes_the_tiles_and_the_input_picture(grid):
    before = (grid.view.tiles, grid.view.image)
    grid.image_index = 2
    assert grid.view.tiles != before[0] and grid.view.image != before[1]


def test_a_vector_layer_is_one_square_tile_of_all_its_units_on_one_range(grid):
    grid.layer = "gap"
    m = meta(grid)
    assert (m["k"], m["h"], m["w"], m["n_channels"], m["vector"]) == (1, 10, 10, 100, True)
    units = grid.activations("gap")[0]
    lo, hi = np.frombuffer(grid.view.tile_ranges, "<f4")
    assert (lo, hi) == (pytest.approx(units.min()), pytest.approx(units.max()))
    q = np.frombuffer(grid.view.tiles, np.uint8)
    assert q[m["channels"].index(int(units.argmax()))] == 255


def test_an_unknown_layer_from_python_raises_and_keeps_the_grid(grid):
    tiles = grid.view.tiles
    with pytest.raises(cw.LayerError, match="Did you mean 'conv2'"):
        grid.layer = "conv3"
    assert grid.layer == "conv1" and grid.view.tiles == tiles and "conv3" in grid.error


def test_an_unknown_layer_from_the_browser_shows_the_error_and_reverts_the_view(grid):
    grid.view.set_state({"layer": "nope"})
    assert grid.view.layer == "conv1" and "No layer named 'nope'" in grid.view.error


def test_the_next_good_change_clears_the_error(grid):
    grid.view.set_state({"layer": "nope"})
    grid.layer = "relu1"
    assert grid.error == ""


def test_bad_images_keep_the_old_batch(grid):
    with pytest.raises(cw.ImageError, match="40x40 pixels; got 20x20"):
        grid.images = np.zeros((2, 20, 20, 3))
    assert len(grid.images) == 3 and "20x20" in grid.view.error


def test_nan_images_are_refused_with_the_message_in_the_widget(grid):
    bad = np.zeros((1, 40, 40, 3))
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(cw.ImageError, match="NaN"):
        grid.images = bad
    assert "NaN" in grid.error


def test_an_image_index_out_of_range_is_refused(grid):
    grid.view.set_state({"image_index": 7})
    assert grid.image_index == 0 and "between 0 and 2" in grid.error


def test_the_top_predictions_of_the_image_are_sent_with_class_names_verbatim(model):
    names = ["cat", "<img src=x onerror=alert(1)>", "dog"]
    grid = cw.ActivationGrid(model, np.zeros((1, 40, 40, 3)), class_names=names)
    grid.wait()
    probs = grid.probe.predict(grid.images)[0]
    assert [p["label"] for p in grid.view.predictions] == [names[i] for i in np.argsort(-probs)]


def test_show_changes_layer_image_and_channel_together_checked_against_the_new_layer(grid):
    grid.show("conv2", image_index=1, selected_channel=90)  # conv1 has 8 channels: 90 is checked against conv2
    assert grid.wait(60)
    assert (grid.layer, grid.image_index, grid.selected_channel) == ("conv2", 1, 90)
    assert grid.view.focus_meta["channel"] == 90 and grid.view.tile_meta["n_channels"] == 100
    assert grid.show("conv2", 1, 90) is None  # nothing changed: nothing computed


def test_show_with_a_bad_value_changes_nothing(grid):
    with pytest.raises(Exception, match="selected_channel|channel"):
        grid.show("conv1", image_index=2, selected_channel=90)
    assert (grid.layer, grid.image_index, grid.selected_channel) == ("conv1", 0, -1)


def test_compute_after_a_cancel_sends_the_page_again(grid):
    before = grid.view.tiles
    grid.cancel()
    grid.compute().wait(60)
    assert grid.view.tiles == before and grid.error == ""


def test_a_single_sigmoid_unit_is_named_by_the_class_it_predicts_in_the_grid_and_the_card():
    import keras

    from cnnwidget.widgets.channel_card import unit_names

    inp = keras.Input((12, 12, 3))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(keras.layers.Conv2D(2, 3, name="conv")(inp))
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid", name="out")(x))
    grid = cw.ActivationGrid(model, np.zeros((1, 12, 12, 3)), layer="out", class_names=["cat", "dog"])
    grid.wait()
    assert meta(grid)["unit_names"] == ["dog"]  # p(dog): predict reads the unit as (1 - p, p); it said "cat"
    assert unit_names(grid.probe, "out", ["cat", "dog"]) == ["dog"]
    assert unit_names(grid.probe, "gap", ["a", "b"]) is None
    assert unit_names(grid.probe, "out", ["0", "1"]) == ["1"]  # the index names still say which class
    grid.close()


def test_a_model_whose_predictions_say_nothing_is_said_so_and_a_new_batch_checks_again():
    import keras

    inp = keras.Input((12, 12, 3))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(keras.layers.Conv2D(4, 3, name="conv")(inp))
    dense = keras.layers.Dense(3, activation="softmax", name="out")
    model = keras.Model(inp, dense(x))
    dense.kernel.assign(np.zeros((4, 3)))  # every image 1/3 each: an output that ignores the image
    images = np.random.default_rng(0).random((4, 12, 12, 3))
    grid = cw.ActivationGrid(model, images, class_names=["cat", "dog", "eel"])
    assert grid.wait(60)
    assert grid.prediction_warning.startswith("all 4 images are predicted 'cat' with a probability of about 1/3")
    dense.kernel.assign(np.random.default_rng(1).normal(0, 30, (4, 3)))  # now it depends on the image
    grid.images = images[::-1] * 2 - 0.5
    assert grid.wait(60) and grid.prediction_warning == "", grid.prediction_warning
    grid.close()
