"""AttentionMap over the real Jupyter wire, on the demo hybrid model: head maps and rollout arrive as binary buffers,
a query click and a head-fusion switch sent as the browser sends them come back with new maps, a bad value from
the page is refused, and a model without attention gets its message."""

import numpy as np
import pytest

from harness.kernel import comm_msgs

BUILD = """
import cnnwidget as cw
from cnnwidget import demo
from cnnwidget.core import attention as ATT
data = demo.shapes(3, seed=1234)
amap = cw.AttentionMap(demo.load_hybrid_model(), data.images)
amap.wait(120)
amap
"""


@pytest.fixture
def amap(kns):
    kns.execute(BUILD, timeout=240)
    return kns, kns.model_id("amap")


def updates_with(msgs, comm_id, buffer):
    return [m for m in comm_msgs(msgs, comm_id, "update") if [buffer] in m["content"]["data"].get("buffer_paths", [])]


def test_heads_and_rollout_arrive_as_uint8_buffers(amap):
    kns, comm_id = amap
    state = kns.kernel.widget_state(comm_id)
    assert [s["path"] for s in state["sites"]] == ["block1_attention", "block2_attention"]
    meta = state["heads_meta"]
    assert (meta["k"], meta["h"], meta["w"]) == (4, 8, 8)
    assert len(state["head_bytes"]) == 4 * 8 * 8 and len(state["head_ranges"]) == 4 * 2 * 4
    assert len(state["rollout_bytes"]) == 64 * 64 and state["rollout_meta"]["head_fusion"] == "mean"
    q = np.frombuffer(state["head_bytes"], np.uint8).reshape(4, 64)
    lo, hi = np.frombuffer(state["head_ranges"], "<f4").reshape(4, 2)[2]
    truth = np.array(kns.eval(f"ATT.attention_maps(amap.probe, data.images[:1])['block1_attention'][0, 2, "
                              f"{meta['query']}].tolist()"))
    assert np.abs(lo + (hi - lo) * q[2] / 255.0 - truth).max() <= (hi - lo) / 510 * (1 + 1e-4)


def test_a_click_on_a_patch_sends_new_head_maps(amap):
    kns, comm_id = amap
    before = kns.kernel.widget_state(comm_id)["head_bytes"]
    msgs = kns.kernel.send_update(comm_id, {"query": 9})
    updates = updates_with(msgs, comm_id, "head_bytes")
    assert updates, "no new head maps came back with the query change"
    assert updates[-1]["content"]["data"]["state"]["heads_meta"]["query"] == 9
    assert kns.kernel.widget_state(comm_id)["head_bytes"] != before
    assert kns.eval("amap.query") == 9


def test_a_head_fusion_switch_from_the_page_recomputes_the_rollout(amap):
    kns, comm_id = amap
    msgs = kns.kernel.send_update(comm_id, {"head_fusion": "max"})
    if not updates_with(msgs, comm_id, "rollout_bytes"):
        msgs += kns.kernel.collect(timeout=60, until=lambda m: bool(updates_with(m, comm_id, "rollout_bytes")))
    state = kns.kernel.widget_state(comm_id)
    assert state["rollout_meta"]["head_fusion"] == "max"
    got = np.frombuffer(state["rollout_bytes"], np.uint8).reshape(64, 64)
    lo, hi = np.frombuffer(state["rollout_ranges"], "<f4")
    truth = np.array(kns.eval("ATT.attention_rollout(amap.probe, data.images[:1], head_fusion='max')[0].tolist()"))
    assert np.abs(lo + (hi - lo) * got / 255.0 - truth).max() <= (hi - lo) / 510 * (1 + 1e-4)


def test_a_bad_value_from_the_page_is_refused(amap):
    kns, comm_id = amap
    kns.kernel.send_update(comm_id, {"head": 7})
    assert kns.eval("amap.head") == -1
    assert "head must be -1" in kns.eval("amap.error")


def test_a_model_without_attention_says_so(kns):
    kns.execute("import cnnwidget as cw\nfrom cnnwidget import demo\n"
                "plain = cw.AttentionMap(demo.load_model(), demo.shapes(2, seed=5).images)\nplain", timeout=240)
    state = kns.kernel.widget_state(kns.model_id("plain"))
    assert "no attention site" in state["message"] and state["sites"] == []
