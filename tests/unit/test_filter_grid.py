"""FilterGrid's page as the view reads it: the bytes and meta it sends give back every weight (and every norm)
within half a quantization step, which is what the hover values in js/kernels.js rely on (docs/wire-format.md).
The shown pictures, paging and bad input are tested in tests/unit/test_training_widgets.py."""

import numpy as np
import pytest

import cnnwidget as cw
from cnnwidget.core import filters


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(6, 3, name="conv1"),
                             keras.layers.Conv2D(5, 3, name="conv2"), keras.layers.GlobalAveragePooling2D()])


def _read_back(view) -> np.ndarray:
    """What js/kernels.js shows for every byte of the page: trueValue(lo, hi, q) with kernelRange's [lo, hi]."""
    meta = view.meta
    q = np.frombuffer(view.tiles, np.uint8).astype(np.float64)
    if meta["view"] == "norms":
        return (q / 255 * meta["scale"][0]).reshape(meta["h"], meta["w"])
    s = np.array(meta["scale"])[:, None]
    return s * (q.reshape(len(s), -1) - 127) / 127


@pytest.mark.parametrize("layer, grid_page_size, page", [("conv1", 16, 0), ("conv2", 2, 1)])
def test_a_page_gives_back_its_weights_within_half_a_step(model, layer, grid_page_size, page):
    grid = cw.FilterGrid(model, layer, grid_page_size=grid_page_size)
    grid.page = page
    meta = grid.view.meta
    _, kernel = filters.kernel(model, layer)  # (out, in, kh, kw)
    shown = kernel[meta["filters"]]
    if meta["per_input"]:  # tiles (filter, input channel) of (kh, kw)
        assert meta["inputs"] == meta["cols"] == kernel.shape[1]
        want = shown.reshape(len(shown), -1)
    else:  # RGB images (filter) of (kh, kw, input channel)
        assert meta["inputs"] == 3 and meta["c"] == 3
        want = shown.transpose(0, 2, 3, 1).reshape(len(shown), -1)
    half_step = np.array(meta["scale"])[:, None] / 254
    assert np.all(np.abs(_read_back(grid.view) - want) <= half_step * (1 + 1e-5))


def test_the_norms_view_gives_back_every_kernel_norm_within_half_a_step(model):
    grid = cw.FilterGrid(model, "conv2")
    grid.show = "norms"
    _, norms = filters.kernel_norms(model, "conv2")
    meta = grid.view.meta
    assert (meta["h"], meta["w"], meta["inputs"], meta["filters"]) == (5, 6, 6, [0, 1, 2, 3, 4])
    assert np.all(np.abs(_read_back(grid.view) - norms) <= norms.max() / 510 * (1 + 1e-5))


def test_a_zero_weight_reads_back_as_exactly_zero(model):
    import keras

    pruned = keras.models.clone_model(model)
    pruned.set_weights(model.get_weights())
    kernel, bias = pruned.get_layer("conv2").get_weights()
    kernel[0, 0, :, :] = 0.0  # the top-left tap of every kernel pruned
    pruned.get_layer("conv2").set_weights([kernel, bias])
    grid = cw.FilterGrid(pruned, "conv2")
    shown = _read_back(grid.view).reshape(-1, 3, 3)  # (filter x input channel, kh, kw)
    assert np.all(shown[:, 0, 0] == 0.0)
