"""FeatureVisualization's state, in process, on the demo model: what a render sends, and how it takes bad input.

Renders are short (16 to 32 steps at the model's 64 px) and share one probe, so each compiled step is traced once
for the whole module.
"""

import time

import numpy as np
import pytest

import cnnwidget as cw
from cnnwidget import demo
from cnnwidget.core import LayerError, OptionError
from cnnwidget.core import featurevis as fv
from cnnwidget.widgets import _transport
from cnnwidget.widgets import feature_visualization as fv_widget


@pytest.fixture(scope="module")
def probe():
    return cw.ModelProbe(demo.load_model())


@pytest.fixture
def widget(probe):
    w = cw.FeatureVisualization(probe, "block3_relu", 5, steps=16)
    yield w
    w.close()


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_it_starts_with_the_settings_given_and_the_models_input_size(widget):
    assert (widget.layer, widget.channels, widget.objective, widget.mode) == ("block3_relu", [5], "channel", "single")
    assert widget.size == 64 and widget.view.input_size == [64, 64]
    assert [layer["name"] for layer in widget.view.layers][:2] == ["block1_conv", "block1_bn"]
    assert widget.images is None and widget.view.pixels == b"" and not widget.running


def test_the_default_layer_is_the_last_spatial_activation(probe):
    w = cw.FeatureVisualization(probe)
    assert w.layer == "block4_relu" and w.channels == [0]
    w.close()


def test_a_render_sends_the_batch_as_one_uint8_buffer_with_progress_and_losses(widget):
    widget.channels = [1, 5, 9]
    job = widget.render()
    assert job.wait(60) and not widget.running and widget.error == ""
    images = widget.images
    assert images.shape == (3, 64, 64, 3) and images.dtype == np.float32
    assert widget.view.pixels == _transport.image_bytes(images, (0.0, 1.0))  # (3, 64, 64, 3) uint8, one buffer
    meta = widget.view.images_meta
    assert meta["labels"] == ["channel 1", "channel 5", "channel 9"] and meta["final"]
    assert (meta["n"], meta["size"], meta["step"], meta["steps"]) == (3, 64, 16, 16)
    assert widget.view.progress["step"] == 16 and widget.status.startswith("done: 16 steps")
    # one loss every stream_every (4) steps, all on the chart
    assert widget.losses[:, 0].tolist() == [4, 8, 12, 16]
    np.testing.assert_allclose(widget.chart.marks[0].y, widget.losses[:, 1])


@pytest.mark.slow
def test_the_loss_curve_sent_is_bounded_however_long_the_render(widget, monkeypatch):
    monkeypatch.setattr(fv_widget, "_CURVE_POINTS", 5)
    widget.stream_every = 1
    widget.render().wait(60)
    assert len(widget.losses) == 16
    line = widget.chart.marks[0]
    assert len(line.x) == 5 and line.x[0] == 1 and line.x[-1] == 16  # first and last step kept


def test_cancel_stops_within_a_step_and_keeps_the_last_images(widget):
    widget.steps = 5000
    job = widget.render()
    wait_for(lambda: widget.view.images_meta.get("step", 0) >= 8)
    widget.cancel()
    assert job.wait(2), "the render did not stop within a step"
    assert widget.images is not None and widget.images.shape == (1, 64, 64, 3)
    assert widget.view.pixels == _transport.image_bytes(widget.images, (0.0, 1.0))
    assert widget.view.images_meta["final"] and widget.status.startswith("cancelled after step")
    assert not widget.running and widget.error == ""


def test_a_new_render_replaces_the_running_one(widget):
    widget.steps = 5000
    first = widget.render()
    wait_for(lambda: widget.view.images_meta.get("step", 0) >= 4)
    widget.configure(steps=8, channels=[7])
    second = widget.render()
    assert first.wait(2) and first.cancelled and second.wait(60)
    # the cancelled job's last images never overwrite the new ones
    assert widget.view.images_meta["labels"] == ["channel 7"] and widget.view.images_meta["step"] == 8


def test_a_bad_layer_or_channel_from_python_raises_and_shows_a_message_and_nothing_changes(widget):
    with pytest.raises(LayerError, match="No layer named 'nope'"):
        widget.layer = "nope"
    assert widget.layer == "block3_relu" and "No layer named 'nope'" in widget.error
    with pytest.raises(OptionError, match="valid channels are 0 to 63"):
        widget.channels = [64]
    assert widget.channels == [5] and "valid channels are 0 to 63" in widget.error
    with pytest.raises(OptionError, match="steps must be"):
        widget.steps = 0
    widget.seed = 3  # a good change clears the message
    assert widget.error == "" and widget.seed == 3


def test_a_bad_value_from_the_browser_is_shown_not_raised_and_reverted(widget):
    widget.view.set_state({"channels": [200]})  # as the browser does
    assert widget.channels == [5] and "valid channels are 0 to 63" in widget.error


def test_configure_checks_a_layer_and_its_channels_together(widget):
    widget.channels = [50]
    with pytest.raises(OptionError, match="valid channels are 0 to 15"):
        widget.layer = "block1_relu"  # 16 channels: checked against the current channel 50
    assert widget.layer == "block3_relu"
    widget.configure(layer="block1_relu", channels=[3])
    assert (widget.layer, widget.channels) == ("block1_relu", [3]) and widget.error == ""
    with pytest.raises(LayerError, match="needs a spatial layer"):
        widget.configure(objective="neuron", layer="gap")
    assert (widget.objective, widget.layer) == ("channel", "block1_relu")


@pytest.mark.slow
def test_a_nan_loss_stops_says_so_and_keeps_the_last_good_images(widget):
    job = widget.render(fv.channel("block3_relu", 5) * float("nan"))
    assert job.wait(60) and isinstance(job.error, fv.NaNLossError)
    assert "NaN" in widget.error and not widget.running
    assert len(widget.view.pixels) == 64 * 64 * 3 and widget.view.images_meta["final"]
    # the widget keeps working
    assert widget.render().wait(60) and widget.error == "" and widget.images is not None


@pytest.mark.slow
def test_render_takes_an_objective_and_parameterization_of_the_caller(widget, probe):
    photo = demo.shapes(1, seed=0).images[0]
    widget.steps = 8
    widget.render(fv.deepdream("block2_relu"), param=fv.pixel_image(init=photo)).wait(60)
    assert widget.view.images_meta["title"] == "deepdream('block2_relu')" and widget.images.shape == (1, 64, 64, 3)
    widget.render(fv.channel("block3_relu", 5) + 0.5 * fv.diversity("block3_relu"), batch=3).wait(60)
    assert widget.images.shape == (3, 64, 64, 3) and widget.view.images_meta["labels"][2] == "image 2"


@pytest.mark.slow
def test_neuron_and_class_objectives_render_one_image_per_unit(widget):
    widget.configure(objective="neuron", channels=[2, 3], x=1, y=2, steps=8)
    widget.render().wait(60)
    assert widget.view.images_meta["labels"] == ["neuron 2 (x 1, y 2)", "neuron 3 (x 1, y 2)"]
    widget.configure(objective="class", classes=[4])
    widget.render().wait(60)
    assert widget.view.images_meta["labels"] == ["class 4"] and widget.images.shape == (1, 64, 64, 3)
    with pytest.raises(OptionError, match="class index 10 is out of range"):
        widget.classes = [10]


@pytest.mark.slow
def test_the_gallery_renders_every_channel_in_batches_with_paging(widget):
    # block1_relu has 16 channels: pages of 6, 6 and 4; the short page is padded to 6, so one compiled step serves all
    widget.configure(mode="gallery", layer="block1_relu", page_size=6, steps=8)
    assert widget.view.gallery_pages == 3
    traces = fv.trace_count()
    assert widget.render().wait(60) and widget.error == ""
    assert fv.trace_count() - traces <= 2  # one structure: its step and its image function
    assert widget.view.gallery_done == [0, 1, 2] and widget.status.startswith("done: 3 of 3 pages")
    assert widget.view.images_meta["labels"] == [f"channel {c}" for c in range(6)]
    widget.page = 2
    meta = widget.view.images_meta
    assert (meta["page"], meta["n"], meta["labels"]) == (2, 4, [f"channel {c}" for c in range(12, 16)])
    assert len(widget.view.pixels) == 4 * 64 * 64 * 3
    assert set(widget.gallery) == {0, 1, 2} and widget.gallery[2].shape == (4, 64, 64, 3)
    with pytest.raises(OptionError, match="page must be between 0 and 2"):
        widget.page = 3
    assert widget.page == 2


@pytest.mark.slow
def test_a_page_not_rendered_yet_is_shown_empty_and_settings_changes_make_pages_stale(widget):
    widget.configure(mode="gallery", layer="block1_relu", page_size=8, steps=4)
    widget.render().wait(60)
    widget.steps = 5  # another setting: the pages no longer match it
    assert widget.view.gallery_done == [] and widget.gallery == {}
    widget.page = 1
    assert widget.view.images_meta["n"] == 0 and "not rendered yet" in widget.status


@pytest.mark.slow
def test_the_class_gallery_shows_every_class(widget):
    widget.configure(mode="gallery", objective="class", page_size=16, steps=4)
    assert widget.view.gallery_pages == 1
    widget.render().wait(60)
    assert widget.view.images_meta["labels"] == [f"class {k}" for k in range(10)]


def test_closing_the_widget_cancels_its_render(probe):
    w = cw.FeatureVisualization(probe, "block3_relu", 5, steps=5000)
    job = w.render()
    wait_for(lambda: w.view.images_meta.get("step", 0) >= 4)
    w.close()
    assert job.wait(2) and job.cancelled


@pytest.mark.slow
def test_linked_to_a_grid_renders_the_channel_clicked_there(probe):
    grid = cw.ActivationGrid(probe, demo.shapes(2, seed=0).images, layer="block2_relu")
    linked = cw.FeatureVisualization.linked_to(grid, steps=8)
    assert (linked.layer, linked.channels) == ("block2_relu", [0]) and linked.job is None
    grid.selected_channel = 7
    assert linked.job.wait(60) and (linked.layer, linked.channels) == ("block2_relu", [7])
    assert linked.view.images_meta["labels"] == ["channel 7"]
    grid.layer = "block3_relu"  # channel 7 stays selected there: it follows
    assert linked.job.wait(60) and linked.layer == "block3_relu"
    linked.unlink()
    grid.selected_channel = 9
    assert linked.channels == [7]
    linked.close()
    grid.close()


def _max_threads_while(name: str, action) -> int:
    """Run ``action()``; the most threads called ``name`` alive at once meanwhile (sampled every millisecond)."""
    import threading

    most, stop = [0], threading.Event()

    def sample():
        while not stop.is_set():
            most[0] = max(most[0], sum(t.name == name for t in threading.enumerate()))
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        action()
    finally:
        stop.set()
        sampler.join()
    return most[0]


@pytest.mark.slow
def test_a_storm_of_render_and_cancel_on_a_cold_step_computes_one_render_and_traces_once():
    probe = cw.ModelProbe(demo.load_model())  # a new probe: its compiled steps are cold
    single = cw.FeatureVisualization(probe, "block3_relu", 5, steps=32, size=48, seed=1)
    started = time.monotonic()
    single.render().wait(120)
    one_render = time.monotonic() - started  # includes the trace, as the storm's first click does
    widget = cw.FeatureVisualization(probe, "block3_relu", 5, steps=32, size=40, seed=1)  # another, cold size
    traces = fv.trace_count()

    def storm():
        for _ in range(20):
            widget.render()
            widget.cancel()
        widget.render()
        assert widget.wait(120)

    started = time.monotonic()
    most = _max_threads_while("cnnwidget-featurevis", storm)
    storm_seconds = time.monotonic() - started
    print(f"\nstorm of 20 Render+Cancel then Render: {storm_seconds:.1f} s; one cold render {one_render:.1f} s "
          f"({storm_seconds / one_render:.2f}x); traces {fv.trace_count() - traces}; worker threads at most {most}")
    assert most == 1 and fv.trace_count() - traces <= 2  # one structure: its step and its image function
    assert widget.status.startswith("done: 32 steps") and widget.images.shape == (1, 40, 40, 3)
    single.close()
    widget.close()


@pytest.mark.slow
def test_linked_to_a_grid_changed_from_four_threads_it_ends_on_the_grids_channel(probe):
    import threading

    grid = cw.ActivationGrid(probe, demo.shapes(2, seed=0).images, layer="block2_relu")
    grid.wait()
    linked = cw.FeatureVisualization.linked_to(grid, steps=4)

    def clicks(seed):
        rng = np.random.default_rng(seed)
        for _ in range(25):
            grid.selected_channel = int(rng.integers(0, 32))

    threads = [threading.Thread(target=clicks, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert linked.wait(120) and grid.wait(60)
    assert (linked.layer, linked.channels) == (grid.layer, [grid.selected_channel])
    assert linked.view.images_meta["labels"] == [f"channel {grid.selected_channel}"]
    linked.close()
    grid.close()
