"""DatasetExamples and its ChannelCard over the real Jupyter wire, on the demo model: the page's top patches arrive
as one binary buffer equal to core's patches, a click (a channel sent as the browser sends it) opens a card whose
patches are binary too and equal core's, a bad page from the browser is refused and shown while the widget keeps
working, and Cancel from the browser stops a pass over a slow data set and keeps a partial top-k, flagged."""

import numpy as np
import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(400)]

BUILD = """
import time
import cnnwidget as cw
from cnnwidget import demo
from cnnwidget.core import dataset
from cnnwidget.widgets.channel_card import rgba
data = demo.shapes(96, seed=5)
model = demo.load_model()
de = cw.DatasetExamples(model, data.images, "block2_relu", page_size=8, labels=data.labels,
                        class_names=data.class_names, k=4, card_options={"fv_steps": 8})
de.wait(240)
de
"""


def idle(kernel, comm_id):
    kernel.collect(timeout=120, until=lambda msgs: kernel.widget_state(comm_id).get("running") is False)


def test_tiles_and_the_card_a_click_opens_are_binary_and_equal_core(kns):
    kns.execute(BUILD, timeout=300)
    kernel, comm_id = kns.kernel, kns.model_id("de")
    state = kernel.widget_state(comm_id)
    assert state["error"] == "" and state["status"].startswith("pass over 96 images")
    meta = state["tiles_meta"]
    assert isinstance(state["tiles"], (bytes, bytearray, memoryview))
    assert len(state["tiles"]) == 8 * meta["h"] * meta["w"] * 4 and meta["channels"] == list(range(8))
    want = kns.eval("rgba(de.examples.patches[:8, 0], (0.0, 1.0)).tobytes()")
    assert bytes(state["tiles"]) == want

    kernel.send_update(comm_id, {"channel": 11})  # a click on channel 11's tile
    card_id = kns.model_id("de.card")
    idle(kernel, card_id)
    card = kernel.widget_state(card_id)
    assert (card["layer"], card["channel"], card["error"]) == ("block2_relu", 11, "")
    assert kernel.widget_state(comm_id)["page"] == 1
    assert isinstance(card["patches"], (bytes, bytearray, memoryview))
    truth = kns.eval("dataset.channel_examples(model, (data.images, data.labels), 'block2_relu', k=4)"
                     "['block2_relu'].indices[11].tolist()")
    assert card["patches_meta"]["indices"] == truth
    assert bytes(card["patches"]) == kns.eval("rgba(de.examples.patches[11, :4], (0.0, 1.0)).tobytes()")
    assert card["fv_meta"]["final"] and len(card["fv_pixels"]) == 64 * 64 * 3
    assert [s["name"] for s in card["class_support"]] == kns.eval("list(data.class_names)")

    kernel.send_update(comm_id, {"page": 9})  # refused, shown; the widget keeps working
    state = kernel.widget_state(comm_id)
    assert "page 9 is out of range" in state["error"] and state["page"] == 1
    kernel.send_update(card_id, {"k": 100})
    assert "k must be a whole number between 1 and 64; got 100" in kernel.widget_state(card_id)["error"]
    kernel.send_update(comm_id, {"page": 2})
    state = kernel.widget_state(comm_id)
    assert state["error"] == "" and state["tiles_meta"]["channels"] == list(range(16, 24))


SLOW = """
import threading, time
import cnnwidget as cw
from cnnwidget import demo
imgs = demo.shapes(64, seed=2).images
first = threading.Event()
def batches():
    for i in range(0, 64, 8):
        if i:
            first.set()
            time.sleep(0.5)
        yield imgs[i:i + 8]
slow = cw.ChannelCard(demo.load_model(), batches, "block3_relu", 4, k=4, feature_vis=False)
slow
"""


def test_cancel_from_the_browser_keeps_a_partial_top_k(kns):
    kns.execute(SLOW, timeout=300)
    kernel, comm_id = kns.kernel, kns.model_id("slow")
    # cancel once the card shows a first batch: a cancel keeps the batches merged before it (0bad34a: the batch whose
    # step is still running on the pass's helper thread is left out, so a cancel during the first one keeps none)
    kns.execute("assert first.wait(120)\nstart = time.monotonic()\n"
                "while slow.images == 0 and time.monotonic() - start < 120:\n    time.sleep(0.05)", timeout=150)
    kernel.send_comm_msg(comm_id, {"method": "custom", "content": {"action": "cancel"}})
    idle(kernel, comm_id)
    state = kernel.widget_state(comm_id)
    assert state["partial"] is True and 0 < state["images"] < 64
    assert state["status"].startswith("cancelled: partial top-4")
    n = state["patches_meta"]["n"]
    assert n >= 1 and len(state["patches"]) == n * state["patches_meta"]["h"] * state["patches_meta"]["w"] * 4
    assert np.all(np.array(state["patches_meta"]["indices"]) < state["images"])
