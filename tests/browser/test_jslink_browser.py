"""widgets.jslink works on a widget's own traits: in JupyterLab, with the kernel stopped, a slider jslinked to an
ActivationGrid's selected_channel enlarges that channel (from the page's own tile until the kernel sends the full
map), and a combobox jslinked to its layer moves its layer picker; once the kernel runs again it has both."""

import pytest

BUILD = """
import ipywidgets as W
import cnnwidget as cw
from cnnwidget import demo
grid = cw.ActivationGrid(demo.load_model(), demo.shapes(2, seed=1).images)
slider = W.IntSlider(value=0, min=-1, max=15, description="channel")
layers = W.Combobox(options=[l["name"] for l in grid.layers], value=grid.layer, description="layer",
                    continuous_update=False)  # a Dropdown syncs its index, not its value
links = [W.jslink((slider, "value"), (grid, "selected_channel")), W.jslink((layers, "value"), (grid, "layer"))]
"""
SHOW = "W.VBox([slider, layers, grid])"
FOCUS = ".cnnw-focus-canvas"


@pytest.mark.timeout(300)
def test_a_jslinked_slider_and_combobox_drive_the_grid_with_the_kernel_stopped(lab):
    page = lab.open_notebook([BUILD, SHOW])
    lab.run_all(page, timeout=240)
    page.wait_for_function("() => document.querySelector('.cnnw-grid-canvas')?.dataset.channels", timeout=60_000)
    page.wait_for_function(f"() => document.querySelector('{FOCUS}')?.dataset.channel === '0'", timeout=60_000)
    with lab.frozen_kernel(page):
        handle = page.locator(".widget-slider .noUi-handle").first
        handle.focus()
        for _ in range(3):
            handle.press("ArrowRight")
        page.wait_for_function(f"() => document.querySelector('{FOCUS}').dataset.channel === '3'", timeout=10_000)
        assert page.locator(FOCUS).get_attribute("data-preview") == "true"  # the page's own tile: no kernel
        assert "channel 3" in page.locator(".cnnw-focus-title").inner_text()
        pixels = lab.canvas_pixels(page, FOCUS)
        assert pixels["distinct_colors"] > 8
        box = page.locator(".widget-text input[list]").first
        box.fill("block2_conv")
        box.press("Enter")
        page.wait_for_function("() => document.querySelector('.cnnw-layer-select').value === 'block2_conv'",
                               timeout=10_000)
    # the kernel runs again: it hears both changes and sends the new layer's page and the full-resolution map
    page.wait_for_function(
        f"() => {{ const f = document.querySelector('{FOCUS}');"
        " return f.dataset.channel === '3' && f.dataset.preview === 'false'"
        " && document.querySelector('.cnnw-page-info').textContent.includes('32 channels'); }",
        timeout=60_000)
    assert lab.kernel_run(page, "grid.wait(60); print(grid.layer, grid.selected_channel, grid.focus_meta['channel'])") \
        == "block2_conv 3 3"
