"""The AttentionMap view in a real JupyterLab (chromium), on the demo hybrid model: head maps and rollout drawn
over the image, a click on a patch changes the head maps, the head-fusion select recomputes the rollout, and a
model with no attention site shows its message. Console errors fail the tests (the lab harness checks them)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(300)

CELLS = [
    "import cnnwidget as cw\nfrom cnnwidget import demo\n"
    "data = demo.shapes(3, seed=1234)\n"
    "amap = cw.AttentionMap(demo.load_hybrid_model(), data.images)\n"
    "amap.wait(120)\namap",
    "plain = cw.AttentionMap(demo.load_model(), data.images)\nplain",
]
ROOT = ".jp-Notebook .cnnw-at"
HEADS = ".jp-Notebook .cnnw-at-head-map"
QUERY = ".jp-Notebook .cnnw-at-query"
ROLLOUT = ".jp-Notebook .cnnw-at-rollout"
CELL = ".jp-Notebook .jp-CodeCell:has(.cnnw-at-mha) .jp-OutputArea"


@pytest.fixture(scope="module")
def page(lab):
    page = lab.open_notebook(CELLS, name="attention_map_browser")
    lab.run_all(page)
    lab.wait_for(page, HEADS)
    page.wait_for_function("(sel) => document.querySelector(sel).dataset.running === 'false'", arg=ROOT,
                           timeout=120_000)
    with lab.kept(page):
        yield page


def test_heads_and_rollout_are_drawn_over_the_image(lab, page):
    root = page.locator(ROOT).first
    assert root.locator(".cnnw-at-head-map").count() == 4
    hashes = set()
    for i in range(4):
        px = lab.canvas_pixels(page, HEADS, nth=i)
        assert px["non_transparent"] == px["width"] * px["height"] and px["distinct_colors"] > 20, px
        hashes.add(px["hash"])
    assert len(hashes) == 4  # four heads, four different maps
    assert lab.canvas_pixels(page, ROLLOUT)["distinct_colors"] > 20
    assert root.locator(".cnnw-at-layer option").all_inner_texts() == [
        "block1_attention · attention · 4 heads", "block2_attention · attention · 4 heads"]
    assert "rollout · mean over heads" in root.locator(".cnnw-at-rollout-caption").inner_text()
    lab.screenshot(page, "attention_heads", selector=CELL)


def test_a_click_on_a_patch_changes_the_head_maps(lab, page):
    heads = page.locator(".jp-Notebook .cnnw-at-heads").first
    before_query = heads.get_attribute("data-query")
    before = lab.canvas_pixels(page, HEADS, nth=0)["hash"]
    box = page.locator(QUERY).first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.06, box["y"] + box["height"] * 0.06)  # the top-left patch
    page.wait_for_function("([sel, old]) => document.querySelector(sel).dataset.query !== old",
                           arg=[".jp-Notebook .cnnw-at-heads", before_query], timeout=30_000)
    assert heads.get_attribute("data-query") == "0"
    assert lab.kernel_run(page, "print(amap.query)") == "0"
    page.wait_for_timeout(200)
    assert lab.canvas_pixels(page, HEADS, nth=0)["hash"] != before
    assert "patch 0 (row 0, column 0)" in page.locator(".jp-Notebook .cnnw-at-query-caption").first.inner_text()


def test_the_head_fusion_switch_recomputes_the_rollout(lab, page):
    before = lab.canvas_pixels(page, ROLLOUT)["hash"]
    page.locator(".jp-Notebook .cnnw-at-fusion").first.select_option("max")
    page.wait_for_function("(sel) => document.querySelector(sel).dataset.fusion === 'max'", arg=ROLLOUT,
                           timeout=60_000)
    assert lab.kernel_run(page, "print(amap.head_fusion, amap.rollout_meta['head_fusion'])") == "max max"
    assert lab.canvas_pixels(page, ROLLOUT)["hash"] != before
    lab.screenshot(page, "attention_max_fusion", selector=CELL)


def test_a_model_without_attention_shows_the_message(lab, page):
    message = page.locator(".jp-Notebook .cnnw-at-message").nth(1)
    message.wait_for(state="visible", timeout=30_000)
    assert "no attention site" in message.inner_text()
    assert page.locator(".jp-Notebook .cnnw-at-controls").nth(1).is_hidden()
