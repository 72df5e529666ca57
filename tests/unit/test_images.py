"""Bad images get a message that says what was expected and what was given."""

import numpy as np
import pytest

from cnnwidget.core import ImageError
from cnnwidget.core.images import as_image_batch

OK = dict(height=8, width=8, channels=3)


def test_a_single_image_becomes_a_batch_of_one():
    assert as_image_batch(np.zeros((8, 8, 3)), **OK).shape == (1, 8, 8, 3)


def test_uint8_images_are_scaled_to_the_display_range():
    batch = as_image_batch(np.full((1, 8, 8, 3), 255, np.uint8), **OK)
    assert batch.dtype == np.float32 and batch.max() == 1.0


def test_grayscale_2d_image_gets_batch_and_channel_axes():
    assert as_image_batch(np.zeros((8, 8)), height=8, width=8, channels=1).shape == (1, 8, 8, 1)


@pytest.mark.parametrize("shape", [(8,), (2, 2, 8, 8, 3)])
def test_wrong_rank_says_the_expected_shape(shape):
    with pytest.raises(ImageError, match=r"\(N, H, W, C\).*got shape"):
        as_image_batch(np.zeros(shape), **OK)


def test_wrong_size_says_both_sizes():
    with pytest.raises(ImageError, match="8x8 pixels; got 9x8"):
        as_image_batch(np.zeros((1, 9, 8, 3)), **OK)


def test_a_batch_without_its_channel_axis_is_named_as_such_not_as_one_image_of_a_wrong_size():
    # (2, 8, 8) for a 3-channel model: taken as one image it was "got 2x8 pixels", which sent the user resizing
    with pytest.raises(ImageError, match=r"got shape \(2, 8, 8\): 2 image\(s\) of 8x8 with no channel axis"):
        as_image_batch(np.zeros((2, 8, 8)), **OK)


def test_wrong_channel_count_mentions_channels_last():
    with pytest.raises(ImageError, match="3 channel.*got 8.*channels-last"):
        as_image_batch(np.zeros((1, 3, 8, 8)), height=None, width=None, channels=3)


def test_empty_batch_is_refused():
    with pytest.raises(ImageError, match="empty"):
        as_image_batch(np.zeros((0, 8, 8, 3)), **OK)


def test_nan_is_refused_with_the_image_it_is_in():
    x = np.zeros((3, 8, 8, 3), np.float32)
    x[2, 1, 1, 0] = np.nan
    with pytest.raises(ImageError, match="1 NaN or infinite value.*image 2"):
        as_image_batch(x, **OK)


def test_non_numeric_arrays_are_refused():
    with pytest.raises(ImageError, match="numeric array.*dtype <U"):
        as_image_batch(np.array([["a", "b"]]), **OK)
