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


def test_save_png_writes_the_canvas_pixels_and_needs_a_shown_view(lab, tmp_path):
    target = tmp_path / "filters.png"
    page = lab.open_notebook([
        "import cnnwidget as cw\nfrom cnnwidget import demo\ng = cw.FilterGrid(demo.load_model())\n"
        "hidden = cw.FilterGrid(demo.load_model())",
        "g",
    ])
    lab.run_all(page, timeout=240)
    lab.wait_for(page, ".cnnw-filter-canvas")
    page.wait_for_function("document.querySelector('.cnnw-filter-canvas').width > 0", timeout=60_000)
    assert page.locator(".cnnw-save-png").count() == 1  # the toolbar button
    out = lab.kernel_run(page, "try:\n    hidden.save_png('x.png')\nexcept Exception as e:\n    print(type(e).__name__, e)")
    assert "ExportError" in out and "no displayed view" in out
    lab.kernel_run(page, f"future = g.save_png({str(target)!r})")
    deadline = time.monotonic() + 30
    while not target.exists():
        assert time.monotonic() < deadline, "no PNG written"
        time.sleep(0.1)
    width, height, rgba = png_rgba(target.read_bytes())
    shown = page.evaluate("""() => { const c = document.querySelector('.cnnw-filter-canvas');
      return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }""")
    assert (width, height) == (shown[0], shown[1])
    assert rgba == bytes(shown[2])
    assert "'width'" in lab.kernel_run(page, "print(future.result(5))")
