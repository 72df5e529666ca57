"""show_in_sidebar: the sidecar only where the page said it is JupyterLab; inline (and said so) anywhere else.

The page's side (js/sidebar_slot.js) is tested in the browser (tests/browser/test_frontends_browser.py for
Notebook 7 and Voila, test_activation_grid_browser.py and test_sidebar_fit_browser.py for JupyterLab); here its
report is played by setting the slot's traits as a message from the page would.
"""
from __future__ import annotations

import ipywidgets

from cnnwidget.widgets import sidebar


def _slot_and_handle(title="t"):
    child = ipywidgets.IntSlider()
    slot = sidebar.SidebarSlot(child=child, title=title)
    handle = sidebar.SidebarPanel(child, title, slot)
    return child, slot, handle


def test_before_the_page_reports_the_handle_does_not_claim_a_sidebar():
    child, slot, handle = _slot_and_handle()
    try:
        assert handle.where == "unknown" and handle.panel is None
        assert "has not said yet" in repr(handle) and "shown inline" in repr(handle)
        assert not handle.wait(0.01)
    finally:
        handle.close()
        child.close()


def test_a_page_without_a_jupyterlab_sidebar_gets_the_widget_inline_and_no_sidecar():
    child, slot, handle = _slot_and_handle()
    try:
        slot.set_state({"app": "Jupyter Notebook", "reported": True})
        assert handle.wait(0) and handle.where == "inline" and handle.panel is None
        assert repr(handle) == ("<IntSlider shown inline, not in a sidebar: Jupyter Notebook 7 has no JupyterLab "
                                "sidebar>")
        slot.set_state({"app": "", "reported": True})  # VS Code, Colab: no page config at all
        assert "this front end has no JupyterLab sidebar" in repr(handle)
    finally:
        handle.close()
        child.close()


def test_jupyterlab_gets_the_sidecar_with_the_widget_in_it():
    child, slot, handle = _slot_and_handle("panel")
    try:
        slot.set_state({"app": "JupyterLab", "reported": True})
        assert handle.where == "sidebar" and handle.panel is not None
        assert handle.panel.title == "panel"
        [out] = handle.panel.outputs
        assert out["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] == child.model_id
        assert repr(handle) == "<IntSlider in the JupyterLab sidebar panel 'panel'>"
        panel = handle.panel
        slot.set_state({"app": "JupyterLab", "reported": True})  # a second view of the slot: still one panel
        assert handle.panel is panel
        handle.close()  # removes the panel and the slot; the widget itself stays open
        assert slot.comm is None and panel.comm is None and child.comm is not None
    finally:
        handle.close()
        child.close()


def test_outside_a_kernel_the_widget_is_displayed_with_the_note(capsys):
    child = ipywidgets.IntSlider()
    try:
        handle = sidebar.show_in_sidebar(child, title="plain")
        out = capsys.readouterr().out
        assert "No JupyterLab sidebar outside a Jupyter kernel (plain IPython): 'plain' is shown here instead." in out
        assert handle.where == "inline" and handle.panel is None and handle.slot is None
        assert repr(handle) == "<IntSlider shown inline, not in a sidebar: plain IPython has no JupyterLab sidebar>"
        handle.close()
    finally:
        child.close()
