"""RobustnessView over the real Jupyter wire, on the demo model: images arrive as binary buffers, an epsilon sent as
the browser sends it draws a new adversarial image, a bad epsilon from the browser is refused and shown while the
widget keeps working, and Cancel from the browser stops a long attack while the kernel answers."""

import time

import numpy as np
import pytest

BUILD = """
import cnnwidget as cw
from cnnwidget import demo
from cnnwidget.core import adversarial as ADV
data = demo.shapes(3, seed=1234)
held = demo.shapes(16, seed=1)
rv = cw.RobustnessView(demo.load_model(), data.images, data=(held.images, held.labels), class_names=data.class_names,
                       steps=5, curve_epsilons=[0.0, 4 / 255, 16 / 255])
rv.wait(180)
rv
"""


@pytest.fixture
def rv(kns):
    kns.execute(BUILD, timeout=300)
    return kns, kns.model_id("rv")


def running_is(value):
    def check(msgs):
        return any(m["content"]["data"].get("state", {}).get("running") is value
                   for m in msgs if m.get("msg_type") == "comm_msg" and m["content"].get("data"))
    return check


def test_images_arrive_as_binary_buffers_and_match_core(rv):
    kns, comm_id = rv
    state = kns.kernel.widget_state(comm_id)
    assert state["error"] == "" and state["shown"]["epsilon"] == pytest.approx(8 / 255)
    for name in ("clean_image", "adv_image", "perturbation_image"):
        assert isinstance(state[name], (bytes, bytearray, memoryview)) and len(state[name]) == 64 * 64 * 3, name
    assert len(state["cam_bytes"]) == 2 * 64 * 64 and len(state["cam_ranges"]) == 2 * 2 * 4
    adv = np.frombuffer(state["adv_image"], np.uint8).reshape(64, 64, 3).astype(np.int64)
    truth = np.array(kns.eval("ADV.pgd(rv.probe, data.images[:1], 8 / 255, steps=5).adversarial[0].tolist()"))
    assert np.abs(adv - np.rint(truth * 255)).max() <= 1
    assert state["curve"]["epsilons"] == pytest.approx([0.0, 4 / 255, 16 / 255]) and state["curve"]["n_images"] == 16
    assert [p["label"] for p in state["predictions"]["clean"]][0] in kns.eval("list(data.class_names)")


def test_an_epsilon_from_the_browser_draws_a_new_adversarial_image(rv):
    kns, comm_id = rv
    kernel = kns.kernel
    before = kernel.widget_state(comm_id)["adv_image"]
    msgs = kernel.send_update(comm_id, {"epsilon": 2 / 255})
    if not running_is(False)(msgs):
        kernel.collect(timeout=60, until=running_is(False))
    state = kernel.widget_state(comm_id)
    assert state["shown"]["epsilon"] == pytest.approx(2 / 255) and state["adv_image"] != before
    assert state["error"] == "" and kns.eval("rv.epsilon") == pytest.approx(2 / 255)


def test_a_bad_epsilon_from_the_browser_is_shown_and_the_widget_keeps_working(rv):
    kns, comm_id = rv
    kernel = kns.kernel
    kernel.send_update(comm_id, {"epsilon": -0.1})
    state = kernel.widget_state(comm_id)
    assert "epsilon must be a number >= 0, or a fraction such as 8/255; got -0.1" in state["error"]
    assert state["epsilon"] == pytest.approx(8 / 255) and kns.eval("rv.epsilon") == pytest.approx(8 / 255)
    kernel.send_update(comm_id, {"epsilon": "a lot"})
    assert "epsilon must be a number >= 0, or a fraction such as 8/255; got 'a lot'" in \
        kernel.widget_state(comm_id)["error"]
    kernel.send_update(comm_id, {"epsilon": 5})  # past the input range's span: no image can be perturbed that far
    assert "epsilon 5 is too large for the L-inf norm: it must be <= 1" in kernel.widget_state(comm_id)["error"]
    msgs = kernel.send_update(comm_id, {"epsilon": 4 / 255})
    if not running_is(False)(msgs):
        kernel.collect(timeout=60, until=running_is(False))
    state = kernel.widget_state(comm_id)
    assert state["error"] == "" and state["shown"]["epsilon"] == pytest.approx(4 / 255)


def test_the_kernel_answers_during_a_long_attack_and_cancel_from_the_browser_stops_it(rv):
    kns, comm_id = rv
    kernel = kns.kernel
    before = kernel.widget_state(comm_id)["shown"]
    kernel.send_update(comm_id, {"steps": 100000})
    t0 = time.monotonic()
    res = kns.execute("print(rv.job.running, rv.progress.get('what'), rv.progress.get('total'))", timeout=60)
    print(f"the kernel answered in {time.monotonic() - t0:.2f} s during the attack")
    assert res.stdout.split() == ["True", "attack", "100000"]
    msgs = kernel.send_comm_msg(comm_id, {"method": "custom", "content": {"action": "cancel"}})
    if not running_is(False)(msgs):
        kernel.collect(timeout=60, until=running_is(False))
    state = kernel.widget_state(comm_id)
    assert state["status"].startswith("cancelled") and state["shown"] == before
