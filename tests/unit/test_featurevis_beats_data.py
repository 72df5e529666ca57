"""Feature visualization with its defaults shows each unit something it responds to at least as strongly as to the
best real image: for every channel of every feature layer of the demo model (the four blocks' ReLU outputs),
``fv.render`` with no options but the objective gives an image whose channel mean is at least the largest channel
mean over 500 held-out data images. A visualization weaker than a data image would show a unit less than the data
set does (issue 10). The vector layer ``gap`` is left out: its channel c is block4_relu's channel c averaged over
positions, the very objective ``fv.channel("block4_relu", c)`` optimizes. Run with ``-s`` for the figures.

All 240 channels, 32 at a time, 256 steps each, take about 10 minutes on 2 idle cores (40 on busy ones), half the
suite's budget, and most of it is block4 (128 channels through the deepest pass). Measured on all of them
(MEAN_BOOST 4): lowest ratio block1 1.08, block2 1.43, block3 1.19, block4 1.24 (medians 2.2, 13.7, 11.0,
10.1); before the boost block1 had 6 of 16 channels at 0.74-0.78. So the suite checks every channel of block1 and
block2 (where the margin is smallest and the passes cheapest) and an evenly spaced 16 of block3 (every 4th) and
of block4 (every 8th), one render each. ``CNNWIDGET_FULL_CHECKS=1`` checks all 240. The deep layers' renders cost
the most per channel (block4's 32 took 65 of the two files' 220 CPU seconds, block3's 32 about 45) and their margins
are wide on these 16 (measured 2026-12-07: lowest ratio block3 1.59, block4 2.47; render seed 1: 1.49, 2.24), but
all 64 and 128 go down to 1.19 and 1.24 (above): a loss that only the deep layers' weakest channels would show is
caught by ``CNNWIDGET_FULL_CHECKS=1``, not by the suite (block1 and block2, every channel, have the thinnest margins).
The four renders and the probe are made once per session (tests/unit/conftest.py ``default_render``):
test_featurevis_quality.py judges the same renders (how many channels reach 10x their data-set mean).
"""

import os

import numpy as np
import pytest

from cnnwidget import demo

pytestmark = pytest.mark.slow

LAYERS = ["block1_relu", "block2_relu", "block3_relu", "block4_relu"]
SEED = 13  # seeds 0 and 1 trained the model (cnnwidget/demo/train.py)
BATCH = 32  # channels optimized at once, one image each
FULL = os.environ.get("CNNWIDGET_FULL_CHECKS") == "1"
STRIDE = {"block1_relu": 1, "block2_relu": 1, "block3_relu": 4, "block4_relu": 8}  # channels checked: every n-th


@pytest.fixture(scope="module")
def probe(demo_probe):
    return demo_probe  # shared with test_featurevis_quality.py, which judges the same renders (conftest.py)


@pytest.fixture(scope="module")
def best_on_data(probe):
    """{layer: (C,) the largest channel mean over 500 held-out images}."""
    acts = probe.activations(demo.shapes(500, seed=SEED).images, LAYERS)
    return {layer: _channel_means(a).max(axis=0) for layer, a in acts.items()}


def _channel_means(a):
    return a.mean(axis=(1, 2))


@pytest.mark.parametrize("layer", LAYERS)
def test_every_channel_gets_an_image_exciting_it_at_least_as_much_as_the_best_data_image(probe, best_on_data, layer,
                                                                                        default_render,
                                                                                        default_render_sets):
    best = best_on_data[layer]
    checked = np.arange(0, len(best), 1 if FULL else STRIDE[layer])
    if not FULL:
        assert list(checked) == list(default_render_sets[layer])  # the renders test_featurevis_quality.py reuses
    reached = np.full_like(best, np.nan)
    for start in range(0, len(checked), BATCH):
        chans = [int(c) for c in checked[start:start + BATCH]]
        images = default_render(layer, chans)  # the defaults: Fourier, decorrelated, Lucid's transforms
        reached[chans] = _channel_means(probe.activations(images, [layer])[layer])[np.arange(len(chans)), chans]
    ratio = reached[checked] / best[checked]
    print(f"\n{layer}: {len(checked)} of {len(best)} channels, rendered / best of 500 data images: min "
          f"{ratio.min():.2f} (channel {checked[ratio.argmin()]}), median {np.median(ratio):.2f}")
    weak = {int(checked[i]): round(float(ratio[i]), 2) for i in np.flatnonzero(ratio < 1)}
    assert not weak, f"channels whose render is weaker than a data image (ratio): {weak}"
