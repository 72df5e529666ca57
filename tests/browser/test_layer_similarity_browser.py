"""LayerSimilarity in a real JupyterLab (chromium): a base model against a fine-tuned copy with a new head.

The widget is ipywidgets and bqplot (no view of its own): the CKA heatmap is a bqplot GridHeatMap, the verdicts
are Labels, progress a FloatProgress, and every part carries a stable ``cnnw-similarity-*`` class. The tests share
one notebook (``notebook`` fixture, as in test_activation_grid_browser.py) and its kernel: ``sim``, whose first pass
has finished (the pass over its 4096 images in batches of 16 takes a few seconds, long enough to watch and to
cancel), and ``late``, a widget on the same two models shown before any pass (the user's order).
"""
from __future__ import annotations

import json

import pytest
from harness import charts

pytestmark = pytest.mark.timeout(300)

# The notebook's cells: BUILD, ``sim`` (shown after its first pass) and ``late`` (shown before any pass); each
# widget is read in its own cell (tagged by ``lab.cell``).
ROOT = '.jp-Notebook .jp-Cell[data-cw-cell="1"] .cnnw-similarity'
LATE = '.jp-Notebook .jp-Cell[data-cw-cell="2"] .cnnw-similarity'
LAYERS = ["conv1", "conv2", "gap"]

BUILD = """
import json
import keras
import cnnwidget as cw
from cnnwidget.demo import shapes
keras.utils.set_random_seed(0)
d = shapes(4096, seed=2, size=32)

def cnn(name, head, classes):
    return keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, activation="relu", name="conv1"),
                             keras.layers.MaxPooling2D(2, name="pool"),
                             keras.layers.Conv2D(16, 3, activation="relu", name="conv2"),
                             keras.layers.GlobalAveragePooling2D(name="gap"),
                             keras.layers.Dense(classes, activation="softmax", name=head)], name=name)

base = cnn("base", "out", 10)
tuned = cnn("tuned", "head", 4)  # the base with a new head, conv1 frozen, fine-tuned on 4 classes
for name in ["conv1", "conv2"]:
    tuned.get_layer(name).set_weights(base.get_layer(name).get_weights())
tuned.get_layer("conv1").trainable = False
tuned.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
tuned.fit(d.images[:1024], d.labels[:1024] % 4, epochs=2, batch_size=32, verbose=0)
sim = cw.LayerSimilarity(base, tuned, d.images, layers=["conv1", "conv2", "gap"], batch_size=16)
late = cw.LayerSimilarity(base, tuned, d.images[:1024], layers=["conv1", "conv2", "gap"], batch_size=16,
                          autostart=False)
"""



# What the page shows: status text, progress bar width, error text (if shown), the Layers box, heatmap cells.
READ = """(root) => {
  const el = document.querySelector(root);
  const error = el.querySelector('.cnnw-error');
  const cells = [...el.querySelectorAll('.cnnw-similarity-cka .heatmapcell')];
  return {
    status: el.querySelector('.cnnw-similarity-status').textContent,
    bar: el.querySelector('.cnnw-similarity-progress .progress-bar').style.width,
    barShown: getComputedStyle(el.querySelector('.cnnw-similarity-progress')).visibility !== 'hidden',
    error: error.offsetParent === null ? '' : error.textContent,
    layers: el.querySelector('.cnnw-similarity-layers input').value,
    cells: cells.length,
    fills: cells.map((c) => c.style.fill || c.getAttribute('fill') || ''),
    ticks: [...el.querySelectorAll('.cnnw-similarity-cka .axis .tick text')].map((t) => t.textContent),
    verdicts: [...el.querySelectorAll('.cnnw-similarity-verdicts .widget-label')].map((l) => l.textContent),
    bars: [...el.querySelectorAll('.cnnw-similarity-drift rect.bar')].map((r) => Number(r.getAttribute('height'))),
    run: el.querySelector('.cnnw-similarity-run').disabled,
    cancel: el.querySelector('.cnnw-similarity-cancel').disabled,
  };
}"""

# Every status text and progress width the page shows from now on, in order (a MutationObserver misses none).
WATCH = """(root) => {
  const el = document.querySelector(root);
  const seen = window.__simSeen = [];
  const note = () => seen.push([el.querySelector('.cnnw-similarity-status').textContent,
                                el.querySelector('.cnnw-similarity-progress .progress-bar').style.width]);
  window.__simObserver?.disconnect();
  window.__simObserver = new MutationObserver(note);
  window.__simObserver.observe(el, { subtree: true, childList: true, characterData: true, attributes: true });
}"""


@pytest.fixture(scope="module")
def notebook(lab):
    page = lab.open_notebook([BUILD, "sim", "late"], name="layer_similarity_browser")
    lab.run_all(page, timeout=240)
    assert lab.cell(page, 1) in ROOT and lab.cell(page, 2) in LATE
    lab.wait_for(page, ROOT)
    _wait_status(page, "done: 3 layers", timeout=120)
    with lab.kept(page):  # every test here shares this page and its kernel
        yield page


def _read(page) -> dict:
    return page.evaluate(READ, ROOT)


def _wait_status(page, prefix: str, timeout: float = 60, root: str = ROOT):
    page.wait_for_function("([root, prefix]) => document.querySelector(root)"
                           ".querySelector('.cnnw-similarity-status').textContent.startsWith(prefix)",
                           arg=[root, prefix], polling=50, timeout=timeout * 1000)


def _py(lab, page, expr: str):
    return json.loads(lab.kernel_run(page, f"print(json.dumps({expr}))"))


def _reset(lab, page):
    """The three layers, a finished pass, no error."""
    if _py(lab, page, f"sim.layers != {LAYERS!r} or sim.running or sim.status != 'done: 3 layers'"):
        # (layers equal to the ones in use are no change: then a pass of its own)
        lab.kernel_run(page, f"sim.layers = {LAYERS!r}\nsim.wait(120)\nsim.status == 'done: 3 layers' or sim.run()")
    lab.kernel_run(page, "sim.wait(120)")
    _wait_status(page, "done: 3 layers")
    page.locator(ROOT).scroll_into_view_if_needed()


def _type_layers(page, text: str):
    box = page.locator(f"{ROOT} .cnnw-similarity-layers input")
    box.fill(text)
    box.press("Enter")


def _wait_refused(page, layers_in_use: str = ", ".join(LAYERS)):
    """Until the widget shows a message and its Layers box the layers in use again (so typing is not undone)."""
    page.wait_for_function(
        "([root, layers]) => { const el = document.querySelector(root);"
        " return el.querySelector('.cnnw-error').offsetParent !== null"
        " && el.querySelector('.cnnw-similarity-layers input').value === layers; }",
        arg=[ROOT, layers_in_use], polling=50, timeout=30_000)


def test_the_cka_heatmap_and_the_verdicts_render_as_text(lab, notebook):
    page = notebook
    _reset(lab, page)
    seen = _read(page)
    assert seen["cells"] == 9 and len(set(seen["fills"])) >= 3, seen  # 3 x 3 cells in several colours
    assert "rgb(238, 238, 238)" not in seen["fills"]  # no NaN cell (null_color #eeeeee)
    assert all(seen["ticks"].count(name) == 2 for name in LAYERS), seen["ticks"]  # both axes name the layers
    verdicts = _py(lab, page, "[f'{n}: {v}' for n, v in zip(sim.comparison.layers, sim.comparison.verdict)]")
    assert [text.split(" (")[0] for text in seen["verdicts"][1:]] == verdicts
    assert seen["verdicts"][1] == "conv1: generic (CKA 1.000, drift 0)"  # frozen: unchanged
    assert seen["error"] == "" and not seen["run"] and seen["cancel"]
    assert seen["bar"] == "0%" and not seen["barShown"], seen  # idle: the bar empty and hidden (1e607b9)
    # Weight drift: conv1 was frozen and gap has no weights; conv2 moved, the tallest bar.
    assert len(seen["bars"]) == 3 and seen["bars"][0] == seen["bars"][2] == 0 and seen["bars"][1] > 100, seen["bars"]
    lab.screenshot(page, "layer_similarity", selector=ROOT)


def test_a_run_from_the_page_shows_progress_then_the_result_while_the_kernel_stays_free(lab, notebook):
    page = notebook
    _reset(lab, page)
    lab.kernel_run(page, "sim.cka = None")  # so the result below is the new pass's
    page.evaluate(WATCH, ROOT)
    page.locator(f"{ROOT} .cnnw-similarity-run").click()
    _wait_status(page, "CKA: batch")
    assert _read(page)["run"] and not _read(page)["cancel"]  # Run waits, Cancel can stop it
    assert lab.kernel_run(page, "print(sim.running, sim.job.running)") == "True True"  # the kernel answers meanwhile
    _wait_status(page, "done: 3 layers", timeout=120)
    seen = page.evaluate("() => window.__simSeen")
    seen = seen[[s for s, _ in seen].index("CKA over 4096 images in 256 batches..."):]  # from the click on
    statuses = [s for s, _ in seen]
    batches = [i for i, s in enumerate(statuses) if s.startswith("CKA: batch")]
    assert len(batches) >= 3 and batches[-1] < statuses.index("done: 3 layers"), statuses
    widths = [float(w.rstrip("%")) for s, w in seen if s.startswith("CKA: batch") and w]
    assert any(0 < w < 100 for w in widths) and widths == sorted(widths), widths
    assert _py(lab, page, "sim.cka.shape") == [3, 3]
    done = _read(page)
    assert done["bar"] == "0%" and not done["barShown"], done  # the pass over: the bar empty and hidden (1e607b9)


def test_cancel_from_the_page_stops_the_pass_and_keeps_the_result(lab, notebook):
    page = notebook
    _reset(lab, page)
    before = _read(page)
    page.locator(f"{ROOT} .cnnw-similarity-run").click()
    _wait_status(page, "CKA: batch")
    page.locator(f"{ROOT} .cnnw-similarity-cancel").click()
    _wait_status(page, "cancelled: the last finished result stays", timeout=30)
    assert _py(lab, page, "[sim.job.cancelled, sim.running, sim.progress['fraction'] < 1]") == [True, False, True]
    after = _read(page)
    assert after["fills"] == before["fills"] and after["verdicts"] == before["verdicts"]
    assert not after["run"] and after["cancel"]  # ready to run again


def test_layers_that_do_not_match_in_the_two_models_are_refused_in_the_widget(lab, notebook):
    """Every layer (an empty box): the base has `out`, the tuned copy `head`; then a layer only the base has."""
    page = notebook
    _reset(lab, page)
    before = _read(page)
    _type_layers(page, "")
    _wait_refused(page)
    seen = _read(page)
    assert "do not match" in seen["error"] and "['out']" in seen["error"] and "['head']" in seen["error"], seen
    assert seen["layers"] == "conv1, conv2, gap" and seen["fills"] == before["fills"]  # what is in use stays
    _type_layers(page, "conv2, out")
    page.wait_for_function("(root) => document.querySelector(root).querySelector('.cnnw-error')"
                           ".textContent.includes(\"'out'\") && !document.querySelector(root)"
                           ".querySelector('.cnnw-error').textContent.includes('do not match')",
                           arg=ROOT, polling=50, timeout=30_000)
    assert "second model ('tuned')" in _read(page)["error"]
    assert _py(lab, page, "[sim.layers, sim.running]") == [LAYERS, False]


def test_after_a_refused_input_the_widget_keeps_working(lab, notebook):
    page = notebook
    _reset(lab, page)
    _type_layers(page, "conv1, nope")
    _wait_refused(page)
    assert "No layer named 'nope'" in _read(page)["error"]
    _type_layers(page, "conv2, gap")
    _wait_status(page, "done: 2 layers", timeout=120)
    seen = _read(page)
    assert seen["error"] == "" and seen["cells"] == 4 and seen["layers"] == "conv2, gap", seen
    assert [text.split(":")[0] for text in seen["verdicts"][1:]] == ["conv2", "gap"]


def test_a_widget_shown_before_its_pass_draws_the_heatmap_and_drift_when_the_result_arrives(lab, notebook):
    """The user's order: the widget is on the page (empty charts) before any result exists; the pass then runs and
    its result lands in charts that were drawn empty: cells in several colours of the scale, drift bars with
    height, layer names on both axes, every axis label clear of the tick labels, and a clean console."""
    page = notebook
    lab.wait_for(page, f"{LATE} .cnnw-similarity-cka svg")
    assert charts.geometry(page, f"{LATE} .cnnw-similarity-drift")["bars"] == []  # nothing yet
    lab.kernel_run(page, "late.run().wait(120)", timeout=150)
    _wait_status(page, "done: 3 layers", root=LATE)
    page.wait_for_function("(root) => document.querySelectorAll(root + ' .cnnw-similarity-drift rect.bar').length"
                           " === 3 && document.querySelectorAll(root + ' .cnnw-similarity-cka .heatmapcell').length"
                           " === 9", arg=LATE, polling=50, timeout=30_000)
    # the charts were off screen when their data came: each is laid out when scrolled to (margins for its names)
    charts.scroll_into_view(page, LATE)
    heat = charts.geometry(page, f"{LATE} .cnnw-similarity-cka")
    drift = charts.geometry(page, f"{LATE} .cnnw-similarity-drift")
    assert len(heat["cells"]) == 9 and len(set(heat["cells"])) >= 3, heat
    assert charts.off_scale(heat["cells"], "viridis") == []
    assert heat["ticks"]["fine-tuned layer"] == LAYERS and sorted(heat["ticks"]["base layer"]) == sorted(LAYERS)
    assert heat["ticks"][""] == ["0.0", "0.5", "1.0"], heat["ticks"]  # the colour bar (its label is drawn apart)
    assert len(drift["bars"]) == 3 and drift["bars"][1] > 50, drift  # conv2 moved; conv1 frozen, gap has no weights
    assert drift["ticks"][""] == LAYERS
    drift_ticks = [float(t.replace("\u2212", "-")) for t in drift["ticks"]["||W_b - W_a|| / ||W_a||"]]
    assert drift_ticks[0] == 0.0 and drift_ticks == sorted(drift_ticks)  # a ratio axis from 0, never below
    assert lab.axis_problems(page, LATE) == []
    lab.screenshot(page, "layer_similarity_user_order", selector=LATE)
