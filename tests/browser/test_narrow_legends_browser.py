"""Legends a person can read whole, in JupyterLab's 300 px right sidebar and in the wide notebook: ChannelCard's
class-support numbers ("0.123 (57)") on one line and inside the view, and UncertaintyView's colour-bar labels and
end values inside the view and within the width of their image (centred and wider than it, they ran past its left
edge, where a narrow panel cannot scroll to), and AttributionMap's the same. Every colour bar (ActivationGrid's
grid and enlarged-channel bars too) keeps "lo [gradient] hi" on one line (as four flex items the grid's broke
after "min" and the enlarged channel's left its max alone on a line); UncertaintyView's charts fit the panel (at
a 260 px minimum width their right end, the last x tick label, was cut by the sidebar's edge). The grid is of an
untrained model: its warning that the predictions say nothing is shown as text. Idle views show no progress bar.
TrainingMonitor's and LayerSimilarity's charts fit the sidebar's ~250 px view (their minimum widths were 260-320 px
and their heatmaps' margins took ~240 px): nothing in the panel scrolls sideways, every chart and each of its texts
is inside the panel, numbers and names on an unrotated axis do not overlap, a colour bar's text stays off its
heatmap, a long layer name is elided on the axis and whole in the hover tooltip.
One notebook shows the widgets inline and each in the sidebar.
"""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.timeout(400), pytest.mark.slow]

LONG = "features_block2_separable_conv_long"  # 35 characters: ~230 px at 12 px
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
    "                       curve_epsilons=[0.0, 8 / 255])\n"
    # a monitor of a small fit whose model has a long layer name, and the CKA of the demo model's 19 layers
    "small = demo.shapes(256, seed=2, size=32)\n"
    "keras.utils.set_random_seed(0)\n"
    "net = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, activation='relu', name='conv1'),\n"
    f"    keras.layers.MaxPooling2D(2), keras.layers.Conv2D(16, 3, activation='relu', name='{LONG}'),\n"
    "    keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation='softmax', name='predictions')])\n"
    "net.compile('adam', 'sparse_categorical_crossentropy', metrics=['accuracy'])\n"
    "mon = cw.TrainingMonitor((small.images[:32], small.labels[:32]), every=4)\n"
    "net.fit(small.images, small.labels, validation_split=0.25, epochs=2, batch_size=32, callbacks=[mon.callback],\n"
    "        verbose=0)\n"
    "sim = cw.LayerSimilarity(model, None, data.images[:64], batch_size=32)",
    "card",
    "uv",
    "am",
    "grid",
    "rv",
    "mon",
    "sim",
]
# Each widget goes to the sidebar once the page has drawn the last one (not as cells run together: with seven
# widgets, the page drew the sidebar views for up to 6.6 s on a loaded machine, and the slot models made meanwhile
# failed anywidget's 2 s initialization timeout: "[anywidget] Failed to initialize model.").
SIDEBAR = [("card", ".cnnw-cc"), ("uv", ".cnnw-uv"), ("am", ".cnnw-am"), ("grid", ".cnnw-grid"),
           ("rv", ".cnnw-rv"), ("mon", ".cnnw-monitor"), ("sim", ".cnnw-similarity")]

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


# The sidebar view of `root` (a TrainingMonitor's or LayerSimilarity's): the panel's width, whatever in it scrolls
# sideways, and per chart its width, its plot area's, its title and tick labels, and the texts that overlap: two
# unrotated tick labels of one axis, a colour bar's text and the plot area.
CHARTS = r"""(root) => {
  const v = [...document.querySelectorAll('#jp-right-stack ' + root)].find((x) => x.offsetWidth > 0);
  const area = v.closest('#jp-right-stack > *');
  const box = (el) => el.getBoundingClientRect();
  const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const scrolls = [area, ...area.querySelectorAll('*')].filter((e) => e.scrollWidth > e.clientWidth + 1
    && (e === area || /auto|scroll/.test(getComputedStyle(e).overflowX))).map((e) => [e.className, e.scrollWidth,
    e.clientWidth]);
  const figs = [...v.querySelectorAll('.bqplot')].filter((f) => !f.parentElement.closest('.bqplot') && f.offsetWidth)
    .map((f) => {
      const plot = box(f.querySelector('.plotarea_background'));
      const overlaps = [];
      for (const axis of f.querySelectorAll('g.axis')) {
        const texts = [...axis.querySelectorAll('.tick text')].filter((t) => t.textContent && box(t).width
          && !/rotate\(\s*-?[1-9]/.test(t.getAttribute('transform') || ''));
        for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++)
          if (hit(box(texts[i]), box(texts[j]))) overlaps.push([texts[i].textContent, texts[j].textContent]);
      }
      for (const t of f.querySelectorAll('.ColorBar text')) {
        if (t.textContent && box(t).width && hit(box(t), plot)) overlaps.push(['colour bar', t.textContent]);
      }
      return {cls: [...f.classList].filter((c) => c.startsWith('cnnw-')).join(' '), width: box(f).width,
              plot: plot.width, title: f.querySelector('.mainheading')?.textContent ?? '',
              ticks: [...f.querySelectorAll('.tick text')].map((t) => t.textContent).filter(Boolean), overlaps};
    });
  return {panel: box(area).width, scrolls, figs};
}"""

# Hover the heatmap cell in the row of the elided name under `fig` (the sidebar's): what bqplot's tooltip says.
HOVER_CELL = r"""(fig) => {
  const f = [...document.querySelectorAll('#jp-right-stack ' + fig)].find((x) => x.offsetWidth > 0);
  const t = [...f.querySelectorAll('g.axis .tick text')].find((x) => x.textContent.includes('\u2026')
    && !/rotate\(\s*-?[1-9]/.test(x.getAttribute('transform') || ''));
  const tb = t.getBoundingClientRect(), y = (tb.top + tb.bottom) / 2;
  const cell = [...f.querySelectorAll('.heatmapcell')].find((c) => { const b = c.getBoundingClientRect();
    return b.top < y && b.bottom > y; });
  cell.scrollIntoView({block: 'center'});
  const b = cell.getBoundingClientRect();
  return {name: t.textContent, x: b.left + b.width / 2, y: b.top + b.height / 2};
}"""


def _check_charts(lab, page, title: str, root: str, expect: int) -> dict:
    got = page.evaluate(CHARTS, root)
    print(title, "panel", round(got["panel"]), [(f["cls"], round(f["width"]), round(f["plot"]), f["title"])
                                               for f in got["figs"]])
    assert got["scrolls"] == [], got["scrolls"]  # no horizontal scrollbar anywhere in the panel
    assert len(got["figs"]) == expect, got["figs"]
    for f in got["figs"]:
        assert f["width"] <= got["panel"] - 3, f  # shrunk to the panel (less ipywidgets' margins)
        assert f["plot"] >= 60, f  # the margins leave the data room
        assert f["title"] and f["overlaps"] == [], f
    assert lab.axis_problems(page, f"#jp-right-stack {root}") == []  # labels clear the numbers; nothing cut
    return got


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


def test_class_support_numbers_and_the_maps_colour_bars_read_whole_in_the_sidebar_and_the_notebook(lab, tmp_path):
    page = lab.open_notebook(CELLS, name="narrow_legends")
    lab.run_all(page, timeout=240)
    lab.kernel_run(page, "assert card.wait(240) and uv.wait(240) and am.wait(240) and grid.wait(240) and rv.wait(240)"
                   " and sim.wait(240)", timeout=260)
    for title, root in SIDEBAR:
        lab.kernel_run(page, f"{title}_side = cw.show_in_sidebar({title}, title={title!r})")
        page.wait_for_function("([title, root]) => [...window.jupyterapp.shell.widgets('right')].some((w) => "
                               "w.title.label === title && w.node.querySelector(root))", arg=[title, root],
                               timeout=60_000)
        page.wait_for_timeout(500)
    seen = {}
    for title, root, ready in (
            ("card", ".cnnw-cc", ".cnnw-cc-classes-box:not([hidden]) .cnnw-cc-bar"),
            ("uv", ".cnnw-uv", ".cnnw-uv-maps[data-done='true'] .cnnw-colorbar:not([hidden])"),
            ("am", ".cnnw-am", ".cnnw-am-map[data-done='true'] .cnnw-colorbar:not([hidden])"),
            ("grid", ".cnnw-grid", ".cnnw-focus-bar:not([hidden])"),
            ("rv", ".cnnw-rv-outer", ".cnnw-rv-charts .bqplot"),
            ("mon", ".cnnw-monitor", ".cnnw-monitor-grad-norms .heatmapcell"),
            ("sim", ".cnnw-similarity", ".cnnw-similarity-cka .heatmapcell")):
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
            assert v["parts"] or title in ("rv", "mon", "sim"), v  # the legends are there (else: its charts)
            if title == "grid":  # the untrained model's predictions say nothing, and the view says so
                assert "is the model trained?" in (v["warning"] or "").lower(), v
            assert v["bad"] == [], v["bad"]
            if v["where"] == "sidebar":
                assert v["width"] <= 320, v  # really the narrow sidebar
        seen[title] = views
        if title in ("mon", "sim"):
            charts = _check_charts(lab, page, title, root, 7 if title == "mon" else 1)
            heatmap = ".cnnw-monitor-grad-norms" if title == "mon" else ".cnnw-similarity-cka"
            names = next(f["ticks"] for f in charts["figs"] if heatmap[1:] in f["cls"])
            assert (LONG if title == "mon" else "block3_dropout") not in names, names
            assert any("\u2026" in n for n in names), names  # elided on the axis
            cell = page.evaluate(HOVER_CELL, heatmap)
            full = LONG if title == "mon" else cell["name"].split("\u2026")[0] + "_dropout"  # block3 or block4
            page.mouse.move(cell["x"], cell["y"])  # bqplot's tooltip names the cell's layer whole
            page.wait_for_function("(full) => [...document.querySelectorAll('.bqplot_tooltip_div')].some((d) => "
                                   "d.textContent.includes(full) && getComputedStyle(d).opacity !== '0')",
                                   arg=full, timeout=10_000)
            page.mouse.move(0, 0)
            lab.screenshot(page, f"narrow_legends_{title}_heatmap_sidebar", selector=f"#jp-right-stack {heatmap}"
                           " >> visible=true")
    assert len(seen["card"][0]["parts"]) >= 3 and len(seen["uv"][0]["parts"]) == 8 and len(seen["am"][0]["parts"]) == 8
    assert len(seen["grid"][0]["parts"]) == 2  # the grid's bar and the enlarged channel's
    # save_png of a widget shown in a cell and in a sidebar panel that is not in front: the cell's view answers (the
    # hidden view's "this view shows nothing to save yet" came first and was the answer)
    from harness import png

    assert png.save(lab, page, "mon", tmp_path / "mon.png")
