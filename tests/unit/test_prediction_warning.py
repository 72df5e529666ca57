"""uncertainty.prediction_warning: a model whose predictions on the images given say nothing (uniform, or the same
whatever the image) is said so in words; a trained model's predictions, confident or not, are not flagged."""

import numpy as np

from cnnwidget.core import uncertainty

NAMES = ["circle", "square", "triangle", "star"]


def test_uniform_predictions_name_the_class_and_ask_whether_the_model_is_trained():
    p = np.full((5, 4), 0.25) + np.array([0.004, -0.001, -0.002, -0.001])  # top 'circle' everywhere, near 1/4
    note = uncertainty.prediction_warning(p, NAMES)
    assert note.startswith("all 5 images are predicted 'circle' with a probability of about 1/4 (25.4% at most")
    assert note.endswith("Is the model trained?")
    one = uncertainty.prediction_warning(np.full((1, 1000), 1e-3), [f"c{i}" for i in range(1000)])
    assert one.startswith("the image is predicted 'c0' with a probability of about 1/1000")
    mixed = uncertainty.prediction_warning(np.array([[0.26, 0.25, 0.25, 0.24], [0.24, 0.26, 0.25, 0.25]]), NAMES)
    assert mixed.startswith("all 2 images are predicted with a probability of about 1/4")


def test_the_same_unsaturated_prediction_for_different_images_is_flagged_and_copies_of_one_image_are_not():
    p = np.tile([0.6, 0.2, 0.1, 0.1], (4, 1)) + np.linspace(0, 0.001, 4)[:, None] * [1, -1, 0, 0]
    images = np.random.default_rng(0).random((4, 8, 8, 3))
    assert "does not depend on the image" in uncertainty.prediction_warning(p, NAMES, images)
    assert "'circle'" in uncertainty.prediction_warning(p, NAMES, images)
    assert uncertainty.prediction_warning(p, NAMES, np.repeat(images[:1], 4, 0)) == ""  # one image, four times
    assert uncertainty.prediction_warning(p[:2], NAMES, images[:2]) == ""  # too few images to say


def test_trained_predictions_and_confident_ones_of_one_class_are_not_flagged():
    confident = np.tile([0.99999, 0.00001, 0.0, 0.0], (6, 1))  # saturated: cannot tell it from an ignored image
    varied = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.8, 0.05, 0.05], [0.3, 0.3, 0.3, 0.1]])
    same_class = np.array([[0.5, 0.3, 0.1, 0.1], [0.6, 0.2, 0.1, 0.1], [0.55, 0.25, 0.1, 0.1]])
    for p in (confident, varied, same_class):
        assert uncertainty.prediction_warning(p, NAMES) == ""


def test_nan_probabilities_are_flagged():
    p = np.array([[0.5, 0.5, 0.0, 0.0], [np.nan] * 4])
    assert uncertainty.prediction_warning(p, NAMES).startswith("the model's probabilities are NaN or infinite for 1 "
                                                                "of the 2 images")
