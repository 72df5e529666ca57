"""The wire encoding: uint8 tiles whose ranges give back true values."""

import numpy as np

from cnnwidget.widgets._transport import image_bytes, quantize


def test_quantized_tiles_decode_to_true_values_within_half_a_step():
    maps = np.random.default_rng(0).normal(size=(3, 5, 7)).astype(np.float32)
    data, ranges = quantize(maps)
    q = np.frombuffer(data, np.uint8).reshape(3, 5, 7)
    lohi = np.frombuffer(ranges, "<f4").reshape(3, 2)
    decoded = lohi[:, :1, None] + (lohi[:, 1:, None] - lohi[:, :1, None]) * q / 255.0
    step = (lohi[:, 1] - lohi[:, 0]) / 255.0
    assert np.all(np.abs(decoded - maps) <= step[:, None, None] / 2 + 1e-6)


def test_the_wire_costs_the_raw_uint8_size_plus_eight_bytes_a_tile():
    data, ranges = quantize(np.zeros((64, 56, 56), np.float32))
    assert len(data) == 64 * 56 * 56 and len(ranges) == 64 * 8


def test_a_constant_tile_is_all_zero_bytes_with_equal_range():
    data, ranges = quantize(np.full((1, 2, 2), 4.0))
    assert set(data) == {0} and list(np.frombuffer(ranges, "<f4")) == [4.0, 4.0]


def test_non_finite_values_do_not_break_the_range():
    data, ranges = quantize(np.array([[[np.nan, 1.0], [2.0, np.inf]]]))
    assert list(np.frombuffer(ranges, "<f4")) == [1.0, 2.0]


def test_nan_and_both_infinities_are_sent_as_byte_0_the_tiles_minimum():
    """The documented byte (quantize's docstring): a diverged unit is drawn as the minimum, never as the maximum."""
    maps = np.array([[[np.nan, 1.0, 3.0], [np.inf, 2.0, -np.inf]],
                     [[5.0, np.nan, 7.0], [6.0, 7.0, np.inf]]], np.float32)
    data, ranges = quantize(maps)
    q = np.frombuffer(data, np.uint8).reshape(maps.shape)
    assert q[~np.isfinite(maps)].tolist() == [0] * 5
    # and the finite values around them still decode within half a step of their own range
    lohi = np.frombuffer(ranges, "<f4").reshape(2, 2)
    assert lohi.tolist() == [[1.0, 3.0], [5.0, 7.0]]
    decoded = lohi[:, :1, None] + (lohi[:, 1:, None] - lohi[:, :1, None]) * q / 255.0
    finite = np.isfinite(maps)
    assert np.all(np.abs(decoded - maps)[finite] <= 2 / 255 / 2 + 1e-6)


def test_a_tile_with_no_finite_value_is_all_zero_bytes_on_range_0_0():
    data, ranges = quantize(np.full((1, 2, 2), np.nan, np.float32))
    assert set(data) == {0} and list(np.frombuffer(ranges, "<f4")) == [0.0, 0.0]


def test_images_become_rgb_bytes_and_gray_is_repeated():
    assert image_bytes(np.ones((2, 2, 3)), (0.0, 1.0)) == bytes([255] * 12)
    assert len(image_bytes(np.zeros((2, 2, 1)), (0.0, 1.0))) == 12
