"""UncertaintyView over the real Jupyter wire, on the demo model: maps and images arrive as binary buffers equal to
core's results, an image and a sample count sent as the browser sends them recompute, a bad value from the browser
is refused and shown while the widget keeps working, and Cancel from the browser stops a long run while the kernel
answers."""

import time

import numpy as np
import pytest

BUILD = """
import cnnwidget as cw
from cnnwidget import demo
from cnnwidget.core import uncertainty as UNC
data = demo.shapes(3, seed=1234)
held = demo.shapes(120, seed=7)
uv = cw.UncertaintyView(demo.load_model(), data.images, data=(held.images, held.labels),
                        class_names=data.class_names, samples=10)
uv.wait(240)
uv
"""


@pytest.fixture
def uv(kns):
    kns.execute(BUILD, timeout=300)
    return kns, kns.model_id("uv")


def running_is(value):
    def check(msgs):
        return any(m["content"]["data"].get("state", {}).get("running") is value
                   for m in msgs if m.get("msg_type") == "comm_msg" and m["content"].get("data"))
    return check


def settle(kernel, msgs):
    if not running_is(False)(msgs):
        kernel.collect(timeout=120, until=running_is(False))


def test_buffers_and_numbers_match_core(uv):
    kns, comm_id = uv
    state = kns.kernel.widget_state(comm_id)
    assert state["error"] == "" and state["status"].startswith("done")
    assert isinstance(state["image"], (bytes, bytearray, memoryview)) and len(state["image"]) == 64 * 64 * 3
    assert len(state["maps"]) == 2 * 64 * 64 and len(state["map_ranges"]) == 2 * 2 * 4
    q = np.frombuffer(state["maps"], np.uint8).reshape(2, 64, 64)
    lohi = np.frombuffer(state["map_ranges"], "<f4").reshape(2, 2).astype(np.float64)
    truth = np.array(kns.eval("UNC.explanation_spread(uv.probe, data.images[:1], samples=10, seed=0)"
                              ".std[0].tolist()"))
    lo, hi = lohi[1]
    assert np.abs(lo + (hi - lo) * q[1] / 255.0 - truth).max() <= (hi - lo) / 510 * (1 + 1e-4) + 1e-7
    mi = kns.eval("float(UNC.mc_dropout(uv.probe, data.images, samples=10).mutual_information[0])")
    assert state["summary"]["mutual_information"] == pytest.approx(mi, rel=1e-5, abs=1e-9)
    assert state["summary"]["label"] in kns.eval("list(data.class_names)")
    c = state["calibration"]
    assert c["overall"]["n"] == 120 and c["temperature"] > 0 and len(state["uncertain_meta"]) == 8
    assert len(state["uncertain"]) == 8 * 64 * 64 * 3


def test_an_image_and_a_sample_count_from_the_browser_recompute(uv):
    kns, comm_id = uv
    kernel = kns.kernel
    settle(kernel, kernel.send_update(comm_id, {"image_index": 2}))
    state = kernel.widget_state(comm_id)
    assert state["summary"]["image_index"] == 2 and state["maps_meta"]["image_index"] == 2
    settle(kernel, kernel.send_update(comm_id, {"samples": 7}))
    state = kernel.widget_state(comm_id)
    assert state["summary"]["samples"] == 7 and state["error"] == "" and kns.eval("uv.result.samples") == 7


def test_a_bad_value_from_the_browser_is_shown_and_the_widget_keeps_working(uv):
    kns, comm_id = uv
    kernel = kns.kernel
    for update, words in [({"samples": 0}, "samples must be an integer >= 1; got 0"),
                          ({"samples": 2.5}, "samples must be an int"),
                          ({"seed": -1}, "seed must be an integer >= 0"),
                          ({"image_index": 3}, "image_index 3 is out of range"),
                          ({"spread_method": "lime"}, "spread_method must be one of"),
                          ({"summary": {}}, "set by the widget")]:
        kernel.send_update(comm_id, update)
        state = kernel.widget_state(comm_id)
        assert words in state["error"], (update, state["error"])
        assert state["samples"] == 10 and kns.eval("uv.samples") == 10
    settle(kernel, kernel.send_update(comm_id, {"seed": 3}))
    state = kernel.widget_state(comm_id)
    assert state["error"] == "" and state["summary"]["seed"] == 3


def test_the_kernel_answers_during_a_long_run_and_cancel_from_the_browser_stops_it(uv):
    kns, comm_id = uv
    kernel = kns.kernel
    kernel.send_update(comm_id, {"samples": 1000, "image_index": 1})
    t0 = time.monotonic()
    res = kns.execute("print(uv.job.running)", timeout=60)
    print(f"the kernel answered in {time.monotonic() - t0:.2f} s during the run")
    msgs = kernel.send_comm_msg(comm_id, {"method": "custom", "content": {"action": "cancel"}})
    settle(kernel, msgs)
    state = kernel.widget_state(comm_id)
    assert res.stdout.split() in (["True"], ["False"])
    assert state["status"].startswith("cancelled") or kns.eval("uv.result.samples") == 1000
    settle(kernel, kernel.send_update(comm_id, {"samples": 5}))
    assert kernel.widget_state(comm_id)["summary"]["samples"] == 5
