"""The Explorer with its kernel shut down (issue 13: "with the kernel stopped, browser-only controls still work"): in
a real JupyterLab, once the activations panel has drawn, the notebook's kernel is shut down as the Kernel menu does;
the grid's colour map and scale then still redraw the grid in the page, and its PNG button still saves a PNG, with
no console error (ipywidgets logged "Could not send widget sync message" for each change: the views' models now keep
a change in the page when the kernel is gone, and say so once in the view). Before that, the Explorer's PNG is
saved from the kernel and its size printed (cropped to what the Explorer shows).

A click in the Explorer's layer list needs the kernel (its panels compute the new layer): with the kernel gone it
is put back, and the Explorer's error line says why, by the rule the exported HTML uses (the Explorer syncs its
kernel traits; js/export_tools.js cnnwKernelGuard). Before that fix the list showed the clicked layer, and the
channel box its channel count, over panels that still showed the old layer. The grid's own layer picker is put
back the same way (every widget syncs its kernel traits, from the widget base)."""
from __future__ import annotations

import time

import pytest

pytestmark = [pytest.mark.timeout(400), pytest.mark.slow]

CELLS = [
    "import cnnwidget as cw\nfrom cnnwidget import demo\ndata = demo.shapes(3, seed=2)\n"
    "ex = cw.Explorer(demo.load_model(), data.images, class_names=data.class_names,\n"
    "                 panel_options={'featurevis': {'steps': 16}})\nex",
]
ROOT = ".jp-Notebook .cnnw-explorer"
GRID = f"{ROOT} .cnnw-grid-canvas"


def _changed(lab, page, old: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while (px := lab.canvas_pixels(page, GRID))["hash"] == old:
        assert time.monotonic() < deadline, f"the grid still shows the same picture after {timeout} s"
        page.wait_for_timeout(50)
    return px


def test_with_the_kernel_shut_down_the_grids_colour_map_and_scale_still_redraw_it_and_a_layer_click_is_put_back(
        lab, tmp_path):
    page = lab.open_notebook(CELLS, name="explorer_kernel_stopped")
    lab.run_all(page, timeout=240)
    lab.wait_for(page, GRID, timeout=120)
    lab.kernel_run(page, "assert ex.wait(180)", timeout=200)
    page.wait_for_function("(s) => document.querySelector(s).width > 0", arg=GRID, timeout=60_000)
    # the Explorer's PNG, cropped to what it shows (measured; 1704x4090 and mostly white before the crop)
    target = tmp_path / "explorer.png"
    lab.kernel_run(page, f"_f = ex.save_png({str(target)!r})")
    t0 = time.monotonic()
    deadline = t0 + 60
    while not target.exists():  # the page answers once the kernel is idle
        assert time.monotonic() < deadline, "no PNG of the Explorer written"
        time.sleep(0.1)
    took = time.monotonic() - t0
    out = lab.kernel_run(page, "print(_f.result(10))")
    shown = page.evaluate("(s) => document.querySelector(s).getBoundingClientRect().toJSON()", ROOT.split(" ", 1)[1])
    print(f"Explorer PNG (request to file {took:.2f} s):", out, "on the page:", shown)

    lab.shutdown_kernel(page)
    page.wait_for_timeout(1000)
    noise = lab.console_errors()  # JupyterLab's, as its kernel goes (not a widget's doing)
    print("console while the kernel shut down:", noise)
    assert not [e for e in noise if "cnnw" in e.lower()], noise

    before = lab.canvas_pixels(page, GRID)
    assert before["non_transparent"] > before["width"] * before["height"] // 4, before
    page.select_option(f"{ROOT} .cnnw-cmap-select", "gray")
    gray = _changed(lab, page, before["hash"])
    assert gray["distinct_colors"] > 8, gray
    # grey tiles: the drawn pixels have r == g == b (read back, not the select's value), but for the selected
    # channel's orange outline
    grey, drawn = page.evaluate("""(s) => { const c = document.querySelector(s);
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let grey = 0, drawn = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3]) { drawn++; if (d[i] === d[i + 1] && d[i + 1] === d[i + 2]) grey++; }
      }
      return [grey, drawn]; }""", GRID)
    assert grey >= 0.97 * drawn, (grey, drawn)
    page.select_option(f"{ROOT} .cnnw-norm-select", "layer")
    _changed(lab, page, gray["hash"])
    assert page.locator(f"{ROOT} .cnnw-grid-bar").get_attribute("data-label") == "activation value, whole page"
    # the grid's PNG button works with no kernel: the download is a PNG of what the grid shows
    for name, button in (("grid", f"{ROOT} .cnnw-grid .cnnw-save-png"), ("Explorer", f"{ROOT} .cnnw-save-png")):
        t0 = time.monotonic()
        with page.expect_download(timeout=30_000) as download:
            page.locator(button).first.click()
        data = open(download.value.path(), "rb").read()
        print(f"{name} PNG button, no kernel: {len(data)} bytes in {time.monotonic() - t0:.2f} s (click to download)")
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    # the change was kept in the page (not sent to a kernel that is gone), and the view says what that means
    note = page.locator(f"{ROOT} .cnnw-grid-outer").locator("xpath=..").locator(".cnnw-no-kernel")
    assert note.count() == 1 and "No running kernel" in note.inner_text()

    # a click in the Explorer's layer list: put back, and the Explorer's error line says why
    shown = "(s) => { const r = document.querySelector(s); return { layer: r.dataset.layer, " \
            "pressed: [...r.querySelectorAll(':scope .cnnw-x-layers .cnnw-x-layer[aria-pressed=true]')]" \
            ".map((b) => b.dataset.layer), count: r.querySelector('.cnnw-x-channel').max, " \
            "error: r.querySelector(':scope > .cnnw-error').textContent }; }"
    before = page.evaluate(shown, ROOT)
    assert before["pressed"] == [before["layer"]] and before["error"] == "", before
    other = page.locator(f"{ROOT} .cnnw-x-layers .cnnw-x-layer:not([aria-pressed='true'])").first
    clicked = other.get_attribute("data-layer")
    other.click()
    page.wait_for_function("(s) => document.querySelector(s).querySelector(':scope > .cnnw-error').textContent"
                           ".startsWith('layer: needs the kernel')", arg=ROOT, timeout=10_000)
    page.wait_for_timeout(200)  # a few frames: the list is drawn from the model after each change
    after = page.evaluate(shown, ROOT)
    assert after["layer"] == before["layer"] != clicked, (before, after, clicked)
    assert after["pressed"] == before["pressed"] and after["count"] == before["count"], (before, after)
    assert "not running" in after["error"] and page.locator(f"{ROOT} > .cnnw-error").is_visible(), after
    banner = page.locator(".jp-Notebook .cnnw-no-kernel:has(+ .cnnw-explorer)")
    assert banner.count() == 1 and "No running kernel" in banner.inner_text()
    print("layer click with no kernel:", clicked, "->", after)
    # every widget syncs its kernel traits (the base does): the grid's own layer picker is put back too
    select = page.locator(f"{ROOT} .cnnw-grid .cnnw-layer-select")
    was = select.input_value()
    options = [o for o in select.locator("option").evaluate_all("(os) => os.map((o) => o.value)") if o != was]
    select.select_option(options[0])
    grid_error = f"{ROOT} .cnnw-grid .cnnw-error"
    page.wait_for_function("(s) => document.querySelector(s).textContent.startsWith('layer: needs the kernel')",
                           arg=grid_error, timeout=10_000)
    page.wait_for_timeout(200)
    assert select.input_value() == was, (was, options[0], select.input_value())
    errors = lab.console_errors(clear=False)
    assert errors == [], errors
