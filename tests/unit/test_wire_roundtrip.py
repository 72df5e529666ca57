"""What a widget sends decodes to what core computed, value by value (docs/wire-format.md).

Each test reads the view's synced byte traits (what goes on the wire), decodes them as the browser does
(``lo + (hi - lo) * q / 255``) and requires every value within half a quantization step of core's own array
(``probe.activations``, ``attr.<method>``, the rendered images). Metadata alone cannot catch a page whose bytes
belong to other channels than its labels, or a NaN drawn as the maximum; these can.
"""

import math
import threading
import time

import keras
import numpy as np
import pytest

import cnnwidget as cw
from cnnwidget import demo
from cnnwidget.core import attribution as attr

EPS = 1e-5  # float32 rounding of the ranges and of core's own arithmetic, relative to a tile's span


# ------------------------------------------------------------------------------------------------ decoding
# Wire traits that were renamed: the first of these names that the view syncs is the one sent (when a widget became
# its own view, FeatureVisualization's bytes became ``pixels`` and AttributionMap's ``map_bytes``: ``images`` and
# ``maps`` are their float properties).
RENAMED = {"images": ("pixels", "images"), "maps": ("map_bytes", "maps")}


def sent(widget, name):
    """The synced trait ``name`` of ``widget``'s view, as it goes on the wire, once the widget's pending work is
    there (the one place that knows where a widget keeps its view and how to wait for it: a rename is a fix here)."""
    wait = getattr(widget, "wait", None)  # widgets that compute their pages on a worker thread
    if wait is not None:
        assert wait(120), f"{type(widget).__name__} still busy after 120 s"
    view = widget.view
    for candidate in RENAMED.get(name, (name,)):
        if view.has_trait(candidate) and view.trait_metadata(candidate, "sync"):
            return getattr(view, candidate)
    raise AssertionError(f"{type(widget).__name__} syncs no trait {name!r}")


def decode(data: bytes, ranges: bytes, k: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A (tiles, tile_ranges) pair as the browser reads it: float64 values (k, h, w) and half a step per tile (k,)."""
    assert len(data) == k * h * w and len(ranges) == 8 * k, (len(data), len(ranges), k, h, w)
    q = np.frombuffer(data, np.uint8).reshape(k, h, w).astype(np.float64)
    lohi = np.frombuffer(ranges, "<f4").reshape(k, 2).astype(np.float64)
    lo, hi = lohi[:, 0, None, None], lohi[:, 1, None, None]
    return lo + (hi - lo) * q / 255.0, (lohi[:, 1] - lohi[:, 0]) / 510.0


def assert_within_half_a_step(values, half, truth, what=""):
    """Every decoded value within half its tile's step (plus float32 slack) of the true one; names the worst."""
    truth = np.asarray(truth, np.float64)
    assert values.shape == truth.shape, (what, values.shape, truth.shape)
    span = 2 * 255 * half[:, None, None]
    err = np.abs(values - truth) - (half[:, None, None] + EPS * np.maximum(span, 1e-6))
    if (err > 0).any():
        i, y, x = np.unravel_index(np.argmax(err), err.shape)
        raise AssertionError(f"{what}: tile {i} pixel ({y}, {x}) decodes to {values[i, y, x]:.6g}, the truth is "
                             f"{truth[i, y, x]:.6g}, half a step is {half[i]:.3g}")


def grid_page(grid):
    """The page the grid sends: (decoded (k, h, w), half steps (k,), tile_meta)."""
    meta = sent(grid, "tile_meta")
    values, half = decode(sent(grid, "tiles"), sent(grid, "tile_ranges"), meta["k"], meta["h"], meta["w"])
    return values, half, meta


def truth_of(grid, layer, image_index):
    """Core's activations of ``layer`` for one image of the grid's batch, computed afresh (not the grid's cache)."""
    return grid.probe.activations(grid.images[image_index:image_index + 1], [layer])[layer][0]


def block_mean(maps, factor):
    """(k, H, W) -> (k, H/f, W/f) by the mean of f x f blocks (what area downsampling by a whole factor is)."""
    k, h, w = maps.shape
    return maps.reshape(k, h // factor, factor, w // factor, factor).mean(axis=(2, 4))


# ------------------------------------------------------------------------------------------------ ActivationGrid
@pytest.fixture(scope="module")
def model(grid_model):
    return grid_model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((3, 40, 40, 3)).astype(np.float32)


@pytest.fixture
def grid(model, images):
    return cw.ActivationGrid(model, images, page_size=64, thumbnail=20)


def test_each_tile_of_the_first_page_decodes_to_its_channel(grid):
    values, half, meta = grid_page(grid)
    truth = truth_of(grid, "conv1", 0)
    assert meta["channels"] == list(range(8))
    assert_within_half_a_step(values, half, np.moveaxis(truth, -1, 0), "conv1 page 0")


def test_sorted_by_mean_each_tile_still_shows_the_channel_it_is_labelled_with(grid):
    grid.sort = "mean"
    values, half, meta = grid_page(grid)
    truth = truth_of(grid, "conv1", 0)
    channels = meta["channels"]
    means = truth.mean(axis=(0, 1))
    assert channels != sorted(channels), "this model's channels are already in mean order: the test proves nothing"
    assert list(means[channels]) == sorted(means, reverse=True)
    assert_within_half_a_step(values, half, np.moveaxis(truth[..., channels], -1, 0), "conv1 sorted by mean")


def test_page_1_of_a_paged_layer_decodes_to_channels_64_to_99(grid):
    grid.layer = "conv2"
    grid.page = 1
    values, half, meta = grid_page(grid)
    truth = truth_of(grid, "conv2", 0)
    assert (meta["page"], meta["k"], meta["channels"]) == (1, 36, list(range(64, 100)))
    assert_within_half_a_step(values, half, np.moveaxis(truth[..., 64:], -1, 0), "conv2 page 1")


def test_page_1_sorted_by_mean_holds_the_37th_to_last_most_active_channels(grid):
    grid.layer = "conv2"
    grid.sort = "mean"
    grid.page = 1
    values, half, meta = grid_page(grid)
    truth = truth_of(grid, "conv2", 0)
    order = list(np.argsort(-truth.mean(axis=(0, 1)), kind="stable"))
    assert meta["channels"] == order[64:]
    assert_within_half_a_step(values, half, np.moveaxis(truth[..., order[64:]], -1, 0), "conv2 page 1 by mean")


def test_another_image_sends_that_images_activations_and_picture(grid, images):
    grid.layer = "relu1"
    grid.image_index = 2
    values, half, _ = grid_page(grid)
    assert_within_half_a_step(values, half, np.moveaxis(truth_of(grid, "relu1", 2), -1, 0), "relu1 image 2")
    picture = np.frombuffer(sent(grid, "image"), np.uint8).reshape(40, 40, 3) / 255.0
    assert sent(grid, "image_shape") == [40, 40]
    assert np.abs(picture - images[2]).max() <= 0.5 / 255 + 1e-6


def test_a_new_batch_sends_its_own_activations(grid, images):
    grid.images = images[::-1].copy()
    values, half, _ = grid_page(grid)
    assert_within_half_a_step(values, half, np.moveaxis(truth_of(grid, "conv1", 0), -1, 0), "conv1 new batch")
    np.testing.assert_array_equal(grid.images[0], images[2])


def test_a_new_batch_set_while_the_first_page_is_computing_shows_the_new_batch(model, images):
    """The first page is computed on the widget's worker; a batch set meanwhile must not get the old batch's
    outputs, whatever order the two finish in. The worker's pass is held at a gate until the new batch is set."""
    probe = cw.ModelProbe(model)
    caller, gate, held = threading.current_thread(), threading.Event(), threading.Event()
    real = probe.activations

    def gated(*args, **kwargs):
        out = real(*args, **kwargs)
        if threading.current_thread() is not caller and not gate.is_set():
            held.set()
            gate.wait(60)
        return out

    probe.activations = gated
    grid = cw.ActivationGrid(probe, images)
    if not hasattr(grid, "wait"):
        pytest.skip("this ActivationGrid computes its first page on the caller's thread")
    assert held.wait(60), "the first page never started on the worker"
    new = images[::-1].copy()
    setter = threading.Thread(target=setattr, args=(grid, "images", new))
    setter.start()
    deadline = time.monotonic() + 60
    while not np.array_equal(grid.images[0], new[0]):
        assert time.monotonic() < deadline, "the new batch was not taken"
        time.sleep(0.01)
    gate.set()
    setter.join(60)
    values, half, _ = grid_page(grid)
    truth = np.moveaxis(real(new[:1], ["conv1"])["conv1"][0], -1, 0)
    assert_within_half_a_step(values, half, truth, "conv1 of the batch set during the first page")


def test_the_enlarged_channel_decodes_to_the_full_resolution_map(grid):
    grid.layer = "conv2"
    grid.image_index = 1
    grid.selected_channel = 71
    fm = sent(grid, "focus_meta")
    assert (fm["channel"], fm["h"], fm["w"]) == (71, 20, 20)
    lohi = np.array([fm["lo"], fm["hi"]], np.float32).tobytes()
    values, half = decode(sent(grid, "focus"), lohi, 1, 20, 20)
    assert_within_half_a_step(values, half, truth_of(grid, "conv2", 1)[None, ..., 71], "focus conv2:71")


def test_downsampled_tiles_are_area_means_of_the_map_and_the_focus_is_not(model, images):
    grid = cw.ActivationGrid(model, images, max_tile=20)
    values, half, meta = grid_page(grid)
    truth = np.moveaxis(truth_of(grid, "conv1", 0), -1, 0)
    assert (meta["h"], meta["source_h"]) == (20, 40)
    assert_within_half_a_step(values, half, block_mean(truth, 2), "conv1 at 20x20")
    grid.selected_channel = 5
    fm = sent(grid, "focus_meta")
    values, half = decode(sent(grid, "focus"), np.array([fm["lo"], fm["hi"]], "<f4").tobytes(), 1, 40, 40)
    assert_within_half_a_step(values, half, truth[5:6], "focus conv1:5 at 40x40")


def test_a_vector_layer_tile_holds_unit_channels_i_at_pixel_i_and_byte_0_after_the_last(grid):
    grid.layer = "gap"
    grid.sort = "mean"
    values, half, meta = grid_page(grid)
    units = truth_of(grid, "gap", 0)
    flat, channels = values.reshape(-1), meta["channels"]
    assert len(channels) == 100 and (meta["h"], meta["w"]) == (10, 10)
    assert_within_half_a_step(flat[None, None, :100], half, units[channels][None, None], "gap units")
    assert channels[0] == int(units.argmax())


def test_the_depth_strip_has_each_layers_energy_in_its_own_thumbnail(grid):
    """RMS over channels, area-shrunk (40 -> 20 is a 2 x 2 mean) or enlarged whole (a vector is laid out row by row,
    zero-padded), each thumbnail on its own range: the bytes are within half a step of that, layer by layer."""
    meta = sent(grid, "strip_meta")
    t = meta["t"]
    assert (t, meta["layers"]) == (20, ["conv1", "relu1", "conv2", "gap", "out"])
    q = np.frombuffer(sent(grid, "strip"), np.uint8).reshape(5, t, t).astype(np.float64)
    acts = grid.probe.activations(grid.images[:1], meta["layers"])
    for i, layer in enumerate(meta["layers"]):
        a = acts[layer][0].astype(np.float64)
        if a.ndim == 3:
            energy = np.sqrt((a ** 2).mean(axis=-1))[None]
            thumb = block_mean(energy, a.shape[0] // t)[0] if a.shape[0] > t else \
                np.repeat(np.repeat(energy[0], t // a.shape[0], 0), t // a.shape[1], 1)
        else:
            side = math.isqrt(len(a) - 1) + 1
            square = np.zeros(side * side)
            square[:len(a)] = a
            thumb = np.repeat(np.repeat(square.reshape(side, side), t // side, 0), t // side, 1)
        lo, hi = thumb.min(), thumb.max()
        expected = 255 * (thumb - lo) / (hi - lo)
        worst = np.abs(q[i] - expected).max()
        assert worst <= 0.5 + 255 * EPS, f"thumbnail {i} ({layer}) is {worst:.2f} bytes off its layer's energy"


@pytest.fixture(scope="module")
def diverged():
    """A model whose 'bad' layer has NaN, +inf and -inf at known places in channel 1 (and nowhere else)."""
    keras.utils.set_random_seed(1)
    bad = np.zeros((1, 8, 8, 3), np.float32)
    bad[0, 0, 0, 1], bad[0, 3, 4, 1], bad[0, 7, 7, 1] = np.nan, np.inf, -np.inf
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv")(inp)
    x = keras.layers.Lambda(lambda v: v + bad, name="bad")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, keras.layers.Dense(2, name="out")(x)), ~np.isfinite(bad[0, ..., 1])


def test_nan_and_inf_activations_are_sent_as_byte_0_and_the_rest_within_half_a_step(diverged):
    model, where = diverged
    grid = cw.ActivationGrid(model, np.random.default_rng(2).random((1, 8, 8, 3)), layer="bad")
    values, half, meta = grid_page(grid)
    truth = np.moveaxis(truth_of(grid, "bad", 0), -1, 0)
    assert np.isfinite(np.frombuffer(sent(grid, "tile_ranges"), "<f4")).all()
    q = np.frombuffer(sent(grid, "tiles"), np.uint8).reshape(3, 8, 8)
    assert q[1][where].tolist() == [0, 0, 0], "a non-finite activation must be drawn as the tile's minimum"
    assert_within_half_a_step(values[[0, 2]], half[[0, 2]], truth[[0, 2]], "finite channels")
    finite = ~where
    lo, hi = np.frombuffer(sent(grid, "tile_ranges"), "<f4").reshape(3, 2)[1]
    assert (lo, hi) == (truth[1][finite].min(), truth[1][finite].max())
    assert np.abs(values[1][finite] - truth[1][finite]).max() <= half[1] + EPS * (hi - lo)
    grid.selected_channel = 1
    assert np.frombuffer(sent(grid, "focus"), np.uint8).reshape(8, 8)[where].tolist() == [0, 0, 0]


# ------------------------------------------------------------------------------------------------ AttributionMap
FAST = ("saliency", "gradient_x_input", "grad_cam")


@pytest.fixture(scope="module")
def shapes():
    return demo.shapes(3, seed=1234)


@pytest.fixture(scope="module")
def probe(shapes):
    return cw.ModelProbe(demo.load_model(), class_names=shapes.class_names)


@pytest.fixture
def amap(probe, shapes):
    w = cw.AttributionMap(probe, shapes.images, FAST, curves=False)
    yield w
    w.close()


def amap_maps(widget):
    meta = sent(widget, "maps_meta")
    values, half = decode(sent(widget, "maps"), sent(widget, "map_ranges"), meta["k"], meta["h"], meta["w"])
    return values, half, meta


def test_each_map_sent_decodes_to_its_methods_attribution(amap, probe, shapes):
    values, half, meta = amap_maps(amap)
    x = shapes.images[:1]
    assert meta["done"] == [True] * 3 and meta["target"] == int(probe.predict(x)[0].argmax())
    truth = np.stack([attr.METHODS[m](probe, x, target=meta["target"])[0] for m in FAST])
    assert_within_half_a_step(values, half, truth, "maps of image 0")
    assert truth[2].max() > 0 and (truth[1] < 0).any()  # signed maps: the sign is the browser's choice


def test_another_image_and_class_send_their_own_maps(amap, probe, shapes):
    amap.image_index = 2
    amap.target = sent(amap, "predictions")[2]["index"]
    values, half, meta = amap_maps(amap)
    assert (meta["image_index"], meta["target"]) == (2, amap.target)
    truth = np.stack([attr.METHODS[m](probe, shapes.images[2:3], target=amap.target)[0] for m in FAST])
    assert_within_half_a_step(values, half, truth, "maps of image 2, third class")
    picture = np.frombuffer(sent(amap, "image"), np.uint8).reshape(64, 64, 3) / 255.0
    assert np.abs(picture - shapes.images[2]).max() <= 0.5 / 255 + 1e-6


def test_a_slow_map_from_the_worker_decodes_to_core_occlusion(probe, shapes):
    w = cw.AttributionMap(probe, shapes.images, ("saliency", "occlusion"), curves=False,
                          occlusion={"patch": 16, "stride": 8})
    try:
        values, half, meta = amap_maps(w)  # read once the worker is done (see sent)
        if not hasattr(w, "wait"):  # before the CnnWidget move: the worker's job is amap.job
            assert w.job.wait(120)
            values, half, meta = amap_maps(w)
        assert not sent(w, "running") and sent(w, "error") == ""
        truth = attr.occlusion(probe, shapes.images[:1], target=meta["target"], patch=16, stride=8)[0]
        assert meta["done"] == [True, True]
        assert_within_half_a_step(values[1:], half[1:], truth[None], "occlusion")
    finally:
        w.close()


# ------------------------------------------------------------------------------------------------ FeatureVisualization
def test_the_images_sent_are_the_rendered_images_within_half_a_step(probe):
    w = cw.FeatureVisualization(probe, "block3_relu", [1, 5], steps=8)
    try:
        assert w.render().wait(120) and w.error == ""
        meta, kept = sent(w, "images_meta"), w.images
        assert (meta["n"], meta["size"], meta["final"]) == (2, 64, True) and kept.shape == (2, 64, 64, 3)
        got = np.frombuffer(sent(w, "images"), np.uint8).reshape(2, 64, 64, 3) / 255.0
        lo, hi = probe.input_range
        expected = (np.clip(kept, lo, hi) - lo) / (hi - lo)
        assert np.abs(got - expected).max() <= 0.5 / 255 + 1e-6
        assert kept.std() > 0.01  # a picture, not a flat start
    finally:
        w.close()
