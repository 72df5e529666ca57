"""Float images far outside ``input_range`` (0..255 floats with the default [0, 1]) are accepted with a visible
warning in the widget (the base's ``warning`` trait, shown by the view), not only a Python warning; images in range
clear it."""

import warnings

import numpy as np
import pytest

import cnnwidget as cw
from cnnwidget import demo
from cnnwidget.core.errors import CnnWidgetWarning


@pytest.fixture(scope="module")
def probe():
    return cw.ModelProbe(demo.load_model())


@pytest.fixture(scope="module")
def images():
    return demo.shapes(2, seed=3).images


@pytest.mark.parametrize("make", [
    lambda p, x: cw.AttributionMap(p, x, ("saliency",), curves=False),
    lambda p, x: cw.ActivationGrid(p, x),
    pytest.param(lambda p, x: cw.RobustnessView(p, x, steps=2), marks=pytest.mark.slow),
    pytest.param(lambda p, x: cw.UncertaintyView(p, x, samples=4), marks=pytest.mark.slow),
], ids=["AttributionMap", "ActivationGrid", "RobustnessView", "UncertaintyView"])
def test_images_far_outside_the_range_show_a_warning_in_the_widget(probe, images, make):
    with pytest.warns(CnnWidgetWarning, match="far outside input_range"):
        w = make(probe, images * 255.0)
    try:
        assert "far outside input_range [0, 1]" in w.warning and "divide them by 255" in w.warning
        assert w.trait_metadata("warning", "sync") and w.trait_metadata("warning", "owner") == "python"
        assert w.wait(60)
    finally:
        w.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CnnWidgetWarning)
        w = make(probe, images)
    try:
        assert w.warning == ""
        assert w.wait(60)
    finally:
        w.close()


def test_new_images_in_range_clear_the_grid_warning(probe, images):
    with pytest.warns(CnnWidgetWarning):
        grid = cw.ActivationGrid(probe, images * 255.0)
    try:
        assert grid.wait(60) and grid.warning
        grid.images = images
        assert grid.warning == ""
        with pytest.warns(CnnWidgetWarning):
            grid.images = images - 3.0  # normalized-looking values: the other hint
        assert "preprocess=" in grid.warning
        assert grid.wait(60)
    finally:
        grid.close()
