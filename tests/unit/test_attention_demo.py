"""The demo hybrid model (cnnwidget.demo.load_hybrid_model): shipped small, loads offline in safe mode, accurate on
images it never saw, and its attention rollout points at the shape and is more faithful than a random map.

    .venv/bin/python tests/unit/test_attention_demo.py     # prints the figures
"""

import numpy as np
import pytest

from cnnwidget import demo
from cnnwidget.core import ModelProbe
from cnnwidget.core import attention as att
from cnnwidget.core import attribution as attr

FRESH_SEED = 4321  # training used seeds 0, 1, 100-109 and 200-209 (cnnwidget/demo/train_hybrid.py)
PATCH = 8  # pixels per token side: 64 px / 8x8 tokens


@pytest.fixture(scope="module")
def model():
    return demo.load_hybrid_model()


def test_file_is_shipped_small_and_loads_in_safe_mode(model):
    assert demo.HYBRID_PATH.is_file() and demo.HYBRID_PATH.stat().st_size < 5e6
    assert tuple(model.input_shape) == (None, 64, 64, 3) and tuple(model.output_shape) == (None, 10)
    sites = ModelProbe(model).attention_layers
    assert [(s.path, s.kind, s.shape) for s in sites] == [
        ("block1_attention", "mha", (4, 64, 64)), ("block2_attention", "mha", (4, 64, 64))]


def pointing(maps: np.ndarray, masks: np.ndarray, tolerance: float = PATCH) -> np.ndarray:
    """Per image: whether the map's maximum lies within ``tolerance`` pixels of the shape (a hit inside counts)."""
    hits = []
    ys, xs = np.mgrid[:masks.shape[1], :masks.shape[2]]
    for m, mask in zip(maps, masks):
        y, x = np.unravel_index(np.argmax(m), m.shape)
        d = np.sqrt((ys[mask] + 0.5 - (y + 0.5)) ** 2 + (xs[mask] + 0.5 - (x + 0.5)) ** 2).min()
        hits.append(d <= tolerance)
    return np.array(hits)


def figures(model, n=100):
    data = demo.shapes(n, seed=FRESH_SEED)
    probe = ModelProbe(model)
    accuracy = float((probe.predict(data.images).argmax(-1) == data.labels).mean())
    rollout = att.attention_rollout(probe, data.images)
    hits = pointing(rollout, data.masks)
    inside = pointing(rollout, data.masks, tolerance=0.5)  # the maximum on a shape pixel itself
    noise = np.random.default_rng(0).uniform(size=rollout.shape).astype(np.float32)
    deletion = attr.deletion(probe, data.images, rollout)
    # The random reference: deletion in the random pixel order of the noise maps, one order per image over 100
    # images (measured 0.173; random_reference's 4 orders per image, which also made 4 insertion curves nobody
    # read, 0.178 in 14x the time; with 1 order, seeds 1 and 2: 0.182, 0.176; the rollout's 0.147).
    reference = attr.deletion(probe, data.images, noise)
    return {"accuracy": accuracy, "pointing": float(hits.mean()), "pointing_inside": float(inside.mean()),
            "pointing_random_map": float(pointing(noise, data.masks).mean()), "deletion": float(deletion.mean()),
            "random_deletion": float(reference.mean())}


@pytest.mark.slow
def test_reaches_95_percent_on_fresh_images(model):
    data = demo.shapes(1000, seed=FRESH_SEED + 1)
    _, accuracy = model.evaluate(data.images, data.labels, batch_size=250, verbose=0)
    assert accuracy >= 0.95


@pytest.mark.slow
def test_rollout_points_at_the_shape_and_beats_a_random_map(model):
    got = figures(model)
    assert got["pointing"] >= 0.8, got
    assert got["deletion"] < got["random_deletion"], got


if __name__ == "__main__":
    m = demo.load_hybrid_model()
    print(figures(m))
