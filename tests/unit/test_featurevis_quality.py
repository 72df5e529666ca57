"""Feature visualization reaches its objectives on the demo model (issue 3's proofs), with the default settings:
Fourier parameterization with decorrelated colour, Lucid's standard transforms, Adam(0.05), 256 steps (slow);
and one cheap case of the same proof in the quick set (four channels, 64 steps).
"""

import numpy as np
import pytest

from cnnwidget.core import featurevis as fv

LAYERS = {"early": "block1_relu", "middle": "block2_relu", "middle-late": "block3_relu", "late": "block4_relu"}
# The channels judged are the renders test_featurevis_beats_data.py checks (conftest.py default_render_sets, made
# once per session): block1's 16 and block2's 32 channels, every 4th of block3's 64 and every 8th of block4's 128.
# How many of them must reach 10x their data-set mean. Measured on the shipped model at 256 steps (2026-12-07,
# render seed 0 as the test, and seed 1): block1 4 of 16 at both (22x, 21x, 23x, 15x; the other twelve are broad
# colour or brightness detectors at 2-8x, already active on about half of each image, so 10x is out of reach for
# them), block2 29 of 32 at both, block3 14 of 16 at both, block4 16 and 15 of 16. Each bound is about 60% of the
# measured count, as the 8 of 16 before (measured 15, 12, 12 on channels 0-15), so a change to the random stream
# does not trip it; a render whose jitter never moves reached 10x on 1 block1 channel. Past block1, every channel
# reached more than the best of the 500 data images: lowest ratio 1.42 (block2), 1.73 (block3; 1.62 with render
# seed 1), 2.46 (block4; 2.23). (Every 2nd of block3 and every 4th of block4, checked before: block3 26 and 25 of
# 32 at 10x, lowest ratio 1.16; block4 27 of 32, lowest 1.26, 1.08 with render seed 1.)
MIN_AT_10X = {"early": 3, "middle": 18, "middle-late": 8, "late": 9}


@pytest.fixture(scope="module")
def probe(demo_probe):
    return demo_probe  # shared with test_featurevis_beats_data.py (conftest.py): its compiled steps are made once


def demo_images(n):
    from cnnwidget import demo

    return demo.shapes(n, seed=1).images


@pytest.fixture(scope="module")
def data():
    from cnnwidget import demo

    return demo.shapes(500, seed=1)


def channel_means(probe, images, layer):
    """(N, C) mean activation of each channel over positions, per image."""
    return probe.activations(images, [layer])[layer].mean(axis=(1, 2))


@pytest.mark.slow
def test_four_channels_fire_far_above_their_data_set_level_after_64_steps(probe):
    # The quick case: block2 channels 0-3 measured 29x, 23x, 15x, 21x their mean and 7-13x their maximum over 100
    # data set images.
    layer, units = "block2_relu", [0, 1, 2, 3]
    on_data = channel_means(probe, demo_images(100), layer)[:, units]
    images = fv.render(probe, fv.channels(layer, units), steps=64)
    reached = channel_means(probe, images, layer)[np.arange(4), units]
    assert (reached / on_data.mean(axis=0) >= 10).sum() >= 3, np.round(reached / on_data.mean(axis=0), 1)
    assert np.all(reached > 2 * on_data.max(axis=0)), np.round(reached / on_data.max(axis=0), 2)


@pytest.fixture(scope="module")
def data_means(probe, data):
    """{layer: (500, C) channel means over positions} on the data set, every layer in one pass."""
    acts = probe.activations(data.images, list(LAYERS.values()))
    return {layer: a.mean(axis=(1, 2)) for layer, a in acts.items()}


@pytest.mark.slow
@pytest.mark.parametrize("depth", list(LAYERS))
def test_optimized_channels_fire_far_above_their_data_set_level(probe, data_means, depth, default_render,
                                                                default_render_sets):
    layer = LAYERS[depth]
    chans = list(default_render_sets[layer])
    on_data = data_means[layer][:, chans]
    images = default_render(layer, chans)  # one image per channel, one pass; judged by test_featurevis_beats_data too
    reached = channel_means(probe, images, layer)[np.arange(len(chans)), chans]
    ratio = reached / on_data.mean(axis=0)
    assert (ratio >= 10).sum() >= MIN_AT_10X[depth], np.round(ratio, 1)
    if depth != "early":  # past the first layer every channel beats the best of the 500 data set images
        assert np.all(reached > on_data.max(axis=0)), np.round(reached / on_data.max(axis=0), 2)


@pytest.mark.slow
def test_class_visualizations_are_classified_as_their_class(probe):
    classes = list(range(probe.num_classes))
    # others=0.5: the logit minus half the smooth maximum of the other logits; a pure logit (others=0) is overtaken
    # by a class sharing its features on this small model for 4 of the 10 classes at 256 steps (see class_logit).
    images = fv.render(probe, fv.class_logits(classes, others=0.5), steps=256)
    p = probe.predict(images)[classes, classes]
    assert (p >= 0.9).mean() >= 0.8, np.round(p, 3)


@pytest.mark.slow
def test_diversity_makes_the_images_of_a_batch_differ(probe):
    layer, objective = "block3_relu", fv.channel("block3_relu", 0)

    def gram_similarity(images):
        act = probe.activations(images, [layer])[layer].reshape(len(images), -1, 64)
        grams = np.einsum("bnc,bnd->bcd", act, act).reshape(len(images), -1)
        grams /= np.linalg.norm(grams, axis=1, keepdims=True)
        sims = grams @ grams.T
        return (sims.sum() - np.trace(sims)) / (len(images) * (len(images) - 1))

    # 64 steps: measured 2026-12-07, Gram similarity plain 0.990, diverse 0.175 (at 256: 0.995, 0.216), mean pixel
    # distance of the diverse images 0.25 (0.39).
    plain = fv.render(probe, objective, batch=4, steps=64)
    diverse = fv.render(probe, objective + 1.0 * fv.diversity(layer), batch=4, steps=64)
    # (the Gram matrices' similarity: mean pixel distance between the images cannot tell these apart, 0.25 for
    # the plain batch as for the diverse one, and was dropped as a check that could not fail)
    assert gram_similarity(diverse) < gram_similarity(plain) - 0.05


@pytest.mark.slow
def test_full_renders_repeat_exactly_for_a_seed(probe):
    objective = fv.channel("block3_relu", 7) - 1e-2 * fv.total_variation()
    first = fv.render(probe, objective, seed=3)  # three renders (the seed-3 one was made twice over)
    np.testing.assert_array_equal(first, fv.render(probe, objective, seed=3))
    assert np.abs(first - fv.render(probe, objective, seed=4)).mean() > 0.01
