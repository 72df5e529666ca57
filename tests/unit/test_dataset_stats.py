"""core.dataset.channel_examples' statistics on values chosen to test them: the zeros (counted in a slot of their
own by the histogram's bincount, then put back in the bin of 0) give exact counts, bin by bin, whatever the batching,
and a channel far from 0 (a large offset, a small spread) still gets its std right."""

import keras
import numpy as np
import pytest

from cnnwidget.core import dataset

# Values well inside their bins for the ranges below (brute force with float64 edges is then exact).
VALUES = np.array([-2.0, -0.5, 0.0, 0.05, 0.3, 0.77, 1.9], np.float32)


def _model():
    inp = keras.Input((4, 4, 2))
    lin = keras.layers.Activation("linear", name="lin")(inp)
    relu = keras.layers.ReLU(name="relu")(lin)
    return keras.Model(inp, keras.layers.GlobalAveragePooling2D(name="gap")(relu))


def _images():
    rng = np.random.default_rng(5)
    images = rng.choice(VALUES, (12, 4, 4, 2)).astype(np.float32)
    images[0, 0, 0], images[0, 0, 1], images[0, 1, 0] = -2.0, 1.9, 0.0  # the first image holds the first range
    images[0, 1, 1] = 0.05  # a small positive value in the bin of 0 (relu; lin: 0 and 0.05 share a bin too)
    images[0, 2:] = np.where(images[0, 2:] == 0.0, 0.3, images[0, 2:])  # no other 0 in the first image...
    images[5:7] *= np.float32(2.75)  # ...later batches past the first range: the bins widen (and merge exactly)
    return images


@pytest.mark.slow
def test_zeros_are_counted_in_the_bin_of_0_bin_by_bin_whatever_the_batching():
    model, images = _model(), _images()
    runs = [dataset.channel_examples(model, images, ["lin", "relu"], k=2, bins=10, batch_size=b) for b in (1, 5, 12)]
    for key, v in (("lin", images), ("relu", np.maximum(images, 0))):
        v = v.reshape(-1, 2).astype(np.float64)
        for res in runs:
            got = res[key]
            np.testing.assert_array_equal(got.zero_fraction, (v == 0).mean(0))
            assert (got.histogram.sum(1) == len(v)).all() and not got.below.any() and not got.above.any()
            for c in range(2):
                edges = got.histogram_edges[c]
                width = edges[1] - edges[0]
                inside = v[:, c] != edges[0]  # relu's first edge is 0 itself (exact in float32 too)
                near = np.abs((v[inside, c, None] - edges[None]) / width).min()
                assert near > 1e-3, "test values must lie well inside their bins"
                zero_bin = np.searchsorted(edges, 0.0, side="right") - 1
                want, _ = np.histogram(v[:, c], edges)
                np.testing.assert_array_equal(got.histogram[c], want, err_msg=f"{key} channel {c}")
                assert got.histogram[c, zero_bin] > (v[:, c] == 0).sum() > 0  # zeros and small values share it
        # the same first range (batches of 1 and 5 both start within it): the same histogram
        np.testing.assert_array_equal(runs[0][key].histogram, runs[1][key].histogram)
        np.testing.assert_array_equal(runs[0][key].histogram_edges, runs[1][key].histogram_edges)


@pytest.mark.slow
def test_a_channel_with_a_large_offset_and_a_small_spread_gets_its_std():
    rng = np.random.default_rng(6)
    images = np.stack([1000 + rng.normal(0, 0.01, (20, 4, 4)), rng.normal(0, 1, (20, 4, 4))], -1).astype(np.float32)
    res = dataset.channel_examples(_model(), images, "lin", k=2, batch_size=7)["lin"]
    v = images.reshape(-1, 2).astype(np.float64)
    np.testing.assert_allclose(res.mean, v.mean(0), rtol=1e-6)
    np.testing.assert_allclose(res.std, v.std(0), rtol=1e-3)
    assert res.std[0] > 0.005


def test_the_first_batch_s_base_range_is_the_same_on_the_device_as_on_the_host():
    # One device: the first batch's step takes its histogram's base range itself (_base_range_tf); under a strategy
    # the host takes it from the replicas' first batches (_base_range). The same data must give the same bins.
    rng = np.random.default_rng(7)
    mn = (rng.normal(0, 3, 64) * 10.0 ** rng.integers(-30, 30, 64)).astype(np.float32)
    mx = (mn + np.abs(rng.normal(0, 2, 64)).astype(np.float32) * rng.integers(0, 2, 64)).astype(np.float32)
    mn[:6] = [0, 0, -np.inf, np.nan, 1e38, -3e-39]
    mx[:6] = [0, 5, 1, 2, np.inf, 2e-39]
    cases = [(mn, mx), (np.zeros(3, np.float32), np.zeros(3, np.float32)),  # a constant layer
             (np.full(2, -4.0, np.float32), np.full(2, -4.0, np.float32)), (mn[:1], mx[:1] + 1)]
    for lo_in, hi_in in cases:
        want = dataset._base_range(lo_in, hi_in)
        got = [t.numpy() for t in dataset._base_range_tf(lo_in, hi_in)]
        for w, g in zip(want, got):
            np.testing.assert_array_equal(g.view(np.int32), w.view(np.int32))  # bit for bit
