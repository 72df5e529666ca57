"""Showing a widget in JupyterLab's right sidebar."""

from __future__ import annotations

from IPython.display import display
from sidecar import Sidecar

_open: dict[str, Sidecar] = {}


class SidebarPanel:
    """A handle on a widget shown in a sidebar; ``close()`` removes the panel. Not a widget itself, so leaving it
    as a cell's last value shows a line of text, not a second, empty view."""

    def __init__(self, widget, panel: Sidecar, title: str):
        self.widget, self.panel, self.title = widget, panel, title

    def close(self):
        """Remove the panel from the sidebar."""
        if _open.get(self.title) is self.panel:
            del _open[self.title]
        self.panel.close()

    def __repr__(self):
        return f"<{type(self.widget).__name__} in the JupyterLab sidebar panel {self.title!r}>"


def show_in_sidebar(widget, title: str = "cnnwidget", anchor: str = "right") -> SidebarPanel:
    """Show ``widget`` in a JupyterLab sidebar panel titled ``title``; returns a handle with ``close()``.

    Uses jupyterlab-sidecar (``anchor="right"`` is the right sidebar; "split-right", "tab-after", ... also work).
    Showing again under the same title replaces the earlier panel instead of piling up a new one each time a cell
    is re-run.
    """
    previous = _open.pop(title, None)
    if previous is not None:
        previous.close()
    panel = Sidecar(title=title, anchor=anchor)
    with panel:
        display(widget)
    _open[title] = panel
    return SidebarPanel(widget, panel, title)
