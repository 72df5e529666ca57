"""TrainingMonitor over the real Jupyter wire: its curves and heatmap are updated while ``fit`` runs in the cell."""

from datetime import datetime

import pytest

from harness.kernel import comm_msgs

BUILD = """
import keras
import cnnwidget as cw
from cnnwidget.demo import shapes
keras.utils.set_random_seed(0)
d = shapes(640, seed=2, size=32)
model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, activation="relu", name="conv1"),
                          keras.layers.MaxPooling2D(2), keras.layers.Conv2D(16, 3, activation="relu", name="conv2"),
                          keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
mon = cw.TrainingMonitor((d.images[:32], d.labels[:32]), every=4)
mon
"""
FIT = ("model.fit(d.images, d.labels, validation_split=0.25, epochs={epochs}, batch_size=16, "
       "callbacks=[mon.callback], verbose=0); None")


@pytest.fixture
def mon(kns):
    kns.execute(BUILD, timeout=180)
    kns.execute(FIT.format(epochs=1), timeout=180)  # traces fit and the probe pass, so the timed fit is steady
    return kns, kns.model_id("mon._smooth"), kns.model_id("mon._grad")


def state_updates(msgs, comm_id, name):
    """(time, state) of each update of ``comm_id`` that sets trait ``name``."""
    out = []
    for m in comm_msgs(msgs, comm_id, "update"):
        state = m["content"]["data"].get("state", {})
        if name in state:
            out.append((datetime.fromisoformat(str(m["header"]["date"])), state))
    return out


def test_curves_and_heatmap_update_during_fit_at_a_throttled_rate(mon):
    kns, smooth_id, grad_id = mon
    res = kns.execute(FIT.format(epochs=6), timeout=300)
    assert res.reply["status"] == "ok"
    curve = state_updates(res.messages, smooth_id, "y")
    heat = state_updates(res.messages, grad_id, "color")
    # every update is a child of the fit's execute request: sent while the cell ran, not after it
    assert all(m["parent_header"].get("msg_id") == res.msg_id for m in comm_msgs(res.messages, smooth_id, "update"))
    lengths = [s["y"]["shape"][0] for _, s in curve]
    assert len(curve) >= 4, f"only {len(curve)} curve updates during the fit"
    assert lengths == sorted(lengths) and lengths[-1] == 6 * 30, lengths  # 30 batches an epoch, all shown at the end
    assert len(heat) >= 3, f"only {len(heat)} heatmap updates"
    columns = [s["color"]["shape"][1] for _, s in heat]
    assert columns[-1] == kns.eval("len(mon.history['probe_step'])") and columns[0] < columns[-1]
    # spread over the fit, and throttled: one per 0.25 s at most, plus begin, end, the 6 epoch ends and warnings
    span = (curve[-1][0] - curve[0][0]).total_seconds()
    assert span > 0.5, span
    forced = 2 + 6 + kns.eval("len(mon.warnings)")
    assert len(curve) <= span / 0.25 + 1 + forced, (len(curve), span, forced)
