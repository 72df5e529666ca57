"""core.dataset.channel_examples' statistics on values chosen to test them: the zeros (counted in a slot of their
own by the histogram's bincount, then put back in the bin of 0) give exact counts, bin by bin, whatever the batching,
and a channel far from 0 (a large offset, a small spread) still gets its std right. The statistics' XLA loops and
their plain TensorFlow ops give the same result (infinite values too), and a pass compiles the loops only where
that pays."""

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


def test_a_pass_compiles_the_xla_loops_only_where_that_pays(monkeypatch):
    started = []
    monkeypatch.setattr(dataset, "_XLA_SHAPES", {})
    monkeypatch.setattr(dataset, "_PLAIN_VALUES", {})
    monkeypatch.setattr(dataset, "_XLA_STARTED", False)
    monkeypatch.setattr(dataset, "_start_xla_quietly", lambda: dataset._XLA_STARTED or (
        started.append(1) or monkeypatch.setattr(dataset, "_XLA_STARTED", True)))
    # a second of CPU saved a value, 1 s to compile, 0.5 s to start XLA: 1,500 values pay for the first compilation
    monkeypatch.setattr(dataset, "XLA_SAVES", 1e-3)
    monkeypatch.setattr(dataset, "XLA_COMPILE", 1.0)
    monkeypatch.setattr(dataset, "XLA_START", 0.5)
    probe = dataset.probe_for(_model())
    keys, infos = dataset._layers(probe, ["lin"])
    run = dataset._Pass(probe, keys, [dataset._Plan(probe, infos[0], 2)], 2, "max", 10, None)

    def rows(n, started_batches, total):
        return [int(r) for r in run._xla_rows(n, started_batches, total)]

    # 32 values an image (4 x 4 x 2): a batch of 10 is 320
    assert rows(10, 0, 3) == [0] and not started  # 960 values for the whole pass: the plain ops
    assert rows(10, 0, 5) == [10] and started == [1]  # 640 done plain and 4 more batches: 1,920 values, compiled
    assert rows(7, 4, 5) == [10]  # a smaller batch (a ragged last) is padded to the compiled shape
    assert rows(2, 4, 5) == [0]  # ... unless it is much smaller (less than 1 / XLA_PAD of it)
    monkeypatch.setattr(dataset, "_PLAIN_VALUES", {})  # (the values done plain count for later passes too)
    assert rows(20, 0, None) == [0]  # number of batches not known: plain until the values done plain pay (1 s) ...
    assert rows(20, 1, None) == [20] and started == [1]  # ... 640 + 640 = 1,280 > 1,000: compiled
    assert rows(12, 2, None) == [20]  # the nearest compiled shape that holds it


def _overflowing_model():
    inp = keras.Input((4, 4, 2))
    lin = keras.layers.Activation("linear", name="lin")(inp)
    big = keras.layers.Rescaling(3e38, name="big")(lin)  # values past +-1.14 overflow to +-inf
    return keras.Model(inp, keras.layers.GlobalAveragePooling2D(name="gap")(keras.layers.ReLU(name="relu")(big)))


@pytest.mark.slow
def test_the_xla_loops_and_the_plain_ops_give_the_same_result(monkeypatch):
    model, images = _overflowing_model(), _images()
    asked = []
    rows = dataset._Pass._xla_rows
    monkeypatch.setattr(dataset._Pass, "_xla_rows", lambda self, *a: asked.append([int(r) for r in rows(self, *a)])
                        or rows(self, *a))
    runs = {}
    for mode, saves in (("plain", 0.0), ("xla", 1.0)):  # xla: compiled at the first batch, whatever it costs
        monkeypatch.setattr(dataset, "XLA_SAVES", saves)
        monkeypatch.setattr(dataset, "_XLA_SHAPES", {})
        asked.clear()
        runs[mode] = dataset.channel_examples(model, images, ["lin", "big", "relu", "gap"], k=3, bins=10, batch_size=5)
        assert asked == ([[0] * 4] * 3 if mode == "plain" else [[5] * 4] * 3)  # the last batch (2) padded to 5
    big = (images.astype(np.float32) * np.float32(3e38)).reshape(-1, 2)
    assert runs["xla"]["big"].above.tolist() == (big == np.inf).sum(0).tolist() != [0, 0]
    assert runs["xla"]["big"].below.tolist() == (big == -np.inf).sum(0).tolist() != [0, 0]
    for key in ("lin", "big", "relu", "gap"):
        a, b = runs["plain"][key], runs["xla"][key]
        for name in ("indices", "scores", "positions", "patches", "histogram", "histogram_edges", "below", "above",
                     "min", "max", "zero_fraction"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=f"{key} {name}")
        for name in ("mean", "std"):
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-5, err_msg=f"{key} {name}")
