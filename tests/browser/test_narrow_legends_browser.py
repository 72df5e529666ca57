"""Legends a person can read whole, in JupyterLab's 300 px right sidebar and in the wide notebook: ChannelCard's
class-support numbers ("0.123 (57)") on one line and inside the view, and UncertaintyView's colour-bar labels and
end values inside the view and within the width of their image (centred and wider than it, they ran past its left
edge, where a narrow panel cannot scroll to), and AttributionMap's the same. Every colour bar (ActivationGrid's
grid and enlarged-channel bars too) keeps "lo [gradient] hi" on one line (as four flex items the grid's broke
after "min" and the enlarged channel's left its max alone on a line); UncertaintyView's charts fit the panel (at
a 260 px minimum width their right end, the last x tick label, was cut by the sidebar's edge). The grid is of an
untrained model: its warning that the predictions say nothing is shown as text. Idle views show no progress bar.
One notebook shows the widgets inline and each in the sidebar.
"""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.timeout(400), pytest.mark.slow]

NAMES = "['a circle with a long class name', 'square', 'triangle', 'star', 'cross', 'ring', 'heart', 'moon', " \
        "'arrow', 'diamond']"
CELLS = [
    "import cnnwidget as cw\nfrom cnnwidget import demo\nmodel = demo.load_model()\n"
    "data = demo.shapes(128, seed=21)\n"
    f"card = cw.ChannelCard(model, data.images, 'block3_relu', 5, k=4, labels=data.labels, class_names={NAMES},\n"
    "                      feature_vis=False)\n"
    "uv = cw.UncertaintyView(model, data.images[:3], data=(data.images, data.labels), samples=8)\n"
    "am = cw.AttributionMap(model, data.images[:2], ['saliency', 'grad_cam'], curves=False)\n"
    "from cnnwidget.demo.train import build_model\nimport keras\nkeras.utils.set_random_seed(0)\n"
    "grid = cw.ActivationGrid(build_model(), data.images[:4], layer='block3_relu')  # untrained\n"
    "grid.selected_channel = 3\n"
    "rv = cw.RobustnessView(model, data.images[:2], data=(data.images[:16], data.labels[:16]), steps=2,\n"
    "                       curve_epsilons=[0.0, 8 / 255])",
    "card",
    "uv",
    "am",
    "grid",
    "rv",
    "card_side = cw.show_in_sidebar(card, title='card')",
    "uv_side = cw.show_in_sidebar(uv, title='uv')",
    "am_side = cw.show_in_sidebar(am, title='am')",
    "grid_side = cw.show_in_sidebar(grid, title='grid')",
    "rv_side = cw.show_in_sidebar(rv, title='rv')",
]

# Per visible view of `sel`: where it is (notebook or sidebar), its box, and every legend part that is not whole:
# outside the view (or the sidebar panel), a number on two lines, a colour-bar part outside its image's width.
MEASURE = r"""(sel) => [...document.querySelectorAll(sel)].filter((v) => v.offsetWidth > 0).map((v) => {
  const area = v.closest('#jp-right-stack > *') || v;
  const vr = v.getBoundingClientRect(), ar = area.getBoundingClientRect();
  const lines = (node) => { const r = document.createRange(); r.selectNodeContents(node);
    return new Set([...r.getClientRects()].filter((b) => b.width > 0).map((b) => Math.round(b.top))).size; };
  const inside = (b, box, slack = 0.5) => b.left >= box.left - slack && b.right <= box.right + slack;
  const bad = [];
  const parts = [];
  for (const cell of v.querySelectorAll('.cnnw-cc-classes > span:nth-child(3n)')) {
    const b = cell.getBoundingClientRect();
    parts.push(cell.textContent);
    if (!inside(b, vr) || !inside(b, ar)) bad.push(['outside', cell.textContent, b.left, b.right, vr.left, vr.right]);
    if (lines(cell) !== 1) bad.push(['wrapped', cell.textContent, lines(cell)]);
    if (cell.scrollWidth > cell.clientWidth + 1) bad.push(['cut', cell.textContent]);
  }
  for (const fig of v.querySelectorAll('.cnnw-uv-maps figure, .cnnw-am-map')) {
    const bar = fig.querySelector('.cnnw-colorbar');
    if (!bar || bar.hidden) continue;
    const img = fig.querySelector('canvas').getBoundingClientRect();
    for (const cls of ['label', 'lo', 'hi']) {
      const span = bar.querySelector('.cnnw-colorbar-' + cls);
      const b = span.getBoundingClientRect();
      parts.push(span.textContent);
      if (!inside(b, vr) || !inside(b, ar)) bad.push(['outside', span.textContent, b.left, b.right, vr.left, vr.right]);
      if (!inside(b, img, 1)) bad.push(['past the image', span.textContent, b.left, b.right, img.left, img.right]);
      if (cls !== 'label' && lines(span) !== 1) bad.push(['wrapped', span.textContent]);
    }
  }
  // every colour bar: "lo [gradient] hi" on one line, in that order, inside the view
  for (const bar of v.querySelectorAll('.cnnw-colorbar')) {
    if (bar.hidden || !bar.offsetWidth) continue;
    const [lo, g, hi] = ['lo', 'gradient', 'hi'].map((c) => bar.querySelector('.cnnw-colorbar-' + c)
      .getBoundingClientRect());
    const mid = (b) => (b.top + b.bottom) / 2;
    if (Math.abs(mid(lo) - mid(g)) > 4 || Math.abs(mid(hi) - mid(g)) > 4 || !(lo.right <= g.left && g.right <= hi.left))
      bad.push(['scale not on one line', bar.className, bar.dataset.lo, bar.dataset.hi,
                [lo.left, lo.top], [g.left, g.top], [hi.left, hi.top]]);
    for (const b of [lo, g, hi]) if (!inside(b, vr) || !inside(b, ar)) bad.push(['bar outside', bar.className]);
    parts.push(bar.dataset.lo + '..' + bar.dataset.hi);
  }
  // charts in the sidebar: the figure and each of its texts (tick labels, axis labels, title) inside its panel
  // (the notebook renders cells out of sight lazily, and their charts keep an old layout until seen)
  for (const fig of v.closest('#jp-right-stack') ? v.querySelectorAll('.bqplot') : []) {
    if (fig.parentElement.closest('.bqplot') || !fig.offsetWidth) continue;
    const fb = fig.getBoundingClientRect();
    // (3 px: ipywidgets' 2 px margin around a widget of width 100%; what is drawn is checked below, text by text)
    if (!inside(fb, ar, 3)) bad.push(['chart outside the panel', fb.left, fb.right, ar.left, ar.right]);
    for (const t of fig.querySelectorAll('text')) {
      const b = t.getBoundingClientRect();
      if (!b.width || !t.textContent.trim()) continue;
      if (!inside(b, fb, 1) || !inside(b, ar, 1)) bad.push(['chart text cut', t.textContent, b.left, b.right,
                                                           'figure', fb.left, fb.right, 'panel', ar.left, ar.right]);
    }
  }
  // an idle view shows no progress bar
  for (const p of v.querySelectorAll('.cnnw-progress')) {
    if (getComputedStyle(p).visibility !== 'hidden') bad.push(['idle progress bar shown', p.style.width]);
  }
  return {where: v.closest('#jp-right-stack') ? 'sidebar' : 'notebook', width: vr.width, area: ar.width,
          parts, bad, warning: v.querySelector('.cnnw-prediction-warning:not([hidden])')?.textContent ?? null};
})"""


def _show_sidebar(page, title: str):
    """Bring the right sidebar's panel called ``title`` to the front (one panel shows at a time), and scroll each of
    its charts into view once, as a person reading it does: bqplot lays a figure out again (new margins for the
    names it was given) only while the figure is on screen, so a chart below the panel's fold keeps the layout it
    had when it was made until it is scrolled to (the robustness view's divergence chart: its layer names past the
    panel's left edge, at the 60 px margin it was made with instead of the 107 px it was given)."""
    page.evaluate("""async (title) => { const shell = window.jupyterapp.shell;
      const w = [...shell.widgets('right')].find((x) => x.title.label === title);
      shell.activateById(w.id);
      const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      await frame();
      // the panel's own scrolling box only (scrollIntoView would scroll JupyterLab's shell sideways too)
      const scroller = (el) => { for (let p = el.parentElement; p && w.node.contains(p); p = p.parentElement) {
        if (p.scrollHeight > p.clientHeight + 1 && /auto|scroll/.test(getComputedStyle(p).overflowY)) return p; }
        return null; };
      const moved = new Set();
      for (const fig of w.node.querySelectorAll('.bqplot')) {
        const box = fig.parentElement.closest('.bqplot') ? null : scroller(fig);
        if (!box) continue;
        box.scrollTop += fig.getBoundingClientRect().top - box.getBoundingClientRect().top;
        moved.add(box);
        await frame();
        await new Promise((r) => setTimeout(r, 150));  // bqplot's debounced relayout
      }
      for (const box of moved) box.scrollTop = 0; }""", title)
    page.wait_for_timeout(500)  # ResizeObservers and the charts relayout


def test_class_support_numbers_and_the_maps_colour_bars_read_whole_in_the_sidebar_and_the_notebook(lab):
    page = lab.open_notebook(CELLS, name="narrow_legends")
    lab.run_all(page, timeout=240)
    lab.kernel_run(page, "assert card.wait(240) and uv.wait(240) and am.wait(240) and grid.wait(240) and rv.wait(240)",
                   timeout=260)
    page.wait_for_function("() => document.querySelectorAll('#jp-right-stack .cnnw-cc, #jp-right-stack .cnnw-uv, "
                           "#jp-right-stack .cnnw-am, #jp-right-stack .cnnw-grid, #jp-right-stack .cnnw-rv')"
                           ".length === 5", timeout=60_000)
    seen = {}
    for title, root, ready in (
            ("card", ".cnnw-cc", ".cnnw-cc-classes-box:not([hidden]) .cnnw-cc-bar"),
            ("uv", ".cnnw-uv", ".cnnw-uv-maps[data-done='true'] .cnnw-colorbar:not([hidden])"),
            ("am", ".cnnw-am", ".cnnw-am-map[data-done='true'] .cnnw-colorbar:not([hidden])"),
            ("grid", ".cnnw-grid", ".cnnw-focus-bar:not([hidden])"),
            ("rv", ".cnnw-rv-outer", ".cnnw-rv-charts .bqplot")):
        _show_sidebar(page, title)
        page.wait_for_function("([r, s]) => [...document.querySelectorAll(r)].filter((v) => v.offsetWidth > 0"
                               " && v.querySelector(s)).length === 2", arg=[root, ready], timeout=120_000)
        views = page.evaluate(MEASURE, root)
        lab.screenshot(page, f"narrow_legends_{title}_sidebar", selector=f"#jp-right-stack {root}")
        assert sorted(v["where"] for v in views) == ["notebook", "sidebar"], views
        if title in ("uv", "rv"):  # the charts are there too (bqplot lays them out after they show)
            page.wait_for_function("(r) => [...document.querySelectorAll(r + ' .bqplot text')].filter((t) => "
                                   "t.textContent === '100%').length >= 2 * (r === '.cnnw-uv' ? 2 : 1)",
                                   arg=root, timeout=60_000)
            page.wait_for_timeout(1000)
            views = page.evaluate(MEASURE, root)
        if title == "grid":
            lab.screenshot(page, "narrow_legends_grid_bars_sidebar", selector="#jp-right-stack .cnnw-grid .cnnw-main")
        for v in views:
            print(title, v["where"], round(v["width"]), v["parts"], v["warning"])
            assert v["parts"] or title == "rv", v  # the legends are there (the robustness view: its charts)
            if title == "grid":  # the untrained model's predictions say nothing, and the view says so
                assert "is the model trained?" in (v["warning"] or "").lower(), v
            assert v["bad"] == [], v["bad"]
            if v["where"] == "sidebar":
                assert v["width"] <= 320, v  # really the narrow sidebar
        seen[title] = views
    assert len(seen["card"][0]["parts"]) >= 3 and len(seen["uv"][0]["parts"]) == 8 and len(seen["am"][0]["parts"]) == 8
    assert len(seen["grid"][0]["parts"]) == 2  # the grid's bar and the enlarged channel's
