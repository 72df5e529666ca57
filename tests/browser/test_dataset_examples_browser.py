"""ChannelCard and DatasetExamples in a real JupyterLab (chromium), on the demo model, in the user's order: the
widgets are shown first, then their data-set pass fills them in from the worker. One notebook page is shared
(``lab.kept``). The harness fails a test on any browser console error.
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(400)

CARD = ".jp-Notebook .cnnw-cc"
LIST = ".jp-Notebook .cnnw-de"
NAMES = "['<b>circle</b>', 'square', 'triangle', 'star', 'cross', 'ring', 'heart', 'moon', 'arrow', 'diamond']"
CELLS = [
    "import cnnwidget as cw\nfrom cnnwidget import demo\n"
    "data = demo.shapes(160, seed=21)\nmodel = demo.load_model()\n"
    f"card = cw.ChannelCard(model, data.images, 'block3_relu', 5, k=8, labels=data.labels, class_names={NAMES},\n"
    "                      fv_steps=24)\ncard",
    "de = cw.DatasetExamples(model, data.images, 'block2_relu', page_size=16, card_options={'fv_steps': 8})\nde",
]


def _idle(page, selector, timeout=180):
    page.wait_for_function("(sel) => { const r = document.querySelector(sel); return r && "
                           "r.dataset.running === 'false'; }", arg=selector, timeout=timeout * 1000)


@pytest.fixture(scope="module")
def page(lab):
    page = lab.open_notebook(CELLS, name="dataset_examples_browser")
    lab.run_all(page, timeout=240)
    lab.wait_for(page, CARD)
    lab.wait_for(page, LIST)
    page.wait_for_function("(sel) => document.querySelector(sel)?.dataset.n === '8'",
                           arg=f"{CARD} .cnnw-cc-patches", timeout=180_000)
    page.wait_for_function("(sel) => document.querySelector(sel)?.dataset.final === 'true'",
                           arg=f"{CARD} .cnnw-cc-fv", timeout=180_000)
    page.wait_for_function("(sel) => document.querySelector(sel)?.dataset.n === '16'",
                           arg=f"{LIST} .cnnw-de-tiles", timeout=180_000)
    with lab.kept(page):
        yield page


def test_the_card_draws_its_patches_its_rendering_and_its_numbers_as_text(lab, page):
    root = page.locator(CARD).first
    for nth in range(8):
        px = lab.canvas_pixels(page, f"{CARD} .cnnw-cc-patch img", nth=nth)
        assert px["non_transparent"] > 0 and px["distinct_colors"] > 1, (nth, px)
    fv = lab.canvas_pixels(page, f"{CARD} .cnnw-cc-fv canvas")
    assert fv["width"] == 64 and fv["non_transparent"] == 64 * 64 and fv["distinct_colors"] > 50
    hist = lab.canvas_pixels(page, f"{CARD} .cnnw-cc-histogram")
    assert hist["non_transparent"] > 0
    want = lab.kernel_run(page, "print(card.patches_meta['indices'][0])").strip()
    assert root.locator(".cnnw-cc-patch figcaption").first.inner_text().startswith(f"#{want} · ")
    assert "zeros" in root.locator(".cnnw-cc-stats").inner_text()
    assert root.locator(".cnnw-cc-classes-box").is_visible()
    names = root.locator(".cnnw-cc-class-name").all_inner_texts()
    assert "<b>circle</b>" in names and root.locator("b").count() == 0  # class names are text, never HTML
    lab.screenshot(page, "channel_card", selector=CARD)


def test_a_bad_channel_typed_in_the_card_is_refused_and_a_good_one_redraws(lab, page):
    root = page.locator(CARD).first
    box = root.locator(".cnnw-cc-channel")
    box.fill("64")
    box.press("Enter")
    error = root.locator(".cnnw-error")
    error.wait_for(state="visible", timeout=30_000)
    assert "channel 64 is out of range of layer 'block3_relu'" in error.inner_text()
    page.wait_for_function("(sel) => document.querySelector(sel).value === '5'", arg=f"{CARD} .cnnw-cc-channel")
    before = lab.canvas_pixels(page, f"{CARD} .cnnw-cc-patch img")["hash"]
    box.fill("9")
    box.press("Enter")
    page.wait_for_function("(sel) => document.querySelector(sel).dataset.channel === '9'", arg=CARD,
                           timeout=60_000)
    # the page draws channel 9 at once from the layer it holds (the card's channels sent ahead); the refusal of 64
    # goes when the kernel's reply clears `error`, a round trip later: wait for it rather than read it at once
    error.wait_for(state="hidden", timeout=30_000)
    assert lab.canvas_pixels(page, f"{CARD} .cnnw-cc-patch img")["hash"] != before
    _idle(page, CARD)


def test_clicking_a_channel_in_the_list_opens_its_card(lab, page):
    lst = page.locator(LIST).first
    px = lab.canvas_pixels(page, f"{LIST} .cnnw-de-tile img", nth=3)
    assert px["non_transparent"] > 0 and px["distinct_colors"] > 1
    lst.locator(".cnnw-de-next").click()
    page.wait_for_function("(sel) => document.querySelector(sel)?.dataset.page === '1'", arg=f"{LIST} .cnnw-de-tiles",
                           timeout=60_000)
    lst.locator('.cnnw-de-tile[data-channel="19"]').click()
    opened = f"{LIST} .cnnw-de-card .cnnw-cc"
    lab.wait_for(page, opened, timeout=60)
    page.wait_for_function("(sel) => { const c = document.querySelector(sel); return c && c.dataset.channel === '19'"
                           " && c.querySelector('.cnnw-cc-patches').dataset.n === '16'; }", arg=opened,
                           timeout=120_000)
    assert lst.locator('.cnnw-de-tile[data-channel="19"]').get_attribute("aria-pressed") == "true"
    px = lab.canvas_pixels(page, f"{opened} .cnnw-cc-patch img")
    assert px["non_transparent"] > 0 and px["distinct_colors"] > 1
    assert lab.kernel_run(page, "print(de.channel, de.card.channel, de.card.layer)").split() == [
        "19", "19", "block2_relu"]
    _idle(page, opened)
    lab.screenshot(page, "dataset_examples_card", selector=LIST)


def test_the_card_on_the_output_layer_shows_whole_images_and_the_unit_s_class_name(lab, page):
    root = page.locator(CARD).first
    root.locator(".cnnw-cc-layer").select_option("predictions")  # a dense layer: one unit per class
    page.wait_for_function("(sel) => document.querySelector(sel).dataset.layer === 'predictions'", arg=CARD,
                           timeout=60_000)
    box = root.locator(".cnnw-cc-channel")
    box.fill("0")
    box.press("Enter")
    page.wait_for_function("(sel) => { const r = document.querySelector(sel); return r.dataset.channel === '0' && "
                           "r.querySelector('.cnnw-cc-patches').dataset.n === '8'; }", arg=CARD, timeout=120_000)
    title = root.locator(".cnnw-cc-patches-title").inner_text()
    assert "unit 0 (<b>circle</b>)" in title and "the whole image (64×64 px)" in title, title
    assert root.locator("b").count() == 0  # the class name is text, never HTML
    px = lab.canvas_pixels(page, f"{CARD} .cnnw-cc-patch img")
    assert (px["width"], px["height"]) == (64, 64) and px["non_transparent"] == 64 * 64 and px["distinct_colors"] > 1
    _idle(page, CARD)
    # an output unit's rendering is its class's log-odds: the softmax value itself left a flat grey image
    page.wait_for_function("(sel) => document.querySelector(sel)?.dataset.final === 'true'",
                           arg=f"{CARD} .cnnw-cc-fv", timeout=120_000)
    assert lab.canvas_pixels(page, f"{CARD} .cnnw-cc-fv canvas")["distinct_colors"] > 50
    lab.screenshot(page, "channel_card_output_layer", selector=CARD)


def test_an_exported_list_says_once_that_a_click_needs_the_kernel(lab, page, tmp_path):
    from pathlib import Path

    out = tmp_path / "de.html"
    path = lab.kernel_run(page, f"print(de.export_html({str(out)!r})['path'])").strip().splitlines()[-1]
    static = page.context.new_page()
    try:
        static.goto(Path(path).as_uri())
        static.wait_for_function("window.cnnwExport && window.cnnwExport.ready", timeout=30_000)
        static.locator('.cnnw-de-tile[data-channel="20"]').first.click()
        static.wait_for_function("document.querySelector('.cnnw-de .cnnw-error')?.textContent.includes('kernel')",
                                 timeout=10_000)
        text = static.locator("body").inner_text()
        assert text.count("needs the notebook's kernel") == 1, text  # the list's error line, not the banner too
    finally:
        static.close()
