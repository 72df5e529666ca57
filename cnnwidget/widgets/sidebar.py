"""Showing a widget in JupyterLab's right sidebar, and inline where the front end has no such sidebar.

How the front end is known (and why this way): only the page knows which application shows it. The kernel cannot
tell (the same kernel may be shown by JupyterLab and by Notebook 7 at once, or run by Voila or nbclient with no
page), and jupyterlab-sidecar's own view, created in a front end without JupyterLab's shell, fails with console
errors and shows nothing (Notebook 7 today). So ``show_in_sidebar`` displays a small slot widget in the cell's
output (js/sidebar_slot.js). Its model, as soon as a page has it (anywidget's ``initialize``, whether or not the
output is displayed anywhere), reports the page's application name (PageConfig ``appName``: "JupyterLab",
"Jupyter Notebook"; "Voila"; none in VS Code or Colab), and

* in JupyterLab its view shows nothing: on the report the kernel opens the sidecar panel with the widget (so a
  sidecar is only ever made where it works, and also when show_in_sidebar ran where no output is shown);
* anywhere else its view shows the widget right there under a one-line note ("No JupyterLab sidebar in Jupyter
  Notebook 7: ... is shown here instead").

The decision is the page's own, so what a person sees is right with no timeout and no race, also when a saved
notebook is opened in another front end. The handle's repr says what the page reported. The report reaches the
kernel once the cell that asked has ended (seen in JupyterLab 4.6 and Notebook 7.6 with ipykernel 7.4: a wait inside
the cell never saw it, so ``show_in_sidebar`` does not wait unless given ``timeout``); the handle shown as the cell's
value is one line of text with a display id, replaced in place by the new repr when the report arrives ("... in the
JupyterLab sidebar panel 'x'" or "... shown inline, not in a sidebar: Jupyter Notebook 7 has no JupyterLab
sidebar"). Outside a Jupyter kernel (plain IPython, a script) there is no widget front end at all: the widget is
displayed as it would be there, with the note printed.
"""

from __future__ import annotations

import threading
import uuid

import anywidget
import ipywidgets
import traitlets as t
from IPython.display import display, update_display

from ._esm import bundle

_open: dict[str, "SidebarPanel"] = {}

LAB = "JupyterLab"


def _front_end_name(app: str) -> str:
    return {"Jupyter Notebook": "Jupyter Notebook 7", "": "this front end"}.get(app, app)


class SidebarSlot(anywidget.AnyWidget):
    """The cell-output half of ``show_in_sidebar`` (see the module docstring): shows ``child`` inline where the page
    has no JupyterLab sidebar, and reports the page's application in ``app``."""

    _esm = bundle("sidebar_slot.js")
    child = t.Instance(ipywidgets.Widget).tag(sync=True, **ipywidgets.widget_serialization)
    title = t.Unicode("").tag(sync=True)
    app = t.Unicode("", help="the application the page reported (PageConfig appName)").tag(sync=True)
    reported = t.Bool(False, help="a page has said which application it is").tag(sync=True)


class SidebarPanel:
    """A handle on a widget given to ``show_in_sidebar``; ``close()`` removes the panel (or the inline view).
    ``where`` is "sidebar", "inline" or "unknown" (no page has reported yet). Not a widget itself, so leaving it as
    a cell's last value shows a line of text, not a second view."""

    def __init__(self, widget, title: str, slot: SidebarSlot | None = None, anchor: str = "right"):
        self.widget, self.title, self.slot, self.anchor = widget, title, slot, anchor
        self.panel = None  # the sidecar, once a JupyterLab page asked for it
        self.app = "" if slot is not None else "plain IPython"
        self._reported = threading.Event()
        self._lock = threading.Lock()
        self._display_ids: list[str] = []  # outputs showing this handle's repr: updated when the page reports
        self._closed = False
        if slot is None:
            self._reported.set()
        else:
            slot.observe(self._on_report, names=["reported", "app"])

    @property
    def where(self) -> str:
        if self.panel is not None:
            return "sidebar"
        return "inline" if self._reported.is_set() else "unknown"

    def _on_report(self, _change):
        slot = self.slot
        if slot is None or not slot.reported:
            return
        with self._lock:
            if self._closed:
                return
            self.app = slot.app
            if slot.app == LAB and self.panel is None:
                self.panel = _sidecar(self.widget, self.title, self.anchor)
        self._reported.set()
        for display_id in list(self._display_ids):
            update_display({"text/plain": repr(self)}, raw=True, display_id=display_id)

    def _ipython_display_(self):
        # The handle as a cell's value: its line of text, updated in place once the page has said where the widget is.
        display_id = uuid.uuid4().hex
        self._display_ids.append(display_id)
        display({"text/plain": repr(self)}, raw=True, display_id=display_id)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a page has said where the widget is (True), or ``timeout`` seconds passed (False)."""
        return self._reported.wait(timeout)

    def close(self):
        """Remove the sidebar panel, or the inline view; the widget itself stays open. Safe to call again."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if _open.get(self.title) is self:
            del _open[self.title]
        if self.slot is not None:
            self.slot.unobserve(self._on_report, names=["reported", "app"])
            self.slot.close()
        if self.panel is not None:
            self.panel.close()

    def __repr__(self):
        name, title = type(self.widget).__name__, self.title
        if self.panel is not None:
            return f"<{name} in the JupyterLab sidebar panel {title!r}>"
        if self.where == "inline":
            return f"<{name} shown inline, not in a sidebar: {_front_end_name(self.app)} has no JupyterLab sidebar>"
        return (f"<{name} for the sidebar panel {title!r}: the front end has not said yet whether it has a JupyterLab "
                f"sidebar; where it has none, the widget is shown inline>")


def _sidecar(widget, title: str, anchor: str):
    from sidecar import Sidecar

    panel = Sidecar(title=title, anchor=anchor)
    # Set as data rather than `with panel: display(widget)`: this runs when the page's report arrives, on whichever
    # thread handles it, after the cell that asked may have ended.
    panel.outputs = ({"output_type": "display_data", "metadata": {},
                      "data": {"text/plain": repr(widget),
                               "application/vnd.jupyter.widget-view+json": {
                                   "version_major": 2, "version_minor": 0, "model_id": widget.model_id}}},)
    return panel


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def show_in_sidebar(widget, title: str = "cnnwidget", anchor: str = "right", timeout: float = 0.0) -> SidebarPanel:
    """Show ``widget`` in a JupyterLab sidebar panel titled ``title``; returns a handle with ``close()``.

    Uses jupyterlab-sidecar (``anchor="right"`` is the right sidebar; "split-right", "tab-after", ... also work).
    Where the front end has no JupyterLab sidebar (Jupyter Notebook 7, Voila, VS Code, Colab, plain IPython) the
    widget is shown inline, in the cell's output, under a one-line note saying so; the handle's repr says which
    (see the module docstring for how it is known). ``timeout``: seconds to wait for the page's answer before
    returning (it usually arrives only after the cell ends, so the default does not wait; ``handle.wait()`` in a
    later cell, or the handle's line of output, which is updated in place, tell where the widget went).
    Showing again under the same title replaces the earlier panel instead of piling up a new one each time a cell
    is re-run.
    """
    previous = _open.pop(title, None)
    if previous is not None:
        previous.close()
    if not _in_kernel():
        print(f"No JupyterLab sidebar outside a Jupyter kernel (plain IPython): {title!r} is shown here instead.")
        display(widget)
        return SidebarPanel(widget, title)
    slot = SidebarSlot(child=widget, title=title)
    handle = SidebarPanel(widget, title, slot, anchor)
    _open[title] = handle
    display(slot)
    if timeout and timeout > 0:
        handle.wait(float(timeout))
    return handle
