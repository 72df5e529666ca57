"""The TrainingMonitor in a real JupyterLab (chromium): the loss curve and the gradient-norm heatmap are drawn and
change while a fit runs. The fit runs on a thread of the kernel, so the test can read the page meanwhile; trait
changes from that thread reach the page as comm messages, as they do from a busy cell (tests/kernel covers that)."""

import time

import pytest

pytestmark = pytest.mark.timeout(300)

BUILD = """
import threading
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
def fit(epochs):
    model.fit(d.images, d.labels, validation_split=0.25, epochs=epochs, batch_size=16, callbacks=[mon.callback],
              verbose=0)
fit(1)  # traces fit and the probe pass before the page is read
"""

# Cells of the heatmap, and the length of the smoothed loss path (its "d" grows with every point drawn).
READ = """() => {
  const cells = document.querySelectorAll('.cnnw-monitor-grad-norms .heatmapcell').length;
  const paths = [...document.querySelectorAll('.cnnw-monitor-batch-loss path.line')];
  return { cells, path: Math.max(0, ...paths.map((p) => (p.getAttribute('d') || '').length)) };
}"""


def test_heatmap_and_curves_render_and_change_during_fit(lab):
    page = lab.open_notebook([BUILD, "mon"])
    lab.run_all(page, timeout=240)
    page.wait_for_selector(".cnnw-monitor-grad-norms .heatmapcell", timeout=60_000)
    before = page.evaluate(READ)
    out = lab.kernel_exec(page, "job = threading.Thread(target=fit, args=(10,)); job.start()")
    assert out["status"] == "ok", out
    seen, deadline = [], time.monotonic() + 180
    while time.monotonic() < deadline:
        seen.append(page.evaluate(READ))
        if lab.kernel_exec(page, "print(job.is_alive())")["stdout"].strip() == "False":
            break
        page.wait_for_timeout(150)
    else:
        pytest.fail("the fit did not end in 180 s")
    page.wait_for_timeout(1000)  # the last redraw (at the end of fit) lands
    after = page.evaluate(READ)
    rows = 3  # conv1, conv2 and the Dense layer
    probes = int(lab.kernel_exec(page, "print(len(mon.history['probe_step']))")["stdout"])
    assert after["cells"] == rows * probes and after["cells"] > before["cells"], (before, after)
    assert after["path"] > 0 and after["path"] != before["path"]
    during = {(s["cells"], s["path"]) for s in seen}
    assert len(during) >= 3, f"the page changed only {len(during)} times during the fit: {seen}"
    lab.screenshot(page, "training_monitor_heatmap", selector=".cnnw-monitor-grad-norms")
