import numpy as np
import pytest

from cnnwidget.demo import CLASS_NAMES, MODEL_PATH, ShapesData, load_model, shapes

# Training used seeds 0 and 1 (cnnwidget/demo/train.py); this one the model has never seen.
FRESH_SEED = 1234


@pytest.fixture(scope="module")
def data():
    return shapes(200, seed=7)


@pytest.fixture(scope="module")
def model():
    return load_model()


def test_arrays_have_documented_shapes_dtypes_and_ranges(data):
    assert isinstance(data, ShapesData)
    assert data.images.shape == (200, 64, 64, 3) and data.images.dtype == np.float32
    assert data.images.min() >= 0 and data.images.max() <= 1
    assert data.labels.shape == (200,) and data.labels.dtype == np.int64
    assert data.labels.min() >= 0 and data.labels.max() < len(CLASS_NAMES)
    assert data.masks.shape == (200, 64, 64) and data.masks.dtype == bool
    assert data.class_names == CLASS_NAMES


def test_there_are_at_least_eight_distinct_classes():
    assert len(set(CLASS_NAMES)) == len(CLASS_NAMES) >= 8


def test_size_sets_the_image_side():
    data = shapes(3, size=32)
    assert data.images.shape == (3, 32, 32, 3) and data.masks.shape == (3, 32, 32)


def test_every_mask_holds_one_visible_shape(data):
    assert len(data.masks) == len(data.labels)
    area = data.masks.sum(axis=(1, 2))
    assert area.min() >= 30 and area.max() < 0.5 * 64 * 64


def test_mask_pixels_share_one_colour_up_to_pixel_noise(data):
    for image, mask in zip(data.images, data.masks):
        inside = image[mask]
        assert np.all(inside.max(axis=0) - inside.min(axis=0) <= 0.1 + 1e-6)


def test_shape_pixels_contrast_with_background(data):
    # Shapes and backgrounds come from opposite brightness halves; pixel noise blurs the means only slightly.
    brightness = data.images.mean(axis=-1)
    for image, mask in zip(brightness, data.masks):
        assert abs(image[mask].mean() - image[~mask].mean()) > 0.15


def test_same_seed_gives_identical_arrays():
    a, b = shapes(50, seed=3), shapes(50, seed=3)
    for name in ("images", "labels", "masks"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_different_seeds_give_different_images():
    a, b = shapes(50, seed=3), shapes(50, seed=4)
    assert not np.array_equal(a.images, b.images)
    assert not np.array_equal(a.masks, b.masks)


@pytest.mark.slow
def test_all_classes_appear_in_1000_images():
    counts = np.bincount(shapes(1000, seed=11).labels, minlength=len(CLASS_NAMES))
    assert counts.min() > 0


def test_model_file_is_shipped_and_small():
    assert MODEL_PATH.is_file() and MODEL_PATH.stat().st_size < 5e6


def test_model_takes_64x64_rgb_and_predicts_every_class(model):
    assert tuple(model.input_shape) == (None, 64, 64, 3)
    assert tuple(model.output_shape) == (None, len(CLASS_NAMES))


@pytest.mark.slow
def test_model_reaches_95_percent_on_fresh_images(model):
    held_out = shapes(1000, seed=FRESH_SEED)
    _, accuracy = model.evaluate(held_out.images, held_out.labels, batch_size=250, verbose=0)
    assert accuracy >= 0.95
