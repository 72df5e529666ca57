"""Two browser console defects a first-time user's trial found, in a real JupyterLab (chromium), on one Explorer shown
inline and in the sidebar (show_in_sidebar):

* a page reload drew the AttributionMap's deletion and insertion figures (the Explorer's attribution panel, curves
  off, so their box is hidden) at 0 x 0: 12 "<rect> attribute width/height: A negative value is not valid" (js/dom.js
  mountWidget attached a figure made while its box was being hidden);
* ``ex.close(); dx.close()`` from Python threw "Syncing error: no comm channel defined" once per view of the Explorer
  and of its panels (ipywidgets' views send ``_view_count - 1`` as they are removed, after the closed model dropped
  its comm; cnnwidget/widgets/_base.py now stops the count before closing).

Each test reads the console errors itself and asserts on those messages (the harness would also fail it on any
console error afterwards). One page (module-scoped): the reload test first, then the close test."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(400)

CELLS = [
    "import cnnwidget as cw\nfrom cnnwidget import demo\ndata = demo.shapes(6, seed=1)\n"
    "ex = cw.Explorer(demo.load_model(), data.images, class_names=data.class_names,\n"
    "                 panel_options={'featurevis': {'steps': 16}})\nex",
    "dx = cw.show_in_sidebar(ex, title='Mine')",
]
INLINE = ".jp-Notebook .cnnw-explorer"
SIDE = "#jp-right-stack .cnnw-explorer"
NEGATIVE = "A negative value is not valid"
NO_COMM = "no comm channel defined"


@pytest.fixture(scope="module")
def page(lab):
    page = lab.open_notebook(CELLS, name="console_after_close")
    lab.run_all(page, timeout=240)
    for root in (INLINE, SIDE):
        lab.wait_for(page, f"{root} .cnnw-grid-canvas", timeout=120)
    lab.kernel_run(page, "ex.wait(120)", timeout=150)
    with lab.kept(page):
        yield page


def _matching(errors: list[str], text: str) -> list[str]:
    return [e for e in errors if text in e]


def test_a_reload_with_the_explorer_in_the_sidebar_draws_no_chart_at_a_negative_size(lab, page):
    assert lab.console_errors() == []
    # saved with its outputs, as a person's notebook is: after the reload the inline view is back too
    page.evaluate("(p) => window.__cwPanel(p).context.save()", lab._path(page))
    page.reload(wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    page.wait_for_function("(p) => window.__cwKernelIdle(p)", arg=lab._path(page), timeout=120_000, polling=100)
    for root in (SIDE, INLINE):
        lab.wait_for(page, f"{root} .cnnw-grid-canvas", timeout=120)
        lab.wait_for(page, f"{root} .cnnw-am", timeout=60, state="attached")
    # the charts that are shown are drawn (bqplot's first layout, its 300 ms relayout debounce) ...
    page.wait_for_function("(s) => [...document.querySelectorAll(s + ' .bqplot .plotarea_background')]"
                           ".some((r) => Number(r.getAttribute('width')) > 0)", arg=SIDE, timeout=60_000)
    page.wait_for_timeout(1500)
    errors = lab.console_errors()
    assert _matching(errors, NEGATIVE) == [], f"{len(_matching(errors, NEGATIVE))} chart rects at a negative size"
    assert errors == []
    # ... and the attribution panel's deletion/insertion charts (curves off in the Explorer) are not attached
    hidden = page.evaluate("""(s) => [...document.querySelectorAll(s + ' .cnnw-am-charts')]
      .map((c) => [getComputedStyle(c).display, c.querySelectorAll('.bqplot').length])""", SIDE)
    assert hidden and all(d == "none" and n == 0 for d, n in hidden), hidden


def test_closing_the_explorer_and_its_sidebar_from_python_throws_nothing_in_the_page(lab, page):
    for root in (INLINE, SIDE):
        lab.wait_for(page, f"{root} .cnnw-grid-canvas", timeout=120)
    page.wait_for_timeout(500)
    assert lab.console_errors() == []
    views = page.evaluate("(s) => document.querySelectorAll(s).length", ".cnnw-explorer")
    assert views == 2, views
    lab.kernel_run(page, "ex.close(); dx.close()")
    page.wait_for_function("() => !document.querySelector('.cnnw-explorer')", timeout=30_000)
    page.wait_for_timeout(1500)  # anything a removed view still had queued (a frame, a timer, a relayout)
    errors = lab.console_errors()
    assert _matching(errors, NO_COMM) == [], f"{len(_matching(errors, NO_COMM))} x {NO_COMM!r}"
    assert errors == []
    assert lab.kernel_run(page, "print(ex.comm is None, dx.slot.comm is None, dx.panel.comm is None)") \
        == "True True True"
