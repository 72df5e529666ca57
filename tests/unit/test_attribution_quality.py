"""Do the maps point at the shape, and are they faithful? Every method on held-out demo images with known masks.

Pointing game (Zhang et al. 2016): a hit when a map's maximum falls inside the shape's mask. Zhang et al. allow
15 px at 224 px, since evidence sits on an object's outline as much as inside it; here that is 4 px at 64 px.
Deletion and insertion: the area under the target probability as the map's top pixels are replaced by the image's
mean colour (deletion, lower is better), or put back into a mean-colour image (insertion, higher is better); a
method must beat maps of random numbers by its own margin, set at about half the gap measured on the shipped
model, so a real loss of faithfulness fails and a change to a random stream does not. Signed maps whose sign is a
direction rather than evidence (gradient x input, Integrated Gradients) are ranked by magnitude.

The full table is slow (LIME, Kernel SHAP and RISE take thousands of passes per image at their defaults): they are
checked on 6 images (HEAVY), and the sampling methods with fewer samples than their defaults (FEWER), with margins
over random maps still well past their bounds. ``python tests/unit/test_attribution_quality.py`` prints the table at
the defaults.
"""

import numpy as np
import pytest

from cnnwidget import demo
from cnnwidget.core import ModelProbe
from cnnwidget.core import attribution as attr

N, SEED = 30, 5  # seeds 0 and 1 trained the model
# LIME, Kernel SHAP and RISE score 1000-2000 masked images per image: on all 30 images they took 3 of the suite's
# 20 minutes, on 12 still 230 of this file's 340 s. They are checked on the first 6, against random maps on the same
# 6. Measured 2026-12-07 on those 6 (pointing, deletion, insertion): random deletion 0.246, insertion 0.260; rise
# 1.00 0.154 0.950, lime 1.00 0.134 0.952, kernel_shap 1.00 0.134 0.952: deletion 0.09-0.11 below random (bounds
# 0.01-0.015), insertion 0.69 above (bound 0.3), and pointing 6 of 6 (the 0.9 bound needs all 6; 12 of 12 on the
# first 12). Note: most of the heavy methods' deletion gap comes from image 5, the one image whose score survives
# random deletion (random 0.90, the methods 0.08); on images 0-4 random pixel deletion drops the score as fast as
# theirs. On the first 12 it was the same (random 0.159, lime 0.128, without image 5: 0.092 and 0.132).
HEAVY, N_HEAVY = {"rise", "lime", "kernel_shap"}, 6
# Fewer samples than the defaults: a quarter for the heavy three (RISE 500 masks of 2000, LIME and Kernel SHAP 250
# samples of 1000), about a third for SmoothGrad (16 of 50) and Integrated Gradients (16 steps of 50), and Score-CAM
# on each image's 32 channels of largest variance (of 128; Faster Score-CAM). Measured 2026-12-07 (pointing,
# deletion, insertion), the defaults in brackets. On the first 6 (random 0.249 0.269 in that run): rise 1.00 0.173
# 0.950 (0.154 0.950), lime 1.00 0.134 0.952 (the same), kernel_shap 1.00 0.133 0.952 (0.134 0.952). On all 30
# (random 0.166 0.169): smoothgrad 1.00 0.147 0.432 (0.155 0.495), integrated_gradients 1.00 0.125 0.832 (0.138
# 0.829), score_cam 1.00 0.152 0.866 (0.160 0.878). Every deletion margin is as wide or wider; SmoothGrad's insertion
# gap is 0.26 (0.33 at 50 samples; bound 0.15). At the defaults these six maps took 100 of this file's 130 CPU s.
FEWER = {"rise": {"masks": 500}, "lime": {"samples": 250}, "kernel_shap": {"samples": 250},
         "smoothgrad": {"samples": 16}, "integrated_gradients": {"steps": 16}, "score_cam": {"channels": 32}}
TOLERANCE = 4  # px, Zhang et al.'s 15 px at 224 scaled to 64
BY_MAGNITUDE = {"gradient_x_input", "integrated_gradients"}

# Measured on the shipped model, 30 images of seed 5, default options (2026-12-02); random maps: deletion 0.166,
# insertion 0.169. Per method: (pointing within 4 px, deletion, insertion) measured -> the bounds below.
#   saliency 1.00 0.131 0.714   gradient_x_input |m| 1.00 0.131 0.502   smoothgrad 1.00 0.155 0.495
#   integrated_gradients |m| 1.00 0.138 0.829   guided_backprop 1.00 0.146 0.668   grad_cam 0.97 0.161 0.853
#   grad_cam_plus_plus 0.97 0.162 0.865   score_cam 1.00 0.160 0.878   occlusion 0.87 0.143 0.869
#   rise 1.00 0.146 0.910   lime 1.00 0.134 0.915   kernel_shap 1.00 0.136 0.915
# The CAMs' deletion gap is small (their 16 x 16 maps remove whole blocks, and the probability falls fast for any
# deletion), so their deletion margin is small; their insertion gap is the largest of all.
# How weak deletion is here (measured 2026-12-07): three of the 30 images (5, 19, 28) keep their score under random
# deletion (random AUC 0.90-0.95, a method's 0.05-0.3), and they make most of every method's deletion gap; on the
# first 16 (without 19 and 28) the CAMs and Score-CAM score above random, and a run on the first 20 (random maps
# drawn for 20) failed a deletion margin. Insertion and pointing are the strong checks; N stays 30.
BOUNDS = {  # name: (pointing at least, deletion below random by, insertion above random by)
    "saliency": (0.9, 0.015, 0.25), "gradient_x_input": (0.9, 0.015, 0.15), "smoothgrad": (0.9, 0.005, 0.15),
    "integrated_gradients": (0.9, 0.01, 0.3), "guided_backprop": (0.9, 0.01, 0.25), "grad_cam": (0.9, 0.002, 0.3),
    "grad_cam_plus_plus": (0.9, 0.002, 0.3), "score_cam": (0.9, 0.002, 0.3), "occlusion": (0.77, 0.01, 0.3),
    "rise": (0.9, 0.01, 0.3), "lime": (0.9, 0.015, 0.3), "kernel_shap": (0.9, 0.015, 0.3),
}


@pytest.fixture(scope="module")
def data():
    return demo.shapes(N, seed=SEED)


@pytest.fixture(scope="module")
def probe():
    return ModelProbe(demo.load_model())


def _ranked(name, m):
    return np.abs(m) if name in BY_MAGNITUDE else m


def _images(data, name):
    """The images (and their masks) a method is checked on: all N, or the first N_HEAVY for the heavy ones."""
    n = N_HEAVY if name in HEAVY else N
    return data.images[:n], data.masks[:n]


class _Maps(dict):
    """Each method's maps, made the first time a test asks for them: the whole table in one fixture took 200 s on
    the 2-core CI and, on a loaded machine, passed pytest-timeout's 600 s in setup, failing all 36 tests at once."""

    def __init__(self, probe, data):
        super().__init__()
        self.probe, self.data = probe, data

    def __missing__(self, name):
        images = _images(self.data, name)[0]
        self[name] = _ranked(name, attr.METHODS[name](self.probe, images, **FEWER.get(name, {})))
        return self[name]


@pytest.fixture(scope="module")
def maps(probe, data):
    return _Maps(probe, data)


def _dilate(masks, radius):
    out = masks.copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx <= radius * radius:
                out[:, max(dy, 0):masks.shape[1] + min(dy, 0), max(dx, 0):masks.shape[2] + min(dx, 0)] |= \
                    masks[:, max(-dy, 0):masks.shape[1] + min(-dy, 0), max(-dx, 0):masks.shape[2] + min(-dx, 0)]
    return out


def pointing(maps, masks, tolerance=0):
    """Fraction of images whose map maximum lies in the mask grown by ``tolerance`` px."""
    top = maps.reshape(len(maps), -1).argmax(1)
    return float(_dilate(masks, tolerance).reshape(len(maps), -1)[np.arange(len(maps)), top].mean())


def random_areas(probe, images):
    """Per-image deletion and insertion AUCs (N,), (N,) of 3 maps of uniform random numbers per image (seeded),
    averaged over the 3 maps."""
    rng = np.random.default_rng(0)
    randoms = [rng.random((len(images), 64, 64)) for _ in range(3)]
    return (np.mean([attr.deletion(probe, images, r) for r in randoms], axis=0),
            np.mean([attr.insertion(probe, images, r) for r in randoms], axis=0))


@pytest.fixture(scope="module")
def random(probe, data):
    """{n: (deletion, insertion)} of random maps on the first n images, for both image counts: the per-image areas
    are computed once, on all N images, and averaged over the first n (not computed again on the first n)."""
    deletion, insertion = random_areas(probe, data.images)
    return {n: (float(deletion[:n].mean()), float(insertion[:n].mean())) for n in (N, N_HEAVY)}


def test_bounds_cover_every_method():
    assert set(BOUNDS) == set(attr.METHODS)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(attr.METHODS))
def test_maps_point_at_the_shape(maps, data, name):
    assert pointing(maps[name], _images(data, name)[1], TOLERANCE) >= BOUNDS[name][0]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(attr.METHODS))
def test_deletion_area_is_lower_than_a_random_maps_by_the_methods_margin(probe, data, maps, random, name):
    images = _images(data, name)[0]
    reference = random[len(images)][0]
    got = attr.deletion(probe, images, maps[name], sign="both").mean()  # ranked by _ranked already
    assert got < reference - BOUNDS[name][1], f"{got:.3f} against random {reference:.3f}"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(attr.METHODS))
def test_insertion_area_is_higher_than_a_random_maps_by_the_methods_margin(probe, data, maps, random, name):
    images = _images(data, name)[0]
    reference = random[len(images)][1]
    got = attr.insertion(probe, images, maps[name], sign="both").mean()  # ranked by _ranked already
    assert got > reference + BOUNDS[name][2], f"{got:.3f} against random {reference:.3f}"


if __name__ == "__main__":
    d, p = demo.shapes(N, seed=SEED), ModelProbe(demo.load_model())
    rand = [float(a.mean()) for a in random_areas(p, d.images)]
    print(f"{'method':<22}{'pointing 0px':>13}{f'{TOLERANCE}px':>6}{'deletion':>10}{'insertion':>10}")
    for method, fn in attr.METHODS.items():
        m = _ranked(method, fn(p, d.images))
        dele = attr.deletion(p, d.images, m, sign="both").mean()
        ins = attr.insertion(p, d.images, m, sign="both").mean()
        print(f"{method:<22}{pointing(m, d.masks):>13.2f}{pointing(m, d.masks, TOLERANCE):>6.2f}"
              f"{dele:>10.3f}{ins:>10.3f}")
    print(f"{'random map':<22}{'':>19}{rand[0]:>10.3f}{rand[1]:>10.3f}")
