"""Feature maps made ready to show: statistics, ordering, resizing, thumbnails."""

import keras
import numpy as np
import pytest

from cnnwidget.core import ModelProbe
from cnnwidget.core.activations import channel_order, channel_stats, depth_strip, fit_within, resize


def test_channel_stats_give_mean_and_fraction_not_positive():
    maps = np.stack([np.full((2, 2), 3.0), np.array([[0.0, 1.0], [-1.0, 2.0]])], axis=-1)
    means, dead = channel_stats(maps)
    np.testing.assert_allclose(means, [3.0, 0.5])
    np.testing.assert_allclose(dead, [0.0, 0.5])


def test_channels_sort_by_descending_mean():
    assert list(channel_order(np.array([0.1, 0.9, 0.5]), "mean")) == [1, 2, 0]
    with pytest.raises(ValueError, match="'index' or 'mean'"):
        channel_order(np.zeros(3), "max")


def test_shrinking_averages_areas():
    maps = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    np.testing.assert_allclose(resize(maps, 2, 2)[0], [[2.5, 4.5], [10.5, 12.5]])


def test_enlarging_repeats_pixels():
    np.testing.assert_allclose(resize(np.array([[1.0, 2.0]]), 2, 4), [[1, 1, 2, 2], [1, 1, 2, 2]])


def test_fit_within_keeps_aspect_and_never_enlarges():
    assert fit_within(112, 56, 64) == (64, 32)
    assert fit_within(7, 7, 64) == (7, 7)


def test_depth_strip_has_one_thumbnail_per_layer_in_order_each_from_its_own_activations():
    model = keras.Sequential([keras.Input((10, 10, 3)), keras.layers.Conv2D(4, 3, name="c"),
                              keras.layers.Flatten(name="f"), keras.layers.Dense(16, name="d")])
    probe = ModelProbe(model)
    images = np.random.default_rng(0).random((2, 10, 10, 3), dtype=np.float32)
    thumbs, paths = depth_strip(probe, images, size=8)
    assert paths == ["c", "f", "d"] and thumbs.shape == (2, 3, 8, 8)
    acts = probe.activations(images, paths)
    # c (8, 8, 4): the RMS over channels at each position, already 8 x 8
    np.testing.assert_allclose(thumbs[:, 0], np.sqrt((acts["c"] ** 2).mean(-1)), rtol=1e-5, atol=1e-6)
    # f (256,): laid out row by row in 16 x 16, shrunk to 8 x 8 by averaging 2 x 2 blocks
    np.testing.assert_allclose(thumbs[:, 1], acts["f"].reshape(2, 8, 2, 8, 2).mean(axis=(2, 4)), rtol=1e-5,
                               atol=1e-6)
    # d (16,): laid out in 4 x 4, enlarged to 8 x 8 by repeating each value in a 2 x 2 block
    np.testing.assert_allclose(thumbs[:, 2], acts["d"].reshape(2, 4, 4).repeat(2, 1).repeat(2, 2), rtol=1e-5,
                               atol=1e-6)
