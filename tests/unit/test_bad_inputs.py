"""Bad inputs, one row each: every public entry point that takes the input refuses it with a cnnwidget error (or
warns), naming what was given and what is allowed. The rows are the refusals of the reliability test of 2026-12-02
(shared/research/reliability-2026-12-02.md, "Bad inputs"), which crashed, computed nonsense or said too little.

A row: (entry point, bad value, expected error class, a phrase of the message). Entry points are small functions
of (demo model, demo images, value), so one table runs the same value through core and widgets alike.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import cnnwidget as cw
from cnnwidget import demo
from cnnwidget.core import CnnWidgetError, ImageError, LayerError, OptionError
from cnnwidget.core import attribution as attr
from cnnwidget.core import diagnostics, filters, similarity
from cnnwidget.core import featurevis as fv
from cnnwidget.core.errors import CnnWidgetWarning

NAN = float("nan")


@pytest.fixture(scope="module")
def model():
    return demo.load_model()


@pytest.fixture(scope="module")
def probe(model):
    return cw.ModelProbe(model)


@pytest.fixture(scope="module")
def images():
    return demo.shapes(2, seed=1).images


def _closing(widget):
    """Build a widget and close it at once: the row is about its constructor."""
    widget.close()
    return widget


def _set_on_grid(m, x, name_value):
    """Set one of an ActivationGrid's traits from Python, as a person would after building it."""
    grid = cw.ActivationGrid(m, x)
    try:
        setattr(grid, *name_value)
    finally:
        grid.close()


# -- entry points: f(model, images, value) ---------------------------------------------------------------------

IMAGE_TAKERS = {  # each passes `value` as the images
    "ModelProbe.activations": lambda m, x, v: cw.ModelProbe(m).activations(v, ["block1_conv"]),
    "ModelProbe.predict": lambda m, x, v: cw.ModelProbe(m).predict(v),
    "attr.saliency": lambda m, x, v: attr.saliency(m, v),
    "attr.grad_cam": lambda m, x, v: attr.grad_cam(m, v),
    "attr.occlusion": lambda m, x, v: attr.occlusion(m, v, patch=32, stride=32),
    "similarity.layer_similarity": lambda m, x, v: similarity.layer_similarity(m, None, v, layers=["block1_conv"]),
    "ActivationGrid": lambda m, x, v: _closing(cw.ActivationGrid(m, v)),
    "AttributionMap": lambda m, x, v: _closing(cw.AttributionMap(m, v, methods=["saliency"], curves=False)),
    "LayerSimilarity": lambda m, x, v: _closing(cw.LayerSimilarity(m, None, v, autostart=False)),
}

PROBE_OPTION_TAKERS = {  # each passes `value` as ModelProbe options (a dict)
    "ModelProbe": lambda m, x, v: cw.ModelProbe(m, **v),
    "ActivationGrid": lambda m, x, v: _closing(cw.ActivationGrid(m, x, **v)),
    "AttributionMap": lambda m, x, v: _closing(cw.AttributionMap(m, x, methods=["saliency"], curves=False, **v)),
}

LAYER_TAKERS = {  # each passes `value` as a layer (or layers)
    "ModelProbe.activations": lambda m, x, v: cw.ModelProbe(m).activations(x, v),
    "ModelProbe.activations (list)": lambda m, x, v: cw.ModelProbe(m).activations(x, [v]),
    "attr.grad_cam": lambda m, x, v: attr.grad_cam(m, x, layer=v),
    "similarity.layer_similarity": lambda m, x, v: similarity.layer_similarity(
        m, None, demo.shapes(12, seed=2).images, layers=v),
}

CKA_TAKERS = {  # each passes `value` as the images of a CKA pass
    "similarity.layer_similarity": lambda m, x, v: similarity.layer_similarity(m, None, v, layers=["block1_conv",
                                                                                                  "gap"]),
    "similarity.compare_models": lambda m, x, v: similarity.compare_models(m, demo.load_model(), v,
                                                                           layers=["block1_conv", "gap"]),
    "LayerSimilarity": lambda m, x, v: _closing(cw.LayerSimilarity(m, None, v, layers=["block1_conv"],
                                                                   autostart=False)),
}


def _rows(takers: dict, cases: list) -> list:
    """Every case through every entry point of ``takers``: pytest params named 'entry point: case'."""
    return [pytest.param(fn, value, error, phrase, id=f"{name}: {label}")
            for label, value, error, phrase in cases for name, fn in takers.items()]


# -- the table -------------------------------------------------------------------------------------------------

ROWS = [
    # images (rows 12, 56 of the reliability test)
    *_rows(IMAGE_TAKERS, [
        ("complex images", demo.shapes(2, seed=1).images.astype(np.complex64), ImageError, "complex"),
        ("None", None, ImageError, "no images were given"),
    ]),
    # ModelProbe's options, wherever they are given (rows 36-38)
    *_rows(PROBE_OPTION_TAKERS, [
        ("batch_size=0", {"batch_size": 0}, OptionError, "batch_size must be an integer >= 1; got 0"),
        ("batch_size=-1", {"batch_size": -1}, OptionError, "batch_size must be an integer >= 1; got -1"),
        ("input_range=(0, 0)", {"input_range": (0, 0)}, OptionError, "input_range must be two finite numbers lo < hi"),
        ("input_range=(1, 0)", {"input_range": (1, 0)}, OptionError, "input_range must be two finite numbers lo < hi"),
        ("input_range=(0, nan)", {"input_range": (0, NAN)}, OptionError, "got (0, nan)"),
        ("preprocess='x'", {"preprocess": "x"}, OptionError, "preprocess must be None or a function"),
        ("preprocess calling .numpy()", {"preprocess": lambda t: t.numpy()}, OptionError,
         "could not run inside a compiled pass"),
    ]),
    # layers given as an int (row 20)
    *_rows(LAYER_TAKERS, [
        ("layer 3", 3, LayerError, "layers are given by name or path (a str); got the int 3"),
    ]),
    # CKA on too few images (rows 56, 57)
    *_rows(CKA_TAKERS, [
        ("3 images", demo.shapes(3, seed=1).images, ImageError, "CKA needs at least 10 images; got 3"),
        ("4 images", demo.shapes(4, seed=1).images, ImageError, "CKA needs at least 10 images; got 4"),
    ]),
    pytest.param(lambda m, x, v: _closing(cw.LayerSimilarity(m, None, v)), None, ImageError, "no images were given",
                 id="LayerSimilarity: data=None"),
    pytest.param(lambda m, x, v: similarity.layer_similarity(m, None, demo.shapes(10, seed=1).images,
                                                             layers=["gap"], batch_size=v),
                 "a", OptionError, "batch_size must be an integer >= 4; got 'a'", id="layer_similarity: batch_size='a'"),
    pytest.param(lambda m, x, v: similarity.layer_similarity(m, None, demo.shapes(10, seed=1).images,
                                                             layers=["gap"], batch_size=v),
                 8, ImageError, "2 of them in a last batch of fewer than 4", id="layer_similarity: a last batch of 2"),
    # feature visualization (rows 23, 49, 50, 52)
    pytest.param(lambda m, x, v: fv.channels("block1_conv", v), 3.0, OptionError,
                 "channels must be an index or a list of indices", id="fv.channels: 3.0"),
    pytest.param(lambda m, x, v: fv.channels("block1_conv", v), [-1], OptionError,
                 "got -1 (negative indices are not counted", id="fv.channels: [-1]"),
    pytest.param(lambda m, x, v: fv.render(m, fv.channel("block1_conv", 0), size=v, steps=1), 100_000,
                 OptionError, "size=100000 is too large", id="fv.render: size=100000"),
    pytest.param(lambda m, x, v: fv.pixel_image(init=v), np.full((64, 64, 3), NAN, np.float32), ImageError,
                 "pixel_image(init=...) must be images", id="fv.pixel_image: NaN init"),
    pytest.param(lambda m, x, v: fv.pixel_image(init=v), "noise", ImageError, "got an array of dtype <U5",
                 id="fv.pixel_image: str init"),
    pytest.param(lambda m, x, v: fv.pixel_image(init=v), {"a": 1}, ImageError, "got an array of dtype object",
                 id="fv.pixel_image: dict init"),
    pytest.param(lambda m, x, v: fv.color_correlation(v), "abc", ImageError, "must be a numeric array",
                 id="fv.color_correlation: str"),
    pytest.param(lambda m, x, v: fv.random_scale(v), ["a"], OptionError,
                 "random_scale factors must be a non-empty list of positive numbers", id="fv.random_scale: ['a']"),
    # widget options given to the constructor or set from Python (rows 23, 40, 42)
    *[pytest.param(lambda m, x, v: _closing(cw.ActivationGrid(m, x, **v)), kw, OptionError, phrase,
                   id=f"ActivationGrid: {kw}")
      for kw, phrase in [({"max_tile": 0}, "max_tile must be a whole number >= 1; got 0"),
                         ({"thumbnail": 0}, "thumbnail must be a whole number >= 1; got 0"),
                         ({"thumbnail": -5}, "thumbnail must be a whole number >= 1; got -5"),
                         ({"page_size": "a"}, "page_size must be a whole number >= 1; got 'a'")]],
    *[pytest.param(_set_on_grid, (name, value), OptionError, phrase, id=f"ActivationGrid.{name} = {value!r}")
      for name, value, phrase in [("colormap", "jet", "colormap must be any of ['viridis', 'magma', 'gray', "
                                                      "'coolwarm']; got 'jet'"),
                                  ("normalization", "x", "normalization must be any of ['channel', 'layer']"),
                                  ("overlay_opacity", 5.0, "overlay_opacity must be a float between 0.0 and 1.0"),
                                  ("overlay_opacity", NAN, "overlay_opacity must be between 0 and 1; got nan"),
                                  ("selected_channel", -5, "(or -1 for none); got -5")]],
    pytest.param(lambda m, x, v: _closing(cw.FeatureVisualization(m, "block1_conv", 0, learning_rate=v)), "a",
                 OptionError, "learning_rate must be a positive number; got 'a'", id="FeatureVisualization: lr='a'"),
    pytest.param(lambda m, x, v: _closing(cw.FeatureVisualization(m, "block1_conv", 0, seed=v)), -1,
                 OptionError, "seed must be a whole number >= 0; got -1", id="FeatureVisualization: seed=-1"),
    pytest.param(lambda m, x, v: _closing(cw.FeatureVisualization(m, "block1_conv", 0, size=v)), 100_000,
                 OptionError, "size=100000 is too large", id="FeatureVisualization: size=100000"),
    pytest.param(lambda m, x, v: _closing(cw.FeatureVisualization(m, "block1_conv", v)), 3.0,
                 OptionError, "are indices (an int or a list of ints); got 3.0", id="FeatureVisualization: channels=3.0"),
    # filters and training (rows 54, 59, S7)
    pytest.param(lambda m, x, v: filters.weight_histogram(m, "block1_conv", bins=v), "a", OptionError,
                 "bins must be an integer >= 1; got 'a'", id="filters.weight_histogram: bins='a'"),
    pytest.param(lambda m, x, v: _closing(cw.FilterGrid(m, bins=v)), "a", OptionError,
                 "bins must be a whole number >= 1; got 'a'", id="FilterGrid: bins='a'"),
    pytest.param(lambda m, x, v: diagnostics.DiagnosticsCallback(every=v), "a", OptionError,
                 "every must be an integer >= 1; got 'a'", id="DiagnosticsCallback: every='a'"),
    pytest.param(lambda m, x, v: _closing(cw.TrainingMonitor(every=v)), "a", OptionError,
                 "every must be an integer >= 1; got 'a'", id="TrainingMonitor: every='a'"),
    pytest.param(lambda m, x, v: diagnostics.DiagnosticsCallback(bins=v), "a", OptionError,
                 "bins must be an integer >= 2; got 'a'", id="DiagnosticsCallback: bins='a'"),
]


@pytest.mark.parametrize("call, value, error, phrase", ROWS)
def test_bad_input_is_refused_with_what_was_expected(model, images, call, value, error, phrase):
    with pytest.raises(error) as caught:
        call(model, images, value)
    assert phrase in str(caught.value)


# -- warnings: accepted, but said -----------------------------------------------------------------------------

# One entry point in the quick set; every other one runs a whole method, so in the slow set.
@pytest.mark.parametrize("name", [pytest.param(name, marks=[pytest.mark.slow] if i else [])
                                  for i, name in enumerate(IMAGE_TAKERS)])
def test_float_images_far_outside_input_range_warn_with_the_range_seen(model, name):
    pixels = demo.shapes(12, seed=1).images * 255  # 0..255 floats, input_range [0, 1]
    with pytest.warns(CnnWidgetWarning, match=r"far outside input_range \[0, 1\]") as seen:
        IMAGE_TAKERS[name](model, pixels, pixels)
    assert "divide them by 255 or pass input_range=(0, 255)" in str(seen[0].message)


def test_images_slightly_outside_input_range_do_not_warn(probe):
    x = demo.shapes(2, seed=1).images * 1.2 - 0.1  # augmentation-like overshoot
    with warnings.catch_warnings():
        warnings.simplefilter("error", CnnWidgetWarning)
        probe.predict(x)


@pytest.mark.slow
def test_cka_on_few_images_warns_that_it_is_unstable(model):
    with pytest.warns(CnnWidgetWarning, match="CKA from 12 images is unstable"):
        similarity.layer_similarity(model, None, demo.shapes(12, seed=1).images, layers=["block1_conv", "gap"])


@pytest.mark.slow
def test_the_cka_widget_shows_the_instability_in_its_status(model):
    sim = cw.LayerSimilarity(model, None, demo.shapes(12, seed=1).images, layers=["block1_conv", "gap"])
    try:
        sim.job.wait()
        assert "done: 2 layers" in sim.status and "unstable" in sim.status
    finally:
        sim.close()


# -- a saved training history reads back from the same path ----------------------------------------------------

def test_history_saved_as_run_loads_from_run(tmp_path):
    cb = diagnostics.DiagnosticsCallback()
    written = cb.save(tmp_path / "run")
    assert written == str(tmp_path / "run.npz")
    history, warnings_ = diagnostics.load(tmp_path / "run")
    assert set(history) == set(cb.history) and warnings_ == []


def test_loading_an_npz_that_save_did_not_write_says_so(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(OptionError, match="is not a training history written by cnnwidget"):
        diagnostics.load(tmp_path / "other.npz")


def test_every_refusal_is_a_cnnwidget_error():
    assert all(issubclass(p.values[2], CnnWidgetError) for p in ROWS)
