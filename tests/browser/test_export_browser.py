"""Keep and share, in a real chromium: an exported HTML file opened from file:// with no server and no network, and
``save_png`` from a kernel equal to the canvas pixels.

The exported files are made in this process (widgets on the demo model, computed, then ``export_html``); the page
is opened straight from disk with every non-file request aborted and recorded, so a file that needed a server or a
CDN fails here.
"""
from __future__ import annotations

import re
import struct
import time
import zlib
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
HASH = """(sel) => { const c = document.querySelector(sel); const d = c.getContext('2d')
  .getImageData(0, 0, c.width, c.height).data; let h = 2166136261, lit = 0;
  for (let i = 0; i < d.length; i++) { h = Math.imul(h ^ d[i], 16777619) >>> 0; }
  for (let i = 0; i < d.length; i += 4) if (d[i] || d[i + 1] || d[i + 2]) lit++;
  return { hash: h, lit, size: c.width * c.height }; }"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import cnnwidget as cw
    from cnnwidget import demo

    out = tmp_path_factory.mktemp("export")
    data = demo.shapes(4, seed=0)
    probe = cw.ModelProbe(demo.load_model(), class_names=data.class_names)
    files, widgets = {}, []
    grid = cw.ActivationGrid(probe, data.images)
    amap = cw.AttributionMap(probe, data.images, ("saliency", "grad_cam"), curve_steps=4)
    monitor = cw.TrainingMonitor()
    for name, w in (("grid", grid), ("attribution", amap), ("monitor", monitor)):
        widgets.append(w)
        assert w.wait(180)
        # the grid also holds a second layer: choosing it in the file shows it; a third needs the kernel
        variants = [{"layer": "block2_conv"}] if name == "grid" else []
        files[name] = Path(w.export_html(out / f"{name}.html", variants=variants)["path"])
    yield files
    for w in widgets:
        w.close()


@pytest.fixture(scope="module")
def browser():
    """A chromium of its own (no JupyterLab needed), from the one Playwright driver the harnesses share."""
    import os

    from harness import playwright_shared

    driver = playwright_shared.acquire()
    try:
        b = driver.chromium.launch(executable_path=os.environ.get("CNNWIDGET_CHROMIUM", "/usr/bin/chromium"),
                                   args=ARGS)
        yield b
        b.close()
    finally:
        playwright_shared.release()


def _open(browser, path: Path):
    """The page of an exported file, with every request that is not file:/blob:/data: aborted and recorded, and the
    console errors and page errors collected."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    seen = {"network": [], "errors": []}

    def route(r):
        url = r.request.url
        if url.startswith(("file:", "blob:", "data:")):
            r.continue_()
        else:
            seen["network"].append(url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_function("window.cnnwExport && window.cnnwExport.ready", timeout=30_000)
    assert page.evaluate("window.cnnwExport.error || ''") == ""
    return page, seen


def test_exported_grid_opens_from_file_draws_hovers_and_switches_colour_maps(exported, browser):
    page, seen = _open(browser, exported["grid"])
    page.wait_for_function("document.querySelector('.cnnw-grid-canvas').width > 0", timeout=10_000)
    before = page.evaluate(HASH, ".cnnw-grid-canvas")
    assert before["lit"] > before["size"] // 4, "grid canvas blank"
    assert page.evaluate(HASH, ".cnnw-focus-canvas")["lit"] > 0
    # hover: a value under the pointer
    box = page.locator(".cnnw-grid-canvas").bounding_box()
    page.mouse.move(box["x"] + 20, box["y"] + 20)
    hover = page.locator(".cnnw-hover")
    hover.wait_for(state="visible", timeout=10_000)
    assert re.search(r"-?\d+\.\d+", hover.inner_text()), hover.inner_text()
    # colour map: drawn again in the page, with no kernel
    page.select_option(".cnnw-cmap-select", "gray")
    page.wait_for_function(f"({HASH})('.cnnw-grid-canvas').hash !== {before['hash']}", timeout=10_000)
    after = page.evaluate(HASH, ".cnnw-grid-canvas")
    assert after["lit"] > after["size"] // 4
    # a layer held in the file (export_html variants) is shown when chosen, and the first one again after it
    first = page.eval_on_selector(".cnnw-layer-select", "s => s.value")
    page.select_option(".cnnw-layer-select", "block2_conv")
    page.wait_for_function(f"({HASH})('.cnnw-grid-canvas').hash !== {after['hash']}", timeout=10_000)
    assert page.locator(".cnnw-grid").inner_text().count("32 channels") == 1
    assert page.eval_on_selector(".cnnw-layer-select", "s => s.value") == "block2_conv"
    page.select_option(".cnnw-layer-select", first)
    page.wait_for_function(f"({HASH})('.cnnw-grid-canvas').hash === {after['hash']}", timeout=10_000)
    # a change that needs the kernel is put back and said so, never shown under the new label
    layers = page.evaluate("[...document.querySelector('.cnnw-layer-select').options].map(o => o.value)")
    page.select_option(".cnnw-layer-select", layers[-1])
    page.wait_for_function(f"document.querySelector('.cnnw-layer-select').value === {first!r}", timeout=10_000)
    assert "kernel" in page.locator(".cnnw-error").inner_text()
    assert page.evaluate(HASH, ".cnnw-grid-canvas")["hash"] == after["hash"]
    # the PNG button works in the file too (what the view shows, composed in the page)
    with page.expect_download(timeout=20_000) as download:
        page.locator(".cnnw-grid .cnnw-save-png").first.click()
    png = Path(download.value.path()).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    assert seen["network"] == [], seen["network"]
    assert seen["errors"] == [], seen["errors"]
    page.close()


def test_exported_charts_and_ipywidgets_boxes_draw_from_the_installed_bundles(exported, browser):
    page, seen = _open(browser, exported["attribution"])
    page.wait_for_function("document.querySelectorAll('.bqplot svg .line, .bqplot svg path.line').length > 0"
                           " || document.querySelectorAll('.bqplot svg').length >= 2", timeout=15_000)
    assert page.locator(".bqplot").count() == 2
    canvases = page.locator(".cnnw-am-canvas")
    assert canvases.count() == 2
    before = page.evaluate(HASH, ".cnnw-am-canvas")
    assert before["lit"] > 0
    page.locator(".cnnw-am-opacity").fill("0.1")
    page.wait_for_function(f"({HASH})('.cnnw-am-canvas').hash !== {before['hash']}", timeout=10_000)
    assert seen["network"] == [] and seen["errors"] == [], seen
    page.close()
    page, seen = _open(browser, exported["monitor"])
    page.wait_for_function("document.querySelectorAll('.cnnw-monitor .widget-box, .cnnw-monitor .bqplot').length"
                           " > 0", timeout=15_000)
    assert page.locator(".cnnw-monitor .bqplot").count() >= 1
    # a control Python follows (the probe-step slider, linked to the monitor) is put back when changed, and said
    slider = page.evaluate("""async () => {
      const data = JSON.parse(document.getElementById('cnnw-export-data').textContent);
      const [id] = Object.entries(data.models).find(([, m]) => m.model_name === 'IntSliderModel');
      const model = await window.cnnwExport.manager.get_model(id);
      const before = model.get('value');
      model.set('max', before + 10);  // (an empty monitor's slider has max 0: a value above it is clamped)
      model.set('value', before + 5);
      model.save_changes();
      await new Promise((r) => setTimeout(r, 50));
      return [before, model.get('value')]; }""")
    assert slider[0] == slider[1]
    assert "kernel" in page.locator("#cnnw-export-notices").inner_text()
    assert seen["network"] == [] and seen["errors"] == [], seen
    page.close()


# -- save_png from a kernel ------------------------------------------------------------------------------------------

def png_rgba(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, RGBA bytes) of an 8-bit RGBA or RGB, non-interlaced PNG (what chromium's toBlob writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, ihdr = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
    width, height, depth, color, _, _, interlace = ihdr
    assert depth == 8 and color in (2, 6) and interlace == 0, ihdr
    bpp = 4 if color == 6 else 3
    raw = zlib.decompress(b"".join(chunks))
    stride = width * bpp
    out, prev = bytearray(), bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        if bpp == 4:
            out += line
        else:
            for x in range(width):
                out += line[x * 3:x * 3 + 3] + b"\xff"
    return width, height, bytes(out)


# The PNG decoded by the page's own decoder (exact for an opaque PNG, which save_png writes: what the view shows on
# its background) and kept as window.__png; png_rgba above decodes in Python, too slowly for a view-sized PNG.
DECODE = """async (b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const bitmap = await createImageBitmap(new Blob([bytes], {type: 'image/png'}),
    {colorSpaceConversion: 'none', premultiplyAlpha: 'none'});
  const c = document.createElement('canvas');
  c.width = bitmap.width; c.height = bitmap.height;
  const ctx = c.getContext('2d');
  ctx.drawImage(bitmap, 0, 0);
  window.__png = {w: c.width, h: c.height, data: ctx.getImageData(0, 0, c.width, c.height).data};
  let opaque = 0;
  for (let i = 3; i < window.__png.data.length; i += 4) if (window.__png.data[i] === 255) opaque++;
  return {width: c.width, height: c.height, opaque};
}"""

# Where things of the view are in window.__png (from the view's data-cnnw-png: the PNG's origin relative to the
# view and its scale), and what the PNG holds there.
PNG_CHECK = r"""([viewSel, canvasSel, barSel]) => {
  const P = window.__png;
  const view = document.querySelector(viewSel);
  const host = view.closest('[data-cnnw-png]');
  const o = JSON.parse(host.dataset.cnnwPng);
  const hr = host.getBoundingClientRect();
  const at = (x, y) => { const i = 4 * (y * P.w + x); return [P.data[i], P.data[i + 1], P.data[i + 2]]; };
  const X = (x) => Math.round((x - hr.left - o.left) * o.scale), Y = (y) => Math.round((y - hr.top - o.top) * o.scale);
  const box = (r) => ({x0: X(r.left), y0: Y(r.top), x1: X(r.right), y1: Y(r.bottom)});
  const each = (b, f) => { for (let y = Math.max(0, b.y0); y < Math.min(P.h, b.y1); y++)
    for (let x = Math.max(0, b.x0); x < Math.min(P.w, b.x1); x++) f(at(x, y)); };
  const near = (p, q, d) => Math.abs(p[0] - q[0]) + Math.abs(p[1] - q[1]) + Math.abs(p[2] - q[2]) < d;
  const bg = at(0, 0);
  const ink = (b) => { let n = 0; each(b, (p) => { if (!near(p, bg, 101)) n++; }); return n; };
  const out = {origin: o, size: [P.w, P.h], bg};
  // the canvas: its opaque pixels one for one at its place (a pixel either way tolerated for rounding)
  const c = view.querySelector(canvasSel);
  const cd = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const cb = box(c.getBoundingClientRect());
  out.canvas = {width: c.width, height: c.height, best: null};
  for (const dy of [0, -1, 1]) for (const dx of [0, -1, 1]) {
    let bad = 0, opaque = 0;
    for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
      const i = 4 * (y * c.width + x);
      if (cd[i + 3] !== 255) continue;
      opaque++;
      const px = cb.x0 + dx + x, py = cb.y0 + dy + y;
      if (px < 0 || py < 0 || px >= P.w || py >= P.h) { bad++; continue; }
      const p = at(px, py);
      if (p[0] !== cd[i] || p[1] !== cd[i + 1] || p[2] !== cd[i + 2]) bad++;
    }
    if (!out.canvas.best || bad < out.canvas.best.bad) out.canvas.best = {dx, dy, bad, opaque};
  }
  // the colour bar: its gradient (first and last stop's colours at its ends, many colours between) and its text
  const bar = view.querySelector(barSel);
  const g = bar.querySelector('.cnnw-colorbar-gradient');
  const stops = [...getComputedStyle(g).backgroundImage.matchAll(/rgb\((\d+), (\d+), (\d+)\)/g)]
    .map((m) => m.slice(1, 4).map(Number));
  const gb = box(g.getBoundingClientRect());
  const y = Math.round((gb.y0 + gb.y1) / 2);
  const row = [];
  for (let x = gb.x0 + 2; x <= gb.x1 - 3; x++) row.push(at(x, y).join(','));
  out.gradient = {first: at(gb.x0 + 2, y), last: at(gb.x1 - 3, y), firstStop: stops[0],
    lastStop: stops[stops.length - 1], distinct: new Set(row).size, width: gb.x1 - gb.x0};
  out.text = {};
  for (const part of ['label', 'lo', 'hi']) {
    const span = bar.querySelector('.cnnw-colorbar-' + part);
    out.text[part] = {text: span.textContent, ink: ink(box(span.getBoundingClientRect()))};
  }
  // the first select (the grid's layer, the map's image) as the text it shows
  const select = view.querySelector('select');
  out.select = {text: select.selectedOptions[0].text, ink: ink(box(select.getBoundingClientRect()))};
  // the charts: each line mark's colour found inside its figure's place in the PNG
  out.charts = [...view.querySelectorAll('.bqplot')].filter((f) => !f.parentElement.closest('.bqplot')).map((fig) => {
    const b = box(fig.getBoundingClientRect());
    const colours = [...new Set([...fig.querySelectorAll('svg path.line')].map((p) => getComputedStyle(p).stroke)
      .filter((s) => s.startsWith('rgb')))];
    return {box: b, ink: ink(b), lines: colours.map((css) => {
      const want = css.match(/\d+/g).slice(0, 3).map(Number);
      let n = 0;
      each(b, (p) => { if (near(p, want, 40)) n++; });
      return {css, pixels: n}; })};
  });
  return out;
}"""


# Each bqplot chart's plot area in window.__png and on the page: the colour most of its pixels have in the PNG (3 px
# inside its edges), its computed fill, and its box on the page (for a screenshot of it).
PLOT_AREAS = r"""(viewSel) => {
  const P = window.__png;
  const view = document.querySelector(viewSel);
  const host = view.closest('[data-cnnw-png]');
  const o = JSON.parse(host.dataset.cnnwPng);
  const hr = host.getBoundingClientRect();
  return [...view.querySelectorAll('.plotarea_background')].filter((r) => r.getBoundingClientRect().width > 0)
    .map((r) => {
      const b = r.getBoundingClientRect();
      const count = {};
      for (let y = Math.round((b.top + 3 - hr.top - o.top) * o.scale); y < (b.bottom - 3 - hr.top - o.top) * o.scale; y++)
        for (let x = Math.round((b.left + 3 - hr.left - o.left) * o.scale); x < (b.right - 3 - hr.left - o.left) * o.scale;
             x++) {
          const i = 4 * (y * P.w + x);
          const k = `${P.data[i]},${P.data[i + 1]},${P.data[i + 2]}`;
          count[k] = (count[k] || 0) + 1;
        }
      const png = Object.entries(count).sort((u, v) => v[1] - u[1])[0][0].split(',').map(Number);
      return {png, fill: getComputedStyle(r).fill, box: {x: b.left + 3, y: b.top + 3, width: b.width - 6,
                                                          height: b.height - 6}};
    });
}"""

# The colour most pixels of a base64 PNG have.
MOST = """async (b64) => { const img = new Image(); img.src = 'data:image/png;base64,' + b64; await img.decode();
  const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
  const x = c.getContext('2d'); x.drawImage(img, 0, 0); const d = x.getImageData(0, 0, c.width, c.height).data;
  const count = {}; for (let i = 0; i < d.length; i += 4) { const k = `${d[i]},${d[i + 1]},${d[i + 2]}`;
    count[k] = (count[k] || 0) + 1; }
  return Object.entries(count).sort((u, v) => v[1] - u[1])[0][0].split(',').map(Number); }"""


def _plot_areas_as_shown(page, view: str) -> list[dict]:
    """The charts' plot areas under ``view``: the colour of each in window.__png (the PNG just saved) and in a
    screenshot of the page (what a person sees), and its computed fill."""
    import base64

    page.evaluate("(v) => document.querySelector(v).querySelector('.plotarea_background').scrollIntoView()", view)
    page.wait_for_timeout(500)
    areas = page.evaluate(PLOT_AREAS, view)
    for area in areas:
        shot = page.screenshot(clip=area["box"])
        area["page"] = page.evaluate(MOST, base64.b64encode(shot).decode())
    return areas


def _save_png(lab, page, widget: str, target: Path) -> dict:
    """``widget.save_png(target)`` from the kernel; the PNG decoded in the page (window.__png)."""
    import base64

    lab.kernel_run(page, f"_f = {widget}.save_png({str(target)!r})")
    deadline = time.monotonic() + 60
    while lab.kernel_run(page, "print(_f.done())") != "True":  # resolved once the file is written whole
        assert time.monotonic() < deadline, f"no PNG written for {widget}"
        time.sleep(0.1)
    assert target.exists(), lab.kernel_run(page, "print(_f.exception())")
    info = page.evaluate(DECODE, base64.b64encode(target.read_bytes()).decode())
    assert info["opaque"] == info["width"] * info["height"], info  # drawn on the view's background
    return info


# The save_png tests share one notebook and its kernel (the ``png_page`` fixture): a FilterGrid shown and one not,
# an ActivationGrid and an AttributionMap, each shown in its own cell.
PNG_CELLS = [
    "import cnnwidget as cw\nfrom cnnwidget import demo\nmodel = demo.load_model()\ndata = demo.shapes(4, seed=0)\n"
    "g = cw.FilterGrid(model)\nhidden = cw.FilterGrid(model)\n"
    "probe = cw.ModelProbe(model, class_names=data.class_names)\n"
    "grid = cw.ActivationGrid(probe, data.images)\n"
    "amap = cw.AttributionMap(probe, data.images, ('saliency', 'grad_cam'), curve_steps=4)",
    "g",
    "grid",
    "amap",
]


@pytest.fixture(scope="module")
def png_page(lab):
    page = lab.open_notebook(PNG_CELLS, name="png_export")
    lab.run_all(page, timeout=240)
    with lab.kept(page):
        yield page


def test_save_png_writes_the_canvas_pixels_and_needs_a_shown_view(lab, png_page, tmp_path):
    target = tmp_path / "filters.png"
    page = png_page
    lab.wait_for(page, ".cnnw-filter-canvas")
    page.wait_for_function("document.querySelector('.cnnw-filter-canvas').width > 0", timeout=60_000)
    # the toolbar button (one in the FilterGrid's cell; the other views have their own)
    assert page.locator(".jp-CodeCell:has(.cnnw-filters) .cnnw-save-png").count() == 1
    out = lab.kernel_run(page, "try:\n    hidden.save_png('x.png')\nexcept Exception as e:\n    print(type(e).__name__, e)")
    assert "ExportError" in out and "no displayed view" in out
    lab.kernel_run(page, f"future = g.save_png({str(target)!r})")
    deadline = time.monotonic() + 30
    # the future resolves once the file is written whole (the file exists, empty, a moment before: read then, it
    # failed the PNG signature check once under load)
    while lab.kernel_run(page, "print(future.done())") != "True":
        assert time.monotonic() < deadline, "no PNG written"
        time.sleep(0.1)
    width, height, rgba = png_rgba(target.read_bytes())  # decoded here, not by the browser
    shown = page.evaluate("""() => { const c = document.querySelector('.cnnw-filter-canvas');
      const o = JSON.parse(c.closest('[data-cnnw-png]').dataset.cnnwPng);
      const h = c.closest('[data-cnnw-png]').getBoundingClientRect(), r = c.getBoundingClientRect();
      return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data),
              (r.left - h.left - o.left) * o.scale, (r.top - h.top - o.top) * o.scale, o.scale]; }""")
    cw_, ch_, pixels, x0, y0, scale = shown
    assert scale == 1, shown[3:]
    # the page (title, text, the histogram chart) is around the canvas; the canvas's own pixels are copied one for
    # one where it is drawn (its transparent gaps show the view's background)
    assert width >= cw_ and height >= ch_
    best = None
    for dy in (0, -1, 1):
        for dx in (0, -1, 1):
            x, y = round(x0) + dx, round(y0) + dy
            bad = opaque = 0
            for row in range(ch_):
                start = 4 * ((y + row) * width + x)
                got = rgba[start:start + 4 * cw_]
                want = pixels[4 * row * cw_:4 * (row + 1) * cw_]
                for i in range(0, 4 * cw_, 4):
                    if want[i + 3] == 255:
                        opaque += 1
                        bad += got[i:i + 3] != bytes(want[i:i + 3])
            if best is None or bad < best[0]:
                best = (bad, opaque, dx, dy)
            if bad == 0:
                break
        if best[0] == 0:
            break
    assert best[0] == 0 and best[1] > cw_ * ch_ // 4, best
    assert "'width'" in lab.kernel_run(page, "print(future.result(5))")


def test_save_png_holds_the_colour_bars_their_text_and_the_charts(lab, png_page, tmp_path):
    """The PNG of an ActivationGrid and of an AttributionMap holds, besides the canvases (pixel for pixel), each
    colour bar's gradient (its first and last colours at its ends) and its label and end values as text at the
    bar's place, and the AttributionMap's deletion/insertion charts with their curves in the methods' colours."""
    page = png_page
    lab.kernel_run(page, "assert grid.wait(180) and amap.wait(240)", timeout=260)
    page.wait_for_function("() => document.querySelector('.cnnw-grid-canvas').width > 0"
                           " && !document.querySelector('.cnnw-grid-bar').hidden"
                           " && document.querySelectorAll('.cnnw-am-map[data-done=\"true\"]').length === 2"
                           " && !document.querySelector('.cnnw-am-bar').hidden"
                           " && document.querySelectorAll('.cnnw-am-charts .bqplot path.line').length >= 4",
                           timeout=120_000)
    page.wait_for_timeout(500)  # the charts' transitions
    for widget, view, canvas, bar in (("grid", ".cnnw-grid", ".cnnw-grid-canvas", ".cnnw-grid-bar"),
                                      ("amap", ".cnnw-am-outer", ".cnnw-am-canvas", ".cnnw-am-bar")):
        info = _save_png(lab, page, widget, tmp_path / f"{widget}.png")
        got = page.evaluate(PNG_CHECK, [f".jp-Notebook {view}", canvas, bar])
        summary = {k: got[k] for k in ("origin", "size", "canvas", "gradient", "text", "select")}
        print(widget, info, summary)
        assert got["canvas"]["best"]["bad"] == 0 and got["canvas"]["best"]["opaque"] > 0, summary
        g = got["gradient"]
        assert max(abs(a - b) for a, b in zip(g["first"], g["firstStop"])) <= 16, g
        assert max(abs(a - b) for a, b in zip(g["last"], g["lastStop"])) <= 16, g
        assert g["distinct"] >= min(40, g["width"] // 3), g
        for part, t in got["text"].items():
            assert t["text"] and t["ink"] >= 8, (part, t)  # the words are drawn where the page shows them
        assert got["select"]["ink"] >= 20, got["select"]  # a setting drawn as its text (not the control)
        lab.screenshot(page, f"png_legends_{widget}_page", selector=f".jp-Notebook {view}")
        if widget == "amap":
            # the plot areas as the page shows them (issue 13: "light grey on the page, white in the PNG")
            areas = _plot_areas_as_shown(page, f".jp-Notebook {view}")
            print("plot areas", areas)
            assert len(areas) == 2, areas
            for area in areas:
                assert max(abs(a - b) for a, b in zip(area["png"], area["page"])) <= 2, area
            assert len(got["charts"]) == 2, got["charts"]
            for chart in got["charts"]:
                lines = {line["css"]: line["pixels"] for line in chart["lines"]}
                assert len(lines) == 3, chart  # saliency's and Grad-CAM's curves, and the random map's (grey)
                assert lines.pop("rgb(158, 158, 158)") >= 15, chart
                # one curve may lie under the other (same scores); at least one shows, as on the page
                assert max(lines.values()) >= 15, chart
