"""The AttributionMap view in a real JupyterLab (chromium), on the demo model.

One notebook page is opened and run once (the module-scoped ``page`` fixture) and shared by the tests
(``lab.kept``). Its cell waits for every map and curve, so the tests start from a finished view.
"""
from __future__ import annotations

import base64
import json
import re
import time

import numpy as np
import pytest

from harness import pixels

pytestmark = pytest.mark.timeout(300)

CELLS = [
    "import cnnwidget as cw\nfrom cnnwidget import demo\n"
    "data = demo.shapes(3, seed=1234)\n"
    "amap = cw.AttributionMap(cw.ModelProbe(demo.load_model(), class_names=data.class_names), data.images,\n"
    "                         ('saliency', 'integrated_gradients', 'grad_cam', 'occlusion', 'lime'),\n"
    "                         curve_steps=4, lime={'samples': 64})\n"
    "amap.wait(120)\namap",
]
ROOT = ".jp-Notebook .cnnw-am"
CANVAS = ".jp-Notebook .cnnw-am-canvas"
CELL = ".jp-Notebook .jp-CodeCell:has(.cnnw-am) .jp-OutputArea"


def _wait_running(page, value: bool, timeout: float = 30):
    page.wait_for_function(f"(sel) => document.querySelector(sel).dataset.running === '{str(value).lower()}'",
                           arg=ROOT, timeout=timeout * 1000)


def _heat_index(lo: float, hi: float, sign: str) -> np.ndarray:
    """Byte -> colour-map index of one map under ``sign`` on its own scale (normalization "map"), as
    js/attribution_map.js draws it: value v = lo + (hi - lo) q / 255; the part the sign keeps (v, -v, |v|, each
    clipped at 0, or v itself for "both"); t = that / M, or (v / M + 1) / 2 for "both" around 0; index round(255 t)."""
    scale = {"positive": max(hi, 0.0), "negative": max(-lo, 0.0)}.get(sign, max(abs(lo), abs(hi)))
    lut = np.zeros(256, np.int64)
    for q in range(256):
        v = lo + ((hi - lo) * q) / 255
        v = {"positive": max(v, 0.0), "negative": max(-v, 0.0), "absolute": abs(v), "both": v}[sign]
        t = 0.5 if sign == "both" else 0.0
        if scale > 0:
            t = (v / scale + 1) / 2 if sign == "both" else v / scale
        lut[q] = min(255, max(0, pixels.js_round(255 * t)))
    return lut


def _blend(picture: np.ndarray, heat: np.ndarray, alpha: float) -> np.ndarray:
    """The heat colour over the picture at ``alpha``, rounded as a Uint8ClampedArray stores it (halves to even)."""
    return np.clip(np.rint(picture + (heat - picture) * alpha), 0, 255).astype(np.uint8)


def _canvases(page, selector: str = CANVAS) -> list[np.ndarray]:
    """Every canvas matching ``selector`` as uint8 (height, width, 4)."""
    out = page.evaluate("""(sel) => [...document.querySelectorAll(sel)].map((c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let s = ''; for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode(...d.subarray(i, i + 0x8000));
        return [c.width, c.height, btoa(s)]; })""", selector)
    return [np.frombuffer(base64.b64decode(b), np.uint8).reshape(h, w, 4) for w, h, b in out]


SENT = ("import base64 as _b, json as _j, numpy as _np\n"
        "_v = amap.view\n"
        "print(_j.dumps([_b.b64encode(_v.map_bytes).decode(), _b.b64encode(_v.map_ranges).decode(),\n"
        "                _b.b64encode(_v.image).decode(), _v.maps_meta,\n"
        "                [[int(i) for i in _np.unravel_index(f(amap.maps[m]), amap.maps[m].shape)]\n"
        "                 for m in amap.methods for f in (_np.argmax, _np.argmin)]]))")


@pytest.fixture(scope="module")
def page(lab):
    page = lab.open_notebook(CELLS, name="attribution_map_browser")
    lab.run_all(page)
    lab.wait_for(page, CANVAS)
    _wait_running(page, False, timeout=120)
    page.wait_for_function("(sel) => [...document.querySelectorAll(sel)].every((f) => f.dataset.done === 'true')",
                           arg=".jp-Notebook .cnnw-am-map")
    with lab.kept(page):
        yield page


def test_every_map_is_drawn_over_the_image_with_its_scores(lab, page):
    root = page.locator(ROOT).first
    assert root.locator(".cnnw-am-map").count() == 5
    hashes = set()
    for i in range(5):
        px = lab.canvas_pixels(page, CANVAS, nth=i)
        assert (px["width"], px["height"]) == (192, 192) and px["non_transparent"] == 192 * 192
        assert px["distinct_colors"] > 20, f"map {i} looks blank: {px}"
        hashes.add(px["hash"])
    assert len(hashes) == 5
    labels = root.locator(".cnnw-am-label").all_inner_texts()
    assert labels[0] == "Saliency" and labels[2].startswith("Grad-CAM")
    assert all(re.fullmatch(r"deletion \d\.\d{3} · insertion \d\.\d{3}", s)
               for s in root.locator(".cnnw-am-score").all_inner_texts())
    options = root.locator(".cnnw-am-class option").all_inner_texts()
    assert len(options) == 5 and re.fullmatch(r"\w+ — \d+\.\d%", options[0])
    # the curves beside the view: one line per method in each chart
    curves = page.locator(".jp-Notebook .jp-CodeCell:has(.cnnw-am) .bqplot path.line")
    assert curves.count() >= 10
    lab.screenshot(page, "am_maps", selector=CELL)


@pytest.mark.parametrize("sign, opacity, cmap", [("positive", 0.6, "magma"), ("both", 0.35, "coolwarm"),
                                                 ("negative", 1.0, "viridis"), ("absolute", 0.8, "gray")])
def test_each_map_is_drawn_as_the_blend_of_image_and_heat_colour_that_opacity_and_sign_give(lab, page, sign,
                                                                                             opacity, cmap):
    """Every map pixel (the canvas at the middle of its zoomed block), and by name the map's argmax and argmin,
    equals the input picture blended with colormap[heat index of its byte] at the opacity: the reference is the
    blend rule of js/attribution_map.js re-done here from the bytes sent, with js/colormaps.js's table."""
    lab.kernel_run(page, f"amap.sign, amap.opacity, amap.colormap = {sign!r}, {opacity!r}, {cmap!r}")
    maps_b64, ranges_b64, image_b64, meta, extremes = json.loads(lab.kernel_run(page, SENT))
    k, h, w = meta["k"], meta["h"], meta["w"]
    assert meta["done"] == [True] * k
    maps = np.frombuffer(base64.b64decode(maps_b64), np.uint8).reshape(k, h, w)
    ranges = np.frombuffer(base64.b64decode(ranges_b64), "<f4").reshape(k, 2)
    picture = np.frombuffer(base64.b64decode(image_b64), np.uint8).reshape(h, w, 3).astype(np.float64)
    table = pixels.colormap(cmap).astype(np.float64)
    expected = [_blend(picture, table[_heat_index(float(ranges[i, 0]), float(ranges[i, 1]), sign)[maps[i]]], opacity)
                for i in range(k)]
    deadline = time.monotonic() + 10  # the redraw follows the kernel's message on the next animation frame
    while True:
        drawn = _canvases(page)
        zoom = drawn[0].shape[0] // h
        sampled = [d[zoom // 2::zoom, zoom // 2::zoom] for d in drawn]
        wrong = [int((s[..., :3] != e).any(axis=-1).sum()) for s, e in zip(sampled, expected)]
        if not any(wrong) or time.monotonic() > deadline:
            break
        page.wait_for_timeout(50)
    assert len(drawn) == k and all(d.shape == (h * zoom, w * zoom, 4) for d in drawn)
    for i in range(k):
        for y, x in extremes[2 * i:2 * i + 2]:
            got, want = sampled[i][y, x, :3].tolist(), expected[i][y, x].tolist()
            assert got == want, f"map {i} ({sign}, {opacity}, {cmap}) at its extreme ({y}, {x}): {got} != {want}"
    assert not any(wrong), f"{sign}/{opacity}/{cmap}: pixels off the blend in each map: {wrong}"
    assert all((s[..., 3] == 255).all() for s in sampled)
    lab.kernel_run(page, "amap.sign, amap.opacity, amap.colormap = 'absolute', 0.6, 'magma'")


def test_opacity_and_sign_redraw_in_the_browser_while_the_kernel_is_frozen(lab, page):
    """SIGSTOP the kernel, move the opacity slider and switch the sign: the canvases change with no message from
    the kernel; after SIGCONT it only echoes the browser's updates (see the ActivationGrid test for why)."""
    root = page.locator(ROOT).first
    before = lab.canvas_pixels(page, CANVAS, nth=3)
    with lab.ws_traffic(page, settle=0.5) as t:
        with lab.frozen_kernel(page):
            frozen_at = page.evaluate("() => performance.now()")
            root.locator(".cnnw-am-opacity").fill("0.2")
            deadline = time.monotonic() + 10
            while (faint := lab.canvas_pixels(page, CANVAS, nth=3))["hash"] == before["hash"]:
                assert time.monotonic() < deadline, "the opacity slider did not change the canvas"
                page.wait_for_timeout(50)
            root.locator(".cnnw-am-sign").select_option("both")
            deadline = time.monotonic() + 10
            while lab.canvas_pixels(page, CANVAS, nth=3)["hash"] == faint["hash"]:
                assert time.monotonic() < deadline, "the sign choice did not change the canvas"
                page.wait_for_timeout(50)
            assert root.locator(".cnnw-am-opacity-value").inner_text() == "20%"
            resumed_at = page.evaluate("() => performance.now()")
        deadline = time.monotonic() + 30
        while lab.kernel_run(page, "print(amap.opacity, amap.sign)").split() != ["0.2", "both"]:
            assert time.monotonic() < deadline, "the kernel never saw the browser's changes"
            page.wait_for_timeout(100)
    assert [r for r in t.received if frozen_at <= r["t"] <= resumed_at] == []
    # The kernel echoes, and the new sign's scores and curves (the curves rank pixels as the map is shown; the
    # charts' lines carry theirs as buffers) may follow, but the maps are not sent again: no update of the view's
    # own model carries a buffer.
    am_id = lab.kernel_run(page, "print(amap.model_id)")
    assert all(r["nbuffers"] == 0 for r in t.comm_msgs("in", comm_id=am_id, method="update")), t
    lab.screenshot(page, "am_faint_both", selector=CELL)
    lab.kernel_run(page, "amap.opacity, amap.sign = 0.6, 'absolute'\namap.wait(120)")


def test_the_random_map_is_the_reference_row_and_the_grey_dashed_curves(lab, page):
    """The scores of a map that ranks pixels at random are shown under the maps, and its curves beside the
    methods' in each chart, grey and dashed; switching the sign re-scores the signed maps (LIME) only."""
    root = page.locator(ROOT).first
    row = root.locator(".cnnw-am-reference")
    assert row.is_visible()
    want = lab.kernel_run(page, "print(f\"deletion {amap.reference['deletion']:.3f} · insertion "
                                "{amap.reference['insertion']:.3f}\")")
    assert row.inner_text().strip() == f"random map (reference): {want}"
    dashed = page.locator(".jp-Notebook .jp-CodeCell:has(.cnnw-am) .bqplot path.line[style*='stroke-dasharray: 10']")
    assert dashed.count() >= 2, "no dashed reference curve in the charts"
    scores = root.locator(".cnnw-am-score")
    before = scores.all_inner_texts()
    lab.kernel_run(page, "amap.sign = 'positive'\namap.wait(120)")
    page.wait_for_function("([sel, old]) => document.querySelectorAll(sel)[4].textContent !== old",
                           arg=[".jp-Notebook .cnnw-am-score", before[4]], timeout=30000)
    after = scores.all_inner_texts()
    assert after[0] == before[0] and after[2] == before[2]  # saliency, Grad-CAM: no negative values
    assert row.inner_text().strip() == f"random map (reference): {want}"
    lab.screenshot(page, "am_reference", selector=CELL)
    lab.kernel_run(page, "amap.sign = 'absolute'\namap.wait(120)")


def test_cancel_on_the_page_stops_lime_and_the_other_maps_stay(lab, page):
    root = page.locator(ROOT).first
    lab.kernel_run(page, "amap.set_options('lime', samples=40000)")
    _wait_running(page, True)
    page.wait_for_function("(sel) => /LIME/.test(document.querySelector(sel).textContent)",
                           arg=".jp-Notebook .cnnw-am-status")
    cancel = root.locator(".cnnw-am-cancel")
    assert cancel.is_enabled()
    cancel.click()
    clicked = time.monotonic()
    _wait_running(page, False, timeout=120)  # the event; 40000 samples would run for minutes without the Cancel
    print(f"LIME stopped {time.monotonic() - clicked:.2f} s after the click on Cancel")
    assert root.locator(".cnnw-am-status").inner_text().startswith("cancelled")
    done = [root.locator(".cnnw-am-map").nth(i).get_attribute("data-done") for i in range(5)]
    assert done == ["true", "true", "true", "true", "false"]
    assert root.locator(".cnnw-am-score").nth(4).inner_text() == "not computed: Compute"
    assert lab.kernel_run(page, "print(amap.job.cancelled, amap.job.running, sorted(amap.maps))") == (
        "True False ['grad_cam', 'integrated_gradients', 'occlusion', 'saliency']")
    assert root.locator(".cnnw-error").is_hidden() and cancel.is_disabled()
    assert lab.canvas_pixels(page, CANVAS, nth=0)["distinct_colors"] > 20
    lab.screenshot(page, "am_cancelled", selector=CELL)


def test_images_far_outside_the_input_range_show_a_visible_warning(lab, page):
    """0..255 floats with the default input_range [0, 1]: the view shows core.images.range_note in a box of its own
    (the base's ``warning`` trait), as well as the Python warning. (Shown in the sidebar: a cell is not needed.)"""
    lab.kernel_run(page, "import warnings\nwith warnings.catch_warnings():\n    warnings.simplefilter('ignore')\n"
                         "    loud = cw.AttributionMap(amap.probe, data.images * 255.0, ('saliency',), curves=False)\n"
                         "loud.wait(60)\nside = cw.show_in_sidebar(loud, 'loud images')")
    try:
        box = page.locator(".cnnw-am .cnnw-warning").filter(has_text="far outside input_range")
        box.first.wait_for(state="visible", timeout=30000)
        assert "divide them by 255" in box.first.inner_text()
        assert page.locator(".jp-Notebook .cnnw-am .cnnw-warning:visible").count() == 0  # amap's are in range
        lab.screenshot(page, "am_range_warning")
    finally:
        lab.kernel_run(page, "side.close()\nloud.close()")
