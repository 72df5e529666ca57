"""ActivationAtlas over the real Jupyter wire, on the demo model: the icons and thumbnails arrive as binary uint8
buffers equal to core's atlas, the cells as plain data whose counts sum to the sample, a grid sent as the browser
sends it re-bins and renders, a bad grid from the browser is refused and shown."""

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(400)]

BUILD = """
import numpy as np
import cnnwidget as cw
from cnnwidget import demo
data = demo.shapes(160, seed=7)
atlas = cw.ActivationAtlas(demo.load_model(), (data.images, data.labels), "block4_relu", grid=5, samples=120,
                           steps=8, render_batch=16, thumbnail=16, class_names=data.class_names)
atlas.wait(300)
atlas
"""


def idle(kernel, comm_id):
    if kernel.widget_state(comm_id).get("running") is not False:
        kernel.collect(timeout=240, until=lambda msgs: kernel.widget_state(comm_id).get("running") is False)


def test_icons_and_thumbnails_are_binary_and_equal_core_and_a_grid_from_the_browser_rebins(kns):
    kns.execute(BUILD, timeout=360)
    kernel, comm_id = kns.kernel, kns.model_id("atlas")
    state = kernel.widget_state(comm_id)
    assert state["error"] == "", state["error"]
    meta = state["cells"]
    assert meta["grid"] == 5 and sum(meta["count"]) == 120 == meta["samples"]
    assert meta["rendered"] == meta["renderable"]  # a cell whose vectors are all zero never gets an icon
    assert isinstance(state["icons"], (bytes, bytearray, memoryview))
    s = meta["icon"]
    assert s == 64 and len(state["icons"]) == meta["m"] * s * s * 3
    want = kns.eval("np.clip(np.rint(atlas.atlas.icons * 255), 0, 255).astype(np.uint8).tobytes()")
    assert bytes(state["icons"]) == want
    rows = kns.eval("sorted(set(int(r) for r in atlas.atlas.cells.example_samples.ravel() if r >= 0))")
    thumbs = kns.eval(f"atlas.atlas.thumbnails[{rows}].tobytes()")
    assert bytes(state["thumbs"]) == thumbs and meta["thumb"] == 16
    assert meta["class_source"] == "labels" and all(0 <= k < 10 for k in meta["label"])

    kernel.send_update(comm_id, {"grid": 3})
    idle(kernel, comm_id)
    state = kernel.widget_state(comm_id)
    assert state["grid"] == 3 and state["cells"]["grid"] == 3 and sum(state["cells"]["count"]) == 120
    assert state["cells"]["rendered"] == state["cells"]["renderable"] and state["error"] == ""

    kernel.send_update(comm_id, {"grid": 0})
    state = kernel.widget_state(comm_id)
    assert state["grid"] == 3 and "grid must be a whole number >= 2; got 0" in state["error"]
