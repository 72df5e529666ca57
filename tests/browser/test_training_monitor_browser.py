"""The training widgets in a real JupyterLab (chromium).

TrainingMonitor: the loss curve and the gradient-norm heatmap are drawn and change while a fit runs. The fit runs on
a thread of the kernel, so the test can read the page meanwhile; trait changes from that thread reach the page as
comm messages, as they do from a busy cell (tests/kernel covers that).
FilterGrid: its canvas (js/filter_grid.js) draws the kernels Python sends, and its pager asks Python for the next page.
"""

import time

import pytest
from harness import charts

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

# Cells of the heatmap, the length of the smoothed loss path (its "d" grows with every point drawn), and the heights
# of the update-ratio bars.
READ = """() => {
  const cells = document.querySelectorAll('.cnnw-monitor-grad-norms .heatmapcell').length;
  const paths = [...document.querySelectorAll('.cnnw-monitor-batch-loss path.line')];
  const bars = [...document.querySelectorAll('.cnnw-monitor-update-ratio rect.bar')];
  return { cells, path: Math.max(0, ...paths.map((p) => (p.getAttribute('d') || '').length)),
           ratios: bars.map((r) => Number(r.getAttribute('height'))) };
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
    # Bars whose data arrives after display: bqplot 0.13 drew them at height 0 with num_ticks on the value axis
    # (found on LayerSimilarity). log10 update ratios are far from 0, so every bar has a height.
    assert len(after["ratios"]) == rows and min(after["ratios"]) > 5, after["ratios"]
    during = {(s["cells"], s["path"]) for s in seen}
    assert len(during) >= 3, f"the page changed only {len(during)} times during the fit: {seen}"
    lab.screenshot(page, "training_monitor_heatmap", selector=".cnnw-monitor-grad-norms")




# The live charts' geometry: points of the longest batch-loss path, heatmap cell fills, update-ratio and dead-unit
# bar heights, histogram bar heights and the tick labels of every axis.
GEOMETRY = """() => {
  const q = (sel) => [...document.querySelectorAll(sel)];
  const points = (d) => (d.match(/[ML]/g) || []).length;
  // {axis label: [tick label, ...]} of one figure ("" for an axis without a label)
  const ticks = (fig) => Object.fromEntries(q(`.cnnw-monitor-${fig} g.axis`).map((a) => [
    a.querySelector('text.axislabel')?.textContent || '', [...a.querySelectorAll('.tick text')].map((t) => t.textContent)]));
  return {
    loss_points: Math.max(0, ...q('.cnnw-monitor-batch-loss path.line').map((p) => points(p.getAttribute('d') || ''))),
    fills: q('.cnnw-monitor-grad-norms .heatmapcell').map((c) => c.style.fill || c.getAttribute('fill') || ''),
    ratios: q('.cnnw-monitor-update-ratio rect.bar').map((r) => Number(r.getAttribute('height'))),
    dead: q('.cnnw-monitor-dead-units rect.bar').map((r) => Number(r.getAttribute('height'))),
    hist: q('.cnnw-monitor-histogram rect.bar').map((r) => Number(r.getAttribute('height'))),
    loss_ticks: ticks('batch-loss'), epoch_ticks: ticks('epoch-loss'),
  };
}"""


def test_a_monitor_shown_before_fit_draws_its_live_charts(lab):
    """The user's order: show an empty monitor, then train. Every live chart gets real geometry (a batch-loss path
    of many points, heatmap cells of several viridis colours, bars with height) and the console stays clean."""
    build = BUILD.replace("fit(1)  # traces fit and the probe pass before the page is read", "")
    page = lab.open_notebook([build, "mon"])
    lab.run_all(page, timeout=240)
    page.wait_for_selector(".cnnw-monitor-batch-loss .bqplot, .cnnw-monitor-batch-loss svg", timeout=60_000)
    lab.kernel_run(page, "fit(3)", timeout=240)
    page.wait_for_timeout(1000)  # the redraw at the end of fit lands
    g = page.evaluate(GEOMETRY)
    assert g["loss_points"] > 10, g
    fills = set(g["fills"])
    assert len(g["fills"]) == 3 * int(lab.kernel_run(page, "print(len(mon.history['probe_step']))")), g
    assert len(fills) > 1, fills  # not one solid colour
    assert not charts.off_scale(fills, "viridis"), charts.off_scale(fills)  # the scale's colours (or null grey)
    assert len(g["ratios"]) == 3 and min(g["ratios"]) > 5, g["ratios"]
    assert len(g["dead"]) >= 2 and all(h >= 0 for h in g["dead"]), g["dead"]
    assert len(g["hist"]) > 1 and max(g["hist"]) > 5, g["hist"]
    assert g["epoch_ticks"]["epoch"] == ["1", "2", "3"], g["epoch_ticks"]  # whole epochs, inside the data
    steps = [int(v) for v in g["loss_ticks"]["step"]]
    assert 2 <= len(steps) <= 5 and steps[0] >= 1 and steps[-1] <= 90, steps
    assert lab.axis_problems(page) == []
    lab.screenshot(page, "training_monitor_user_order", full_page=True)


def test_without_probe_data_the_page_says_how_to_get_gradients(lab):
    build = BUILD.replace("cw.TrainingMonitor((d.images[:32], d.labels[:32]), every=4)", "cw.TrainingMonitor(every=4)")
    page = lab.open_notebook([build, "mon"])
    lab.run_all(page, timeout=240)
    note = page.wait_for_selector(".cnnw-monitor-no-probe", timeout=60_000).inner_text()
    assert "probe_data=(x, y)" in note, note
    assert page.locator(".cnnw-monitor-grad-norms").count() == 0
    page.wait_for_selector(".cnnw-monitor-batch-loss path.line", timeout=30_000)  # the curves are still there
    assert len(page.evaluate(READ)["ratios"]) == 3


def test_filter_grid_draws_kernels_and_pages_from_the_page(lab):
    build = "import cnnwidget as cw\nfrom cnnwidget import demo\ng = cw.FilterGrid(demo.load_model(), 'block2_conv')"
    page = lab.open_notebook([build, "g"])
    lab.run_all(page, timeout=240)
    page.wait_for_selector(".cnnw-filter-canvas", timeout=60_000)
    meta = lab.kernel_exec(page, "print(g.view.meta['k'], g.view.meta['cols'], g.view.n_pages)")["stdout"].split()
    k, cols, pages = map(int, meta)
    assert pages == 2 and k == 16 * cols  # 16 output filters a page, one tile per input channel
    first = lab.canvas_pixels(page, ".cnnw-filter-canvas")
    assert first["non_transparent"] == k * 36 * 36 and first["distinct_colors"] > 20  # 3x3 kernels at 12x zoom
    page.locator(".cnnw-filters .cnnw-next").click()
    page.wait_for_function("() => document.querySelector('.cnnw-page-info').textContent === 'page 2 of 2'")
    assert lab.kernel_exec(page, "print(g.page, g.view.meta['filters'][0])")["stdout"].split() == ["1", "16"]
    deadline = time.monotonic() + 30
    while lab.canvas_pixels(page, ".cnnw-filter-canvas")["hash"] == first["hash"]:
        assert time.monotonic() < deadline, "the canvas still shows the first page"
        page.wait_for_timeout(50)
