"""The quickstart in the other Jupyter front ends: Jupyter Notebook 7 and Voila (JupyterLab 4 has its own tests).

Each front end runs notebooks/quickstart.ipynb as a person would (Notebook 7: run all; Voila: open the page, which
runs it) on ONE server per test run (the session fixtures ``notebook7`` and ``voila``, harness/frontends.py), and
its first ActivationGrid must draw (a canvas that is not blank) and respond (a layer picked in the page redraws it
and reaches the kernel). The quickstart's ``cw.show_in_sidebar(deep, ...)`` has no JupyterLab sidebar to go to
there, so the grid must be shown inline under the one-line note, and the handle must say so. Browser console
errors fail every test (the harness's cleanup), as in JupyterLab.
"""
from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.timeout(400)

NOTEBOOK = "notebooks/quickstart.ipynb"
TITLE = "Activations: block3"
FIRST_CANVAS = ".cnnw-grid-canvas"  # the first grid in the page is the quickstart's `grid`
SLOT = ".cnnw-sidebar-slot"


def _wait_drawn(page, selector: str, nth: int = 0, timeout: float = 90):
    page.wait_for_function("([sel, i]) => { const c = document.querySelectorAll(sel)[i];"
                           " return !!c && c.width > 0 && c.height > 0 && !!c.dataset.channels; }",
                           arg=[selector, nth], timeout=timeout * 1000, polling=100)


def _assert_drawn(harness, page, selector: str, nth: int = 0) -> dict:
    _wait_drawn(page, selector, nth)
    px = harness.canvas_pixels(page, selector, nth=nth)
    assert px["non_transparent"] > 0 and px["distinct_colors"] > 20, px
    return px


def _redrawn(harness, page, old_hash: str, timeout: float = 10) -> dict:
    """The first grid's canvas pixels once they differ from ``old_hash`` (or, after ``timeout``, as they are)."""
    deadline = time.monotonic() + timeout
    while True:
        px = harness.canvas_pixels(page, FIRST_CANVAS)
        if px["hash"] != old_hash or time.monotonic() > deadline:
            return px
        page.wait_for_timeout(20)


def _pick_layer_and_wait_redraw(harness, page, layer: str) -> dict:
    """Pick `layer` in the first grid's picker (as a person does) and wait until the canvas shows new pixels."""
    before = harness.canvas_pixels(page, FIRST_CANVAS)
    channels = page.locator(FIRST_CANVAS).first.get_attribute("data-channels")
    page.locator(".cnnw-grid .cnnw-layer-select").first.select_option(layer)
    page.wait_for_function("([sel, old]) => { const c = document.querySelector(sel);"
                           " return c.dataset.channels !== old; }", arg=[FIRST_CANVAS, channels],
                           timeout=60_000, polling=50)
    after = _redrawn(harness, page, before["hash"])  # the next animation frame draws the new page
    assert after["hash"] != before["hash"], (before, after)
    assert after["non_transparent"] > 0 and after["distinct_colors"] > 20, after
    return after


def _inline_slot(page) -> dict:
    return page.evaluate("""(sel) => [...document.querySelectorAll(sel)].map((s) => ({
        where: s.dataset.where, app: s.dataset.app,
        note: (s.querySelector('.cnnw-sidebar-note') || {}).textContent || '',
        grids: s.querySelectorAll('.cnnw-grid').length,
        visible: !!s.querySelector('.cnnw-grid') && s.querySelector('.cnnw-grid').offsetWidth > 0}))""", SLOT)


# ------------------------------------------------------------------------------------------------ Notebook 7
@pytest.fixture(scope="module")
def nb7_quickstart(notebook7):
    page = notebook7.open_notebook(NOTEBOOK)
    notebook7.run_all(page, timeout=300)
    with notebook7.kept(page):
        yield page


def test_quickstart_draws_and_responds_in_notebook7(notebook7, nb7_quickstart):
    page = nb7_quickstart
    assert page.evaluate("() => window.jupyterapp.name") == "Jupyter Notebook"
    _assert_drawn(notebook7, page, FIRST_CANVAS)
    _pick_layer_and_wait_redraw(notebook7, page, "block2_conv")
    assert notebook7.kernel_run(page, "print(grid.layer)") == "block2_conv"
    notebook7.screenshot(page, "notebook7_quickstart", full_page=True)


def test_show_in_sidebar_falls_back_inline_in_notebook7(notebook7, nb7_quickstart):
    page = nb7_quickstart
    slots = _inline_slot(page)
    assert len(slots) == 1, slots
    slot = slots[0]
    assert slot["where"] == "inline" and slot["app"] == "Jupyter Notebook", slot
    assert slot["note"] == f'No JupyterLab sidebar in Jupyter Notebook 7: "{TITLE}" is shown here instead.', slot
    assert slot["grids"] == 1 and slot["visible"], slot
    # the inline grid is `deep` (block3_relu) and draws
    assert page.locator(f"{SLOT} .cnnw-layer-select").input_value() == "block3_relu"
    _assert_drawn(notebook7, page, f"{SLOT} .cnnw-grid-canvas")
    # no sidecar was made: jupyterlab-sidecar's view fails in Notebook 7 (console errors, nothing shown)
    assert page.locator(".jupyterlab-sidecar").count() == 0
    out = notebook7.kernel_run(page, "from cnnwidget.widgets import sidebar as _s\n"
                                     f"_h = _s._open[{TITLE!r}]\nprint(_h.where, _h.panel is None)\nprint(repr(_h))")
    first, second = out.splitlines()
    assert first == "inline True", out
    shown = "<ActivationGrid shown inline, not in a sidebar: Jupyter Notebook 7 has no JupyterLab sidebar>"
    assert second == shown
    # the handle, the cell's value, was shown as one line before the page reported: that line now says the same
    page.wait_for_function("(text) => [...document.querySelectorAll('.jp-OutputArea-output')]"
                           ".some((o) => o.textContent.trim() === text)", arg=shown, timeout=10_000, polling=100)


# ------------------------------------------------------------------------------------------------ Voila
def test_quickstart_draws_and_responds_in_voila(voila):
    page = voila.open_notebook(NOTEBOOK, wait_selector=FIRST_CANVAS)
    assert voila.cell_errors(page) == []
    _assert_drawn(voila, page, FIRST_CANVAS)
    _pick_layer_and_wait_redraw(voila, page, "block2_conv")
    # show_in_sidebar: inline, with the note
    _wait_drawn(page, f"{SLOT} .cnnw-grid-canvas")
    slots = _inline_slot(page)
    assert [(s["where"], s["app"], s["grids"], s["visible"]) for s in slots] == [("inline", "Voila", 1, True)], slots
    assert slots[0]["note"] == f'No JupyterLab sidebar in Voila: "{TITLE}" is shown here instead.'
    # the only requests that left the server were the Font Awesome CSS of Voila's own template
    assert all("fontawesome" in url for url in voila.external_requests), voila.external_requests
    voila.screenshot(page, "voila_quickstart", full_page=True)
