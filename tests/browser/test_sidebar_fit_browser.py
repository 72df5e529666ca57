"""Every view fits JupyterLab's narrow right sidebar, whatever the length of the model's layer and class names.

ActivationGrid has its own test (test_activation_grid_browser.py); here FeatureVisualization and AttributionMap,
on a demo model whose layer and class names are long, as a user's often are ("block_16_depthwise_relu ...").
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(300)

BUILD = """
import keras
import cnnwidget as cw
from cnnwidget import demo
base = demo.load_model()
x = inputs = keras.Input((64, 64, 3))
for layer in base.layers[1:]:
    x = layer.__class__.from_config({**layer.get_config(), "name": "a_rather_long_layer_name_" + layer.name})(x)
model = keras.Model(inputs, x)
model.set_weights(base.get_weights())
names = ["a very long class name number %d, as data sets have" % i for i in range(10)]
images = demo.shapes(2, seed=3).images
probe = cw.ModelProbe(model, class_names=names)
fv = cw.FeatureVisualization(probe, layer="a_rather_long_layer_name_block3_relu", steps=4)
am = cw.AttributionMap(probe, images, methods=["saliency"], curves=False)
cw.show_in_sidebar(fv, title="fv")
cw.show_in_sidebar(am, title="am")
"""

SIZES = """() => [...document.querySelectorAll('#jp-right-stack .jupyterlab-sidecar')].map((area) => {
  const view = area.querySelector('.cnnw-fv, .cnnw-am');
  return view && {view: view.className, width: view.scrollWidth, area: area.clientWidth};
}).filter(Boolean)"""


def test_feature_visualization_and_attribution_map_fit_the_sidebar(lab):
    page = lab.open_notebook([BUILD])
    lab.run_all(page, timeout=240)
    page.wait_for_function("() => document.querySelectorAll('#jp-right-stack .cnnw-fv, #jp-right-stack .cnnw-am')"
                           ".length === 2", timeout=60_000)
    page.wait_for_timeout(500)  # a ResizeObserver relayout, if any
    sizes = page.evaluate(SIZES)
    assert len(sizes) == 2, sizes
    for s in sizes:
        assert s["width"] <= s["area"], f"{s['view']} is wider than the sidebar: {s}"
