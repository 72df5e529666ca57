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


def test_depth_strip_has_one_thumbnail_per_layer_in_order():
    model = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(3, 3, name="c"),
                              keras.layers.Flatten(name="f"), keras.layers.Dense(5, name="d")])
    probe = ModelProbe(model)
    images = np.random.default_rng(0).random((2, 12, 12, 3), dtype=np.float32)
    thumbs, paths = depth_strip(probe, images, size=8)
    assert paths == ["c", "f", "d"] and thumbs.shape == (2, 3, 8, 8)
    conv = np.sqrt((probe.activations(images, ["c"])["c"] ** 2).mean(-1))  # RMS over channels, (2, 10, 10)
    np.testing.assert_allclose(thumbs[:, 0].mean(axis=(1, 2)), conv.mean(axis=(1, 2)), rtol=0.05)
